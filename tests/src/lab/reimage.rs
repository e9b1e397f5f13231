//! `reimage NODE`: the node comes back as from a fresh install, as when a cloud replaces a
//! VM: its agent stops, its state dir is wiped (the next agent generates new keys), and what
//! lived only in the kernel is gone — the WireGuard links (with their userspace daemons),
//! policy rules other than the kernel's own, routing tables other than main/local/default,
//! the nftables ruleset. The node's underlay and pod network (host-gw routes in main) stay,
//! as a reinstalled node's CNI would set them up again. Then the supervisor starts a fresh
//! agent, exactly as a DaemonSet would on the new machine.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::mounts;
use super::state::{Paths, Store};
use super::supervisor::AgentRecord;
use super::sys;
use super::topology::NodePlan;

/// Rule priorities the kernel creates in every namespace (local, main, default).
const KERNEL_RULES: [&str; 3] = ["0:", "32766:", "32767:"];
const AGENT_RESTART: Duration = Duration::from_secs(20);

/// Reimages `node`; returns once a fresh agent runs (when the lab runs agents).
pub fn reimage(store: &Store, node: &NodePlan) -> anyhow::Result<()> {
    let paths = &store.paths;
    let hold = paths.agent_hold_file(&node.name);
    std::fs::write(&hold, b"").with_context(|| format!("write {}", hold.display()))?;
    let result = wipe(store, node);
    std::fs::remove_file(&hold).with_context(|| format!("remove {}", hold.display()))?;
    result?;
    if store.state.agents {
        wait_for_fresh_agent(paths, &node.name)?;
    }
    Ok(())
}

fn wipe(store: &Store, node: &NodePlan) -> anyhow::Result<()> {
    let before = AgentRecord::load(&store.paths, &node.name);
    if let Some(agent) = &before {
        agent.process.stop(Duration::from_secs(5));
    }
    stop_userspace_daemons(store, node)?;
    clear_kernel_state(node)?;
    clear_dir(&store.paths.node_state(&node.name))
}

/// Every process left in the node's namespace but the lab's own services (the control plane
/// may run on this node): the userspace WireGuard daemons. Their sockets go with the node's
/// `/var/run/wireguard` tmpfs contents.
fn stop_userspace_daemons(store: &Store, node: &NodePlan) -> anyhow::Result<()> {
    let services: Vec<u32> = store.state.processes.iter().map(|p| p.pid).collect();
    for pid in super::process::netns_pids(&node.netns)? {
        if services.contains(&pid) {
            continue;
        }
        super::process::record(&format!("process in {}", node.netns), pid)
            .stop(Duration::from_secs(5));
    }
    let clear = format!("rm -f {}/*", mounts::WIREGUARD_RUN_DIR);
    let args = ["sh".to_owned(), "-c".to_owned(), clear];
    sys::run(&mut mounts::in_node(&store.paths, node, &args))?;
    Ok(())
}

fn clear_kernel_state(node: &NodePlan) -> anyhow::Result<()> {
    let links = sys::ip(&node.netns, &["-o", "link", "show"])?;
    for name in wireguard_like_links(&String::from_utf8_lossy(&links.stdout)) {
        sys::ip(&node.netns, &["link", "del", &name])?;
    }
    for family in ["-4", "-6"] {
        let rules = sys::ip(&node.netns, &[family, "rule", "show"])?;
        for rule in String::from_utf8_lossy(&rules.stdout).lines() {
            if KERNEL_RULES.iter().any(|k| rule.starts_with(k)) {
                continue;
            }
            let priority = rule.split(':').next().unwrap_or_default().trim();
            sys::ip(&node.netns, &[family, "rule", "del", "priority", priority])?;
        }
    }
    flush_custom_tables(node)?;
    sys::run(&mut sys::in_netns(
        &node.netns,
        &["nft", "flush", "ruleset"],
    ))?;
    Ok(())
}

/// Routes of every table but main (254), local (255) and default (253).
fn flush_custom_tables(node: &NodePlan) -> anyhow::Result<()> {
    for family in ["-4", "-6"] {
        let routes = sys::ip(&node.netns, &[family, "route", "show", "table", "all"])?;
        let mut tables: Vec<String> = String::from_utf8_lossy(&routes.stdout)
            .lines()
            .filter_map(|l| {
                let words: Vec<&str> = l.split_whitespace().collect();
                let at = words.iter().position(|w| *w == "table")?;
                words.get(at + 1).map(|t| t.to_string())
            })
            .filter(|t| !["main", "local", "default"].contains(&t.as_str()))
            .collect();
        tables.sort();
        tables.dedup();
        for table in tables {
            sys::ip(&node.netns, &[family, "route", "flush", "table", &table])?;
        }
    }
    Ok(())
}

/// Links of kind wireguard or tun (`ip -o link show` lines, `ip -d` not needed: the agent's
/// links are the only tun and wireguard links in a node).
fn wireguard_like_links(listing: &str) -> Vec<String> {
    listing
        .lines()
        .filter(|l| l.contains("<POINTOPOINT") || l.contains("link/none"))
        .filter_map(|l| {
            let name = l.split(':').nth(1)?.trim();
            Some(name.split('@').next()?.to_owned())
        })
        .collect()
}

fn clear_dir(dir: &Path) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        }
        .with_context(|| format!("remove {}", path.display()))?;
    }
    Ok(())
}

fn wait_for_fresh_agent(paths: &Paths, node: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + AGENT_RESTART;
    let old = AgentRecord::load(paths, node).map(|a| a.process.pid);
    while Instant::now() < deadline {
        if let Some(agent) = AgentRecord::load(paths, node) {
            if Some(agent.process.pid) != old && agent.process.is_alive() {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    anyhow::bail!("no fresh agent on {node} within {AGENT_RESTART:?}; see its log")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_tun_and_wireguard_links_only() {
        let listing = "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN mode DEFAULT group default qlen 1000\\    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00
2: eth0@if5: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP mode DEFAULT group default qlen 1000\\    link/ether 12:34:56:78:9a:bc brd ff:ff:ff:ff:ff:ff link-netns ke-lab
7: wg-encrypt: <POINTOPOINT,MULTICAST,NOARP,UP,LOWER_UP> mtu 1440 qdisc fq_codel state UNKNOWN mode DEFAULT group default qlen 500\\    link/none
8: wg-encrypt-v6: <POINTOPOINT,MULTICAST,NOARP,UP,LOWER_UP> mtu 1420 qdisc fq_codel state UNKNOWN mode DEFAULT group default qlen 500\\    link/none";
        assert_eq!(
            wireguard_like_links(listing),
            ["wg-encrypt", "wg-encrypt-v6"]
        );
    }
}
