//! NAT outgoing per family: which enabled pools have it (shown ✓/✗ before enabling), and the
//! pool changes `--fix-nat-outgoing` makes. Whether a family may be enabled is decided by the
//! shared rules, never here.

use kube_encrypt_api::crd::IPPool;
use kube_encrypt_api::net::Family;
use kube_encrypt_api::rules::{self, NamedPool, PoolChange};
use serde_json::json;

use crate::apply::Apply;

/// The enabled pools of `family` with a valid CIDR, in name order.
pub fn family_pools(pools: &[IPPool], family: Family) -> Vec<&IPPool> {
    let mut found: Vec<&IPPool> = pools
        .iter()
        .filter(|p| !p.spec.disabled)
        .filter(|p| rules::pool_network(&p.spec.cidr).is_ok_and(|n| Family::of_net(&n) == family))
        .collect();
    found.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    found
}

/// Setting `natOutgoing: true` on one pool.
#[derive(Clone, Debug)]
pub struct NatFix {
    pub family: Family,
    pub pool: IPPool,
}

/// The fixes for every enabled pool of `families` without NAT outgoing.
pub fn plan_fixes(pools: &[IPPool], families: &[Family]) -> Vec<NatFix> {
    families
        .iter()
        .flat_map(|family| {
            family_pools(pools, *family)
                .into_iter()
                .filter(|p| !p.spec.nat_outgoing)
                .map(|p| NatFix {
                    family: *family,
                    pool: p.clone(),
                })
        })
        .collect()
}

impl NatFix {
    pub fn name(&self) -> &str {
        self.pool.metadata.name.as_deref().unwrap_or_default()
    }

    /// The pool after the fix.
    pub fn fixed(&self) -> IPPool {
        let mut pool = self.pool.clone();
        pool.spec.nat_outgoing = true;
        pool
    }

    /// The change as the rules see it.
    pub fn change(&self) -> PoolChange {
        PoolChange::Update {
            old: NamedPool::from(&self.pool),
            new: NamedPool::from(&self.fixed()),
        }
    }

    /// The server-side apply. Forced: the user asked for exactly this field, which whoever
    /// created the pool also owns (GitOps owners are refused before, unless `--force`).
    pub fn apply(&self) -> Apply {
        let patch = json!({
            "apiVersion": "kube-encrypt.dev/v1alpha1",
            "kind": "IPPool",
            "metadata": {"name": self.name()},
            "spec": {"cidr": self.pool.spec.cidr, "natOutgoing": true},
        });
        let mut apply = Apply::new("IPPool", self.name(), patch);
        apply.force = true;
        apply
    }
}

/// The pools as they will be after `fixes`.
pub fn pools_after(pools: &[IPPool], fixes: &[NatFix]) -> Vec<IPPool> {
    pools
        .iter()
        .map(|p| {
            fixes
                .iter()
                .find(|f| f.pool.metadata.name == p.metadata.name)
                .map_or_else(|| p.clone(), NatFix::fixed)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use kube_encrypt_api::crd::IPPoolSpec;

    use super::*;

    fn pool(name: &str, spec: IPPoolSpec) -> IPPool {
        IPPool::new(name, spec)
    }

    #[test]
    fn fixes_cover_enabled_pools_of_the_families_without_nat() {
        let pools = [
            pool("v4", IPPoolSpec::test("198.18.0.0/16").without_nat()),
            pool("v6-a", IPPoolSpec::test("2001:db8:1::/48").without_nat()),
            pool("v6-b", IPPoolSpec::test("2001:db8:2::/48")),
            pool(
                "v6-off",
                IPPoolSpec::test("2001:db8:3::/48").without_nat().disabled(),
            ),
        ];
        let fixes = plan_fixes(&pools, &[Family::V6]);
        let names: Vec<&str> = fixes.iter().map(NatFix::name).collect();
        assert_eq!(names, ["v6-a"]);
        let after = pools_after(&pools, &fixes);
        assert!(after[1].spec.nat_outgoing && !after[0].spec.nat_outgoing);
    }
}
