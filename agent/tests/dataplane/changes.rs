//! Changes in place (interface settings, a peer's endpoint and allowed IPs, removing a
//! peer) and how leftovers of an earlier configuration are observed.

use kube_encrypt_api::crd::BackendKind;
use kube_encrypt_api::dataplane::{Dataplane, InterfaceSpec, PeerSpec};
use kube_encrypt_api::net::Family;
use wireguard_control::Key;

use super::encryption::assert_ok;
use super::lab::Lab;
use super::mesh::{public, Mesh, PRIORITY, TABLE};
use super::node::{run_step_in, Op};

#[test]
fn interface_and_peer_change_in_place_and_a_peer_can_be_removed() {
    let lab = Lab::new("chg");
    let mesh = Mesh::v4(BackendKind::Userspace);
    let key = Key::generate_private();
    let desired = mesh.dataplane(&lab.a, &lab.b, public(&Key::generate_private()), "node-b");
    let built = run_step_in(
        &lab.a,
        "build",
        mesh.step(&lab.a, &key, vec![Op::Build(Box::new(desired.clone()))]),
    );
    assert_ok(&built, "node-a");

    let from_interface = desired.families.v4.interface.clone().unwrap();
    let to_interface = InterfaceSpec {
        listen_port: 51830,
        mtu: 1380,
        address: Some("198.18.1.253/32".parse().unwrap()),
        ..from_interface.clone()
    };
    let from_peer = desired.families.v4.peers[0].clone();
    let to_peer = PeerSpec {
        node: "node-b-renamed".into(),
        endpoint: "192.0.2.2:51830".parse().unwrap(),
        allowed_ips: vec![
            "198.18.2.0/24".parse().unwrap(),
            "198.18.3.0/24".parse().unwrap(),
        ],
        persistent_keepalive: Some(25),
        ..from_peer.clone()
    };
    let to_kernel = InterfaceSpec {
        backend: BackendKind::Kernel,
        ..to_interface.clone()
    };
    let ops = vec![
        Op::UpdateInterface(
            Family::V4,
            Box::new(from_interface.clone()),
            Box::new(to_interface.clone()),
        ),
        Op::UpdatePeer(
            Family::V4,
            mesh.interface.into(),
            Box::new(from_peer),
            Box::new(to_peer.clone()),
        ),
        Op::UpdateInterface(
            Family::V4,
            Box::new(to_interface.clone()),
            Box::new(to_kernel),
        ),
    ];
    let changed = run_step_in(&lab.a, "update", mesh.step(&lab.a, &key, ops));
    assert_eq!(changed.results[..2], [Ok(()), Ok(())]);
    let backend_change = changed.results[2].as_ref().unwrap_err();
    assert!(
        backend_change.starts_with(
            "update WireGuard interface ket4: cannot turn userspace interface ket4 into kernel"
        ) && backend_change.ends_with("delete and create it"),
        "{backend_change}"
    );
    let mut expected: Dataplane = desired.clone();
    expected.families.v4.interface = Some(to_interface);
    expected.families.v4.peers = vec![to_peer.clone()];
    assert_eq!(changed.dataplane, expected);
    let addresses = lab.a.ip(&["-4", "address", "show", "dev", mesh.interface]);
    assert!(
        addresses.contains("198.18.1.253/32") && !addresses.contains("198.18.1.254"),
        "{addresses}"
    );

    let removed = run_step_in(
        &lab.a,
        "remove-peer",
        mesh.step(
            &lab.a,
            &key,
            vec![Op::RemovePeer(Family::V4, mesh.interface.into(), to_peer)],
        ),
    );
    assert_ok(&removed, "node-a");
    assert!(removed.dataplane.families.v4.peers.is_empty());
    assert!(
        !lab.a.state_dir().join("peer-names.json").exists(),
        "the peer's name is forgotten"
    );

    let torn_down = run_step_in(
        &lab.a,
        "teardown",
        mesh.step(&lab.a, &key, vec![Op::TearDown]),
    );
    assert_ok(&torn_down, "node-a");
    assert!(torn_down.dataplane.is_empty(), "{:#?}", torn_down.dataplane);
}

#[test]
fn leftovers_of_an_earlier_configuration_are_reported_first() {
    let lab = Lab::new("left");
    let mesh = Mesh::v4(BackendKind::Userspace);
    let key = Key::generate_private();
    let old = mesh.dataplane(&lab.a, &lab.b, public(&Key::generate_private()), "node-b");
    let built = run_step_in(
        &lab.a,
        "build",
        mesh.step(&lab.a, &key, vec![Op::Build(Box::new(old.clone()))]),
    );
    assert_ok(&built, "node-a");

    // The configuration moved to interface ket4new, table 51821, priority 100.
    let mut step = mesh.step(&lab.a, &key, vec![]);
    step.scope = vec![
        (Family::V4, "ket4new".into(), TABLE + 1, PRIORITY + 1),
        (Family::V4, mesh.interface.into(), TABLE, PRIORITY),
    ];
    let found = run_step_in(&lab.a, "observe", step);
    assert_eq!(
        found.dataplane.families.v4, old.families.v4,
        "the old interface, routes and rule"
    );

    let mut step = mesh.step(&lab.a, &key, vec![Op::TearDown]);
    step.scope = vec![(Family::V4, "ket4new".into(), TABLE + 1, PRIORITY + 1)];
    let current_only = run_step_in(&lab.a, "teardown-current", step);
    assert_ok(&current_only, "node-a");
    assert!(
        current_only.dataplane.families.v4.is_empty(),
        "a scope without the old names does not see them"
    );
    assert!(
        lab.a.ip(&["link", "show"]).contains(mesh.interface),
        "so they are not touched"
    );

    let all = run_step_in(
        &lab.a,
        "teardown",
        mesh.step(&lab.a, &key, vec![Op::TearDown]),
    );
    assert_ok(&all, "node-a");
    assert!(all.dataplane.is_empty(), "{:#?}", all.dataplane);
}
