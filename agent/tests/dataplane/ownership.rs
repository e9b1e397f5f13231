//! The agent owns only what it made: routes in its table carry its own protocol number
//! (`proto 75`) and its rule too, so a table or priority shared by mistake with another CNI
//! or with `main` loses nothing when the agent converges or disables.

use kube_encrypt_api::crd::BackendKind;
use wireguard_control::Key;

use super::encryption::assert_ok;
use super::lab::Lab;
use super::mesh::{public, Mesh, TABLE};
use super::node::{run_step_in, Op};

/// Routes and a rule another tool put into the agent's table and priority.
const FOREIGN_ROUTES: [&[&str]; 3] = [
    &["198.19.99.0/24", "dev", "pod0"],
    // Same destination as the agent's device route, other metric: a different route.
    &["198.18.2.0/24", "dev", "pod0", "metric", "7"],
    &["throw", "198.19.98.0/24"],
];
const FOREIGN_RULE: &[&str] = &[
    "priority",
    "99",
    "not",
    "fwmark",
    "0x100000/0x100000",
    "lookup",
    "51820",
    "proto",
    "static",
];

#[test]
fn foreign_routes_and_rules_in_the_agents_table_survive_converge_and_disable() {
    let lab = Lab::new("own");
    let mesh = Mesh::v4(BackendKind::Userspace);
    let key = Key::generate_private();
    for route in FOREIGN_ROUTES {
        let mut args = vec!["-4", "route", "add"];
        args.extend_from_slice(route);
        args.extend_from_slice(&["table", "51820", "proto", "static"]);
        lab.a.ip(&args);
    }
    let mut rule = vec!["-4", "rule", "add"];
    rule.extend_from_slice(FOREIGN_RULE);
    lab.a.ip(&rule);
    let before = foreign_view(&lab);

    let desired = mesh.dataplane(&lab.a, &lab.b, public(&Key::generate_private()), "node-b");
    let built = run_step_in(
        &lab.a,
        "build",
        mesh.step(&lab.a, &key, vec![Op::Build(Box::new(desired.clone()))]),
    );
    assert_ok(&built, "node-a");
    assert_eq!(
        built.dataplane, desired,
        "the agent sees only its own routes and rule"
    );
    let table = lab
        .a
        .ip(&["-4", "route", "show", "table", &TABLE.to_string()]);
    assert!(
        table.contains("198.18.2.0/24 dev ket4 proto 75"),
        "the agent's route carries its protocol:\n{table}"
    );

    let torn_down = run_step_in(
        &lab.a,
        "teardown",
        mesh.step(&lab.a, &key, vec![Op::TearDown]),
    );
    assert_ok(&torn_down, "node-a");
    assert!(torn_down.dataplane.is_empty(), "{:#?}", torn_down.dataplane);
    assert_eq!(
        foreign_view(&lab),
        before,
        "the foreign routes and rule are exactly as before"
    );
}

/// The foreign routes of table 51820 and the rules at priority 99, as `ip` prints them.
fn foreign_view(lab: &Lab) -> (String, String) {
    let routes = lab.a.ip(&["-4", "route", "show", "table", "51820"]);
    let rules: String = lab
        .a
        .ip(&["-4", "rule", "show"])
        .lines()
        .filter(|l| l.starts_with("99:"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(routes.lines().count(), 3, "{routes}");
    assert_eq!(rules.lines().count(), 1, "{rules}");
    (routes, rules)
}
