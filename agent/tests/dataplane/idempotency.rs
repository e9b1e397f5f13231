//! What happens when a change is applied twice. The decision: adding something that is
//! already there fails with the kernel's reason ("File exists"), so a plan built from a
//! wrong observation is loud; deleting something already gone succeeds, because the host
//! already looks as wanted; creating an interface that exists adopts and reconfigures it
//! (the state a crash between creating and configuring leaves behind).

use kube_encrypt_api::crd::BackendKind;
use kube_encrypt_api::dataplane::{Dataplane, RouteKind};
use wireguard_control::Key;

use super::encryption::assert_ok;
use super::lab::Lab;
use super::mesh::{Mesh, TABLE};
use super::node::{run_step_in, Op};

#[test]
fn adding_twice_fails_clearly_and_deleting_twice_is_fine() {
    let lab = Lab::new("idem");
    let mesh = Mesh::v4(BackendKind::Userspace);
    let key = Key::generate_private();
    let interface_only = {
        let mut dataplane = Dataplane::default();
        dataplane.families.v4.interface = Some(mesh.interface_spec(&lab.a));
        dataplane
    };
    let device = mesh.route(
        "198.18.2.0/24".parse().unwrap(),
        RouteKind::Device(mesh.interface.into()),
    );
    let throw = mesh.route("198.18.1.0/24".parse().unwrap(), RouteKind::Throw);
    let missing_device = mesh.route(
        "198.18.3.0/24".parse().unwrap(),
        RouteKind::Device("nope0".into()),
    );
    let family = mesh.family;
    let ops = vec![
        Op::Build(Box::new(interface_only.clone())),
        Op::Build(Box::new(interface_only.clone())),
        Op::AddRoute(family, device.clone()),
        Op::AddRoute(family, device.clone()),
        Op::AddRoute(family, throw.clone()),
        Op::AddRoute(family, throw.clone()),
        Op::AddRule(mesh.rule()),
        Op::AddRule(mesh.rule()),
        Op::AddRoute(family, missing_device),
        Op::DeleteRoute(family, device.clone()),
        Op::DeleteRoute(family, device),
        Op::DeleteRoute(family, throw.clone()),
        Op::DeleteRoute(family, throw),
        Op::DeleteRule(mesh.rule()),
        Op::DeleteRule(mesh.rule()),
    ];
    let report = run_step_in(&lab.a, "twice", mesh.step(&lab.a, &key, ops));
    let exists = |what: &str| Err(format!("add {what}: File exists"));
    let expected = vec![
        Ok(()),
        Ok(()),
        Ok(()),
        exists(&format!("route 198.18.2.0/24 dev ket4 table {TABLE}")),
        Ok(()),
        exists(&format!("route throw 198.18.1.0/24 table {TABLE}")),
        Ok(()),
        exists(&format!(
            "rule priority 99 not fwmark 0x100000/0x100000 lookup {TABLE} (IPv4)"
        )),
        Err(format!(
            "add route 198.18.3.0/24 dev nope0 table {TABLE}: no interface named nope0"
        )),
        Ok(()),
        Ok(()),
        Ok(()),
        Ok(()),
        Ok(()),
        Ok(()),
    ];
    assert_eq!(report.results, expected);
    assert_eq!(
        report.dataplane, interface_only,
        "only the (adopted) interface is left"
    );

    let report = run_step_in(
        &lab.a,
        "teardown",
        mesh.step(&lab.a, &key, vec![Op::TearDown, Op::TearDown]),
    );
    assert_ok(&report, "node-a");
    assert!(report.dataplane.is_empty(), "{:#?}", report.dataplane);
}

#[test]
fn a_down_interface_is_reported_absent_and_recreating_brings_it_back() {
    let lab = Lab::new("down");
    let mesh = Mesh::v4(BackendKind::Userspace);
    let key = Key::generate_private();
    let mut dataplane = Dataplane::default();
    dataplane.families.v4.interface = Some(mesh.interface_spec(&lab.a));

    let built = run_step_in(
        &lab.a,
        "build",
        mesh.step(&lab.a, &key, vec![Op::Build(Box::new(dataplane.clone()))]),
    );
    assert_ok(&built, "node-a");
    lab.a.ip(&["link", "set", mesh.interface, "down"]);
    lab.a.ip(&["link", "set", mesh.interface, "mtu", "1300"]);
    let found = run_step_in(&lab.a, "observe", mesh.step(&lab.a, &key, vec![]));
    assert_eq!(
        found.dataplane.families.v4.interface, None,
        "a down link is not a working interface"
    );

    let rebuilt = run_step_in(
        &lab.a,
        "rebuild",
        mesh.step(&lab.a, &key, vec![Op::Build(Box::new(dataplane.clone()))]),
    );
    assert_ok(&rebuilt, "node-a");
    assert_eq!(
        rebuilt.dataplane, dataplane,
        "adopted, reconfigured and up again"
    );
    assert_eq!(
        lab.a.wireguard_go_pids().len(),
        1,
        "the same daemon, not a second one"
    );
}
