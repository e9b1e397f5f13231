//! Each node's own mount namespace, so node agents never share `/var/run/wireguard` (the
//! userspace WireGuard sockets) or their state dir. The namespace is persisted by a bind
//! mount under the lab's state dir; commands enter it with `nsenter --mount=… --net=…`.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::state::{Paths, Resource, StateError, Store};
use super::sys::{self, CommandError};
use super::topology::NodePlan;

/// Where userspace WireGuard puts its control sockets.
pub const WIREGUARD_RUN_DIR: &str = "/var/run/wireguard";
/// The agent's state dir inside a node (the agent's default).
pub const AGENT_STATE_DIR: &str = "/var/lib/kube-encrypt";

/// Making a node's mount namespace failed.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("cannot create {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Creates the private mount that holds the persisted namespaces, and the host mount points.
pub fn prepare(store: &mut Store) -> Result<(), MountError> {
    let dir = store.paths.mntns_dir();
    create_dir(&dir)?;
    store.record(Resource::Mount { path: dir.clone() })?;
    let dir_text = dir.to_string_lossy().to_string();
    sys::run(&mut sys::cmd("mount", ["--bind", &dir_text, &dir_text]))?;
    sys::run(&mut sys::cmd("mount", ["--make-private", &dir_text]))?;
    for mount_point in [WIREGUARD_RUN_DIR, AGENT_STATE_DIR] {
        ensure_mount_point(Path::new(mount_point), store)?;
    }
    Ok(())
}

/// Creates node's mount namespace: a private copy of the host's mounts with its own tmpfs on
/// /var/run/wireguard and its own state dir.
pub fn create_node(node: &NodePlan, store: &mut Store) -> Result<(), MountError> {
    let file = store.paths.node_mntns(&node.name);
    std::fs::write(&file, b"").map_err(|source| MountError::Io {
        path: file.clone(),
        source,
    })?;
    store.record(Resource::Mount { path: file.clone() })?;
    let file_text = file.to_string_lossy().to_string();
    sys::run(&mut sys::cmd(
        "unshare",
        [
            format!("--mount={file_text}").as_str(),
            "--propagation",
            "private",
            "true",
        ],
    ))?;
    let state_dir = store.paths.node_state(&node.name);
    create_dir(&state_dir)?;
    let in_node = |args: &[&str]| sys::run(&mut nsenter_mount(&file, args));
    in_node(&[
        "mount",
        "-t",
        "tmpfs",
        "-o",
        "mode=0755",
        "tmpfs",
        WIREGUARD_RUN_DIR,
    ])?;
    in_node(&[
        "mount",
        "--bind",
        &state_dir.to_string_lossy(),
        AGENT_STATE_DIR,
    ])?;
    Ok(())
}

fn nsenter_mount(file: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--mount={}", file.display()))
        .arg("--")
        .args(args);
    cmd
}

/// A command run inside node's network and mount namespaces.
pub fn in_node(paths: &Paths, node: &NodePlan, args: &[String]) -> Command {
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!(
        "--mount={}",
        paths.node_mntns(&node.name).display()
    ))
    .arg(format!("--net=/run/netns/{}", node.netns))
    .arg("--")
    .args(args);
    cmd
}

fn ensure_mount_point(path: &Path, store: &mut Store) -> Result<(), MountError> {
    if path.is_dir() {
        return Ok(());
    }
    // Record the outermost directory we create, so `down` removes exactly what we made.
    let mut outermost = path.to_path_buf();
    while let Some(parent) = outermost.parent() {
        if parent.exists() {
            break;
        }
        outermost = parent.to_path_buf();
    }
    store.record(Resource::Dir { path: outermost })?;
    create_dir(path)
}

fn create_dir(path: &Path) -> Result<(), MountError> {
    std::fs::create_dir_all(path).map_err(|source| MountError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Unmounts a lab mount (lazily, so a busy one still goes).
pub fn unmount(path: &Path) -> Result<(), CommandError> {
    if !is_mounted(path) {
        return Ok(());
    }
    sys::run(&mut sys::cmd("umount", ["-l".as_ref(), path.as_os_str()])).map(|_| ())
}

/// Whether `path` is a mount point (listed in /proc/self/mounts).
pub fn is_mounted(path: &Path) -> bool {
    let wanted = path.to_string_lossy();
    std::fs::read_to_string("/proc/self/mounts")
        .map(|mounts| {
            mounts
                .lines()
                .any(|l| l.split_whitespace().nth(1) == Some(&wanted))
        })
        .unwrap_or(false)
}
