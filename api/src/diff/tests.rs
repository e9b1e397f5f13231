//! Diff tests: each kind of change, their order, their log lines, and a strict model of
//! applying them (kernel-like: a route needs its device, a peer its interface, nothing is
//! added twice) proving the changes turn the observed state into the desired one.

use std::net::SocketAddr;

use crate::crd::{BackendKind, EncryptionConfigSpec, IPPoolSpec};
use crate::dataplane::{
    Dataplane, FirewallSpec, InterfaceMasquerade, InterfaceSpec, NatOutgoing, PeerSpec, Route,
    RouteKind, RpfMark, RuleSpec, Sysctl,
};
use crate::fixtures::key;
use crate::key::WireGuardKey;
use crate::net::Family::{self, V4, V6};
use crate::node::NodeView;
use crate::plan::{plan, LocalFacts, Snapshot};

use super::{diff, Change};

// ---- a strict model of applying changes ----

fn apply(state: &mut Dataplane, change: &Change) {
    match change {
        Change::ReplaceFirewall(spec) => state.firewall = Some(spec.clone()),
        Change::DeleteFirewall => assert!(state.firewall.take().is_some(), "{change}: absent"),
        Change::DeleteRule(rule) => {
            let slot = &mut state.families.get_mut(rule.family).rule;
            assert_eq!(slot.take().as_ref(), Some(rule), "{change}");
        }
        Change::AddRule(rule) => {
            let slot = &mut state.families.get_mut(rule.family).rule;
            assert!(
                slot.replace(rule.clone()).is_none(),
                "{change}: rule present"
            );
        }
        Change::DeleteRoute { family, route } => {
            let routes = &mut state.families.get_mut(*family).routes;
            let at = routes.iter().position(|r| r == route);
            routes.remove(at.unwrap_or_else(|| panic!("{change}: absent")));
        }
        Change::AddRoute { family, route } => {
            if let RouteKind::Device(dev) = &route.kind {
                assert!(has_interface(state, dev), "{change}: no device {dev}");
            }
            let routes = &mut state.families.get_mut(*family).routes;
            // The kernel keeps one route per destination and metric.
            assert!(
                !routes.iter().any(|r| r.destination == route.destination
                    && r.kind.metric() == route.kind.metric()),
                "{change}: exists"
            );
            routes.push(route.clone());
        }
        Change::RemovePeer {
            family, public_key, ..
        } => {
            let peers = &mut state.families.get_mut(*family).peers;
            let at = peers.iter().position(|p| p.public_key == *public_key);
            peers.remove(at.unwrap_or_else(|| panic!("{change}: absent")));
        }
        Change::AddPeer {
            family,
            interface,
            peer,
        } => {
            let fam = state.families.get_mut(*family);
            assert_eq!(
                fam.interface.as_ref().map(|i| &i.name),
                Some(interface),
                "{change}"
            );
            assert!(
                !fam.peers.iter().any(|p| p.public_key == peer.public_key),
                "{change}: exists"
            );
            fam.peers.push(peer.clone());
        }
        Change::UpdatePeer {
            family, from, to, ..
        } => {
            let peers = &mut state.families.get_mut(*family).peers;
            let slot = peers.iter_mut().find(|p| p.public_key == from.public_key);
            let slot = slot.unwrap_or_else(|| panic!("{change}: absent"));
            assert_eq!(slot, from, "{change}");
            *slot = to.clone();
        }
        Change::DeleteInterface { family, name } => {
            let fam = state.families.get_mut(*family);
            assert_eq!(
                fam.interface.take().map(|i| i.name).as_ref(),
                Some(name),
                "{change}"
            );
            fam.peers.clear();
            // The kernel drops the device routes of a deleted link.
            fam.routes
                .retain(|r| r.kind != RouteKind::Device(name.clone()));
        }
        Change::CreateInterface { family, spec } => {
            let slot = &mut state.families.get_mut(*family).interface;
            assert!(slot.replace(spec.clone()).is_none(), "{change}: exists");
        }
        Change::UpdateInterface { family, from, to } => {
            let slot = &mut state.families.get_mut(*family).interface;
            assert_eq!(slot.as_ref(), Some(from), "{change}");
            *slot = Some(to.clone());
        }
        Change::SetSysctl(s) => {
            state.sysctls.retain(|o| o.key != s.key);
            state.sysctls.push(s.clone());
        }
        Change::RestoreSysctl { key } => state.sysctls.retain(|o| &o.key != key),
    }
}

fn has_interface(state: &Dataplane, name: &str) -> bool {
    let names = state
        .families
        .iter()
        .filter_map(|(_, f)| f.interface.as_ref());
    names.map(|i| &i.name).any(|n| n == name)
}

fn normalized(mut state: Dataplane) -> Dataplane {
    for family in Family::ALL {
        let fam = state.families.get_mut(family);
        fam.peers.sort_by_key(|p| p.public_key);
        fam.routes.sort();
    }
    state.sysctls.sort();
    state
}

/// Diffs, checks the changes reach `desired` under the strict model, and that a second diff
/// finds nothing left to do. Returns the log lines.
fn converge(desired: &Dataplane, observed: &Dataplane) -> Vec<String> {
    let changes = diff(desired, observed);
    let mut state = observed.clone();
    for change in &changes {
        apply(&mut state, change);
    }
    let state = normalized(state);
    assert_eq!(
        state,
        normalized(desired.clone()),
        "not converged by {changes:#?}"
    );
    assert!(diff(desired, &state).is_empty(), "second diff not empty");
    changes.iter().map(ToString::to_string).collect()
}

// ---- states ----

fn planned(config: &EncryptionConfigSpec, nodes: &[NodeView], facts: &LocalFacts) -> Dataplane {
    let pools = [IPPoolSpec::test("198.18.0.0/15")];
    let snapshot = Snapshot {
        config: Some(config),
        pools: &pools,
        nodes,
    };
    plan(&snapshot, facts).expect("plan").dataplane
}

fn three() -> Dataplane {
    let nodes: Vec<NodeView> = (1..=3).map(NodeView::test_v4).collect();
    planned(
        &EncryptionConfigSpec::test(),
        &nodes,
        &LocalFacts::test("node-1"),
    )
}

fn dual() -> Dataplane {
    let nodes: Vec<NodeView> = (1..=3).map(NodeView::test_dual).collect();
    let config = EncryptionConfigSpec::test()
        .with_ipv6()
        .with_host_encryption();
    planned(&config, &nodes, &LocalFacts::test("node-1"))
}

/// `node-<i>`'s IPv4 key, shortened as in the log lines.
fn k(i: u8) -> String {
    key(&format!("node-{i}"), V4).to_base64()[..8].to_owned()
}

fn edit(state: &Dataplane, f: impl FnOnce(&mut Dataplane)) -> Dataplane {
    let mut state = state.clone();
    f(&mut state);
    state
}

fn peer_mut<'a>(state: &'a mut Dataplane, node: &str) -> &'a mut PeerSpec {
    let peers = &mut state.families.get_mut(V4).peers;
    peers.iter_mut().find(|p| p.node == node).expect("peer")
}

fn interface_mut(state: &mut Dataplane, family: Family) -> &mut InterfaceSpec {
    state
        .families
        .get_mut(family)
        .interface
        .as_mut()
        .expect("interface")
}

// ---- tables ----

#[test]
fn equal_states_need_nothing() {
    for state in [Dataplane::default(), three(), dual()] {
        assert!(diff(&state, &state.clone()).is_empty());
    }
}

#[test]
fn diff_table() {
    let three = three();
    let cases: Vec<(&str, Dataplane, Dataplane, Vec<String>)> = vec![
        ("enable from nothing: firewall first, rule last", three.clone(), Dataplane::default(), vec![
            "replace firewall: accept udp 51820; masquerade out wg-encrypt except 198.18.1.0/24; nat-outgoing IPv4 from 198.18.0.0/15 to outside 198.18.0.0/15; clamp mss out wg-encrypt".into(),
            "IPv4 create interface wg-encrypt (userspace) port 51820 fwmark 0x100000 mtu 1440 address 198.18.1.0/32".into(),
            // Peers in key order: node-3's test key sorts first.
            format!("IPv4 add peer node-3 (key {}…) endpoint 192.0.2.13:51820 allowed-ips 198.18.3.0/24", k(3)),
            format!("IPv4 add peer node-2 (key {}…) endpoint 192.0.2.12:51820 allowed-ips 198.18.2.0/24", k(2)),
            "IPv4 add route throw 198.18.1.0/24 table 51820".into(),
            "IPv4 add route 198.18.2.0/24 dev wg-encrypt table 51820".into(),
            "IPv4 add route unreachable 198.18.2.0/24 table 51820 metric 65535".into(),
            "IPv4 add route 198.18.3.0/24 dev wg-encrypt table 51820".into(),
            "IPv4 add route unreachable 198.18.3.0/24 table 51820 metric 65535".into(),
            "IPv4 add rule priority 99 not fwmark 0x100000/0x100000 lookup 51820".into(),
        ]),
        ("disable: rule first, no peer removals, firewall last", Dataplane::default(), three.clone(), vec![
            "IPv4 delete rule priority 99 not fwmark 0x100000/0x100000 lookup 51820".into(),
            "IPv4 delete route throw 198.18.1.0/24 table 51820".into(),
            "IPv4 delete route 198.18.2.0/24 dev wg-encrypt table 51820".into(),
            "IPv4 delete route unreachable 198.18.2.0/24 table 51820 metric 65535".into(),
            "IPv4 delete route 198.18.3.0/24 dev wg-encrypt table 51820".into(),
            "IPv4 delete route unreachable 198.18.3.0/24 table 51820 metric 65535".into(),
            "IPv4 delete interface wg-encrypt".into(),
            "delete firewall table".into(),
        ]),
        ("peer endpoint and allowed IPs change", edit(&three, |s| {
            let p = peer_mut(s, "node-2");
            p.endpoint = "192.0.2.22:51820".parse().unwrap();
            p.allowed_ips.push("198.18.2.254/32".parse().unwrap());
        }), three.clone(), vec![
            format!("IPv4 update peer node-2 (key {}…) endpoint 192.0.2.12:51820 -> 192.0.2.22:51820, allowed-ips +198.18.2.254/32", k(2)),
        ]),
        ("peer leaves: route deleted before the peer", edit(&three, |s| {
            let fam = s.families.get_mut(V4);
            fam.peers.retain(|p| p.node != "node-3");
            fam.routes.retain(|r| r.destination.to_string() != "198.18.3.0/24");
        }), three.clone(), vec![
            "IPv4 delete route 198.18.3.0/24 dev wg-encrypt table 51820".into(),
            "IPv4 delete route unreachable 198.18.3.0/24 table 51820 metric 65535".into(),
            format!("IPv4 remove peer node-3 (key {}…)", k(3)),
        ]),
        ("new key of a node: remove and add", edit(&three, |s| {
            peer_mut(s, "node-3").public_key = key("node-3-rotated", V4);
            s.families.get_mut(V4).peers.sort_by_key(|p| p.public_key);
        }), three.clone(), vec![
            format!("IPv4 remove peer node-3 (key {}…)", k(3)),
            format!("IPv4 add peer node-3 (key {}…) endpoint 192.0.2.13:51820 allowed-ips 198.18.3.0/24",
                &key("node-3-rotated", V4).to_base64()[..8]),
        ]),
        ("node becomes unreachable: device route and fallback turn into throw", edit(&three, |s| {
            let fam = s.families.get_mut(V4);
            fam.peers.retain(|p| p.node != "node-2");
            fam.routes.retain(|r| !(r.destination.to_string() == "198.18.2.0/24" && r.kind == RouteKind::Unreachable));
            fam.routes[1].kind = RouteKind::Throw;
        }), three.clone(), vec![
            "IPv4 delete route 198.18.2.0/24 dev wg-encrypt table 51820".into(),
            "IPv4 delete route unreachable 198.18.2.0/24 table 51820 metric 65535".into(),
            format!("IPv4 remove peer node-2 (key {}…)", k(2)),
            "IPv4 add route throw 198.18.2.0/24 table 51820".into(),
        ]),
        ("MTU and port change in place", edit(&three, |s| {
            let i = interface_mut(s, V4);
            i.mtu = 1420;
            i.listen_port = 51830;
        }), three.clone(), vec![
            "IPv4 update interface wg-encrypt: port 51820 -> 51830, mtu 1440 -> 1420".into(),
        ]),
        ("backend change re-creates the interface, its peers and device routes", edit(&three, |s| {
            interface_mut(s, V4).backend = BackendKind::Kernel;
        }), three.clone(), vec![
            "IPv4 delete interface wg-encrypt".into(),
            "IPv4 create interface wg-encrypt (kernel) port 51820 fwmark 0x100000 mtu 1440 address 198.18.1.0/32".into(),
            // Peers in key order: node-3's test key sorts first.
            format!("IPv4 add peer node-3 (key {}…) endpoint 192.0.2.13:51820 allowed-ips 198.18.3.0/24", k(3)),
            format!("IPv4 add peer node-2 (key {}…) endpoint 192.0.2.12:51820 allowed-ips 198.18.2.0/24", k(2)),
            "IPv4 add route 198.18.2.0/24 dev wg-encrypt table 51820".into(),
            "IPv4 add route 198.18.3.0/24 dev wg-encrypt table 51820".into(),
        ]),
        ("rename: old device routes out, new ones in", rename(&three, "wg-new"), three.clone(), vec![
            "replace firewall: accept udp 51820; masquerade out wg-new except 198.18.1.0/24; nat-outgoing IPv4 from 198.18.0.0/15 to outside 198.18.0.0/15; clamp mss out wg-new".into(),
            "IPv4 delete route 198.18.2.0/24 dev wg-encrypt table 51820".into(),
            "IPv4 delete route 198.18.3.0/24 dev wg-encrypt table 51820".into(),
            "IPv4 delete interface wg-encrypt".into(),
            "IPv4 create interface wg-new (userspace) port 51820 fwmark 0x100000 mtu 1440 address 198.18.1.0/32".into(),
            // Peers in key order: node-3's test key sorts first.
            format!("IPv4 add peer node-3 (key {}…) endpoint 192.0.2.13:51820 allowed-ips 198.18.3.0/24", k(3)),
            format!("IPv4 add peer node-2 (key {}…) endpoint 192.0.2.12:51820 allowed-ips 198.18.2.0/24", k(2)),
            "IPv4 add route 198.18.2.0/24 dev wg-new table 51820".into(),
            "IPv4 add route 198.18.3.0/24 dev wg-new table 51820".into(),
        ]),
        ("rule priority change", edit(&three, |s| {
            s.families.get_mut(V4).rule.as_mut().unwrap().priority = 100;
        }), three.clone(), vec![
            "IPv4 delete rule priority 99 not fwmark 0x100000/0x100000 lookup 51820".into(),
            "IPv4 add rule priority 100 not fwmark 0x100000/0x100000 lookup 51820".into(),
        ]),
        ("sysctls: set missing, set changed, restore extra", edit(&three, |s| {
            s.sysctls = vec![sysctl("net.a", "1"), sysctl("net.b", "2")];
        }), edit(&three, |s| {
            s.sysctls = vec![sysctl("net.b", "1"), sysctl("net.c", "1")];
        }), vec![
            "set sysctl net.a = 1".into(),
            "set sysctl net.b = 2".into(),
            "restore sysctl net.c".into(),
        ]),
        ("leaving lockout: routes then rule, nothing else", three.clone(), edit(&three, |s| {
            let fam = s.families.get_mut(V4);
            fam.routes.clear();
            fam.rule = None;
        }), vec![
            "IPv4 add route throw 198.18.1.0/24 table 51820".into(),
            "IPv4 add route 198.18.2.0/24 dev wg-encrypt table 51820".into(),
            "IPv4 add route unreachable 198.18.2.0/24 table 51820 metric 65535".into(),
            "IPv4 add route 198.18.3.0/24 dev wg-encrypt table 51820".into(),
            "IPv4 add route unreachable 198.18.3.0/24 table 51820 metric 65535".into(),
            "IPv4 add rule priority 99 not fwmark 0x100000/0x100000 lookup 51820".into(),
        ]),
    ];
    for (name, desired, observed, expected) in cases {
        assert_eq!(converge(&desired, &observed), expected, "{name}");
    }
}

fn rename(state: &Dataplane, name: &str) -> Dataplane {
    edit(state, |s| {
        interface_mut(s, V4).name = name.into();
        for route in &mut s.families.get_mut(V4).routes {
            if let RouteKind::Device(dev) = &mut route.kind {
                *dev = name.into();
            }
        }
        let fw = s.firewall.as_mut().unwrap();
        fw.masquerade[0].interface = name.into();
        fw.nat_outgoing[0].exempt_interfaces = vec![name.into()];
        fw.clamp_mss = vec![name.into()];
    })
}

fn sysctl(key: &str, value: &str) -> Sysctl {
    Sysctl {
        key: key.into(),
        value: value.into(),
    }
}

#[test]
fn changes_are_grouped_by_kind_across_families() {
    let lines = converge(&dual(), &Dataplane::default());
    let kinds: Vec<&str> = lines
        .iter()
        .map(|l| {
            let words: Vec<&str> = l.split(' ').collect();
            if l.starts_with("IPv") {
                words[2]
            } else {
                words[1]
            }
        })
        .collect();
    let mut grouped = kinds.clone();
    grouped.dedup();
    assert_eq!(
        grouped,
        ["firewall:", "interface", "peer", "route", "rule", "sysctl"],
        "{lines:#?}"
    );
    // IPv4 before IPv6 inside each kind.
    let interfaces: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("create interface"))
        .collect();
    assert!(interfaces[0].starts_with("IPv4") && interfaces[1].starts_with("IPv6"));
    // And back to nothing.
    converge(&Dataplane::default(), &dual());
}

#[test]
fn converges_between_planned_states() {
    let states = [
        Dataplane::default(),
        three(),
        dual(),
        rename(&three(), "wg-x"),
    ];
    for desired in &states {
        for observed in &states {
            converge(desired, observed);
        }
    }
}

#[test]
fn unsorted_observed_state_is_still_diffed_correctly() {
    let desired = dual();
    let mut observed = desired.clone();
    for family in Family::ALL {
        let fam = observed.families.get_mut(family);
        fam.peers.reverse();
        fam.routes.reverse();
    }
    assert!(diff(&desired, &observed).is_empty());
}

// ---- log lines ----

fn test_key() -> WireGuardKey {
    "YFtnIPi7Ix7v4kdjyEXqm2ErCAgH1Ls1EFsYH2H+/Gk="
        .parse()
        .unwrap()
}

fn peer(endpoint: &str, ips: &[&str], keepalive: Option<u16>) -> PeerSpec {
    PeerSpec {
        public_key: test_key(),
        node: "node-3".into(),
        endpoint: endpoint.parse::<SocketAddr>().unwrap(),
        allowed_ips: ips.iter().map(|n| n.parse().unwrap()).collect(),
        persistent_keepalive: keepalive,
    }
}

fn iface(mtu: u32, address: Option<&str>) -> InterfaceSpec {
    InterfaceSpec {
        name: "wg-encrypt".into(),
        backend: BackendKind::Userspace,
        listen_port: 51820,
        fwmark: 0x10_0000,
        mtu,
        address: address.map(|a| a.parse().unwrap()),
    }
}

fn route(destination: &str, kind: RouteKind) -> Route {
    Route {
        table: 51820,
        destination: destination.parse().unwrap(),
        kind,
    }
}

fn rule(family: Family) -> RuleSpec {
    RuleSpec {
        family,
        priority: 99,
        table: 51820,
        fwmark: 0x10_0000,
        mask: 0x10_0000,
    }
}

#[test]
fn every_change_prints_one_readable_line() {
    let firewall = FirewallSpec {
        wireguard_ports: vec![51820, 51821],
        masquerade: vec![InterfaceMasquerade {
            interface: "wg-encrypt".into(),
            own_sources: vec!["198.18.1.0/24".parse().unwrap()],
        }],
        nat_outgoing: vec![NatOutgoing {
            family: V4,
            sources: vec!["198.18.0.0/15".parse().unwrap()],
            cluster: vec!["198.18.0.0/15".parse().unwrap()],
            exempt_interfaces: vec!["wg-encrypt".into()],
        }],
        rpf: Some(RpfMark {
            mark: 0x10_0000,
            interfaces: vec!["eth0".into()],
        }),
        clamp_mss: vec!["wg-encrypt".into()],
    };
    let wg = || "wg-encrypt".to_string();
    let cases: Vec<(Change, &str)> = vec![
        (Change::CreateInterface { family: V4, spec: iface(1440, Some("198.18.1.254/32")) },
            "IPv4 create interface wg-encrypt (userspace) port 51820 fwmark 0x100000 mtu 1440 address 198.18.1.254/32"),
        (Change::UpdateInterface { family: V4, from: iface(1440, None), to: iface(1420, Some("198.18.1.254/32")) },
            "IPv4 update interface wg-encrypt: mtu 1440 -> 1420, address none -> 198.18.1.254/32"),
        (Change::DeleteInterface { family: V6, name: "wg-encrypt-v6".into() }, "IPv6 delete interface wg-encrypt-v6"),
        (Change::AddPeer { family: V4, interface: wg(), peer: peer("192.0.2.13:51820", &["198.18.3.0/24", "198.18.3.254/32"], None) },
            "IPv4 add peer node-3 (key YFtnIPi7…) endpoint 192.0.2.13:51820 allowed-ips 198.18.3.0/24,198.18.3.254/32"),
        (Change::AddPeer { family: V6, interface: wg(), peer: peer("[2001:db8::d]:51821", &[], Some(25)) },
            "IPv6 add peer node-3 (key YFtnIPi7…) endpoint [2001:db8::d]:51821 allowed-ips none keepalive 25s"),
        (Change::UpdatePeer {
            family: V4,
            interface: wg(),
            from: peer("192.0.2.13:51820", &["198.18.3.0/24", "198.18.3.254/32"], None),
            to: peer("192.0.2.23:51820", &["198.18.3.0/24", "198.18.4.0/24"], Some(25)),
        }, "IPv4 update peer node-3 (key YFtnIPi7…) endpoint 192.0.2.13:51820 -> 192.0.2.23:51820, allowed-ips +198.18.4.0/24 -198.18.3.254/32, keepalive off -> 25s"),
        (Change::RemovePeer { family: V4, interface: wg(), public_key: test_key(), node: "node-3".into() },
            "IPv4 remove peer node-3 (key YFtnIPi7…)"),
        (Change::AddRoute { family: V4, route: route("198.18.2.0/24", RouteKind::Device(wg())) },
            "IPv4 add route 198.18.2.0/24 dev wg-encrypt table 51820"),
        (Change::DeleteRoute { family: V4, route: route("198.18.1.0/24", RouteKind::Throw) },
            "IPv4 delete route throw 198.18.1.0/24 table 51820"),
        (Change::AddRoute { family: V4, route: route("198.18.2.0/24", RouteKind::Unreachable) },
            "IPv4 add route unreachable 198.18.2.0/24 table 51820 metric 65535"),
        (Change::AddRule(rule(V4)), "IPv4 add rule priority 99 not fwmark 0x100000/0x100000 lookup 51820"),
        (Change::DeleteRule(rule(V6)), "IPv6 delete rule priority 99 not fwmark 0x100000/0x100000 lookup 51820"),
        (Change::ReplaceFirewall(firewall),
            "replace firewall: accept udp 51820,51821; masquerade out wg-encrypt except 198.18.1.0/24; nat-outgoing IPv4 from 198.18.0.0/15 to outside 198.18.0.0/15; rpf mark 0x100000 on eth0; clamp mss out wg-encrypt"),
        (Change::ReplaceFirewall(FirewallSpec::default()), "replace firewall: accept udp none"),
        (Change::DeleteFirewall, "delete firewall table"),
        (Change::SetSysctl(sysctl("net.ipv4.conf.all.src_valid_mark", "1")), "set sysctl net.ipv4.conf.all.src_valid_mark = 1"),
        (Change::RestoreSysctl { key: "net.ipv4.conf.all.src_valid_mark".into() }, "restore sysctl net.ipv4.conf.all.src_valid_mark"),
    ];
    for (change, line) in cases {
        assert_eq!(change.to_string(), line);
    }
}
