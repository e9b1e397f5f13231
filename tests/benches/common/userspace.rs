//! The userspace WireGuard implementation a bench measures: wireguard-go (what the lab and
//! Debian ship) or boringtun, chosen with `--implementation NAME` (or `KEB_IMPLEMENTATION`).
//! The agent gets it as `--userspace-implementation`; the hand-configured baselines start the
//! same program, so a comparison is always like with like.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use super::net::BenchNode;

#[derive(Clone, Debug)]
pub struct Implementation {
    pub name: &'static str,
    /// What to run as `<program> <interface>`: it creates the interface and its UAPI socket
    /// under /var/run/wireguard, then returns (the daemon stays in the background).
    pub program: PathBuf,
}

impl Implementation {
    /// The implementation named by `--implementation` or `KEB_IMPLEMENTATION` (default
    /// wireguard-go); boringtun runs through a small wrapper written into `dir`.
    pub fn from_args(dir: &Path) -> anyhow::Result<Self> {
        let args: Vec<String> = std::env::args().collect();
        let name = args
            .iter()
            .position(|a| a == "--implementation")
            .map(|i| {
                args.get(i + 1)
                    .cloned()
                    .context("--implementation needs a name")
            })
            .transpose()?
            .or_else(|| std::env::var("KEB_IMPLEMENTATION").ok())
            .unwrap_or_else(|| "wireguard-go".into());
        match name.as_str() {
            "wireguard-go" => Self::wireguard_go(),
            "boringtun" => Self::boringtun(dir),
            other => bail!("--implementation {other}: known are wireguard-go and boringtun"),
        }
    }

    fn wireguard_go() -> anyhow::Result<Self> {
        installed(
            "wireguard-go",
            "apt-get install --no-install-recommends wireguard-go",
        )?;
        Ok(Self {
            name: "wireguard-go",
            program: "wireguard-go".into(),
        })
    }

    /// boringtun-cli drops to an unprivileged user by default, which needs a `sudo` login
    /// here; the wrapper keeps it root like wireguard-go (the agent runs it the same way).
    fn boringtun(dir: &Path) -> anyhow::Result<Self> {
        installed("boringtun-cli", "cargo install boringtun-cli --locked")?;
        let wrapper = dir.join("boringtun");
        std::fs::write(
            &wrapper,
            "#!/bin/sh\nexec boringtun-cli --disable-drop-privileges \"$@\"\n",
        )
        .with_context(|| format!("write {}", wrapper.display()))?;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))?;
        Ok(Self {
            name: "boringtun",
            program: wrapper,
        })
    }

    /// Starts the daemon for `interface` in `node`, as the agent does: the environment
    /// Debian's wireguard-go needs next to a kernel with WireGuard built in, no LOG_LEVEL
    /// (with it the daemon would keep our pipes open).
    pub fn start(&self, node: &BenchNode, interface: &str) -> anyhow::Result<()> {
        let program = self.program.display().to_string();
        let mut start = node.command(&[&program, interface]);
        start
            .env("WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD", "1")
            .env_remove("LOG_LEVEL");
        kube_encrypt_tests::lab::sys::run(&mut start)
            .with_context(|| format!("start {} for {interface} in {}", self.name, node.netns))?;
        Ok(())
    }
}

fn installed(program: &str, install: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        kube_encrypt_tests::lab::sys::have_command(program),
        "{program} is not installed: {install}"
    );
    Ok(())
}
