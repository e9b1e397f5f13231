//! The agent's one nftables table, `inet kube-encrypt`, built from a [`FirewallSpec`] as an
//! `nft -j` document and replaced in one transaction (add, delete, recreate), so the kernel
//! never holds half of it.
//!
//! ```text
//! chain input       filter hook input        udp dport {ports} accept
//! chain output      filter hook output       oifname {wg} tcp flags syn tcp option maxseg size set rt mtu
//!                                            udp sport {ports} accept
//! chain forward     filter hook forward      oifname {wg} tcp flags syn tcp option maxseg size set rt mtu
//!                   priority mangle
//! chain postrouting nat hook postrouting     oifname <wg> fib saddr type != local ip saddr != {own} masquerade
//!                                            ip saddr {pools} ip daddr != {cluster} oifname != {wg} masquerade
//! chain prerouting  filter hook prerouting   iifname {underlay} meta mark set meta mark | <mark>
//!                   priority raw
//! ```

use std::borrow::Cow;
use std::collections::HashSet;
use std::ffi::OsStr;

use ipnet::IpNet;
use kube_encrypt_api::dataplane::{FirewallSpec, InterfaceMasquerade, NatOutgoing, RpfMark};
use kube_encrypt_api::net::Family;
use nftables::batch::Batch;
use nftables::expr::{
    BinaryOperation, Expression, Fib, FibFlag, FibResult, Meta, MetaKey, NamedExpression, Payload,
    PayloadField, Prefix, RTKey, SetItem, TcpOption, RT,
};
use nftables::helper::NftablesError;
use nftables::schema::{Chain, NfListObject, Nftables, Rule, Table};
use nftables::stmt::{Mangle, Match, Operator, Statement};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};

use super::state::StateDir;
use super::DriverError;

/// The table the agent owns.
pub(crate) const TABLE: &str = "kube-encrypt";

const PRIORITY_FILTER: i32 = 0;
const PRIORITY_MANGLE: i32 = -150;
const PRIORITY_SRCNAT: i32 = 100;
const PRIORITY_RAW: i32 = -300;

/// Runs `nft` and remembers the spec it applied.
pub(crate) struct Firewall<'a> {
    pub(crate) nft: &'a OsStr,
    pub(crate) state: &'a StateDir,
}

impl Firewall<'_> {
    /// Replaces the table atomically, then records the spec.
    pub(crate) async fn replace(&self, spec: &FirewallSpec) -> Result<(), DriverError> {
        let operation = format!("replace nftables table inet {TABLE}");
        self.run(&replace_ruleset(spec))
            .await
            .map_err(|e| DriverError::new(&operation, e))?;
        self.state.set_firewall(Some(spec));
        Ok(())
    }

    /// Deletes the table (absent is fine) and forgets the spec.
    pub(crate) async fn delete(&self) -> Result<(), DriverError> {
        self.run(&delete_ruleset())
            .await
            .map_err(|e| DriverError::new(format!("delete nftables table inet {TABLE}"), e))?;
        self.state.set_firewall(None);
        Ok(())
    }

    /// The spec last applied while the table exists; `None` when the table is gone.
    /// A table without a recorded spec reports an empty spec, so the loop replaces it.
    pub(crate) async fn observe(&self) -> Result<Option<FirewallSpec>, DriverError> {
        if !self.table_exists().await? {
            return Ok(None);
        }
        Ok(Some(self.state.firewall()?.unwrap_or_default()))
    }

    async fn table_exists(&self) -> Result<bool, DriverError> {
        let args = ["list", "table", "inet", TABLE];
        match nftables::helper::get_current_ruleset_raw_async(Some(self.nft), args).await {
            Ok(_) => Ok(true),
            Err(NftablesError::NftFailed { ref stderr, .. })
                if stderr.contains("No such file or directory") =>
            {
                Ok(false)
            }
            Err(e) => Err(DriverError::new(
                format!("list nftables table inet {TABLE}"),
                nft_error_text(&e),
            )),
        }
    }

    async fn run(&self, ruleset: &Nftables<'_>) -> Result<(), String> {
        nftables::helper::apply_ruleset_with_args_async(
            ruleset,
            Some(self.nft),
            nftables::helper::DEFAULT_ARGS,
        )
        .await
        .map_err(|e| nft_error_text(&e))
    }
}

/// nft's own complaint, not only "did not return successfully".
fn nft_error_text(err: &NftablesError) -> String {
    match err {
        NftablesError::NftFailed { stderr, .. } if !stderr.trim().is_empty() => {
            stderr.trim().replace('\n', "; ")
        }
        NftablesError::NftExecution { program, inner } => format!(
            "cannot run {}: {inner}; install nftables (the nft command) on the node",
            program.to_string_lossy()
        ),
        other => other.to_string(),
    }
}

/// One transaction: make sure the table exists, delete it, build it again.
pub(crate) fn replace_ruleset(spec: &FirewallSpec) -> Nftables<'static> {
    let mut batch = Batch::new();
    batch.add(NfListObject::Table(table()));
    batch.delete(NfListObject::Table(table()));
    batch.add(NfListObject::Table(table()));
    for (name, rules) in chains(spec) {
        if rules.is_empty() {
            continue;
        }
        batch.add(NfListObject::Chain(base_chain(name)));
        for expr in rules {
            batch.add(NfListObject::Rule(Rule {
                family: NfFamily::INet,
                table: TABLE.into(),
                chain: name.into(),
                expr: expr.into(),
                ..Rule::default()
            }));
        }
    }
    batch.to_nftables()
}

/// Deleting a table that may not exist: add (a no-op when present), then delete.
pub(crate) fn delete_ruleset() -> Nftables<'static> {
    let mut batch = Batch::new();
    batch.add(NfListObject::Table(table()));
    batch.delete(NfListObject::Table(table()));
    batch.to_nftables()
}

type Statements = Vec<Statement<'static>>;

/// The rules of each chain, in chain order.
fn chains(spec: &FirewallSpec) -> [(&'static str, Vec<Statements>); 5] {
    let ports = &spec.wireguard_ports;
    let accept_in = (!ports.is_empty()).then(|| accept_wireguard("dport", ports));
    let accept_out = (!ports.is_empty()).then(|| accept_wireguard("sport", ports));
    let clamp = (!spec.clamp_mss.is_empty()).then(|| clamp_mss(&spec.clamp_mss));
    let masquerade = spec.masquerade.iter().flat_map(interface_masquerade);
    let nat = spec.nat_outgoing.iter().filter_map(nat_outgoing);
    [
        ("input", accept_in.into_iter().collect()),
        (
            "output",
            clamp.clone().into_iter().chain(accept_out).collect(),
        ),
        ("forward", clamp.into_iter().collect()),
        ("postrouting", masquerade.chain(nat).collect()),
        ("prerouting", spec.rpf.iter().map(rpf_mark).collect()),
    ]
}

fn table() -> Table<'static> {
    Table {
        family: NfFamily::INet,
        name: TABLE.into(),
        handle: None,
    }
}

fn base_chain(name: &'static str) -> Chain<'static> {
    let (kind, hook, prio) = match name {
        "input" => (NfChainType::Filter, NfHook::Input, PRIORITY_FILTER),
        "output" => (NfChainType::Filter, NfHook::Output, PRIORITY_FILTER),
        "forward" => (NfChainType::Filter, NfHook::Forward, PRIORITY_MANGLE),
        "postrouting" => (NfChainType::NAT, NfHook::Postrouting, PRIORITY_SRCNAT),
        _ => (NfChainType::Filter, NfHook::Prerouting, PRIORITY_RAW),
    };
    Chain {
        family: NfFamily::INet,
        table: TABLE.into(),
        name: name.into(),
        _type: Some(kind),
        hook: Some(hook),
        prio: Some(prio),
        policy: Some(NfChainPolicy::Accept),
        ..Chain::default()
    }
}

/// `udp <field> {ports} accept`.
fn accept_wireguard(field: &'static str, ports: &[u16]) -> Statements {
    let ports = set(ports.iter().map(|p| Expression::Number(u32::from(*p))));
    vec![
        matches(payload("udp", field), Operator::EQ, ports),
        Statement::Accept(None),
    ]
}

/// `oifname {interfaces} tcp flags syn tcp option maxseg size set rt mtu`: the MSS a TCP
/// connection through the tunnel announces fits the route's MTU, so it never depends on an
/// ICMP "fragmentation needed" getting through.
fn clamp_mss(interfaces: &[String]) -> Statements {
    let interfaces = set(interfaces.iter().map(|i| string(i)));
    vec![
        matches(meta(MetaKey::Oifname), Operator::EQ, interfaces),
        matches(payload("tcp", "flags"), Operator::IN, string("syn")),
        Statement::Mangle(Mangle {
            key: Expression::Named(NamedExpression::TcpOption(TcpOption {
                name: "maxseg".into(),
                field: Some("size".into()),
            })),
            value: Expression::Named(NamedExpression::RT(RT {
                key: RTKey::MTU,
                family: None,
            })),
        }),
    ]
}

/// `oifname <wg> fib saddr type != local ip(6) saddr != {own} masquerade`, one rule per
/// family present in `own_sources` (one rule without the source match when it is empty).
fn interface_masquerade(rule: &InterfaceMasquerade) -> Vec<Statements> {
    let base = vec![
        matches(
            meta(MetaKey::Oifname),
            Operator::EQ,
            string(&rule.interface),
        ),
        matches(fib_saddr_type(), Operator::NEQ, string("local")),
    ];
    let families: Vec<Family> = Family::ALL
        .into_iter()
        .filter(|f| rule.own_sources.iter().any(|n| Family::of_net(n) == *f))
        .collect();
    if families.is_empty() {
        return vec![with_masquerade(base)];
    }
    families
        .into_iter()
        .map(|family| {
            let own = nets(&rule.own_sources, family);
            let mut statements = base.clone();
            statements.push(matches(address(family, "saddr"), Operator::NEQ, own));
            with_masquerade(statements)
        })
        .collect()
}

/// `ip(6) saddr {sources} ip(6) daddr != {cluster} oifname != {exempt} masquerade`;
/// nothing when no pool asks for NAT.
fn nat_outgoing(rule: &NatOutgoing) -> Option<Statements> {
    if !rule
        .sources
        .iter()
        .any(|n| Family::of_net(n) == rule.family)
    {
        return None;
    }
    let sources = nets(&rule.sources, rule.family);
    let mut statements = vec![matches(
        address(rule.family, "saddr"),
        Operator::EQ,
        sources,
    )];
    if !rule.cluster.is_empty() {
        let cluster = nets(&rule.cluster, rule.family);
        statements.push(matches(
            address(rule.family, "daddr"),
            Operator::NEQ,
            cluster,
        ));
    }
    if !rule.exempt_interfaces.is_empty() {
        let exempt = set(rule.exempt_interfaces.iter().map(|i| string(i)));
        statements.push(matches(meta(MetaKey::Oifname), Operator::NEQ, exempt));
    }
    Some(with_masquerade(statements))
}

/// `iifname {interfaces} meta mark set meta mark | <mark>`.
fn rpf_mark(rpf: &RpfMark) -> Statements {
    let interfaces = set(rpf.interfaces.iter().map(|i| string(i)));
    let or_mark = BinaryOperation::OR(vec![meta(MetaKey::Mark), Expression::Number(rpf.mark)]);
    vec![
        matches(meta(MetaKey::Iifname), Operator::EQ, interfaces),
        Statement::Mangle(Mangle {
            key: meta(MetaKey::Mark),
            value: Expression::BinaryOperation(Box::new(or_mark)),
        }),
    ]
}

fn with_masquerade(mut statements: Statements) -> Statements {
    statements.push(Statement::Masquerade(None));
    statements
}

fn matches(
    left: Expression<'static>,
    op: Operator,
    right: Expression<'static>,
) -> Statement<'static> {
    Statement::Match(Match { left, right, op })
}

fn meta(key: MetaKey) -> Expression<'static> {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}

fn payload(protocol: &'static str, field: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: protocol.into(),
            field: field.into(),
        },
    )))
}

fn address(family: Family, field: &'static str) -> Expression<'static> {
    match family {
        Family::V4 => payload("ip", field),
        Family::V6 => payload("ip6", field),
    }
}

fn fib_saddr_type() -> Expression<'static> {
    Expression::Named(NamedExpression::Fib(Fib {
        result: FibResult::Type,
        flags: HashSet::from([FibFlag::Saddr]),
    }))
}

fn string(text: &str) -> Expression<'static> {
    Expression::String(Cow::Owned(text.to_owned()))
}

fn set(items: impl Iterator<Item = Expression<'static>>) -> Expression<'static> {
    Expression::Named(NamedExpression::Set(items.map(SetItem::Element).collect()))
}

/// The networks of one family as an anonymous set of prefixes.
fn nets(nets: &[IpNet], family: Family) -> Expression<'static> {
    set(nets
        .iter()
        .filter(|n| Family::of_net(n) == family)
        .map(|n| {
            Expression::Named(NamedExpression::Prefix(Prefix {
                addr: Box::new(Expression::String(n.network().to_string().into())),
                len: u32::from(n.prefix_len()),
            }))
        }))
}

#[cfg(test)]
mod tests;
