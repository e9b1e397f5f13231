use serde_json::{json, Value};

use super::review::Verdict;
use super::*;

fn attrs(
    operation: Operation,
    group: &str,
    resource: &str,
    namespace: Option<&str>,
) -> AdmissionAttributes {
    AdmissionAttributes {
        operation,
        gvk: GroupVersionKind {
            group: group.into(),
            version: "v1alpha1".into(),
            kind: "EncryptionConfig".into(),
        },
        gvr: GroupVersionResource {
            group: group.into(),
            version: "v1alpha1".into(),
            resource: resource.into(),
        },
        name: "default".into(),
        namespace: namespace.map(str::to_string),
        object: Some(json!({ "metadata": { "name": "default", "labels": { "tier": "net" } } })),
        old_object: None,
        user: UserInfo {
            username: "admin".into(),
            groups: vec!["system:masters".into()],
        },
        dry_run: false,
        sub_resource: None,
    }
}

fn hook_with_rule(rule: Value) -> Value {
    json!({ "name": "h.example.com", "rules": [rule] })
}

#[test]
fn rules_match_operations_groups_versions_resources_and_scope() {
    let config = attrs(
        Operation::Create,
        "kube-encrypt.dev",
        "encryptionconfigs",
        None,
    );
    let mut status = config.clone();
    status.sub_resource = Some("status".into());
    let pod = attrs(Operation::Update, "", "pods", Some("apps"));
    let rule = |ops: &[&str], groups: &[&str], resources: &[&str], scope: &str| json!({ "operations": ops, "apiGroups": groups, "apiVersions": ["v1alpha1", "v1"], "resources": resources, "scope": scope });
    let cases = [
        (
            rule(
                &["CREATE"],
                &["kube-encrypt.dev"],
                &["encryptionconfigs"],
                "*",
            ),
            &config,
            true,
        ),
        (
            rule(
                &["UPDATE", "DELETE"],
                &["kube-encrypt.dev"],
                &["encryptionconfigs"],
                "*",
            ),
            &config,
            false,
        ),
        (
            rule(&["*"], &["kube-encrypt.dev"], &["encryptionconfigs"], "*"),
            &config,
            true,
        ),
        (
            rule(&["CREATE"], &["apps"], &["encryptionconfigs"], "*"),
            &config,
            false,
        ),
        (rule(&["CREATE"], &["*"], &["ippools"], "*"), &config, false),
        (rule(&["CREATE"], &["*"], &["*"], "*"), &config, true),
        (rule(&["CREATE"], &["*"], &["*"], "*"), &status, false),
        (
            rule(&["CREATE"], &["*"], &["encryptionconfigs"], "*"),
            &status,
            false,
        ),
        (
            rule(&["CREATE"], &["*"], &["encryptionconfigs/status"], "*"),
            &status,
            true,
        ),
        (
            rule(&["CREATE"], &["*"], &["encryptionconfigs/*"], "*"),
            &status,
            true,
        ),
        (rule(&["CREATE"], &["*"], &["*/status"], "*"), &status, true),
        (rule(&["CREATE"], &["*"], &["*/*"], "*"), &config, true),
        (rule(&["CREATE"], &["*"], &["*"], "Cluster"), &config, true),
        (
            rule(&["CREATE"], &["*"], &["*"], "Namespaced"),
            &config,
            false,
        ),
        (
            rule(&["UPDATE"], &[""], &["pods"], "Namespaced"),
            &pod,
            true,
        ),
        (rule(&["UPDATE"], &[""], &["pods"], "Cluster"), &pod, false),
    ];
    for (rule, attrs, expected) in cases {
        let matched = matching::should_call(&hook_with_rule(rule.clone()), attrs, &Map::new());
        assert_eq!(
            matched,
            Ok(expected),
            "{rule} for {:?} {:?}",
            attrs.gvr,
            attrs.sub_resource
        );
    }
    let mut other_version = config.clone();
    other_version.gvr.version = "v2".into();
    let any = rule(&["*"], &["*"], &["*"], "*");
    assert_eq!(
        matching::should_call(&hook_with_rule(any), &other_version, &Map::new()),
        Ok(false)
    );
}

#[test]
fn label_selectors_follow_kubernetes_semantics() {
    let labels = json!({ "tier": "net", "env": "prod" })
        .as_object()
        .cloned()
        .unwrap();
    let expr = |key: &str, op: &str, values: &[&str]| json!({ "matchExpressions": [{ "key": key, "operator": op, "values": values }] });
    let cases = [
        (json!({}), Ok(true)),
        (json!({ "matchLabels": { "tier": "net" } }), Ok(true)),
        (
            json!({ "matchLabels": { "tier": "net", "env": "dev" } }),
            Ok(false),
        ),
        (expr("env", "In", &["prod", "dev"]), Ok(true)),
        (expr("env", "In", &["dev"]), Ok(false)),
        (expr("env", "NotIn", &["dev"]), Ok(true)),
        (expr("missing", "NotIn", &["x"]), Ok(true)),
        (expr("env", "Exists", &[]), Ok(true)),
        (expr("missing", "Exists", &[]), Ok(false)),
        (expr("missing", "DoesNotExist", &[]), Ok(true)),
        (expr("env", "DoesNotExist", &[]), Ok(false)),
        (
            expr("env", "Like", &[]),
            Err("Some(\"Like\") is not a valid label selector operator".to_string()),
        ),
    ];
    for (selector, expected) in cases {
        assert_eq!(
            matching::selector_matches(Some(&selector), &labels),
            expected,
            "{selector}"
        );
    }
}

#[test]
fn namespace_and_object_selectors_pick_their_labels() {
    let all = json!({ "operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"] });
    let hook = |ns: Value, obj: Value| json!({ "name": "h", "rules": [all], "namespaceSelector": ns, "objectSelector": obj });
    let prod_ns = json!({ "matchLabels": { "env": "prod" } });
    let net_obj = json!({ "matchLabels": { "tier": "net" } });
    let prod_labels = json!({ "env": "prod" }).as_object().cloned().unwrap();

    let cluster_scoped = attrs(
        Operation::Create,
        "kube-encrypt.dev",
        "encryptionconfigs",
        None,
    );
    assert_eq!(
        matching::should_call(
            &hook(prod_ns.clone(), json!({})),
            &cluster_scoped,
            &Map::new()
        ),
        Ok(true)
    );

    let namespaced = attrs(Operation::Create, "", "configmaps", Some("apps"));
    assert_eq!(
        matching::should_call(&hook(prod_ns.clone(), json!({})), &namespaced, &Map::new()),
        Ok(false)
    );
    assert_eq!(
        matching::should_call(&hook(prod_ns.clone(), json!({})), &namespaced, &prod_labels),
        Ok(true)
    );
    let by_name = json!({ "matchLabels": { "kubernetes.io/metadata.name": "apps" } });
    let default_labels = matching::default_namespace_labels("apps");
    assert_eq!(
        matching::should_call(&hook(by_name, json!({})), &namespaced, &default_labels),
        Ok(true)
    );

    assert_eq!(
        matching::should_call(
            &hook(json!({}), net_obj.clone()),
            &cluster_scoped,
            &Map::new()
        ),
        Ok(true)
    );
    let mut relabelled = cluster_scoped.clone();
    relabelled.object = Some(json!({ "metadata": { "labels": { "tier": "web" } } }));
    assert_eq!(
        matching::should_call(&hook(json!({}), net_obj.clone()), &relabelled, &Map::new()),
        Ok(false)
    );
    relabelled.old_object = Some(json!({ "metadata": { "labels": { "tier": "net" } } }));
    assert_eq!(
        matching::should_call(&hook(json!({}), net_obj), &relabelled, &Map::new()),
        Ok(true),
        "old object matches"
    );

    let mut namespace_object = attrs(Operation::Create, "", "namespaces", None);
    namespace_object.object =
        Some(json!({ "metadata": { "name": "apps", "labels": { "env": "prod" } } }));
    assert_eq!(
        matching::should_call(&hook(prod_ns, json!({})), &namespace_object, &Map::new()),
        Ok(true)
    );
}

#[test]
fn the_review_request_carries_the_attributes() {
    let mut a = attrs(
        Operation::Update,
        "kube-encrypt.dev",
        "encryptionconfigs",
        None,
    );
    a.sub_resource = Some("status".into());
    a.old_object = Some(json!({ "metadata": { "name": "default" } }));
    a.dry_run = true;
    let (uid, review) = review::request(&a);
    let request = &review["request"];
    assert_eq!(review["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(review["kind"], "AdmissionReview");
    assert_eq!(request["uid"], uid);
    assert_eq!(uid.len(), 36, "a UUID");
    assert_eq!(request["operation"], "UPDATE");
    assert_eq!(
        request["kind"],
        json!({ "group": "kube-encrypt.dev", "version": "v1alpha1", "kind": "EncryptionConfig" })
    );
    assert_eq!(request["resource"]["resource"], "encryptionconfigs");
    assert_eq!(request["subResource"], "status");
    assert_eq!(
        request["userInfo"],
        json!({ "username": "admin", "groups": ["system:masters"] })
    );
    assert_eq!(request["dryRun"], true);
    assert_eq!(request["options"]["kind"], "UpdateOptions");
    assert_eq!(request.get("namespace"), None);
    assert_ne!(review::request(&a).0, uid, "every request gets a fresh uid");
}

#[test]
fn answers_are_checked_like_the_server_does() {
    let answer = |uid: &str, extra: Value| {
        let mut response = json!({ "uid": uid, "allowed": true });
        response
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().cloned().unwrap());
        json!({ "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response })
    };
    let ok = review::verify("u1", &answer("u1", json!({ "warnings": ["w1", "w2"] }))).unwrap();
    assert!(ok.allowed);
    assert_eq!(ok.warnings, ["w1", "w2"]);
    let failures = [
        (answer("u2", json!({})), "expected response.uid=\"u1\", got \"u2\""),
        (json!({ "apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview" }),
         "expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got admission.k8s.io/v1beta1, Kind=AdmissionReview"),
        (json!({ "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview" }), "webhook response was absent"),
        (answer("u1", json!({ "patchType": "JSONPatch", "patch": "W10=" })), "validating webhooks may not return patches"),
    ];
    for (body, expected) in failures {
        assert_eq!(review::verify("u1", &body).unwrap_err(), expected, "{body}");
    }
}

#[test]
fn refusals_are_worded_like_the_api_server() {
    let verdict = |status: Option<Value>| Verdict {
        allowed: false,
        warnings: vec![],
        status,
    };
    let cases = [
        (
            Some(json!({ "code": 403, "message": "port-range: bad", "reason": "Forbidden" })),
            403,
            "Forbidden",
            ": port-range: bad",
        ),
        (Some(json!({ "message": "nope" })), 400, "", ": nope"),
        (
            Some(json!({ "code": 200, "reason": "Forbidden" })),
            400,
            "Forbidden",
            ": Forbidden",
        ),
        (Some(json!({})), 400, "", " without explanation"),
        (None, 400, "", " without explanation"),
    ];
    for (status, code, reason, tail) in cases {
        let denied = review::denial("v.kube-encrypt.dev", &verdict(status.clone()));
        assert_eq!(denied.code, code, "{status:?}");
        assert_eq!(denied.reason, reason, "{status:?}");
        assert_eq!(
            denied.message,
            format!("admission webhook \"v.kube-encrypt.dev\" denied the request{tail}")
        );
    }
    let status = review::denial("v", &verdict(None)).status();
    assert_eq!(status["code"], 400);
    assert_eq!(
        status.get("reason"),
        None,
        "no reason when the webhook gave none"
    );
}

#[test]
fn webhooks_must_speak_admission_review_v1() {
    assert_eq!(
        review::check_review_versions(&json!({ "admissionReviewVersions": ["v1beta1", "v1"] })),
        Ok(())
    );
    let err = review::check_review_versions(&json!({ "admissionReviewVersions": ["v1beta1"] }))
        .unwrap_err();
    assert!(err.contains("does not accept v1 AdmissionReview"), "{err}");
}

#[test]
fn timeouts_default_to_ten_seconds_within_one_to_thirty() {
    let cases = [
        (json!({}), 10),
        (json!({ "timeoutSeconds": 3 }), 3),
        (json!({ "timeoutSeconds": 99 }), 30),
        (json!({ "timeoutSeconds": 0 }), 1),
    ];
    for (hook, seconds) in cases {
        assert_eq!(timeout_of(&hook), Duration::from_secs(seconds), "{hook}");
    }
}

#[tokio::test]
async fn a_call_that_cannot_start_follows_the_failure_policy() {
    let hook = |policy: &str| {
        json!({
            "name": "v.kube-encrypt.dev",
            "failurePolicy": policy,
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "rules": [{ "operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"] }],
            "clientConfig": { "url": "https://192.0.2.1:8443/validate" }
        })
    };
    let a = attrs(
        Operation::Create,
        "kube-encrypt.dev",
        "encryptionconfigs",
        None,
    );
    let config = |policy: &str| json!({ "webhooks": [hook(policy)] });
    let denied = Admission::default()
        .review(&[config("Fail")], &a)
        .await
        .unwrap_err();
    assert_eq!(denied.code, 500);
    assert_eq!(denied.reason, "InternalError");
    assert!(
        denied.message.starts_with("Internal error occurred: failed calling webhook \"v.kube-encrypt.dev\": clientConfig.caBundle is empty"),
        "{}", denied.message
    );
    assert_eq!(
        Admission::default().review(&[config("Ignore")], &a).await,
        Ok(vec![])
    );
}
