//! Leader election over a `coordination.k8s.io/v1` Lease, so one replica writes
//! `EncryptionConfig.status` (kube 5 has no helper; this follows client-go's leaderelection):
//!
//! - the holder renews `spec.renewTime` every `renew_every`;
//! - another replica takes over when the record has not changed for `lease_duration` as
//!   measured on *its own* clock since it last saw it change (so clock skew between replicas
//!   does not matter), or when the holder released it (empty `holderIdentity`);
//! - a leader that cannot renew within `renew_deadline` (< `lease_duration`) steps down
//!   before anyone else may take over, so two leaders never overlap;
//! - every write is a replace carrying the read `resourceVersion`: of two replicas racing,
//!   the API server lets one win (409 for the other).
//!
//! On shutdown the leader releases the Lease (empty holder), and the next replica takes over
//! at its next try instead of after the lease duration.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, PostParams};
use kube::Api;
use tokio::time::Instant;

/// How long a lease lasts and how often it is tried and renewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_every: Duration,
}

impl Default for Timings {
    /// client-go's defaults: 15 s lease, 10 s renew deadline, 2 s retry.
    fn default() -> Self {
        Self {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_every: Duration::from_secs(2),
        }
    }
}

/// What to do with the Lease as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// This replica holds it: renew.
    Renew,
    /// Free (released, or expired as observed here): take it.
    TakeOver,
    /// Another replica holds it.
    Follow { holder: String },
}

/// Decides from the Lease's spec whether `identity` renews, takes over or follows.
pub fn decide(spec: &LeaseSpec, identity: &str, expired: bool) -> Decision {
    match spec.holder_identity.as_deref().filter(|h| !h.is_empty()) {
        Some(holder) if holder == identity => Decision::Renew,
        Some(holder) if !expired => Decision::Follow {
            holder: holder.to_owned(),
        },
        _ => Decision::TakeOver,
    }
}

/// When the Lease record was last seen to change, on this replica's clock.
#[derive(Debug, Default)]
struct Observation {
    record: Option<(Option<String>, Option<MicroTime>, Option<i32>)>,
    since: Option<Instant>,
}

impl Observation {
    /// Records `spec` seen at `now`; true when it has not changed for `duration`.
    fn expired(&mut self, spec: &LeaseSpec, now: Instant, duration: Duration) -> bool {
        let record = Some((
            spec.holder_identity.clone(),
            spec.renew_time.clone(),
            spec.lease_transitions,
        ));
        if self.record != record {
            self.record = record;
            self.since = Some(now);
        }
        self.since
            .is_none_or(|since| now.duration_since(since) >= duration)
    }
}

/// One replica's side of the election.
#[derive(Debug)]
pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    timings: Timings,
    observed: Observation,
}

impl Elector {
    pub fn new(api: Api<Lease>, name: &str, identity: &str, timings: Timings) -> Self {
        Self {
            api,
            name: name.to_owned(),
            identity: identity.to_owned(),
            timings,
            observed: Observation::default(),
        }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// One attempt; true when this replica holds the Lease afterwards.
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let Some(lease) = self.api.get_opt(&self.name).await? else {
            return self.create().await;
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let expired = self
            .observed
            .expired(&spec, Instant::now(), self.timings.lease_duration);
        let now = MicroTime(Timestamp::now());
        let mut next = spec.clone();
        match decide(&spec, &self.identity, expired) {
            Decision::Follow { .. } => return Ok(false),
            Decision::Renew => next.renew_time = Some(now),
            Decision::TakeOver => {
                next.holder_identity = Some(self.identity.clone());
                next.acquire_time = Some(now.clone());
                next.renew_time = Some(now);
                next.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            }
        }
        next.lease_duration_seconds = Some(self.duration_seconds());
        self.replace(lease, next).await
    }

    /// Gives the Lease up (empty holder) when this replica holds it.
    pub async fn release(&mut self) -> Result<(), kube::Error> {
        let Some(lease) = self.api.get_opt(&self.name).await? else {
            return Ok(());
        };
        let spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        let next = LeaseSpec {
            holder_identity: None,
            lease_duration_seconds: Some(1),
            renew_time: Some(MicroTime(Timestamp::now())),
            ..spec
        };
        self.replace(lease, next).await.map(|_| ())
    }

    fn duration_seconds(&self) -> i32 {
        i32::try_from(self.timings.lease_duration.as_secs().max(1)).unwrap_or(i32::MAX)
    }

    async fn create(&mut self) -> Result<bool, kube::Error> {
        let now = MicroTime(Timestamp::now());
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.identity.clone()),
                lease_duration_seconds: Some(self.duration_seconds()),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                lease_transitions: Some(0),
                ..Default::default()
            }),
        };
        conflict_is_false(self.api.create(&self.post_params(), &lease).await)
    }

    async fn replace(&mut self, mut lease: Lease, spec: LeaseSpec) -> Result<bool, kube::Error> {
        lease.spec = Some(spec);
        lease.metadata.managed_fields = None;
        conflict_is_false(
            self.api
                .replace(&self.name, &self.post_params(), &lease)
                .await,
        )
    }

    fn post_params(&self) -> PostParams {
        PostParams {
            field_manager: Some(crate::FIELD_MANAGER.to_owned()),
            ..Default::default()
        }
    }
}

/// A write that lost a race (409) means "not the leader", not an error.
fn conflict_is_false(result: Result<Lease, kube::Error>) -> Result<bool, kube::Error> {
    match result {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Runs `lead` while this replica holds the Lease, until `shutdown` resolves: tries every
/// `retry_every` as a follower; as the leader renews as often and stops `lead` (dropping its
/// future) when renewing failed for `renew_deadline`. `on_change` hears every change of
/// leadership. Releases the Lease on shutdown.
pub async fn run_elected<F, Fut>(
    mut elector: Elector,
    shutdown: impl Future<Output = ()>,
    on_change: impl Fn(bool),
    lead: F,
) where
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    futures::pin_mut!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            () = acquire(&mut elector) => {}
        }
        tracing::info!(
            identity = elector.identity(),
            "became the leader; writing EncryptionConfig status"
        );
        on_change(true);
        let led = tokio::select! {
            () = &mut shutdown => None,
            () = keep_renewing(&mut elector) => Some(()),
            () = lead() => Some(()),
        };
        on_change(false);
        if led.is_none() {
            if let Err(e) = elector.release().await {
                tracing::warn!(error = %e, "could not release the Lease; the next leader waits for it to expire");
            }
            return;
        }
        tracing::warn!(
            identity = elector.identity(),
            "lost the Lease; no longer writing status"
        );
    }
}

/// Returns once this replica holds the Lease.
async fn acquire(elector: &mut Elector) {
    let mut reported: Option<String> = None;
    loop {
        match elector.try_acquire_or_renew().await {
            Ok(true) => return,
            Ok(false) => {}
            Err(e) => {
                let text = e.to_string();
                if reported.as_ref() != Some(&text) {
                    tracing::warn!(error = %text, "cannot read or take the Lease; retrying");
                    reported = Some(text);
                }
            }
        }
        tokio::time::sleep(elector.timings.retry_every).await;
    }
}

/// Renews every `retry_every`; returns when no renewal succeeded for `renew_deadline`, also
/// when an attempt hangs (a slow API server must not keep a stale leader in place).
async fn keep_renewing(elector: &mut Elector) {
    let mut last_renewal = Instant::now();
    loop {
        tokio::time::sleep(elector.timings.retry_every).await;
        let deadline = last_renewal + elector.timings.renew_deadline;
        match tokio::time::timeout_at(deadline, elector.try_acquire_or_renew()).await {
            Ok(Ok(true)) => last_renewal = Instant::now(),
            Ok(Ok(false)) | Err(_) => return,
            Ok(Err(e)) => tracing::warn!(error = %e, "renewing the Lease failed"),
        }
        if Instant::now() >= last_renewal + elector.timings.renew_deadline {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held_by(holder: Option<&str>) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(str::to_owned),
            lease_transitions: Some(3),
            ..Default::default()
        }
    }

    #[test]
    fn decisions() {
        let rows = [
            ("mine", Some("a"), false, Decision::Renew),
            (
                "mine, even when it looks expired",
                Some("a"),
                true,
                Decision::Renew,
            ),
            (
                "another's, fresh",
                Some("b"),
                false,
                Decision::Follow { holder: "b".into() },
            ),
            ("another's, expired", Some("b"), true, Decision::TakeOver),
            ("released", None, false, Decision::TakeOver),
            (
                "released to an empty name",
                Some(""),
                false,
                Decision::TakeOver,
            ),
        ];
        for (name, holder, expired, want) in rows {
            assert_eq!(decide(&held_by(holder), "a", expired), want, "{name}");
        }
    }

    #[test]
    fn expiry_is_measured_on_the_local_clock_since_the_last_change() {
        let t0 = Instant::now();
        let duration = Duration::from_secs(15);
        let mut seen = Observation::default();
        let spec = held_by(Some("b"));
        assert!(
            !seen.expired(&spec, t0, duration),
            "first sighting starts the clock"
        );
        assert!(!seen.expired(&spec, t0 + Duration::from_secs(14), duration));
        assert!(seen.expired(&spec, t0 + Duration::from_secs(15), duration));
        let mut renewed = spec.clone();
        renewed.renew_time = Some(MicroTime(Timestamp::now()));
        assert!(
            !seen.expired(&renewed, t0 + Duration::from_secs(16), duration),
            "a renewal restarts it"
        );
        assert!(seen.expired(&renewed, t0 + Duration::from_secs(31), duration));
    }
}
