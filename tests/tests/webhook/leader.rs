//! Leader election over a real Lease: one holder, take-over only after expiry (measured by
//! the follower), immediate hand-over on release, and never two leaders at once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client};
use kube_encrypt_webhook::leader::{run_elected, Elector, Timings};

use crate::fixtures::{create_namespace, eventually, NAMESPACE};
use crate::support::{bounded, Backend, TestServer};

const LEASE: &str = "kube-encrypt-webhook";

fn timings() -> Timings {
    Timings {
        lease_duration: Duration::from_secs(2),
        renew_deadline: Duration::from_millis(1_500),
        retry_every: Duration::from_millis(200),
    }
}

fn elector(client: &Client, identity: &str) -> Elector {
    Elector::new(
        Api::namespaced(client.clone(), NAMESPACE),
        LEASE,
        identity,
        timings(),
    )
}

async fn lease(client: &Client) -> (Option<String>, Option<i32>) {
    let leases: Api<Lease> = Api::namespaced(client.clone(), NAMESPACE);
    let spec = leases.get(LEASE).await.unwrap().spec.unwrap();
    (spec.holder_identity, spec.lease_transitions)
}

kube_encrypt_tests::on_both_servers!(takeover_waits_for_expiry);
async fn takeover_waits_for_expiry(backend: Backend) {
    bounded(async {
        let s = TestServer::start(backend).await;
        create_namespace(&s.client).await;
        let (mut a, mut b) = (elector(&s.client, "a"), elector(&s.client, "b"));
        assert!(
            a.try_acquire_or_renew().await.unwrap(),
            "a creates the Lease"
        );
        assert!(!b.try_acquire_or_renew().await.unwrap(), "b follows");
        assert_eq!(lease(&s.client).await, (Some("a".into()), Some(0)));
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert!(a.try_acquire_or_renew().await.unwrap(), "a renews");
            assert!(
                !b.try_acquire_or_renew().await.unwrap(),
                "b still follows a renewed lease"
            );
        }
        // a stops renewing (crashed): b takes over once it saw no change for 2 s.
        let stopped = Instant::now();
        eventually("b takes over", Duration::from_secs(10), async || {
            b.try_acquire_or_renew().await.unwrap().then_some(())
        })
        .await;
        let waited = stopped.elapsed();
        assert!(
            waited >= Duration::from_millis(1_700),
            "took over after {waited:?}, before the lease expired"
        );
        assert!(
            waited < Duration::from_secs(5),
            "took over after {waited:?}"
        );
        assert_eq!(lease(&s.client).await, (Some("b".into()), Some(1)));
        assert!(
            !a.try_acquire_or_renew().await.unwrap(),
            "a, back, follows b"
        );
    })
    .await;
}

kube_encrypt_tests::on_both_servers!(release_hands_over_at_once);
async fn release_hands_over_at_once(backend: Backend) {
    bounded(async {
        let s = TestServer::start(backend).await;
        create_namespace(&s.client).await;
        let (mut a, mut b) = (elector(&s.client, "a"), elector(&s.client, "b"));
        assert!(a.try_acquire_or_renew().await.unwrap());
        assert!(!b.try_acquire_or_renew().await.unwrap());
        a.release().await.unwrap();
        assert_eq!(lease(&s.client).await.0, None, "released");
        assert!(
            b.try_acquire_or_renew().await.unwrap(),
            "b takes a released Lease without waiting"
        );
        b.release().await.unwrap();
        a.release().await.unwrap();
        assert_eq!(
            lease(&s.client).await.0,
            None,
            "releasing another's Lease is a no-op"
        );
    })
    .await;
}

/// Counts the `lead` futures alive; dropping one (leadership lost, task aborted) counts down.
struct Leading(Arc<AtomicUsize>);

impl Leading {
    fn start(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count.clone())
    }
}

impl Drop for Leading {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

kube_encrypt_tests::on_both_servers!(exactly_one_replica_leads_and_a_crash_hands_over);
async fn exactly_one_replica_leads_and_a_crash_hands_over(backend: Backend) {
    bounded(async {
        let s = TestServer::start(backend).await;
        create_namespace(&s.client).await;
        let leaders = Arc::new(AtomicUsize::new(0));
        let replica = |identity: &'static str| {
            let (client, leaders) = (s.client.clone(), leaders.clone());
            tokio::spawn(async move {
                let lead = move || {
                    let leaders = leaders.clone();
                    async move {
                        let _leading = Leading::start(&leaders);
                        std::future::pending::<()>().await
                    }
                };
                run_elected(
                    elector(&client, identity),
                    std::future::pending(),
                    |_| {},
                    lead,
                )
                .await
            })
        };
        let (a, b) = (replica("a"), replica("b"));
        eventually("a leader", Duration::from_secs(5), async || {
            (leaders.load(Ordering::SeqCst) == 1).then_some(())
        })
        .await;
        let first = lease(&s.client).await.0.unwrap();
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert_eq!(leaders.load(Ordering::SeqCst), 1, "exactly one leader");
        }
        let (crashed, survivor) = if first == "a" { (a, b) } else { (b, a) };
        crashed.abort();
        let _ = crashed.await;
        let crashed_at = Instant::now();
        eventually(
            "the other replica leads",
            Duration::from_secs(10),
            async || {
                let holder = lease(&s.client).await.0;
                (leaders.load(Ordering::SeqCst) == 1 && holder.as_deref() != Some(first.as_str()))
                    .then_some(())
            },
        )
        .await;
        assert!(
            crashed_at.elapsed() >= Duration::from_millis(1_500),
            "no take-over before expiry"
        );
        survivor.abort();
    })
    .await;
}
