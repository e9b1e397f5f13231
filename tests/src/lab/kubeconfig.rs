//! The kubeconfig files the lab hands out: the host's admin (client certificate, through the
//! loopback forwarder), each node agent's (its ServiceAccount token) and the emulator's
//! (no credentials: the emulator does no authentication).

use base64::Engine;
use serde_json::{json, Value};

use crate::pki::Issued;

const NAME: &str = "kube-encrypt-lab";

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn render(server: &str, ca_pem: Option<&str>, user: Value) -> String {
    let mut cluster = json!({ "server": server });
    if let Some(ca) = ca_pem {
        cluster["certificate-authority-data"] = json!(b64(ca));
    }
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": NAME, "cluster": cluster }],
        "users": [{ "name": NAME, "user": user }],
        "contexts": [{ "name": NAME, "context": { "cluster": NAME, "user": NAME } }],
        "current-context": NAME,
    });
    serde_yaml::to_string(&config).expect("a kubeconfig always serializes")
}

/// A kubeconfig without credentials (the emulator).
pub fn anonymous(server: &str) -> String {
    render(server, None, json!({}))
}

/// A kubeconfig authenticating with a client certificate.
pub fn client_cert(server: &str, ca_pem: &str, client: &Issued) -> String {
    let user = json!({
        "client-certificate-data": b64(&client.cert_pem),
        "client-key-data": b64(&client.key_pem),
    });
    render(server, Some(ca_pem), user)
}

/// A kubeconfig authenticating with a bearer token (a ServiceAccount's).
pub fn token(server: &str, ca_pem: &str, token: &str) -> String {
    render(server, Some(ca_pem), json!({ "token": token }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::config::Kubeconfig;

    #[test]
    fn every_kind_parses_as_a_kubeconfig() {
        let ca = crate::pki::Ca::new("test").unwrap();
        let admin = ca.client("admin", &["system:masters"]).unwrap();
        let texts = [
            anonymous("http://127.0.0.1:1"),
            client_cert("https://192.0.2.1:6443", ca.cert_pem(), &admin),
            token("https://192.0.2.1:6443", ca.cert_pem(), "abc.def"),
        ];
        for text in texts {
            let config = Kubeconfig::from_yaml(&text).unwrap();
            assert_eq!(config.current_context.as_deref(), Some(NAME), "{text}");
            assert_eq!(config.clusters.len(), 1);
        }
        let with_token = Kubeconfig::from_yaml(&texts_token()).unwrap();
        let user = with_token.auth_infos[0].auth_info.as_ref().unwrap();
        assert!(user.token.is_some());
    }

    fn texts_token() -> String {
        token("https://192.0.2.1:6443", "ca", "abc.def")
    }
}
