//! Looking into a node through `kube-encrypt-lab exec`: its WireGuard devices, policy rules,
//! routing table, nftables and agent, as an operator with a shell on the node would.

use kube_encrypt_api::net::Family;
use kube_encrypt_tests::lab::state::{Paths, Store, DEFAULT_STATE_DIR};
use kube_encrypt_tests::lab::testing::LabSession;

use super::support::*;

/// The agent's defaults (SPEC §2): interface names, table, rule priority, nftables table.
pub const TABLE: &str = "51820";
pub const RULE_PRIORITY: &str = "99";
pub const NFT_TABLE: &str = "inet kube-encrypt";

pub fn interface(family: Family) -> &'static str {
    match family {
        Family::V4 => "wg-encrypt",
        Family::V6 => "wg-encrypt-v6",
    }
}

pub fn family_flag(family: Family) -> &'static str {
    match family {
        Family::V4 => "-4",
        Family::V6 => "-6",
    }
}

/// Runs `command` on `target` (a node, pod, `ext` or `lab`); stdout, stderr and exit code.
pub fn exec(session: &LabSession, target: &str, command: &[&str]) -> std::process::Output {
    let mut args = vec!["exec", target, "--"];
    args.extend_from_slice(command);
    session.run(&args)
}

/// The stdout of `command` on `target`, which must succeed.
pub fn exec_ok(session: &LabSession, target: &str, command: &[&str]) -> String {
    let output = exec(session, target, command);
    assert!(
        output.status.success(),
        "`{}` on {target} failed:\n{}",
        command.join(" "),
        text(&output)
    );
    stdout(&output)
}

/// The public keys of the peers of `family`'s WireGuard device on `node`, sorted (empty when
/// the device is absent).
pub fn wg_peers(session: &LabSession, node: &str, family: Family) -> Vec<String> {
    let output = exec(session, node, &["wg", "show", interface(family), "peers"]);
    let mut peers: Vec<String> = stdout(&output).lines().map(str::to_owned).collect();
    peers.sort();
    peers
}

/// The public key of `family`'s WireGuard device on `node`.
pub fn wg_public_key(session: &LabSession, node: &str, family: Family) -> String {
    exec_ok(
        session,
        node,
        &["wg", "show", interface(family), "public-key"],
    )
    .trim()
    .to_owned()
}

/// The policy rules of `family` at the agent's priority.
pub fn agent_rules(session: &LabSession, node: &str, family: Family) -> Vec<String> {
    let out = exec_ok(session, node, &["ip", family_flag(family), "rule", "show"]);
    out.lines()
        .filter(|l| l.starts_with(&format!("{RULE_PRIORITY}:")))
        .map(str::to_owned)
        .collect()
}

/// The routes of the agent's table for `family`, one per line (none when the table does not
/// exist, as an IPv6 table never used).
pub fn table_routes(session: &LabSession, node: &str, family: Family) -> Vec<String> {
    let command = ["ip", family_flag(family), "route", "show", "table", TABLE];
    let output = exec(session, node, &command);
    if !output.status.success() && stderr(&output).contains("table does not exist") {
        return Vec::new();
    }
    assert!(
        output.status.success(),
        "`{}` on {node} failed:\n{}",
        command.join(" "),
        text(&output)
    );
    stdout(&output)
        .lines()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

/// The route of `cidr` in the agent's table, if any (`throw 198.18.3.0/24`, `198.18.2.0/24 dev …`).
pub fn table_route(session: &LabSession, node: &str, family: Family, cidr: &str) -> Option<String> {
    table_routes(session, node, family)
        .into_iter()
        .find(|r| r.split_whitespace().any(|w| w == cidr))
}

/// Whether `route` (a line of the agent's table) throws `cidr` back to the main table.
pub fn is_throw(route: &str, cidr: &str) -> bool {
    let mut words = route.split_whitespace();
    words.next() == Some("throw") && words.next() == Some(cidr)
}

/// The MTU of `iface` on `node`, if the link exists.
pub fn link_mtu(session: &LabSession, node: &str, iface: &str) -> Option<u32> {
    let output = exec(session, node, &["ip", "-o", "link", "show", "dev", iface]);
    let out = stdout(&output);
    let mut words = out.split_whitespace();
    words.find(|w| *w == "mtu")?;
    words.next()?.parse().ok()
}

/// Whether the agent on `node` answers `/readyz` (caches synced, a reconcile succeeded) on
/// the node's address, where it serves (`--metrics-addr node:9105`).
pub fn agent_ready(session: &LabSession, node: &str) -> Result<(), String> {
    let url = format!("http://{}:9105/readyz", node_address(node)?);
    let output = exec(session, node, &["curl", "-sS", "-m", "2", "-f", &url]);
    if output.status.success() {
        Ok(())
    } else {
        Err(format!("{node} /readyz: {}", text(&output)))
    }
}

/// What the agent may leave on `node`: WireGuard links, its rules, its table's routes, its
/// nftables table. Empty when the node is as before enabling.
pub fn dataplane_residue(session: &LabSession, node: &str) -> Vec<String> {
    let mut residue = Vec::new();
    let links = exec_ok(session, node, &["ip", "-o", "link", "show"]);
    residue.extend(
        links
            .lines()
            .filter(|l| l.contains("wg-encrypt"))
            .map(|l| format!("link: {l}")),
    );
    for family in Family::ALL {
        residue.extend(
            agent_rules(session, node, family)
                .into_iter()
                .map(|r| format!("{family} rule: {r}")),
        );
        residue.extend(
            table_routes(session, node, family)
                .into_iter()
                .map(|r| format!("{family} table {TABLE}: {r}")),
        );
    }
    let tables = exec_ok(session, node, &["nft", "list", "tables"]);
    residue.extend(
        tables
            .lines()
            .filter(|l| l.contains(NFT_TABLE))
            .map(|l| format!("nftables: {l}")),
    );
    residue.into_iter().map(|r| format!("{node} {r}")).collect()
}

/// The IPv4 address of `node` in the running lab (its InternalIP).
fn node_address(node: &str) -> Result<std::net::Ipv4Addr, String> {
    let paths = Paths::new(DEFAULT_STATE_DIR);
    let store = Store::load(&paths)
        .map_err(|e| e.to_string())?
        .ok_or("no lab is up")?;
    let topology = store.state.topology();
    let plan = topology.nodes.iter().find(|n| n.name == node);
    plan.map(|n| n.v4)
        .ok_or_else(|| format!("the lab has no node {node}"))
}
