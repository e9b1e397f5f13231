//! The wrappers over Kubernetes objects the webhook calls.

use super::{enabled, ids, pool};
use crate::crd::{EncryptionConfig, IPPool};
use crate::rules::{evaluate_config_object, evaluate_pool_object, NamedPool, Rule::*};

fn ippool(p: NamedPool) -> IPPool {
    IPPool::new(&p.name, p.spec)
}

#[test]
fn config_object_is_named_from_metadata() {
    let pools = [ippool(pool("v6", "2001:db8:1::/48", true))];
    let ok = EncryptionConfig::new("default", enabled(false, true));
    assert_eq!(evaluate_config_object(&ok, &pools), []);
    let renamed = EncryptionConfig::new("cluster", enabled(false, true));
    assert_eq!(
        ids(&evaluate_config_object(&renamed, &pools)),
        [SingletonName]
    );
    assert_eq!(
        ids(&evaluate_config_object(&renamed, &[])),
        [SingletonName, Ipv6NatOutgoing]
    );
}

#[test]
fn pool_object_change_follows_old_and_new_objects() {
    let config = EncryptionConfig::new("default", enabled(false, true));
    let with_nat = ippool(pool("v6", "2001:db8:1::/48", true));
    let without_nat = ippool(pool("v6", "2001:db8:1::/48", false));
    let cluster = [with_nat.clone()];
    let cases = [
        ("create", None, Some(&without_nat), vec![Ipv6NatOutgoing]),
        (
            "update",
            Some(&with_nat),
            Some(&without_nat),
            vec![Ipv6NatOutgoing],
        ),
        ("delete", Some(&with_nat), None, vec![Ipv6NatOutgoing]),
        ("nothing", None, None, vec![]),
    ];
    for (name, old, new, expect) in cases {
        let findings = evaluate_pool_object(old, new, Some(&config), &cluster);
        assert_eq!(ids(&findings), expect, "{name}: {findings:?}");
        let without_config = evaluate_pool_object(old, new, None, &cluster);
        assert_eq!(without_config, [], "{name} without a config");
    }
}
