//! `down`: removes everything recorded in the state file, in reverse order, even after a
//! crashed or interrupted `up`. Processes are stopped by their recorded PID (checked against
//! their start time), and then any process still inside a lab namespace (`ip netns pids`).

use std::path::Path;
use std::time::Duration;

use super::mounts;
use super::network;
use super::process;
use super::services::SUPERVISOR;
use super::state::{Resource, Store};
use super::supervisor::AgentRecord;

/// What `down` could not remove.
#[derive(Debug, thiserror::Error)]
#[error("could not remove everything:\n  {}\nthe state file is kept: fix the cause and run `kube-encrypt-lab down` again", .0.join("\n  "))]
pub struct TeardownError(pub Vec<String>);

/// Stops every process and removes every resource of the lab, then its state dir.
pub fn teardown(store: Store) -> Result<(), TeardownError> {
    stop_processes(&store);
    let mut failures = Vec::new();
    for resource in store.state.resources.iter().rev() {
        if let Err(e) = remove(resource) {
            failures.push(e);
        }
    }
    if !failures.is_empty() {
        return Err(TeardownError(failures));
    }
    store
        .remove()
        .map_err(|e| TeardownError(vec![e.to_string()]))
}

fn stop_processes(store: &Store) {
    let grace = Duration::from_secs(5);
    // The supervisor first, so it does not restart the agents being stopped.
    if let Some(supervisor) = store.process(SUPERVISOR) {
        supervisor.stop(grace);
    }
    for node in store.state.topology().nodes {
        if let Some(agent) = AgentRecord::load(&store.paths, &node.name) {
            agent.process.stop(grace);
        }
    }
    for record in store.state.processes.iter().rev() {
        record.stop(grace);
    }
    // Whatever still runs inside a lab namespace (e.g. a userspace WireGuard an agent started).
    for resource in &store.state.resources {
        if let Resource::Netns { name } = resource {
            if !Path::new("/run/netns").join(name).exists() {
                continue;
            }
            for pid in process::netns_pids(name).unwrap_or_default() {
                let record = process::record(&format!("process in {name}"), pid);
                tracing::info!(pid, netns = %name, "stopping leftover process");
                record.stop(grace);
            }
        }
    }
}

fn remove(resource: &Resource) -> Result<(), String> {
    match resource {
        Resource::Netns { name } => network::delete_netns(name).map_err(|e| e.to_string()),
        Resource::Mount { path } => mounts::unmount(path).map_err(|e| e.to_string()),
        Resource::Dir { path } => {
            remove_empty_tree(path).map_err(|e| format!("remove {}: {e}", path.display()))
        }
    }
}

/// Removes `path` and its subdirectories when none of them holds a file.
fn remove_empty_tree(path: &Path) -> std::io::Result<()> {
    if !path.exists() {
        return Ok(());
    }
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            remove_empty_tree(&entry.path())?;
        }
    }
    match std::fs::remove_dir(path) {
        Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty => {
            tracing::warn!(path = %path.display(), "not removed: something else put files in it");
            Ok(())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_trees_go_and_trees_with_files_stay() {
        let root =
            std::env::temp_dir().join(format!("ke-lab-teardown-test-{}", std::process::id()));
        let empty = root.join("empty/a/b");
        let kept = root.join("kept/a");
        std::fs::create_dir_all(&empty).unwrap();
        std::fs::create_dir_all(&kept).unwrap();
        std::fs::write(kept.join("file"), "x").unwrap();
        remove_empty_tree(&root.join("empty")).unwrap();
        remove_empty_tree(&root.join("kept")).unwrap();
        assert!(!root.join("empty").exists());
        assert!(kept.join("file").exists());
        std::fs::remove_dir_all(root).unwrap();
    }
}
