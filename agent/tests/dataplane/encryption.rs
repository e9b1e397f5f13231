//! The whole life of a mesh: build it with the driver, check it independently, send pod
//! traffic across and see only WireGuard UDP on the wire, restart the agent, tear down and
//! find nothing left.

use std::time::{Duration, Instant};

use kube_encrypt_api::crd::BackendKind;
use kube_encrypt_api::dataplane::Dataplane;
use wireguard_control::Key;

use super::capture::{classify, Capture};
use super::lab::{Lab, Side};
use super::mesh::{public, Mesh, TABLE};
use super::node::{run_step_in, Op, Report};

#[test]
fn ipv4_userspace_mesh_encrypts_pod_traffic_and_leaves_no_residue() {
    mesh_life("v4", Mesh::v4(BackendKind::Userspace));
}

#[test]
fn ipv6_userspace_mesh_encrypts_pod_traffic_and_leaves_no_residue() {
    mesh_life("v6", Mesh::v6(BackendKind::Userspace));
}

#[test]
#[ignore = "needs the kernel WireGuard module, which this host lacks; run with --ignored where it exists"]
fn ipv4_kernel_mesh_encrypts_pod_traffic_and_leaves_no_residue() {
    let lab = Lab::new("kern");
    let facts = run_step_in(
        &lab.a,
        "probe",
        Mesh::v4(BackendKind::Kernel).step(
            &lab.a,
            &Key::generate_private(),
            vec![Op::Facts(vec![])],
        ),
    );
    let kernel = facts.facts.is_some_and(|f| f.kernel_wireguard);
    drop(lab);
    assert!(
        kernel,
        "kernel WireGuard module not available (Unknown device type): this test only runs where it exists"
    );
    mesh_life("kern", Mesh::v4(BackendKind::Kernel));
}

struct Node<'a> {
    side: &'a Side,
    name: &'static str,
    key: Key,
    desired: Dataplane,
    sysctl_before: String,
}

fn mesh_life(tag: &str, mesh: Mesh) {
    let started = Instant::now();
    let lab = Lab::new(tag);
    let keys = [Key::generate_private(), Key::generate_private()];
    let sides = [(&lab.a, "node-a"), (&lab.b, "node-b")];
    let nodes: Vec<Node> = (0..2)
        .map(|i| {
            let ((side, name), (peer, peer_name)) = (sides[i], sides[1 - i]);
            Node {
                side,
                name,
                key: keys[i].clone(),
                desired: mesh.dataplane(side, peer, public(&keys[1 - i]), peer_name),
                sysctl_before: mesh.sysctl_value(side),
            }
        })
        .collect();

    for n in &nodes {
        let report = run_step_in(
            n.side,
            "build",
            mesh.step(n.side, &n.key, vec![Op::Build(Box::new(n.desired.clone()))]),
        );
        assert_ok(&report, n.name);
        assert_eq!(
            report.dataplane, n.desired,
            "{}: observed right after applying",
            n.name
        );
        assert_eq!(
            *report.device_keys.get(mesh.family),
            Some(public(&n.key)),
            "{}",
            n.name
        );
        let hex: String = n.key.0.iter().map(|b| format!("{b:02x}")).collect();
        for secret in [n.key.to_base64(), hex] {
            assert!(
                !report.debug.contains(&secret),
                "{}: a private key in debug output:\n{}",
                n.name,
                report.debug
            );
        }
        assert!(report.debug.contains(&public(&n.key).to_base64()));
        assert_kernel_view(&mesh, n);
    }
    if mesh.backend == BackendKind::Userspace {
        for n in &nodes {
            // The node processes have exited: only the daemons they started remain.
            assert_eq!(
                n.side.wireguard_go_pids().len(),
                1,
                "{}: one wireguard-go outlives its agent",
                n.name
            );
        }
    }

    let capture = Capture::start(&lab.a, "eth0");
    let everywhere = Capture::start_with_limit(&lab.a, "any", "2000");
    let replies = ping(&mesh, &lab.a, &lab.b);
    let lines = capture.finish();
    let all_lines = everywhere.finish();
    if replies < 3 {
        let peers = |n: &Node| {
            let seen = run_step_in(n.side, "diagnose", mesh.step(n.side, &n.key, vec![]));
            format!(
                "{}: {:?}\n{:?}\n",
                n.name,
                seen.peers.get(mesh.family),
                seen.dataplane.family(mesh.family).peers
            )
        };
        panic!(
            "pod-to-pod ping across the tunnel: {replies}/5 replies\n--- underlay capture\n{}\n--- all of node-a\n{}\n{}{}{}{}",
            lines.join("\n"),
            all_lines.join("\n"),
            network_state(&lab.a, mesh.is_v6()),
            network_state(&lab.b, mesh.is_v6()),
            peers(&nodes[0]),
            peers(&nodes[1])
        );
    }
    let traffic = classify(&lines, mesh.port);
    assert!(
        traffic.other.is_empty(),
        "traffic in clear on the underlay: {:#?}",
        traffic.other
    );
    assert!(
        traffic.wireguard >= 2 * replies,
        "{} WireGuard packets for {replies} echo round trips: {lines:#?}",
        traffic.wireguard
    );
    println!(
        "{tag}: {replies}/5 echo replies; on the underlay {} WireGuard UDP packets, {} link-control, 0 other",
        traffic.wireguard, traffic.link_control
    );
    for pod in [lab.a.pod(mesh.is_v6()), lab.b.pod(mesh.is_v6())] {
        let shown = format!(" {pod}");
        assert!(
            !lines.iter().any(|l| l.contains(&shown)),
            "pod address {pod} on the wire: {lines:#?}"
        );
    }

    // An agent restart: a new driver finds exactly what it built, with a live session.
    let restarted = run_step_in(&lab.a, "observe", mesh.step(&lab.a, &nodes[0].key, vec![]));
    assert_eq!(restarted.dataplane, nodes[0].desired, "after restart");
    let counters = &restarted.peers.get(mesh.family)[0];
    assert!(
        counters.handshake_age_secs.is_some_and(|age| age < 60),
        "{counters:?}"
    );
    assert!(
        counters.rx_bytes > 0 && counters.tx_bytes > 0,
        "{counters:?}"
    );
    assert!(
        ping(&mesh, &lab.a, &lab.b) >= 3,
        "traffic after the agent restart"
    );

    for n in &nodes {
        let report = run_step_in(
            n.side,
            "teardown",
            mesh.step(n.side, &n.key, vec![Op::TearDown]),
        );
        assert_ok(&report, n.name);
        assert!(
            report.dataplane.is_empty(),
            "{}: left {:#?}",
            n.name,
            report.dataplane
        );
        assert_no_residue(&mesh, n);
    }
    println!(
        "{tag}: mesh built, verified and removed in {:.1?}",
        started.elapsed()
    );
}

/// Routes, neighbours and addresses of `side`, for a failure message.
fn network_state(side: &Side, v6: bool) -> String {
    let family = if v6 { "-6" } else { "-4" };
    let show = |args: &[&str]| {
        let mut all = vec!["ip", family];
        all.extend_from_slice(args);
        super::lab::stdout(&side.exec(&all))
    };
    format!(
        "--- {}\naddresses:\n{}neighbours:\n{}table 51820:\n{}rules:\n{}",
        side.netns,
        show(&["address"]),
        show(&["neigh"]),
        show(&["route", "show", "table", "51820"]),
        show(&["rule"])
    )
}

pub fn assert_ok(report: &Report, node: &str) {
    for (i, result) in report.results.iter().enumerate() {
        assert!(result.is_ok(), "{node}: operation {i} failed: {result:?}");
    }
}

/// Pings `to`'s pod from `from`'s pod: 5 echoes, bounded by a 15 s deadline. Replies.
fn ping(mesh: &Mesh, from: &Side, to: &Side) -> usize {
    let (source, target) = (
        from.pod(mesh.is_v6()).to_string(),
        to.pod(mesh.is_v6()).to_string(),
    );
    let family = if mesh.is_v6() { "-6" } else { "-4" };
    let output = from.exec(&[
        "ping", family, "-n", "-c", "5", "-i", "0.2", "-W", "2", "-w", "15", "-I", &source, &target,
    ]);
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find_map(|l| {
            let (_, after) = l.split_once("transmitted, ")?;
            after.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or_else(|| {
            panic!(
                "no ping summary: {text}{}",
                String::from_utf8_lossy(&output.stderr)
            )
        })
}

fn ip_family(mesh: &Mesh) -> &'static str {
    if mesh.is_v6() {
        "-6"
    } else {
        "-4"
    }
}

/// What `ip` and `nft` say, independently of the driver's own observation.
fn assert_kernel_view(mesh: &Mesh, n: &Node) {
    let family = ip_family(mesh);
    let rules = n.side.ip(&[family, "rule", "show"]);
    assert!(
        rules.lines().any(|l| l.starts_with("99:")
            && l.contains("not from all fwmark 0x100000/0x100000 lookup 51820")),
        "{}: {rules}",
        n.name
    );
    let routes = n
        .side
        .ip(&[family, "route", "show", "table", &TABLE.to_string()]);
    let peer_pods = n.desired.family(mesh.family).peers[0].allowed_ips[0];
    // IPv6 prints reject routes with `dev lo` and a metric on every route.
    let throw = format!("throw {}", mesh.pod_net(n.side));
    let device = format!("{peer_pods} dev {}", mesh.interface);
    let unreachable = format!("unreachable {peer_pods}");
    for (start, rest) in [
        (&device, "proto 75"),
        (&unreachable, "metric 65535"),
        (&throw, "proto 75"),
    ] {
        assert!(
            routes.lines().any(|l| l.starts_with(start.as_str())
                && l.contains(rest)
                && l.contains("proto 75")),
            "{}: {start} .. {rest} not in\n{routes}",
            n.name
        );
    }
    let link = n.side.ip(&["address", "show", "dev", mesh.interface]);
    let address = mesh.interface_address(n.side).to_string();
    for expected in [format!("mtu {}", mesh.mtu), ",UP".to_owned(), address] {
        assert!(
            link.contains(&expected),
            "{}: {expected} not in\n{link}",
            n.name
        );
    }
    let table = n
        .side
        .exec(&["nft", "list", "table", "inet", "kube-encrypt"]);
    let table = String::from_utf8_lossy(&table.stdout);
    for expected in expected_nft_lines(mesh, n.side) {
        assert!(
            table.contains(&expected),
            "{}: {expected:?} not in\n{table}",
            n.name
        );
    }
    assert_eq!(mesh.sysctl_value(n.side), mesh.sysctl.1, "{}", n.name);
}

/// Rules as `nft list table` prints them.
fn expected_nft_lines(mesh: &Mesh, side: &Side) -> Vec<String> {
    let ip = if mesh.is_v6() { "ip6" } else { "ip" };
    let (port, wg, pods) = (mesh.port, mesh.interface, mesh.pod_net(side));
    vec![
        format!("type filter hook input priority filter; policy accept;"),
        format!("udp dport {port} accept"),
        format!("udp sport {port} accept"),
        format!("type filter hook forward priority mangle; policy accept;"),
        format!("oifname \"{wg}\" tcp flags syn tcp option maxseg size set rt mtu"),
        format!("type nat hook postrouting priority srcnat; policy accept;"),
        format!("oifname \"{wg}\" fib saddr type != local {ip} saddr != {pods} masquerade"),
        format!(
            "{ip} saddr {pods} {ip} daddr != {} oifname != \"{wg}\" masquerade",
            mesh.cluster()
        ),
        format!("type filter hook prerouting priority raw; policy accept;"),
        format!("iifname \"eth0\" meta mark set meta mark | 0x00100000"),
    ]
}

/// Nothing of kube-encrypt is left in the namespace, and the sysctl is back.
fn assert_no_residue(mesh: &Mesh, n: &Node) {
    let family = ip_family(mesh);
    let links = n.side.ip(&["link", "show"]);
    assert!(
        !links.contains(mesh.interface),
        "{}: interface left:\n{links}",
        n.name
    );
    let rules = n.side.ip(&[family, "rule", "show"]);
    assert!(
        !rules.contains("lookup 51820"),
        "{}: rule left:\n{rules}",
        n.name
    );
    let routes = n
        .side
        .ip(&[family, "route", "show", "table", &TABLE.to_string()]);
    assert!(
        routes.trim().is_empty(),
        "{}: routes left:\n{routes}",
        n.name
    );
    let table = n
        .side
        .exec(&["nft", "list", "table", "inet", "kube-encrypt"]);
    assert!(!table.status.success(), "{}: nftables table left", n.name);
    assert_eq!(
        mesh.sysctl_value(n.side),
        n.sysctl_before,
        "{}: sysctl not restored",
        n.name
    );
    let daemons = n.side.wait_for_no_wireguard_go(Duration::from_secs(3));
    assert!(
        daemons.is_empty(),
        "{}: wireguard-go still running: {daemons:?}",
        n.name
    );
    for dir in [n.side.socket_dir(), n.side.state_dir()] {
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(
            left.is_empty(),
            "{}: {} still holds {left:?}",
            n.name,
            dir.display()
        );
    }
}
