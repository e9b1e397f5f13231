//! List and watch: a list's resourceVersion is where a watch picks up; watches resume from
//! a resourceVersion out of the kept history; `resourceVersion=0` starts with synthetic
//! ADDED events; a selector watch sees objects leave it as DELETED; history lost to
//! compaction is a 410 Gone ERROR event; lists page with limit/continue.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{
    DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::support::{bounded, Backend, TestServer};

fn cm(name: &str, labels: serde_json::Value) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap()
}

/// `(type, name)` of the next `n` events.
async fn next_events(
    stream: &mut (impl futures::Stream<Item = kube::Result<WatchEvent<ConfigMap>>> + Unpin),
    n: usize,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    while out.len() < n {
        let ev = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("a watch event within 10 s")
            .expect("the watch stream ended")
            .expect("a decodable event");
        match ev {
            WatchEvent::Added(o) => out.push(("ADDED".into(), o.name_any())),
            WatchEvent::Modified(o) => out.push(("MODIFIED".into(), o.name_any())),
            WatchEvent::Deleted(o) => out.push(("DELETED".into(), o.name_any())),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => out.push(("ERROR".into(), format!("{} {}", e.code, e.message))),
        }
    }
    out
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

kube_encrypt_tests::on_both_servers!(watch_from_list_and_resume);
async fn watch_from_list_and_resume(backend: Backend) {
    bounded(async {
        let s = TestServer::start(backend).await;
        let cms: Api<ConfigMap> = Api::default_namespaced(s.client.clone());
        cms.create(&PostParams::default(), &cm("before", json!({})))
            .await
            .unwrap();
        let list = cms.list(&ListParams::default()).await.unwrap();
        let list_rv = list.metadata.resource_version.unwrap();

        let mut from_list = cms
            .watch(&WatchParams::default(), &list_rv)
            .await
            .unwrap()
            .boxed();
        cms.create(&PostParams::default(), &cm("after", json!({})))
            .await
            .unwrap();
        let patch = Patch::Merge(json!({"data": {"x": "1"}}));
        cms.patch("after", &PatchParams::default(), &patch)
            .await
            .unwrap();
        cms.delete("after", &DeleteParams::default()).await.unwrap();
        let want = pairs(&[
            ("ADDED", "after"),
            ("MODIFIED", "after"),
            ("DELETED", "after"),
        ]);
        assert_eq!(next_events(&mut from_list, 3).await, want);

        // Resuming from the list's resourceVersion replays the same history.
        let mut resumed = cms
            .watch(&WatchParams::default(), &list_rv)
            .await
            .unwrap()
            .boxed();
        assert_eq!(next_events(&mut resumed, 3).await, want);

        // resourceVersion 0: the current state as ADDED events.
        let mut fresh = cms
            .watch(&WatchParams::default(), "0")
            .await
            .unwrap()
            .boxed();
        assert_eq!(
            next_events(&mut fresh, 1).await,
            pairs(&[("ADDED", "before")])
        );
    })
    .await;
}

kube_encrypt_tests::on_both_servers!(selector_watch_sees_objects_leave);
async fn selector_watch_sees_objects_leave(backend: Backend) {
    bounded(async {
        let s = TestServer::start(backend).await;
        let cms: Api<ConfigMap> = Api::default_namespaced(s.client.clone());
        let wp = WatchParams::default().labels("app=web");
        let mut stream = cms.watch(&wp, "0").await.unwrap().boxed();
        cms.create(&PostParams::default(), &cm("other", json!({"app": "db"})))
            .await
            .unwrap();
        cms.create(&PostParams::default(), &cm("web", json!({"app": "web"})))
            .await
            .unwrap();
        let relabel = Patch::Merge(json!({"metadata": {"labels": {"app": "db"}}}));
        cms.patch("web", &PatchParams::default(), &relabel)
            .await
            .unwrap();
        let back = Patch::Merge(json!({"metadata": {"labels": {"app": "web"}}}));
        cms.patch("other", &PatchParams::default(), &back)
            .await
            .unwrap();
        let want = pairs(&[("ADDED", "web"), ("DELETED", "web"), ("ADDED", "other")]);
        assert_eq!(next_events(&mut stream, 3).await, want);
    })
    .await;
}

kube_encrypt_tests::on_both_servers!(compacted_history_is_gone);
async fn compacted_history_is_gone(backend: Backend) {
    bounded(async {
        let s = TestServer::start(backend).await;
        let cms: Api<ConfigMap> = Api::default_namespaced(s.client.clone());
        let first = cms
            .create(&PostParams::default(), &cm("a", json!({})))
            .await
            .unwrap();
        let old_rv = first.resource_version().unwrap();
        cms.create(&PostParams::default(), &cm("b", json!({})))
            .await
            .unwrap();
        // Each start compacts the log into a snapshot; the second start serves no events
        // from before the first restart.
        let s = s.restart().await.restart().await;
        let cms: Api<ConfigMap> = Api::default_namespaced(s.client.clone());
        let mut stream = cms
            .watch(&WatchParams::default(), &old_rv)
            .await
            .unwrap()
            .boxed();
        let events = next_events(&mut stream, 1).await;
        assert_eq!(events[0].0, "ERROR");
        assert!(
            events[0]
                .1
                .starts_with(&format!("410 too old resource version: {old_rv} (")),
            "{events:?}"
        );
    })
    .await;
}

kube_encrypt_tests::on_both_servers!(lists_page_with_limit_and_continue);
async fn lists_page_with_limit_and_continue(backend: Backend) {
    bounded(async {
        let s = TestServer::start(backend).await;
        let cms: Api<ConfigMap> = Api::default_namespaced(s.client.clone());
        for i in 0..5 {
            cms.create(&PostParams::default(), &cm(&format!("c{i}"), json!({})))
                .await
                .unwrap();
        }
        let mut names = Vec::new();
        let mut lp = ListParams::default().limit(2);
        loop {
            let page = cms.list(&lp).await.unwrap();
            assert!(page.items.len() <= 2);
            names.extend(page.items.iter().map(|c| c.name_any()));
            match page.metadata.continue_ {
                Some(token) if !token.is_empty() => {
                    lp = ListParams::default().limit(2).continue_token(&token)
                }
                _ => break,
            }
        }
        assert_eq!(names, ["c0", "c1", "c2", "c3", "c4"]);
    })
    .await;
}

kube_encrypt_tests::on_both_servers!(kube_runtime_watcher_converges);
/// kube-runtime's watcher (list, then watch from the list's resourceVersion) converges.
async fn kube_runtime_watcher_converges(backend: Backend) {
    bounded(async {
        let s = TestServer::start(backend).await;
        let cms: Api<ConfigMap> = Api::default_namespaced(s.client.clone());
        cms.create(&PostParams::default(), &cm("w1", json!({})))
            .await
            .unwrap();
        let mut events = watcher(cms.clone(), watcher::Config::default()).boxed();
        let creator = cms.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            creator
                .create(&PostParams::default(), &cm("w2", json!({})))
                .await
                .unwrap();
        });
        loop {
            match events
                .try_next()
                .await
                .unwrap()
                .expect("watcher stream ended")
            {
                watcher::Event::Apply(o) if o.name_any() == "w2" => break,
                _ => {}
            }
        }
    })
    .await;
}

kube_encrypt_tests::on_both_servers!(streaming_list_watcher_converges);
/// Streaming lists (`sendInitialEvents=true`): the current state as ADDED events, then a
/// bookmark annotated `k8s.io/initial-events-end`, which kube-runtime's watcher waits for.
async fn streaming_list_watcher_converges(backend: Backend) {
    bounded(async {
        let s = TestServer::start(backend).await;
        let cms: Api<ConfigMap> = Api::default_namespaced(s.client.clone());
        cms.create(&PostParams::default(), &cm("s1", json!({})))
            .await
            .unwrap();
        let mut events = watcher(cms.clone(), watcher::Config::default().streaming_lists()).boxed();
        let mut initial = Vec::new();
        loop {
            match events
                .try_next()
                .await
                .unwrap()
                .expect("watcher stream ended")
            {
                watcher::Event::InitApply(o) => initial.push(o.name_any()),
                watcher::Event::InitDone => break,
                _ => {}
            }
        }
        assert_eq!(initial, ["s1"]);
    })
    .await;
}
