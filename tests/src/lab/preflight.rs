//! Checks before `up`: root, and the system commands the lab runs.

use super::sys::have_command;

/// Commands the lab needs, with the Debian package that has them.
pub const REQUIRED: [(&str, &str); 7] = [
    ("ip", "iproute2"),
    ("nsenter", "util-linux"),
    ("unshare", "util-linux"),
    ("mount", "mount"),
    ("umount", "mount"),
    ("tcpdump", "tcpdump"),
    ("ping", "iputils-ping"),
];

/// A precondition of the lab is not met.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PreflightError {
    #[error("must run as root (the lab creates network namespaces and mounts); try `sudo kube-encrypt-lab …`")]
    NotRoot,
    #[error("missing system packages: {}; install them with `make deps` (scripts/install-deps.sh) or `apt-get install {}`", .0.join(", "), .1.join(" "))]
    Missing(Vec<String>, Vec<String>),
}

/// Fails unless the lab can run here.
pub fn check() -> Result<(), PreflightError> {
    if !nix::unistd::Uid::effective().is_root() {
        return Err(PreflightError::NotRoot);
    }
    missing(&REQUIRED, have_command)
}

/// The packages of `required` whose command is absent.
pub fn missing(
    required: &[(&str, &str)],
    have: impl Fn(&str) -> bool,
) -> Result<(), PreflightError> {
    let absent: Vec<_> = required.iter().filter(|(cmd, _)| !have(cmd)).collect();
    if absent.is_empty() {
        return Ok(());
    }
    let commands = absent
        .iter()
        .map(|(cmd, pkg)| format!("{pkg} (command `{cmd}`)"))
        .collect();
    let mut packages: Vec<String> = absent.iter().map(|(_, pkg)| pkg.to_string()).collect();
    packages.dedup();
    Err(PreflightError::Missing(commands, packages))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_commands_name_their_packages() {
        let required = [
            ("ip", "iproute2"),
            ("nsenter", "util-linux"),
            ("unshare", "util-linux"),
        ];
        assert_eq!(missing(&required, |_| true), Ok(()));
        let err = missing(&required, |cmd| cmd == "ip").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("util-linux (command `nsenter`)"), "{text}");
        assert!(text.contains("apt-get install util-linux"), "{text}");
        assert!(!text.contains("util-linux util-linux"), "{text}");
    }
}
