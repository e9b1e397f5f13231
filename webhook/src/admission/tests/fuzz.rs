//! Hostile bodies, in bounded loops with a fixed seed: random bytes, every truncation of a
//! real review, random byte edits, deep nesting and huge bodies. The handler must answer each
//! with an error or a well-formed review, never panic, and never take long.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{v6_pool, Cluster, Review};
use crate::admission::Admission;
use crate::policy::Policy;

/// No hostile body may take longer than this to judge.
const PER_BODY: Duration = Duration::from_millis(500);
/// Nor a huge one (several MiB, parsed twice in an unoptimised test build).
const PER_HUGE_BODY: Duration = Duration::from_secs(10);

fn admission() -> Admission {
    let cluster = Cluster::new()
        .pool("v6", v6_pool())
        .config(json!({"ipv6": {"enabled": true}}));
    cluster.admission(Policy::default()).0
}

/// Judges `body`; an answer must be an AdmissionReview response with a uid and `allowed`.
fn judge(admission: &Admission, body: &[u8]) -> bool {
    judge_within(admission, body, PER_BODY)
}

fn judge_within(admission: &Admission, body: &[u8], limit: Duration) -> bool {
    let started = Instant::now();
    let result = admission.review(body);
    assert!(
        started.elapsed() < limit,
        "a {}-byte body took {:?}",
        body.len(),
        started.elapsed()
    );
    match result {
        Ok(answer) => {
            let answer: Value = serde_json::from_slice(&answer).expect("answers are JSON");
            assert!(answer["response"]["allowed"].is_boolean(), "{answer}");
            assert!(answer["response"]["uid"].is_string(), "{answer}");
            true
        }
        Err(_) => false,
    }
}

fn real_review() -> Vec<u8> {
    Review::delete_pool("v6", v6_pool()).bytes()
}

#[test]
fn random_bytes_are_refused() {
    let admission = admission();
    let mut rng = fastrand::Rng::with_seed(7);
    for _ in 0..2_000 {
        let len = rng.usize(0..2_048);
        let body: Vec<u8> = std::iter::repeat_with(|| rng.u8(..)).take(len).collect();
        assert!(
            !judge(&admission, &body),
            "random bytes accepted as a review"
        );
    }
}

#[test]
fn every_truncation_is_refused() {
    let admission = admission();
    let body = real_review();
    for end in 0..body.len() {
        judge(&admission, &body[..end]);
    }
    assert!(judge(&admission, &body), "the whole review is answered");
}

#[test]
fn random_edits_never_break_the_handler() {
    let admission = admission();
    let body = real_review();
    let specials = b"{}[]\":,0-9eE.tfn\\ \x00\xff";
    let mut rng = fastrand::Rng::with_seed(11);
    let mut answered = 0;
    for _ in 0..3_000 {
        let mut edited = body.clone();
        for _ in 0..rng.usize(1..4) {
            let at = rng.usize(..edited.len());
            match rng.u8(0..3) {
                0 => edited[at] = specials[rng.usize(..specials.len())],
                1 => {
                    edited.remove(at);
                }
                _ => edited.insert(at, specials[rng.usize(..specials.len())]),
            }
        }
        answered += usize::from(judge(&admission, &edited));
    }
    assert!(
        answered > 0,
        "some edits (inside strings) still decode and get an answer"
    );
}

/// Deep nesting is either refused (serde_json's recursion limit) or skipped in linear time
/// (unknown fields, raw objects); megabytes of it stay within the huge-body bound.
#[test]
fn deep_nesting_never_breaks_the_handler() {
    let admission = admission();
    for depth in [200, 10_000, 1_000_000] {
        let arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let objects = format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
        for nested in [&arrays, &objects] {
            let in_object = format!(
                r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{{"uid":"u","kind":{{"group":"kube-encrypt.dev","version":"v1alpha1","kind":"IPPool"}},"resource":{{"group":"kube-encrypt.dev","version":"v1alpha1","resource":"ippools"}},"name":"p","operation":"CREATE","userInfo":{{}},"object":{{"metadata":{{"name":"p"}},"spec":{{"cidr":"198.18.0.0/16"}},"extra":{nested}}}}}}}"#
            );
            assert!(
                !judge_within(&admission, nested.as_bytes(), PER_HUGE_BODY),
                "depth {depth} alone"
            );
            judge_within(&admission, in_object.as_bytes(), PER_HUGE_BODY);
        }
    }
}

#[test]
fn huge_reviews_are_answered() {
    let admission = admission();
    let mut review = Review::create_pool("big", v6_pool()).json();
    let note = "x".repeat(3 * 1024 * 1024);
    review["request"]["object"]["metadata"]["annotations"] = json!({ "note": note });
    let body = serde_json::to_vec(&review).unwrap();
    assert!(
        judge_within(&admission, &body, PER_HUGE_BODY),
        "a 3 MiB object is judged"
    );
    let many_labels: serde_json::Map<String, Value> =
        (0..50_000).map(|i| (format!("l{i}"), json!("v"))).collect();
    review["request"]["object"]["metadata"]["labels"] = Value::Object(many_labels);
    let body = serde_json::to_vec(&review).unwrap();
    assert!(
        judge_within(&admission, &body, PER_HUGE_BODY),
        "50,000 labels are judged"
    );
}

#[test]
fn wrong_shapes_are_refused_or_denied() {
    let admission = admission();
    let bodies = [
        json!(null),
        json!([]),
        json!({}),
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}),
        json!({"request": {"uid": 5}}),
        json!({"request": {"uid": "u", "operation": "EXPLODE"}}),
    ];
    for body in bodies {
        assert!(!judge(&admission, body.to_string().as_bytes()), "{body}");
    }
}
