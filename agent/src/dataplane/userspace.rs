//! Userspace WireGuard daemons (wireguard-go or a compatible implementation). The agent
//! starts one per interface; it daemonizes into its own process group and outlives the
//! agent, so established traffic keeps flowing while the agent restarts. The agent then
//! configures it through its UAPI socket `/var/run/wireguard/<interface>.sock`, which is
//! where wireguard-control's userspace backend looks.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::net::UnixStream;
use tokio::process::Command;

use super::error::io_text;

/// Where wireguard-control looks first (and where wireguard-go puts its sockets).
const VAR_RUN_DIR: &str = "/var/run/wireguard";
/// wireguard-control's fallback when [`VAR_RUN_DIR`] does not exist.
const RUN_DIR: &str = "/run/wireguard";

/// How long the implementation may take to create the interface and daemonize.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for the UAPI socket to answer, or to go away.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(3);
const POLL: Duration = Duration::from_millis(20);

/// The UAPI socket of `interface`, as wireguard-control resolves it.
pub(crate) fn socket_path(interface: &str) -> PathBuf {
    let dir = if Path::new(VAR_RUN_DIR).exists() || !Path::new(RUN_DIR).exists() {
        VAR_RUN_DIR
    } else {
        RUN_DIR
    };
    Path::new(dir).join(format!("{interface}.sock"))
}

/// How long a daemon's socket may take to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// True when a daemon answers on the interface's socket within [`CONNECT_TIMEOUT`]. The
/// connect is asynchronous: a daemon that hangs with a full backlog cannot block the loop.
pub(crate) async fn socket_answers(interface: &str) -> bool {
    let connect = UnixStream::connect(socket_path(interface));
    matches!(
        tokio::time::timeout(CONNECT_TIMEOUT, connect).await,
        Ok(Ok(_))
    )
}

/// Starts `implementation` for `interface` and waits until its socket answers.
pub(crate) async fn start_daemon(implementation: &Path, interface: &str) -> Result<(), String> {
    remove_stale_socket(interface).await?;
    let mut command = Command::new(implementation);
    command
        .arg(interface)
        // Debian's wireguard-go refuses to run next to a kernel that has WireGuard built in.
        .env("WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD", "1")
        // With LOG_LEVEL set, the daemon would keep our pipes open and never let us finish.
        .env_remove("LOG_LEVEL")
        // Its own process group: a signal to the agent's group does not reach the daemon.
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let program = implementation.display();
    let output = tokio::time::timeout(START_TIMEOUT, command.output())
        .await
        .map_err(|_| format!("{program} did not finish starting within {START_TIMEOUT:?}"))?
        .map_err(|e| format!("cannot run {program}: {}; install wireguard-go or configure another userspace implementation", io_text(&e)))?;
    if !output.status.success() {
        return Err(format!(
            "{program} {interface} failed ({}): {}",
            output.status,
            last_words(&output.stderr, &output.stdout)
        ));
    }
    wait_until(|| socket_answers(interface))
        .await
        .then_some(())
        .ok_or_else(|| {
            format!(
                "{program} started but {} does not answer",
                socket_path(interface).display()
            )
        })
}

/// After the link is deleted the daemon exits and removes its socket; wait for that, then
/// remove a socket left behind by a daemon that died without cleaning up.
pub(crate) async fn wait_for_daemon_exit(interface: &str) -> Result<(), String> {
    if !wait_until(|| async { !socket_answers(interface).await }).await {
        tracing::warn!(
            interface,
            "userspace WireGuard daemon still answers after its link was deleted"
        );
    }
    remove_stale_socket(interface).await
}

/// Removes the socket file when no daemon answers on it.
pub(crate) async fn remove_stale_socket(interface: &str) -> Result<(), String> {
    let path = socket_path(interface);
    if !path.exists() || socket_answers(interface).await {
        return Ok(());
    }
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!(
            "cannot remove stale socket {}: {}",
            path.display(),
            io_text(&e)
        )),
    }
}

async fn wait_until<F: std::future::Future<Output = bool>>(
    mut condition: impl FnMut() -> F,
) -> bool {
    let deadline = tokio::time::Instant::now() + SOCKET_TIMEOUT;
    loop {
        if condition().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The last meaningful line the implementation printed.
fn last_words(stderr: &[u8], stdout: &[u8]) -> String {
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    let lines = |text: &str| -> Option<String> {
        text.lines()
            .rev()
            .map(|l| l.trim_matches(|c: char| c.is_whitespace() || "│┌┐└┘─".contains(c)))
            .find(|l| !l.is_empty())
            .map(str::to_owned)
    };
    lines(&text(stderr))
        .or_else(|| lines(&text(stdout)))
        .unwrap_or_else(|| "no output".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_words_prefer_stderr_and_skip_box_drawing() {
        let cases: [(&str, &str, &str); 3] = [
            (
                "ERROR: (kube0) Failed to create TUN device: no such file\n",
                "",
                "ERROR: (kube0) Failed to create TUN device: no such file",
            ),
            (
                "",
                "┌────┐\n│ Running wireguard-go is not required │\n└────┘\n",
                "Running wireguard-go is not required",
            ),
            ("", "", "no output"),
        ];
        for (stderr, stdout, expected) in cases {
            assert_eq!(last_words(stderr.as_bytes(), stdout.as_bytes()), expected);
        }
    }

    #[tokio::test]
    async fn a_missing_implementation_names_the_flag() {
        let err = start_daemon(Path::new("/nonexistent/wireguard-go"), "ket-nonexist0")
            .await
            .unwrap_err();
        assert!(
            err.contains("cannot run /nonexistent/wireguard-go"),
            "{err}"
        );
        assert!(err.contains("install wireguard-go"), "{err}");
    }
}
