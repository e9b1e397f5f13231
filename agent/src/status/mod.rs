//! The node's `NodeEncryption` status, built from the plan, what the device reports (read
//! after applying, in the same round) and what the admission rules say about the config, and
//! the limiter that writes it on a change of anything but counters, else at most every
//! five minutes.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube_encrypt_api::crd::{
    EncryptionState, FamilyStatus, NodeEncryptionStatus, PeerCounts, PeerHealth, SkippedPeerStatus,
    MAX_REPORTED_SKIPPED,
};
use kube_encrypt_api::key::WireGuardKey;
use kube_encrypt_api::net::{Family, PerFamily};
use kube_encrypt_api::plan::NodePlan;

use crate::dataplane::Observed;

mod review;

use review::{config_finding, degraded};
pub use review::{ConfigReview, DEGRADED, INVALID_CONFIG};

/// A handshake older than this is stale (WireGuard's REJECT_AFTER_TIME: the session is dead).
pub const STALE_HANDSHAKE: Duration = Duration::from_secs(180);
/// How many of the worst peers the status lists.
pub const WORST_PEERS: usize = 5;
/// The longest time between two status writes when only counters changed.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(300);

/// One configured peer's health, by node name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerSample {
    pub node: String,
    /// `None` = never handshaken.
    pub handshake_age: Option<Duration>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

/// What went wrong applying one family this round (empty = nothing).
pub type FamilyErrors = PerFamily<Vec<String>>;

/// The peers the plan configures on `family`, with the device's counters, sorted by node.
pub fn peer_samples(
    plan: &NodePlan,
    observed: &Observed,
    family: Family,
    now: SystemTime,
) -> Vec<PeerSample> {
    let nodes: BTreeMap<&WireGuardKey, &str> = plan
        .dataplane
        .family(family)
        .peers
        .iter()
        .map(|p| (&p.public_key, p.node.as_str()))
        .collect();
    let mut samples: Vec<PeerSample> = observed
        .peer_stats
        .get(family)
        .iter()
        .filter_map(|stats| {
            let node = nodes.get(&stats.public_key)?;
            Some(PeerSample {
                node: (*node).to_owned(),
                handshake_age: stats
                    .last_handshake
                    .map(|t| now.duration_since(t).unwrap_or_default()),
                rx_bytes: stats.rx_bytes,
                tx_bytes: stats.tx_bytes,
            })
        })
        .collect();
    samples.sort_by(|a, b| a.node.cmp(&b.node));
    samples
}

/// The whole status of this node.
pub fn build_status(
    plan: &NodePlan,
    observed: &Observed,
    keys: &PerFamily<Option<WireGuardKey>>,
    errors: &FamilyErrors,
    review: &ConfigReview,
    now: SystemTime,
) -> NodeEncryptionStatus {
    let family = |f| family_status(plan, observed, keys, errors.get(f), f, now);
    NodeEncryptionStatus {
        ipv4: Some(family(Family::V4)),
        ipv6: Some(family(Family::V6)),
        last_update: Some(rfc3339(now)),
        conditions: vec![degraded(review, now)],
        findings: review.findings.iter().map(config_finding).collect(),
    }
}

fn family_status(
    plan: &NodePlan,
    observed: &Observed,
    keys: &PerFamily<Option<WireGuardKey>>,
    errors: &[String],
    family: Family,
    now: SystemTime,
) -> FamilyStatus {
    let outcome = plan.families.get(family);
    let planned = plan.dataplane.family(family).interface.as_ref();
    let present = observed.dataplane.family(family).interface.as_ref();
    let samples = peer_samples(plan, observed, family, now);
    let (state, message) = state_and_message(outcome, planned, present, errors);
    let published = plan.publish.get(family).public_key;
    FamilyStatus {
        state,
        backend: outcome.backend,
        interface: planned.map(|i| i.name.clone()),
        public_key: keys
            .get(family)
            .filter(|_| published)
            .map(|k| k.to_base64()),
        listen_port: planned.map(|i| i64::from(i.listen_port)),
        mtu: planned.map(|i| i64::from(i.mtu)),
        peers: PeerCounts::new(
            count(observed.dataplane.family(family).peers.len()),
            count(samples.iter().filter(|s| s.handshake_age.is_some()).count()),
        ),
        oldest_handshake_seconds: samples
            .iter()
            .filter_map(|s| s.handshake_age)
            .max()
            .map(secs),
        rx_bytes: clamp(samples.iter().map(|s| s.rx_bytes).sum()),
        tx_bytes: clamp(samples.iter().map(|s| s.tx_bytes).sum()),
        message,
        worst_peers: worst_peers(&samples),
        skipped_peers: skipped_peers(plan, family),
        skipped_peer_count: count(plan.skipped.iter().filter(|s| s.family == family).count()),
    }
}

/// The first [`MAX_REPORTED_SKIPPED`] nodes left out of `family`, by node name.
fn skipped_peers(plan: &NodePlan, family: Family) -> Vec<SkippedPeerStatus> {
    plan.skipped
        .iter()
        .filter(|s| s.family == family)
        .take(MAX_REPORTED_SKIPPED)
        .map(|s| SkippedPeerStatus {
            node: s.node.clone(),
            reason: s.reason.clone(),
        })
        .collect()
}

/// The planner's verdict, overruled to `Error` when applying failed or the interface the plan
/// wants is not there.
fn state_and_message(
    outcome: &kube_encrypt_api::plan::FamilyOutcome,
    planned: Option<&kube_encrypt_api::dataplane::InterfaceSpec>,
    present: Option<&kube_encrypt_api::dataplane::InterfaceSpec>,
    errors: &[String],
) -> (EncryptionState, String) {
    if let Some(first) = errors.first() {
        let more = match errors.len() {
            1 => String::new(),
            n => format!(" (and {} more errors)", n - 1),
        };
        return (
            EncryptionState::Error,
            format!("applying failed: {first}{more}"),
        );
    }
    if let (Some(want), None) = (planned, present) {
        let message = format!("interface {} is missing after applying the plan", want.name);
        return (EncryptionState::Error, message);
    }
    (outcome.state, outcome.message.clone())
}

/// Peers without a handshake first, then the stalest, at most [`WORST_PEERS`].
fn worst_peers(samples: &[PeerSample]) -> Vec<PeerHealth> {
    let mut bad: Vec<&PeerSample> = samples
        .iter()
        .filter(|s| s.handshake_age.is_none_or(|age| age > STALE_HANDSHAKE))
        .collect();
    bad.sort_by_key(|s| (s.handshake_age.map(std::cmp::Reverse), s.node.clone()));
    bad.into_iter()
        .take(WORST_PEERS)
        .map(|s| PeerHealth {
            node: s.node.clone(),
            handshake_age_seconds: s.handshake_age.map(secs),
        })
        .collect()
}

/// Writes the status on a change of anything but counters, else at most every `interval`.
#[derive(Debug)]
pub struct StatusLimiter {
    interval: Duration,
    last: Option<(NodeEncryptionStatus, SystemTime)>,
    /// The conditions last written, with their transition times.
    conditions: Vec<Condition>,
}

impl StatusLimiter {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            last: None,
            conditions: Vec::new(),
        }
    }

    /// Whether `status` should be written at `now`.
    pub fn due(&self, status: &NodeEncryptionStatus, now: SystemTime) -> bool {
        let Some((last, at)) = &self.last else {
            return true;
        };
        let elapsed = now.duration_since(*at).unwrap_or(self.interval);
        *last != without_counters(status) || elapsed >= self.interval
    }

    /// Records a successful write.
    pub fn written(&mut self, status: &NodeEncryptionStatus, now: SystemTime) {
        self.last = Some((without_counters(status), now));
        self.conditions = status.conditions.clone();
    }

    /// Keeps the `lastTransitionTime` of every condition whose status is the one last written:
    /// the time says when it last changed, not when it was last computed.
    pub fn settle(&self, status: &mut NodeEncryptionStatus) {
        for condition in &mut status.conditions {
            let before = self
                .conditions
                .iter()
                .find(|c| c.type_ == condition.type_ && c.status == condition.status);
            if let Some(before) = before {
                condition.last_transition_time = before.last_transition_time.clone();
            }
        }
    }
}

/// The status with everything that moves on its own (bytes, ages, timestamps) zeroed. A
/// condition's transition time moves only with its status, which is compared.
fn without_counters(status: &NodeEncryptionStatus) -> NodeEncryptionStatus {
    let strip = |family: &Option<FamilyStatus>| {
        family.clone().map(|mut f| {
            f.rx_bytes = 0;
            f.tx_bytes = 0;
            f.oldest_handshake_seconds = None;
            for peer in &mut f.worst_peers {
                peer.handshake_age_seconds = None;
            }
            f
        })
    };
    let mut conditions = status.conditions.clone();
    for condition in &mut conditions {
        condition.last_transition_time = Time(Default::default());
    }
    NodeEncryptionStatus {
        ipv4: strip(&status.ipv4),
        ipv6: strip(&status.ipv6),
        last_update: None,
        conditions,
        ..status.clone()
    }
}

/// `2026-01-02T03:04:05Z`, as Kubernetes writes times.
pub fn rfc3339(time: SystemTime) -> String {
    whole_seconds(time)
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// `time` cut to whole seconds, the precision of Kubernetes times.
pub(crate) fn whole_seconds(time: SystemTime) -> k8s_openapi::jiff::Timestamp {
    let seconds = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    k8s_openapi::jiff::Timestamp::from_second(i64::try_from(seconds).unwrap_or_default())
        .unwrap_or_default()
}

fn secs(d: Duration) -> i64 {
    clamp(d.as_secs())
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::PeerStats;
    use kube_encrypt_api::crd::BackendKind;
    use kube_encrypt_api::dataplane::{InterfaceSpec, PeerSpec};
    use kube_encrypt_api::plan::{FamilyOutcome, Publication};
    use kube_encrypt_api::rules::{Finding, Rule, Severity};

    const T0: Duration = Duration::from_secs(1_800_000_000);

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + T0 + Duration::from_secs(secs)
    }

    fn key(byte: u8) -> WireGuardKey {
        WireGuardKey::from_bytes([byte; 32])
    }

    fn interface() -> InterfaceSpec {
        InterfaceSpec {
            name: "wg-encrypt".into(),
            backend: BackendKind::Userspace,
            listen_port: 51820,
            fwmark: 0x10_0000,
            mtu: 1440,
            address: None,
        }
    }

    fn peer(byte: u8, node: &str) -> PeerSpec {
        PeerSpec {
            public_key: key(byte),
            node: node.into(),
            endpoint: format!("192.0.2.{byte}:51820").parse().unwrap(),
            allowed_ips: vec![],
            persistent_keepalive: None,
        }
    }

    fn stats(byte: u8, handshake: Option<u64>, rx: u64, tx: u64) -> PeerStats {
        PeerStats {
            public_key: key(byte),
            last_handshake: handshake.map(at),
            rx_bytes: rx,
            tx_bytes: tx,
        }
    }

    /// v4 encrypted with peers b (fresh), c (stale), d (never); the device holds all three.
    fn encrypted() -> (NodePlan, Observed) {
        let mut plan = NodePlan::default();
        plan.families.v4 = FamilyOutcome {
            state: EncryptionState::Encrypted,
            backend: Some(BackendKind::Userspace),
            message: "encrypting 3 peers".into(),
        };
        plan.publish.v4 = Publication {
            public_key: true,
            interface_addr: None,
        };
        let v4 = &mut plan.dataplane.families.v4;
        v4.interface = Some(interface());
        v4.peers = vec![peer(2, "node-b"), peer(3, "node-c"), peer(4, "node-d")];
        let mut observed = Observed {
            dataplane: plan.dataplane.clone(),
            ..Default::default()
        };
        observed.peer_stats.v4 = vec![
            stats(2, Some(990), 100, 10),
            stats(3, Some(500), 200, 20),
            stats(4, None, 0, 0),
            stats(9, Some(999), 7, 7),
        ];
        (plan, observed)
    }

    fn own_keys() -> PerFamily<Option<WireGuardKey>> {
        PerFamily {
            v4: Some(key(1)),
            v6: Some(key(6)),
        }
    }

    #[test]
    fn status_counts_peers_and_names_the_worst() {
        let (plan, observed) = encrypted();
        let status = build_status(
            &plan,
            &observed,
            &own_keys(),
            &FamilyErrors::default(),
            &ConfigReview::default(),
            at(1000),
        );
        let v4 = status.ipv4.unwrap();
        assert_eq!(v4.state, EncryptionState::Encrypted);
        assert_eq!(v4.public_key, Some(key(1).to_base64()));
        assert_eq!((v4.listen_port, v4.mtu), (Some(51820), Some(1440)));
        assert_eq!(v4.peers, PeerCounts::new(3, 2));
        assert_eq!(v4.oldest_handshake_seconds, Some(500));
        assert_eq!(
            (v4.rx_bytes, v4.tx_bytes),
            (300, 30),
            "unplanned peer 9 not counted"
        );
        let worst: Vec<_> = v4
            .worst_peers
            .iter()
            .map(|p| (p.node.as_str(), p.handshake_age_seconds))
            .collect();
        assert_eq!(worst, [("node-d", None), ("node-c", Some(500))]);
        let v6 = status.ipv6.unwrap();
        assert_eq!(v6.state, EncryptionState::Disabled);
        assert_eq!(v6.public_key, None, "v6 key not published");
        assert_eq!(status.last_update.as_deref(), Some("2027-01-15T08:16:40Z"));
    }

    #[test]
    fn failures_and_missing_interfaces_are_errors() {
        let (plan, observed) = encrypted();
        let errors = FamilyErrors {
            v4: vec!["add peer: boom".into(), "add route: boom".into()],
            v6: vec![],
        };
        let none = ConfigReview::default();
        let status = build_status(&plan, &observed, &own_keys(), &errors, &none, at(1000));
        let v4 = status.ipv4.unwrap();
        assert_eq!(v4.state, EncryptionState::Error);
        assert_eq!(
            v4.message,
            "applying failed: add peer: boom (and 1 more errors)"
        );

        let mut gone = observed.clone();
        gone.dataplane.families.v4.interface = None;
        let status = build_status(
            &plan,
            &gone,
            &own_keys(),
            &FamilyErrors::default(),
            &none,
            at(1000),
        );
        let v4 = status.ipv4.unwrap();
        assert_eq!(v4.state, EncryptionState::Error);
        assert!(
            v4.message.contains("wg-encrypt is missing"),
            "{}",
            v4.message
        );
    }

    #[test]
    fn status_is_written_on_change_else_every_five_minutes() {
        let (plan, observed) = encrypted();
        let keys = own_keys();
        let none = FamilyErrors::default();
        let review = ConfigReview::default();
        let status_at = |observed: &Observed, secs| {
            build_status(&plan, observed, &keys, &none, &review, at(secs))
        };
        let mut busier = observed.clone();
        busier.peer_stats.v4[0].rx_bytes += 5000;
        busier.peer_stats.v4[0].last_handshake = Some(at(1050));
        let mut fewer = observed.clone();
        fewer.dataplane.families.v4.peers.pop();

        let mut limiter = StatusLimiter::new(REFRESH_INTERVAL);
        let first = status_at(&observed, 1000);
        assert!(limiter.due(&first, at(1000)), "first write");
        limiter.written(&first, at(1000));
        let cases = [
            (
                "same, a minute later",
                status_at(&observed, 1060),
                1060,
                false,
            ),
            ("only counters moved", status_at(&busier, 1100), 1100, false),
            (
                "counters, five minutes later",
                status_at(&busier, 1300),
                1300,
                true,
            ),
            ("a peer went away", status_at(&fewer, 1001), 1001, true),
        ];
        for (name, status, secs, want) in cases {
            assert_eq!(limiter.due(&status, at(secs)), want, "{name}");
        }
    }

    #[test]
    fn an_idle_healthy_mesh_reads_all_handshaken() {
        let (plan, mut observed) = encrypted();
        for stats in &mut observed.peer_stats.v4 {
            stats.last_handshake = Some(at(100));
        }
        let status = build_status(
            &plan,
            &observed,
            &own_keys(),
            &FamilyErrors::default(),
            &ConfigReview::default(),
            at(7200),
        );
        let v4 = status.ipv4.unwrap();
        assert_eq!(v4.peers, PeerCounts::new(3, 3));
        assert_eq!(v4.peers.ratio, "3/3");
        let v6 = status.ipv6.unwrap();
        assert_eq!(v6.peers.ratio, "0/0", "IPv6 reports its own counts");
    }

    fn review(findings: Vec<Finding>, refused: bool) -> ConfigReview {
        ConfigReview { findings, refused }
    }

    fn finding(rule: Rule, severity: Severity, field: &str, message: &str) -> Finding {
        Finding {
            severity,
            ..Finding::new(rule, field, message)
        }
    }

    #[test]
    fn the_status_carries_the_condition_and_the_findings() {
        let (plan, observed) = encrypted();
        let findings = vec![finding(
            Rule::PortRange,
            Severity::Deny,
            "spec.ipv4.port",
            "fix",
        )];
        let status = build_status(
            &plan,
            &observed,
            &own_keys(),
            &FamilyErrors::default(),
            &review(findings, true),
            at(1000),
        );
        let condition = &status.conditions[0];
        assert_eq!(
            (condition.type_.as_str(), condition.status.as_str()),
            (DEGRADED, "True")
        );
        assert_eq!(condition.reason, INVALID_CONFIG);
        let rules: Vec<&str> = status.findings.iter().map(|f| f.rule.as_str()).collect();
        assert_eq!(rules, ["port-range"]);
    }

    #[test]
    fn a_condition_keeps_its_transition_time_until_it_changes() {
        let (plan, observed) = encrypted();
        let keys = own_keys();
        let none = FamilyErrors::default();
        let at_review = |refused: bool, secs| {
            let findings = vec![finding(
                Rule::PortRange,
                Severity::Deny,
                "spec.ipv4.port",
                "fix",
            )];
            build_status(
                &plan,
                &observed,
                &keys,
                &none,
                &review(findings, refused),
                at(secs),
            )
        };
        let mut limiter = StatusLimiter::new(REFRESH_INTERVAL);
        let first = at_review(true, 1000);
        limiter.written(&first, at(1000));
        let transition = |s: &NodeEncryptionStatus| s.conditions[0].last_transition_time.clone();

        let mut same = at_review(true, 1060);
        limiter.settle(&mut same);
        assert_eq!(transition(&same), transition(&first));
        assert!(!limiter.due(&same, at(1060)), "nothing changed");

        let mut fixed = at_review(false, 1100);
        limiter.settle(&mut fixed);
        assert_eq!(
            rfc3339(SystemTime::from(transition(&fixed).0)),
            rfc3339(at(1100))
        );
        assert!(limiter.due(&fixed, at(1100)), "the condition changed");
    }
}
