//! The admission webhook in the lab, through the real chain a GitOps tool or an admin hits:
//! `kubectl` → the lab's kube-apiserver → the ValidatingWebhookConfiguration → the webhook (its
//! ServiceAccount, self-signed CA). Denials name every rule and what to change, warnings reach
//! kubectl, pool changes that would break IPv6 encryption are refused, the policy file switches
//! a rule to warn and off without a restart, the webhook down means writes refused with a clear
//! message (failurePolicy Fail), and the CRDs' CEL rules hold either way.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use kube_encrypt_tests::lab::state::{Paths, DEFAULT_STATE_DIR};
use kube_encrypt_tests::lab::webhook::{POLICY, WEBHOOK};

use super::support::*;

/// `kubectl ARGS` with the lab's kubeconfig, `stdin` piped in.
fn kubectl(kubeconfig: &std::path::Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(kubectl_bin())
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubectl");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn apply(kubeconfig: &std::path::Path, yaml: &str) -> Output {
    kubectl(kubeconfig, &["apply", "-f", "-"], yaml)
}

fn pool_v4(nat: bool) -> String {
    format!("apiVersion: kube-encrypt.dev/v1alpha1\nkind: IPPool\nmetadata: {{name: v4}}\nspec: {{cidr: 198.18.0.0/16, natOutgoing: {nat}}}\n")
}

fn pool_v6(nat: bool, disabled: bool) -> String {
    format!("apiVersion: kube-encrypt.dev/v1alpha1\nkind: IPPool\nmetadata: {{name: v6}}\nspec: {{cidr: \"2001:db8:1::/48\", natOutgoing: {nat}, disabled: {disabled}}}\n")
}

fn config(extra: &str) -> String {
    format!("apiVersion: kube-encrypt.dev/v1alpha1\nkind: EncryptionConfig\nmetadata: {{name: default}}\nspec: {{ipv4: {{enabled: true}}, ipv6: {{enabled: true}}{extra}}}\n")
}

fn all(output: &Output) -> String {
    format!("{}{}", stdout(output), stderr(output))
}

#[test]
fn the_api_server_asks_the_webhook_and_the_policy_decides() {
    let session = session();
    let lab = session.up(&[
        "--nodes",
        "2",
        "--ipv6",
        "--no-agents",
        "--apiserver",
        "kube",
    ]);
    let kc = lab.kubeconfig();
    let pools = format!("{}---\n{}", pool_v4(false), pool_v6(false, false));
    let created = apply(&kc, &pools);
    assert!(created.status.success(), "{}", text(&created));

    // IPv6 encryption while the IPv6 pool lacks NAT outgoing: every failing rule, one answer.
    // The webhook judges from its watch caches: until they hold the pools, the IPv4 rule has
    // nothing to judge (the IPv6 rule refuses either way, so no attempt can get through).
    let denied = wait_until(
        "the webhook judges with the pools",
        Duration::from_secs(10),
        || {
            let out = apply(&kc, &config(""));
            let said = all(&out);
            said.contains("- ipv4-nat-outgoing: ")
                .then_some(out)
                .ok_or(said)
        },
    );
    assert!(!denied.status.success());
    let said = all(&denied);
    assert!(
        said.contains("admission webhook \"validate.kube-encrypt.dev\" denied the request"),
        "{said}"
    );
    for rule in ["ipv4-nat-outgoing", "ipv6-nat-outgoing"] {
        assert!(said.contains(&format!("- {rule}: ")), "{rule} in {said}");
    }
    assert!(
        said.contains("natOutgoing: true"),
        "says what to change: {said}"
    );

    // The policy file switches a rule to warn, then off, without a restart.
    let fixed_v4 = apply(&kc, &pool_v4(true));
    assert!(fixed_v4.status.success(), "{}", text(&fixed_v4));
    let policy = Paths::new(DEFAULT_STATE_DIR).webhook_policy();
    std::fs::write(
        &policy,
        POLICY.replace("ipv6-nat-outgoing: deny", "ipv6-nat-outgoing: warn"),
    )
    .unwrap();
    let warned = wait_until(
        "the webhook reloads the policy (warn)",
        Duration::from_secs(30),
        || {
            let out = kubectl(&kc, &["apply", "--dry-run=server", "-f", "-"], &config(""));
            if out.status.success() && stderr(&out).contains("ipv6-nat-outgoing") {
                Ok(out)
            } else {
                Err(text(&out))
            }
        },
    );
    assert!(stderr(&warned).contains("Warning:"), "{}", text(&warned));
    std::fs::write(
        &policy,
        POLICY.replace("ipv6-nat-outgoing: deny", "ipv6-nat-outgoing: off"),
    )
    .unwrap();
    wait_until(
        "the webhook reloads the policy (off)",
        Duration::from_secs(30),
        || {
            let out = kubectl(&kc, &["apply", "--dry-run=server", "-f", "-"], &config(""));
            (out.status.success() && !stderr(&out).contains("ipv6-nat-outgoing"))
                .then_some(())
                .ok_or_else(|| text(&out))
        },
    );
    std::fs::write(&policy, POLICY).unwrap();

    // With NAT outgoing on, the config goes in; the warning rule is printed, not enforced.
    let fixed = apply(&kc, &pool_v6(true, false));
    assert!(fixed.status.success(), "{}", text(&fixed));
    let accepted = wait_until(
        "the config is admitted with the policy back to deny",
        Duration::from_secs(30),
        || {
            let out = apply(&kc, &config(", hostEncryption: true"));
            if out.status.success() {
                Ok(out)
            } else {
                Err(text(&out))
            }
        },
    );
    assert!(
        stderr(&accepted).contains("host-encryption-route-source"),
        "{}",
        text(&accepted)
    );

    // Pool changes that would break IPv6 encryption now on: NAT off, disabled, deleted. The
    // webhook judges from its watch caches, which follow the config within moments (dry runs,
    // so a change let through early cannot spoil the next check).
    let dry_apply = |yaml: &str| kubectl(&kc, &["apply", "--dry-run=server", "-f", "-"], yaml);
    type Check<'a> = (&'static str, Box<dyn Fn() -> Output + 'a>);
    let checks: [Check; 3] = [
        (
            "natOutgoing off",
            Box::new(|| dry_apply(&pool_v6(false, false))),
        ),
        ("disabled", Box::new(|| dry_apply(&pool_v6(true, true)))),
        (
            "deleted",
            Box::new(|| kubectl(&kc, &["delete", "ippool", "v6", "--dry-run=server"], "")),
        ),
    ];
    for (what, change) in checks {
        wait_until(
            &format!("pool {what} refused"),
            Duration::from_secs(10),
            || {
                let out = change();
                if !out.status.success() && all(&out).contains("ipv6-nat-outgoing") {
                    Ok(())
                } else {
                    Err(text(&out))
                }
            },
        );
    }

    // The webhook down: failurePolicy Fail refuses writes and says why; CEL still judges alone.
    stop_webhook();
    let refused = apply(&kc, &config(", persistentKeepalive: 25"));
    assert!(!refused.status.success());
    let said = all(&refused);
    assert!(said.contains("failed calling webhook"), "{said}");
    let cel = apply(&kc, &config(", routingTable: 254"));
    assert!(
        all(&cel).contains("routing-table"),
        "the CRD's CEL rule: {}",
        text(&cel)
    );
}

/// Stops the lab's webhook process (as a crashed Deployment would leave the API server).
fn stop_webhook() {
    let paths = Paths::new(DEFAULT_STATE_DIR);
    let store = kube_encrypt_tests::lab::state::Store::load(&paths)
        .unwrap()
        .expect("a lab is up");
    let webhook = store.process(WEBHOOK).expect("the lab runs the webhook");
    webhook.stop(Duration::from_secs(15));
    assert!(!webhook.is_alive());
}
