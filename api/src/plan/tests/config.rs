//! The admission rules are the one judge of a config: every row of the rules table goes
//! through the planner, which refuses exactly the rows a dataplane-guarding rule denies (with
//! those findings) and plans every other one.

use crate::crd::EncryptionConfigSpec;
use crate::fixtures::test_pools;
use crate::plan::{plan, LocalFacts, PlanError, Snapshot};
use crate::rules::tests::fields::config_rows;
use crate::rules::Rule;

use super::{three_dual_nodes, OWN};

#[test]
fn the_planner_refuses_exactly_what_the_guarding_rules_deny() {
    let nodes = three_dual_nodes();
    let pools = test_pools();
    let (mut refused, mut planned) = (0, 0);
    for row in config_rows() {
        let label = format!("{}: {}", row.name, row.spec);
        let spec: EncryptionConfigSpec =
            serde_json::from_value(row.spec.clone()).expect("row spec deserializes");
        let mut guarding: Vec<Rule> = row
            .expect
            .iter()
            .copied()
            .filter(|r| r.guards_dataplane())
            .collect();
        guarding.sort();
        let snapshot = Snapshot {
            config: Some(&spec),
            pools: &pools,
            nodes: &nodes,
        };
        match plan(&snapshot, &LocalFacts::test(OWN)) {
            Ok(_) => {
                assert_eq!(guarding, [], "{label}: planned despite {guarding:?}");
                planned += 1;
            }
            Err(PlanError::InvalidConfig { findings }) => {
                let rules: Vec<Rule> = findings.iter().map(|f| f.rule).collect();
                assert_eq!(rules, guarding, "{label}: refused for {findings:?}");
                refused += 1;
            }
            Err(e) => panic!("{label}: {e}"),
        }
    }
    assert!(
        refused >= 40 && planned >= 30,
        "{refused} refused, {planned} planned"
    );
}

#[test]
fn a_refusal_names_the_rules_and_what_to_change() {
    let mut spec = EncryptionConfigSpec::test();
    spec.ipv4.interface_name = "-wg".into();
    spec.routing_table = 254;
    let nodes = three_dual_nodes();
    let snapshot = Snapshot {
        config: Some(&spec),
        pools: &[],
        nodes: &nodes,
    };
    let err = plan(&snapshot, &LocalFacts::test(OWN)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "EncryptionConfig breaks rules the dataplane depends on; keeping the dataplane as it is \
         until it is fixed: interface-name: spec.ipv4.interfaceName: interface name \"-wg\" \
         starts with '-', which ip, wg and nft read as an option; use 1-15 printable ASCII \
         characters without '/', ':' or whitespace, not starting with '-', such as \
         'wg-encrypt'; routing-table: spec.routingTable: table 254 is reserved by the kernel \
         (253 default, 254 main, 255 local); pick an unused table such as 51820"
    );
}
