//! The pre-flight of `enable` and `disable`: the shared admission rules
//! (`kube_encrypt_api::rules`) on the config as it will be, against the pools as they will
//! be, plus every pool change the command makes. Shown before anything is written.

use std::io::{self, Write};

use kube_encrypt_api::crd::{EncryptionConfigSpec, IPPool, SINGLETON_NAME};
use kube_encrypt_api::net::Family;
use kube_encrypt_api::rules::{self, ConfigRef, Finding, NamedPool, Rule, Severity};

use crate::enable::nat::{family_pools, pools_after, NatFix};
use crate::style::{Paint, Style};

/// What the rules say about a change.
#[derive(Clone, Debug)]
pub struct Preflight {
    /// The families the config will enable.
    pub families: Vec<Family>,
    /// The pools after the planned fixes.
    pub pools: Vec<IPPool>,
    pub fixes: Vec<NatFix>,
    pub findings: Vec<Finding>,
}

impl Preflight {
    pub fn evaluate(spec: &EncryptionConfigSpec, pools: &[IPPool], fixes: Vec<NatFix>) -> Self {
        let named: Vec<NamedPool> = pools.iter().map(NamedPool::from).collect();
        let config = ConfigRef {
            name: SINGLETON_NAME,
            spec,
        };
        let mut findings: Vec<Finding> = fixes
            .iter()
            .flat_map(|f| rules::evaluate_pool_change(f.change(), Some(config), &named))
            .collect();
        let after = pools_after(pools, &fixes);
        let named_after: Vec<NamedPool> = after.iter().map(NamedPool::from).collect();
        findings.extend(rules::evaluate_config(SINGLETON_NAME, spec, &named_after));
        findings.sort();
        findings.dedup();
        Self {
            families: spec.enabled_families(),
            pools: after,
            fixes,
            findings,
        }
    }

    pub fn denials(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Deny)
    }

    pub fn passed(&self) -> bool {
        self.denials().next().is_none()
    }

    /// The one line an error ends with: how many rules failed and the way out.
    pub fn refusal(&self, verb: &str, fix_requested: bool) -> String {
        let rules: Vec<String> = self.denials().map(|f| f.rule.to_string()).collect();
        let mut line = format!(
            "refusing to {verb}: {} admission rule finding{} ({})",
            rules.len(),
            if rules.len() == 1 { "" } else { "s" },
            rules.join(", ")
        );
        let nat = self.denials().any(|f| is_nat(f.rule));
        let fixable = self.without_nat();
        if nat && !fix_requested && !fixable.is_empty() {
            line.push_str(&format!(
                "; NAT outgoing is off on IPPool {}: rerun with --fix-nat-outgoing to set natOutgoing: true there",
                fixable.join(", ")
            ));
        } else {
            line.push_str("; each finding above says what to change");
        }
        line
    }

    /// Enabled pools of the enabled families still without NAT outgoing.
    fn without_nat(&self) -> Vec<String> {
        self.families
            .iter()
            .flat_map(|f| family_pools(&self.pools, *f))
            .filter(|p| !p.spec.nat_outgoing)
            .map(|p| format!("{:?}", p.metadata.name.as_deref().unwrap_or_default()))
            .collect()
    }

    /// The NAT-outgoing table per enabled family, the planned pool changes and the findings.
    pub fn write(&self, style: Style, out: &mut dyn Write) -> io::Result<()> {
        writeln!(out, "Pre-flight (kube-encrypt admission rules):")?;
        for family in &self.families {
            self.write_family(*family, style, out)?;
        }
        for fix in &self.fixes {
            writeln!(
                out,
                "  {} IPPool {:?}: natOutgoing false → true (--fix-nat-outgoing)",
                style.paint(Paint::Warn, "~"),
                fix.name()
            )?;
        }
        for finding in &self.findings {
            let (paint, sign) = match finding.severity {
                Severity::Deny => (Paint::Bad, "✗"),
                Severity::Warning => (Paint::Warn, "!"),
            };
            writeln!(out, "  {} {finding}", style.paint(paint, sign))?;
        }
        if self.findings.is_empty() {
            writeln!(out, "  {} every rule passes", style.mark(true))?;
        }
        Ok(())
    }

    fn write_family(&self, family: Family, style: Style, out: &mut dyn Write) -> io::Result<()> {
        let pools = family_pools(&self.pools, family);
        if pools.is_empty() {
            return writeln!(
                out,
                "  {family} NAT outgoing: {} no enabled {family} IPPool",
                style.mark(false)
            );
        }
        writeln!(out, "  {family} NAT outgoing:")?;
        for pool in pools {
            let name = pool.metadata.name.as_deref().unwrap_or_default();
            writeln!(
                out,
                "    {} {name} ({}) natOutgoing: {}",
                style.mark(pool.spec.nat_outgoing),
                pool.spec.cidr,
                pool.spec.nat_outgoing
            )?;
        }
        Ok(())
    }
}

fn is_nat(rule: Rule) -> bool {
    matches!(rule, Rule::Ipv4NatOutgoing | Rule::Ipv6NatOutgoing)
}
