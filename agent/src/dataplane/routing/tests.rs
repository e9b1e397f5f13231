use super::*;

fn route(table: u32, destination: &str, kind: RouteKind) -> Route {
    Route {
        table,
        destination: destination.parse().unwrap(),
        kind,
    }
}

fn names() -> HashMap<u32, String> {
    HashMap::from([(9, "kube-encrypt".to_owned())])
}

#[test]
fn routes_round_trip_through_their_messages() {
    let device = || RouteKind::Device("kube-encrypt".into());
    let cases = [
        route(51820, "198.18.2.0/24", device()),
        route(51820, "198.18.1.0/24", RouteKind::Throw),
        route(51820, "2001:db8:b::/64", device()),
        route(51820, "2001:db8:a::/64", RouteKind::Throw),
        route(200, "0.0.0.0/0", RouteKind::Throw),
        route(51820, "198.18.2.0/24", RouteKind::Unreachable),
        route(51820, "2001:db8:b::/64", RouteKind::Unreachable),
    ];
    for case in cases {
        let oif = matches!(case.kind, RouteKind::Device(_)).then_some(9);
        let message = route_message(&case, oif);
        assert_eq!(
            route_from_message(&message, case.table, &names()),
            Some(case.clone())
        );
    }
}

#[test]
fn device_routes_are_link_scoped_and_throw_routes_universal() {
    let cases = [
        (
            RouteKind::Device("kube-encrypt".into()),
            RouteType::Unicast,
            RouteScope::Link,
        ),
        (RouteKind::Throw, RouteType::Throw, RouteScope::Universe),
        (
            RouteKind::Unreachable,
            RouteType::Unreachable,
            RouteScope::Universe,
        ),
    ];
    for (kind, expected_type, expected_scope) in cases {
        let metric = kind.metric();
        let message = route_message(&route(51820, "198.18.2.0/24", kind), Some(9));
        assert_eq!(message.header.kind, expected_type);
        assert_eq!(message.header.scope, expected_scope);
        let priority = message.attributes.iter().find_map(|a| match a {
            RouteAttribute::Priority(p) => Some(*p),
            _ => None,
        });
        assert_eq!(priority, metric, "{expected_type:?}");
        assert!(message.attributes.contains(&RouteAttribute::Table(51820)));
        let delete = route_delete_message(&route(51820, "198.18.2.0/24", RouteKind::Throw), None);
        assert_eq!(delete.header.scope, RouteScope::NoWhere);
    }
}

#[test]
fn only_routes_with_the_agents_protocol_are_its_own() {
    let device = route(
        51820,
        "198.18.2.0/24",
        RouteKind::Device("kube-encrypt".into()),
    );
    let ours = route_message(&device, Some(9));
    assert_eq!(ours.header.protocol, RouteProtocol::Other(ROUTE_PROTOCOL));
    assert_eq!(
        route_delete_message(&device, Some(9)).header.protocol,
        ours.header.protocol,
        "a delete names the protocol, so the kernel leaves other tools' routes alone"
    );
    for foreign in [
        RouteProtocol::Static,
        RouteProtocol::Boot,
        RouteProtocol::Kernel,
        RouteProtocol::Unspec,
        RouteProtocol::Other(80),
    ] {
        let mut message = ours.clone();
        message.header.protocol = foreign;
        assert_eq!(
            route_from_message(&message, 51820, &names()),
            None,
            "{foreign:?}"
        );
    }
}

#[test]
fn routes_of_other_tables_gateways_and_unknown_devices_are_not_reported() {
    let device = route(
        51820,
        "198.18.2.0/24",
        RouteKind::Device("kube-encrypt".into()),
    );
    let other_table = route_message(&device, Some(9));
    assert_eq!(route_from_message(&other_table, 254, &names()), None);

    let mut via_gateway = route_message(&device, Some(9));
    via_gateway
        .attributes
        .push(RouteAttribute::Gateway(RouteAddress::Inet(
            "192.0.2.2".parse().unwrap(),
        )));
    assert_eq!(route_from_message(&via_gateway, 51820, &names()), None);

    let unknown_device = route_message(&device, Some(42));
    assert_eq!(route_from_message(&unknown_device, 51820, &names()), None);
}

#[test]
fn small_table_ids_in_the_header_are_read_too() {
    let mut message = route_message(&route(100, "198.18.2.0/24", RouteKind::Throw), None);
    message
        .attributes
        .retain(|a| !matches!(a, RouteAttribute::Table(_)));
    message.header.table = 100;
    assert_eq!(
        route_from_message(&message, 100, &names()),
        Some(route(100, "198.18.2.0/24", RouteKind::Throw))
    );
}

#[test]
fn rules_round_trip_and_only_inverted_table_lookups_count() {
    let rule = RuleSpec {
        family: Family::V6,
        priority: 99,
        table: 51820,
        fwmark: 0x100000,
        mask: 0x100000,
    };
    let message = rule_message(&rule);
    assert_eq!(rule_from_message(&message, Family::V6), Some(rule.clone()));

    let mut not_inverted = message.clone();
    not_inverted.header.flags = RuleFlags::empty();
    assert_eq!(rule_from_message(&not_inverted, Family::V6), None);

    let mut without_mask = message.clone();
    without_mask
        .attributes
        .retain(|a| !matches!(a, RuleAttribute::FwMask(_)));
    assert_eq!(
        rule_from_message(&without_mask, Family::V6).unwrap().mask,
        u32::MAX
    );

    let mut reported = message.clone();
    reported
        .attributes
        .push(RuleAttribute::SuppressPrefixLen(u32::MAX));
    assert_eq!(
        rule_from_message(&reported, Family::V6),
        Some(rule),
        "attributes the kernel adds to every rule in a dump do not make it foreign"
    );
}

#[test]
fn rules_of_another_protocol_or_with_other_selectors_are_not_the_agents() {
    let rule = RuleSpec {
        family: Family::V4,
        priority: 99,
        table: 51820,
        fwmark: 0x100000,
        mask: 0x100000,
    };
    let ours = rule_message(&rule);
    type Edit = (&'static str, fn(&mut RuleMessage));
    let edits: [Edit; 5] = [
        ("static protocol", |m| {
            m.attributes
                .retain(|a| !matches!(a, RuleAttribute::Protocol(_)));
            m.attributes
                .push(RuleAttribute::Protocol(RouteProtocol::Static));
        }),
        ("no protocol", |m| {
            m.attributes
                .retain(|a| !matches!(a, RuleAttribute::Protocol(_)));
        }),
        ("an input interface", |m| {
            m.attributes.push(RuleAttribute::Iifname("eth0".into()));
        }),
        ("a source prefix", |m| m.header.src_len = 24),
        ("a destination", |m| {
            m.attributes
                .push(RuleAttribute::Destination("198.18.0.0".parse().unwrap()));
        }),
    ];
    for (name, edit) in edits {
        let mut message = ours.clone();
        edit(&mut message);
        assert_eq!(rule_from_message(&message, Family::V4), None, "{name}");
    }
}

#[test]
fn descriptions_read_like_ip_commands() {
    let cases = [
        (
            describe_route(&route(
                51820,
                "198.18.2.0/24",
                RouteKind::Device("wg0".into()),
            )),
            "198.18.2.0/24 dev wg0 table 51820",
        ),
        (
            describe_route(&route(51820, "198.18.1.0/24", RouteKind::Throw)),
            "throw 198.18.1.0/24 table 51820",
        ),
        (
            describe_route(&route(51820, "198.18.2.0/24", RouteKind::Unreachable)),
            "unreachable 198.18.2.0/24 table 51820 metric 65535",
        ),
        (
            describe_rule(&RuleSpec {
                family: Family::V4,
                priority: 99,
                table: 51820,
                fwmark: 0x100000,
                mask: 0x100000,
            }),
            "priority 99 not fwmark 0x100000/0x100000 lookup 51820 (IPv4)",
        ),
    ];
    for (got, expected) in cases {
        assert_eq!(got, expected);
    }
}
