//! Running system commands (`ip`, `nsenter`, `mount` …) with errors that show what failed.

use std::ffi::OsStr;
use std::process::{Command, Output, Stdio};

/// A system command that failed or could not be started.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("could not start `{command}`: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: String,
        stderr: String,
    },
}

/// Renders a command line for messages.
pub fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(OsStr::to_string_lossy)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `cmd` to completion and returns its output; fails unless it exits 0.
pub fn run(cmd: &mut Command) -> Result<Output, CommandError> {
    let command = describe(cmd);
    tracing::debug!(%command, "run");
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|source| CommandError::Spawn {
            command: command.clone(),
            source,
        })?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(CommandError::Failed {
            command,
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        })
    }
}

/// Builds a command from a program and its arguments.
pub fn cmd<I, S>(program: &str, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(program);
    cmd.args(args);
    cmd
}

/// `ip -n <netns> <args…>`; `ip` commands touching a lab namespace never touch the root one.
pub fn ip(netns: &str, args: &[&str]) -> Result<Output, CommandError> {
    run(&mut cmd("ip", ["-n", netns].iter().chain(args)))
}

/// `ip netns exec <netns> <args…>`.
pub fn in_netns(netns: &str, args: &[&str]) -> Command {
    cmd("ip", ["netns", "exec", netns].iter().chain(args))
}

/// Sets a sysctl inside `netns` (through /proc/sys, so no procps is needed).
pub fn sysctl(netns: &str, key: &str, value: &str) -> Result<Output, CommandError> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    run(&mut in_netns(
        netns,
        &["sh", "-c", &format!("echo {value} > {path}")],
    ))
}

/// Whether `program` is on `PATH`.
pub fn have_command(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false)
}
