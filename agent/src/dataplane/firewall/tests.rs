use serde_json::{json, Value};

use super::*;

fn net(text: &str) -> IpNet {
    text.parse().unwrap()
}

/// `(command, object kind, chain or table name)` of every batch entry, in order.
fn commands(ruleset: &Nftables<'_>) -> Vec<(String, String, String)> {
    let value = serde_json::to_value(ruleset).unwrap();
    value["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            let (command, object) = entry.as_object().unwrap().iter().next().unwrap();
            let (kind, body) = object.as_object().unwrap().iter().next().unwrap();
            let name = body.get("chain").or(body.get("name")).unwrap();
            (
                command.clone(),
                kind.clone(),
                name.as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The `expr` of every rule of `chain`.
fn rules(ruleset: &Nftables<'_>, chain: &str) -> Vec<Value> {
    let value = serde_json::to_value(ruleset).unwrap();
    value["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|entry| entry["add"].get("rule"))
        .filter(|rule| rule["chain"] == chain)
        .map(|rule| rule["expr"].clone())
        .collect()
}

fn prefix(addr: &str, len: u32) -> Value {
    json!({"prefix": {"addr": addr, "len": len}})
}

fn spec() -> FirewallSpec {
    FirewallSpec {
        wireguard_ports: vec![51820, 51821],
        masquerade: vec![InterfaceMasquerade {
            interface: "kube-encrypt".into(),
            own_sources: vec![net("198.18.1.0/24"), net("198.18.1.254/32")],
        }],
        nat_outgoing: vec![NatOutgoing {
            family: Family::V4,
            sources: vec![net("198.18.1.0/24")],
            cluster: vec![net("198.18.0.0/15")],
            exempt_interfaces: vec!["kube-encrypt".into()],
        }],
        rpf: Some(RpfMark {
            mark: 0x100000,
            interfaces: vec!["eth0".into()],
        }),
        clamp_mss: vec!["kube-encrypt".into()],
    }
}

#[test]
fn replacing_is_one_transaction_that_recreates_the_table() {
    let got = commands(&replace_ruleset(&spec()));
    let table = |command: &str| (command.to_owned(), "table".to_owned(), TABLE.to_owned());
    assert_eq!(got[..3], [table("add"), table("delete"), table("add")]);
    let chains: Vec<_> = got
        .iter()
        .filter(|(_, kind, _)| kind == "chain")
        .map(|c| c.2.as_str())
        .collect();
    assert_eq!(
        chains,
        ["input", "output", "forward", "postrouting", "prerouting"]
    );
}

#[test]
fn base_chains_hook_where_calico_hooks() {
    let value = serde_json::to_value(replace_ruleset(&spec())).unwrap();
    let chains: Vec<_> = value["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|entry| entry["add"].get("chain"))
        .map(|c| {
            (
                c["name"].clone(),
                c["type"].clone(),
                c["hook"].clone(),
                c["prio"].clone(),
            )
        })
        .collect();
    assert_eq!(
        chains,
        [
            (json!("input"), json!("filter"), json!("input"), json!(0)),
            (json!("output"), json!("filter"), json!("output"), json!(0)),
            (
                json!("forward"),
                json!("filter"),
                json!("forward"),
                json!(-150)
            ),
            (
                json!("postrouting"),
                json!("nat"),
                json!("postrouting"),
                json!(100)
            ),
            (
                json!("prerouting"),
                json!("filter"),
                json!("prerouting"),
                json!(-300)
            ),
        ]
    );
}

#[test]
fn tcp_syns_into_the_tunnel_get_the_routes_mss_forwarded_and_local() {
    let ruleset = replace_ruleset(&spec());
    let clamp = json!([
        {"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": {"set": ["kube-encrypt"]}}},
        {"match": {"op": "in", "left": {"payload": {"protocol": "tcp", "field": "flags"}}, "right": "syn"}},
        {"mangle": {"key": {"tcp option": {"name": "maxseg", "field": "size"}}, "value": {"rt": {"key": "mtu"}}}},
    ]);
    assert_eq!(rules(&ruleset, "forward"), std::slice::from_ref(&clamp));
    let output = rules(&ruleset, "output");
    assert_eq!(output.len(), 2);
    assert_eq!(output[0], clamp, "clamped before the accept rule");

    let without = replace_ruleset(&FirewallSpec {
        clamp_mss: vec![],
        ..spec()
    });
    assert!(rules(&without, "forward").is_empty());
    assert_eq!(rules(&without, "output").len(), 1);
}

#[test]
fn accepts_wireguard_udp_in_and_out() {
    let ruleset = replace_ruleset(&spec());
    let ports = json!({"set": [51820, 51821]});
    let cases = [("input", "dport"), ("output", "sport")];
    for (chain, field) in cases {
        // The output chain clamps the MSS first; the accept rule is the chain's last.
        assert_eq!(
            rules(&ruleset, chain).last(),
            Some(&json!([
                {"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": field}}, "right": ports}},
                {"accept": null}
            ])),
            "{chain}"
        );
    }
}

#[test]
fn masquerades_foreign_sources_leaving_wireguard_then_nat_outgoing() {
    let got = rules(&replace_ruleset(&spec()), "postrouting");
    let interface_rule = json!([
        {"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": "kube-encrypt"}},
        {"match": {"op": "!=", "left": {"fib": {"result": "type", "flags": ["saddr"]}}, "right": "local"}},
        {"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                   "right": {"set": [prefix("198.18.1.0", 24), prefix("198.18.1.254", 32)]}}},
        {"masquerade": null}
    ]);
    let nat_rule = json!([
        {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                   "right": {"set": [prefix("198.18.1.0", 24)]}}},
        {"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "daddr"}},
                   "right": {"set": [prefix("198.18.0.0", 15)]}}},
        {"match": {"op": "!=", "left": {"meta": {"key": "oifname"}}, "right": {"set": ["kube-encrypt"]}}},
        {"masquerade": null}
    ]);
    assert_eq!(got, [interface_rule, nat_rule]);
}

#[test]
fn marks_underlay_packets_for_rpf_in_raw_prerouting() {
    let got = rules(&replace_ruleset(&spec()), "prerouting");
    assert_eq!(
        got,
        [json!([
            {"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": {"set": ["eth0"]}}},
            {"mangle": {"key": {"meta": {"key": "mark"}},
                        "value": {"|": [{"meta": {"key": "mark"}}, 0x100000]}}}
        ])]
    );
}

#[test]
fn interface_masquerade_has_one_rule_per_family_of_its_sources() {
    let cases: [(&[&str], &[&str]); 3] = [
        (&[], &[]),
        (&["2001:db8:a::/64"], &["ip6"]),
        (&["198.18.1.0/24", "2001:db8:a::/64"], &["ip", "ip6"]),
    ];
    for (sources, protocols) in cases {
        let spec = FirewallSpec {
            masquerade: vec![InterfaceMasquerade {
                interface: "wg-v6".into(),
                own_sources: sources.iter().map(|s| net(s)).collect(),
            }],
            ..FirewallSpec::default()
        };
        let got = rules(&replace_ruleset(&spec), "postrouting");
        let source_protocols: Vec<Value> = got
            .iter()
            .filter_map(|rule| rule.as_array().unwrap().get(2))
            .filter_map(|stmt| stmt["match"]["left"]["payload"].get("protocol").cloned())
            .collect();
        assert_eq!(got.len(), protocols.len().max(1), "{sources:?}");
        assert_eq!(
            source_protocols,
            protocols.iter().map(|p| json!(p)).collect::<Vec<_>>()
        );
        let set = got
            .first()
            .and_then(|r| r.get(2))
            .map(|s| s["match"]["right"]["set"].clone());
        if let (Some(set), Some(source)) = (set, sources.first()) {
            assert_eq!(
                set.as_array().unwrap().len(),
                1,
                "{source}: only the family's own nets"
            );
        }
    }
}

#[test]
fn nat_outgoing_leaves_out_empty_matches_and_empty_pools() {
    let cases = [
        (
            NatOutgoing {
                family: Family::V6,
                sources: vec![net("2001:db8:a::/64")],
                cluster: vec![],
                exempt_interfaces: vec![],
            },
            Some(json!([
                {"match": {"op": "==", "left": {"payload": {"protocol": "ip6", "field": "saddr"}},
                           "right": {"set": [prefix("2001:db8:a::", 64)]}}},
                {"masquerade": null}
            ])),
        ),
        (
            NatOutgoing {
                family: Family::V4,
                sources: vec![],
                cluster: vec![net("198.18.0.0/15")],
                exempt_interfaces: vec!["wg0".into()],
            },
            None,
        ),
    ];
    for (rule, expected) in cases {
        let spec = FirewallSpec {
            nat_outgoing: vec![rule.clone()],
            ..FirewallSpec::default()
        };
        let got = rules(&replace_ruleset(&spec), "postrouting");
        assert_eq!(got, expected.into_iter().collect::<Vec<_>>(), "{rule:?}");
    }
}

#[test]
fn an_empty_spec_is_an_empty_table() {
    let got = commands(&replace_ruleset(&FirewallSpec::default()));
    assert_eq!(got.len(), 3, "{got:?}");
}

#[test]
fn deleting_tolerates_a_missing_table() {
    let got = commands(&delete_ruleset());
    let table = |command: &str| (command.to_owned(), "table".to_owned(), TABLE.to_owned());
    assert_eq!(got, [table("add"), table("delete")]);
}
