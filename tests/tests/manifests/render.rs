//! What `kubectl kustomize` renders from the base, the cert-manager overlay, the workload-ips
//! component and the examples: the expected objects, least privilege, and the workloads'
//! security settings. No API server needed.

use serde_json::{json, Value};

use super::support::{by_key, documents, find, kustomize, kustomize_with_components, NAMESPACE};

/// Every object of the base, by kind and name.
const BASE: &[(&str, &str)] = &[
    ("Namespace", "kube-encrypt"),
    (
        "CustomResourceDefinition",
        "encryptionconfigs.kube-encrypt.dev",
    ),
    ("CustomResourceDefinition", "ippools.kube-encrypt.dev"),
    (
        "CustomResourceDefinition",
        "nodeencryptions.kube-encrypt.dev",
    ),
    ("ServiceAccount", "kube-encrypt-agent"),
    ("ServiceAccount", "kube-encrypt-webhook"),
    ("ClusterRole", "kube-encrypt-agent"),
    ("ClusterRole", "kube-encrypt-webhook"),
    ("ClusterRole", "kube-encrypt-webhook-self-signed"),
    ("ClusterRoleBinding", "kube-encrypt-agent"),
    ("ClusterRoleBinding", "kube-encrypt-webhook"),
    ("ClusterRoleBinding", "kube-encrypt-webhook-self-signed"),
    ("Role", "kube-encrypt-webhook"),
    ("Role", "kube-encrypt-webhook-self-signed"),
    ("RoleBinding", "kube-encrypt-webhook"),
    ("RoleBinding", "kube-encrypt-webhook-self-signed"),
    ("ConfigMap", "kube-encrypt-webhook-policy"),
    ("Service", "kube-encrypt-webhook"),
    ("Deployment", "kube-encrypt-webhook"),
    ("DaemonSet", "kube-encrypt-agent"),
    ("PodDisruptionBudget", "kube-encrypt-webhook"),
    ("ValidatingAdmissionPolicy", "kube-encrypt-agent-own-node"),
    (
        "ValidatingAdmissionPolicyBinding",
        "kube-encrypt-agent-own-node",
    ),
    ("ValidatingWebhookConfiguration", "kube-encrypt-webhook"),
];

const CLUSTER_SCOPED: &[&str] = &[
    "Namespace",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "ValidatingWebhookConfiguration",
];

fn names(objects: &[Value]) -> Vec<(String, String)> {
    let mut names: Vec<(String, String)> = objects
        .iter()
        .map(|o| {
            let kind = o["kind"].as_str().unwrap().to_owned();
            (kind, o["metadata"]["name"].as_str().unwrap().to_owned())
        })
        .collect();
    names.sort();
    names
}

fn sorted(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, n)| (k.to_string(), n.to_string()))
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn the_base_renders_every_part_in_its_namespace() {
    let objects = documents(&kustomize("manifests").await);
    assert_eq!(names(&objects), sorted(BASE));
    for object in &objects {
        let kind = object["kind"].as_str().unwrap();
        let namespace = &object["metadata"]["namespace"];
        if CLUSTER_SCOPED.contains(&kind) {
            assert!(namespace.is_null(), "{kind} is cluster-scoped: {namespace}");
        } else {
            assert_eq!(
                namespace, NAMESPACE,
                "{kind} {}",
                object["metadata"]["name"]
            );
        }
    }
    // Installed before anything that lives in it or uses the CRDs.
    assert_eq!(objects[0]["kind"], "Namespace");
}

/// Every RBAC rule of a rendering, as (role, rule).
fn rules(objects: &[Value]) -> Vec<(String, Value)> {
    objects
        .iter()
        .filter(|o| o["kind"] == "ClusterRole" || o["kind"] == "Role")
        .flat_map(|o| {
            let role = o["metadata"]["name"].as_str().unwrap().to_owned();
            o["rules"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |r| (role.clone(), r.clone()))
        })
        .collect()
}

#[tokio::test]
async fn rbac_has_no_wildcards_and_pods_only_with_the_component() {
    let base = documents(&kustomize("manifests").await);
    let overlay = documents(&kustomize("manifests/overlays/cert-manager").await);
    let with_pods =
        documents(&kustomize_with_components(&["manifests/components/workload-ips"]).await);
    for (role, rule) in rules(&base)
        .into_iter()
        .chain(rules(&overlay))
        .chain(rules(&with_pods))
    {
        for field in ["apiGroups", "resources", "verbs", "resourceNames"] {
            let values = rule[field].as_array().cloned().unwrap_or_default();
            assert!(
                !values.iter().any(|v| v.as_str().unwrap().contains('*')),
                "{role}: a wildcard in {field}: {rule}"
            );
        }
    }
    let grants_pods = |objects: &[Value]| {
        rules(objects)
            .iter()
            .any(|(_, r)| r["resources"].as_array().unwrap().contains(&json!("pods")))
    };
    assert!(!grants_pods(&base), "the base must not grant pods");
    assert!(!grants_pods(&overlay), "the overlay must not grant pods");
    assert!(grants_pods(&with_pods), "the component grants pods");
    let added: Vec<(String, String)> = names(&with_pods)
        .into_iter()
        .filter(|n| !names(&base).contains(n))
        .collect();
    assert_eq!(
        added,
        sorted(&[
            ("ClusterRole", "kube-encrypt-agent-workload-ips"),
            ("ClusterRoleBinding", "kube-encrypt-agent-workload-ips"),
        ])
    );
    let binding = find(
        &with_pods,
        "ClusterRoleBinding",
        "kube-encrypt-agent-workload-ips",
    );
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": "kube-encrypt-agent", "namespace": NAMESPACE}])
    );
}

#[tokio::test]
async fn the_agent_runs_on_every_node_with_net_admin_only() {
    let objects = documents(&kustomize("manifests").await);
    let ds = find(&objects, "DaemonSet", "kube-encrypt-agent");
    let pod = &ds["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let checks: &[(&str, &Value, Value)] = &[
        ("hostNetwork", &pod["hostNetwork"], json!(true)),
        (
            "service account",
            &pod["serviceAccountName"],
            json!("kube-encrypt-agent"),
        ),
        (
            "priority",
            &pod["priorityClassName"],
            json!("system-node-critical"),
        ),
        (
            "tolerates every taint",
            &pod["tolerations"],
            json!([{"operator": "Exists"}]),
        ),
        (
            "update",
            &ds["spec"]["updateStrategy"]["type"],
            json!("RollingUpdate"),
        ),
        (
            "image",
            &container["image"],
            json!("ghcr.io/kube-encrypt/kube-encrypt-agent:v0.1.0"),
        ),
        (
            "not privileged",
            &container["securityContext"]["privileged"],
            json!(false),
        ),
        (
            "capabilities",
            &container["securityContext"]["capabilities"],
            json!({"drop": ["ALL"], "add": ["NET_ADMIN"]}),
        ),
        (
            "NODE_NAME",
            &container["env"][0],
            json!({"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}),
        ),
        (
            "liveness",
            &container["livenessProbe"]["httpGet"]["path"],
            json!("/healthz"),
        ),
        (
            "readiness",
            &container["readinessProbe"]["httpGet"]["path"],
            json!("/readyz"),
        ),
        (
            "no CPU limit",
            &container["resources"]["limits"]["cpu"],
            Value::Null,
        ),
    ];
    for (what, got, want) in checks {
        assert_eq!(*got, want, "{what}");
    }
    assert!(ds["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"].is_string());
    assert!(container["resources"]["requests"]["memory"].is_string());
    let host_paths: Vec<&str> = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["hostPath"]["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        host_paths,
        [
            "/var/lib/kube-encrypt",
            "/proc/sys/net",
            "/dev/net/tun",
            "/var/run/wireguard"
        ]
    );
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(args.contains(&"--sysctl-dir=/host/proc/sys"), "{args:?}");
    assert!(
        args.contains(&"--state-dir=/var/lib/kube-encrypt"),
        "{args:?}"
    );
}

#[tokio::test]
async fn the_webhook_runs_locked_down_behind_its_service() {
    let objects = documents(&kustomize("manifests").await);
    let deploy = find(&objects, "Deployment", "kube-encrypt-webhook");
    let pod = &deploy["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let security = &container["securityContext"];
    let checks: &[(&str, &Value, Value)] = &[
        ("replicas", &deploy["spec"]["replicas"], json!(2)),
        (
            "non-root",
            &pod["securityContext"]["runAsNonRoot"],
            json!(true),
        ),
        (
            "seccomp",
            &pod["securityContext"]["seccompProfile"],
            json!({"type": "RuntimeDefault"}),
        ),
        (
            "read-only root",
            &security["readOnlyRootFilesystem"],
            json!(true),
        ),
        (
            "no escalation",
            &security["allowPrivilegeEscalation"],
            json!(false),
        ),
        (
            "no capabilities",
            &security["capabilities"],
            json!({"drop": ["ALL"]}),
        ),
        (
            "image",
            &container["image"],
            json!("ghcr.io/kube-encrypt/kube-encrypt-webhook:v0.1.0"),
        ),
        ("self-signed", &container["args"][0], json!("--self-signed")),
        (
            "POD_NAME",
            &container["env"][0]["valueFrom"]["fieldRef"]["fieldPath"],
            json!("metadata.name"),
        ),
        (
            "POD_NAMESPACE",
            &container["env"][1]["valueFrom"]["fieldRef"]["fieldPath"],
            json!("metadata.namespace"),
        ),
        (
            "readiness",
            &container["readinessProbe"]["httpGet"]["path"],
            json!("/readyz"),
        ),
        (
            "liveness",
            &container["livenessProbe"]["httpGet"]["path"],
            json!("/healthz"),
        ),
        (
            "anti-affinity",
            &pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
                [0]["podAffinityTerm"]["topologyKey"],
            json!("kubernetes.io/hostname"),
        ),
    ];
    for (what, got, want) in checks {
        assert_eq!(*got, want, "{what}");
    }
    let service = find(&objects, "Service", "kube-encrypt-webhook");
    assert_eq!(
        service["spec"]["ports"],
        json!([{"name": "https", "port": 443, "targetPort": "https", "protocol": "TCP"}])
    );
    assert_eq!(container["ports"][0]["containerPort"], 8443);
    let pdb = find(&objects, "PodDisruptionBudget", "kube-encrypt-webhook");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"],
        deploy["spec"]["selector"]["matchLabels"]
    );
    let policy = find(&objects, "ConfigMap", "kube-encrypt-webhook-policy");
    let committed =
        std::fs::read_to_string(super::support::repo().join("manifests/webhook/policy.yaml"))
            .unwrap();
    assert_eq!(policy["data"]["policy.yaml"], json!(committed));
}

#[tokio::test]
async fn the_webhook_configuration_is_safe_for_admission() {
    let objects = documents(&kustomize("manifests").await);
    let vwc = find(
        &objects,
        "ValidatingWebhookConfiguration",
        "kube-encrypt-webhook",
    );
    let hook = &vwc["webhooks"][0];
    assert_eq!(hook["sideEffects"], "None");
    assert!(hook["timeoutSeconds"].as_i64().unwrap() <= 5);
    assert_eq!(hook["admissionReviewVersions"], json!(["v1"]));
    assert_eq!(hook["failurePolicy"], "Fail");
    assert!(
        hook["clientConfig"]["caBundle"].is_null(),
        "caBundle stays out of Git"
    );
    let rules = hook["rules"].as_array().unwrap();
    let pools = rules
        .iter()
        .find(|r| r["resources"] == json!(["ippools"]))
        .unwrap();
    assert!(pools["operations"]
        .as_array()
        .unwrap()
        .contains(&json!("DELETE")));
    assert!(rules
        .iter()
        .any(|r| r["resources"] == json!(["encryptionconfigs"])));
}

#[tokio::test]
async fn the_cert_manager_overlay_changes_only_the_certificate() {
    let base = by_key(documents(&kustomize("manifests").await));
    let overlay = by_key(documents(
        &kustomize("manifests/overlays/cert-manager").await,
    ));
    let removed: Vec<&String> = base.keys().filter(|k| !overlay.contains_key(*k)).collect();
    assert_eq!(
        removed,
        [
            "ClusterRole kube-encrypt-webhook-self-signed",
            "ClusterRoleBinding kube-encrypt-webhook-self-signed",
            "Role kube-encrypt/kube-encrypt-webhook-self-signed",
            "RoleBinding kube-encrypt/kube-encrypt-webhook-self-signed",
        ]
    );
    let added: Vec<&String> = overlay.keys().filter(|k| !base.contains_key(*k)).collect();
    assert_eq!(
        added,
        [
            "Certificate kube-encrypt/kube-encrypt-webhook",
            "Issuer kube-encrypt/kube-encrypt-webhook"
        ]
    );
    let changed: Vec<&String> = base
        .iter()
        .filter(|(k, v)| overlay.get(*k).is_some_and(|o| o != *v))
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        changed,
        [
            "Deployment kube-encrypt/kube-encrypt-webhook",
            "ValidatingWebhookConfiguration kube-encrypt-webhook"
        ]
    );
    let vwc = &overlay["ValidatingWebhookConfiguration kube-encrypt-webhook"];
    assert_eq!(
        vwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
        "kube-encrypt/kube-encrypt-webhook"
    );
    assert!(vwc["webhooks"][0]["clientConfig"]["caBundle"].is_null());
    let pod = &overlay["Deployment kube-encrypt/kube-encrypt-webhook"]["spec"]["template"]["spec"];
    let args = pod["containers"][0]["args"].as_array().unwrap();
    assert!(!args.contains(&json!("--self-signed")), "{args:?}");
    assert!(args.contains(&json!("--tls-cert-file=/etc/kube-encrypt/tls/tls.crt")));
    assert!(args.contains(&json!("--tls-key-file=/etc/kube-encrypt/tls/tls.key")));
    let certificate = &overlay["Certificate kube-encrypt/kube-encrypt-webhook"];
    let secret = certificate["spec"]["secretName"].clone();
    assert!(pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v["secret"]["secretName"] == secret));
    assert!(certificate["spec"]["dnsNames"]
        .as_array()
        .unwrap()
        .contains(&json!("kube-encrypt-webhook.kube-encrypt.svc")));
}

#[tokio::test]
async fn the_examples_hold_pools_with_nat_outgoing_before_the_config() {
    let objects = documents(&kustomize("manifests/examples").await);
    let kinds: Vec<&str> = objects
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["IPPool", "IPPool", "EncryptionConfig"]);
    let cidrs: Vec<&str> = objects[..2]
        .iter()
        .map(|p| p["spec"]["cidr"].as_str().unwrap())
        .collect();
    assert!(
        cidrs[0].contains('.') && cidrs[1].contains(':'),
        "{cidrs:?}"
    );
    for pool in &objects[..2] {
        assert_eq!(
            pool["spec"]["natOutgoing"], true,
            "{}",
            pool["metadata"]["name"]
        );
    }
    let config = &objects[2];
    assert_eq!(config["metadata"]["name"], "default");
    assert_eq!(config["spec"]["ipv4"]["enabled"], true);
    assert_eq!(config["spec"]["ipv6"]["enabled"], true);
}
