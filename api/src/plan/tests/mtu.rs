//! The interface MTU of SPEC §4.3 as the planner applies it.

use crate::crd::EncryptionConfigSpec;
use crate::net::Family::{V4, V6};
use crate::node::NodeView;

use super::{facts, run};

const AZURE: &str = "azure:///subscriptions/0/resourceGroups/rg/providers/Microsoft.Compute/vm/1";

struct Row {
    name: &'static str,
    underlay: Option<u32>,
    provider_id: Option<&'static str>,
    host_encryption: bool,
    configured: (i64, i64),
    expected: (u32, u32),
}

const ROWS: &[Row] = &[
    Row {
        name: "1500 underlay",
        underlay: Some(1500),
        provider_id: None,
        host_encryption: false,
        configured: (0, 0),
        expected: (1440, 1420),
    },
    Row {
        name: "jumbo frames",
        underlay: Some(9000),
        provider_id: None,
        host_encryption: false,
        configured: (0, 0),
        expected: (8940, 8920),
    },
    Row {
        name: "1460 underlay",
        underlay: Some(1460),
        provider_id: None,
        host_encryption: false,
        configured: (0, 0),
        expected: (1400, 1380),
    },
    Row {
        name: "nothing detected",
        underlay: None,
        provider_id: None,
        host_encryption: false,
        configured: (0, 0),
        expected: (1400, 1380),
    },
    Row {
        name: "Azure with host encryption",
        underlay: Some(1500),
        provider_id: Some(AZURE),
        host_encryption: true,
        configured: (0, 0),
        expected: (1340, 1320),
    },
    Row {
        name: "Azure without host encryption",
        underlay: Some(1500),
        provider_id: Some(AZURE),
        host_encryption: false,
        configured: (0, 0),
        expected: (1440, 1420),
    },
    Row {
        name: "host encryption elsewhere",
        underlay: Some(1500),
        provider_id: Some("aws:///eu-west-1a/i-0"),
        host_encryption: true,
        configured: (0, 0),
        expected: (1440, 1420),
    },
    Row {
        name: "configured MTU wins",
        underlay: Some(9000),
        provider_id: Some(AZURE),
        host_encryption: true,
        configured: (1300, 1280),
        expected: (1300, 1280),
    },
    Row {
        name: "configured for IPv4 only",
        underlay: Some(1500),
        provider_id: None,
        host_encryption: false,
        configured: (1300, 0),
        expected: (1300, 1420),
    },
];

#[test]
fn interface_mtu_table() {
    for row in ROWS {
        let mut config = EncryptionConfigSpec::test()
            .with_ipv6()
            .with_mtu(V4, row.configured.0)
            .with_mtu(V6, row.configured.1);
        config.host_encryption = row.host_encryption;
        let mut own = NodeView::test_dual(1);
        own.provider_id = row.provider_id.map(Into::into);
        let nodes = vec![own, NodeView::test_dual(2)];
        let plan = run(
            Some(&config),
            &[],
            &nodes,
            &facts().with_underlay_mtu(row.underlay),
        );
        let mtu = |f| plan.dataplane.family(f).interface.as_ref().map(|i| i.mtu);
        assert_eq!(
            (mtu(V4), mtu(V6)),
            (Some(row.expected.0), Some(row.expected.1)),
            "{}",
            row.name
        );
    }
}
