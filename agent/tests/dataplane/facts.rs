//! Host facts inside a node namespace (underlay interfaces, their MTU and addresses, WireGuard
//! backends), compared with what `ip` says.

use kube_encrypt_api::crd::BackendKind;
use wireguard_control::Key;

use super::lab::Lab;
use super::mesh::Mesh;
use super::node::{run_step_in, Facts, Op};

#[test]
fn host_facts_find_the_underlay_mtu_and_the_wireguard_backends() {
    let lab = Lab::new("facts");
    lab.a.ip(&["link", "set", "eth0", "mtu", "1400"]);
    // Independent kernel probe, the way an operator would try it.
    let probe = lab
        .a
        .exec(&["ip", "link", "add", "ketprobe", "type", "wireguard"]);
    let kernel = probe.status.success();
    if kernel {
        lab.a.ip(&["link", "del", "ketprobe"]);
    }
    let node_ips = |ips: &[&str]| ips.iter().map(|ip| ip.parse().unwrap()).collect();
    let strings = |items: &[&str]| -> Vec<String> { items.iter().map(|s| s.to_string()).collect() };
    // (node IPs, underlay interfaces, MTU, their global addresses)
    let cases = [
        (
            node_ips(&["192.0.2.1", "2001:db8::1"]),
            strings(&["eth0"]),
            Some(1400),
            strings(&["192.0.2.1/24", "2001:db8::1/64"]),
        ),
        (
            node_ips(&["198.18.1.1", "192.0.2.1"]),
            strings(&["eth0", "pod0"]),
            Some(1400),
            strings(&[
                "192.0.2.1/24",
                "198.18.1.1/24",
                "2001:db8::1/64",
                "2001:db8:1::1/64",
            ]),
        ),
        (
            node_ips(&["2001:db8:1::1"]),
            strings(&["pod0"]),
            Some(1500),
            strings(&["198.18.1.1/24", "2001:db8:1::1/64"]),
        ),
        (node_ips(&["203.0.113.7"]), vec![], None, vec![]),
    ];
    let mesh = Mesh::v4(BackendKind::Userspace);
    for (ips, interfaces, mtu, addresses) in cases {
        let step = mesh.step(&lab.a, &Key::generate_private(), vec![Op::Facts(ips)]);
        let report = run_step_in(&lab.a, "facts", step);
        assert_eq!(
            report.facts,
            Some(Facts {
                underlay_interfaces: interfaces,
                underlay_mtu: mtu,
                underlay_addresses: addresses,
                kernel_wireguard: kernel,
                userspace_wireguard: true,
            })
        );
    }
    let links = lab.a.ip(&["link", "show"]);
    assert!(
        !links.contains("ketprobe"),
        "the driver's probe link was left:\n{links}"
    );
}
