//! The one-pass decoder against the two passes it stands in for.

use std::borrow::Cow;

use serde_json::json;

use super::{config_object, pool_object, v6_pool, Review as Fixture};
use crate::admission::decode::{decode, one_pass, two_passes, Decoded};
use crate::admission::{BadReview, Subject};

fn fixtures() -> Vec<(&'static str, Fixture)> {
    let config =
        |mtu: i64| config_object("default", json!({"ipv4": {"enabled": true, "mtu": mtu}}));
    let pool = pool_object("v6", &v6_pool());
    let subresource = Fixture::of("EncryptionConfig", "encryptionconfigs", "UPDATE", "default")
        .object(config(1400))
        .sub_resource("status");
    vec![
        (
            "config create",
            Fixture::of("EncryptionConfig", "encryptionconfigs", "CREATE", "default")
                .object(config(0)),
        ),
        (
            "config update",
            Fixture::of("EncryptionConfig", "encryptionconfigs", "UPDATE", "default")
                .object(config(1400))
                .old(config(0)),
        ),
        (
            "config delete",
            Fixture::of("EncryptionConfig", "encryptionconfigs", "DELETE", "default")
                .old(config(0)),
        ),
        ("status subresource", subresource),
        (
            "pool create",
            Fixture::of("IPPool", "ippools", "CREATE", "v6").object(pool.clone()),
        ),
        (
            "pool update",
            Fixture::of("IPPool", "ippools", "UPDATE", "v6")
                .object(pool.clone())
                .old(pool.clone()),
        ),
        (
            "pool delete",
            Fixture::of("IPPool", "ippools", "DELETE", "v6").old(pool.clone()),
        ),
        (
            "pool delete without oldObject",
            Fixture::of("IPPool", "ippools", "DELETE", "v6"),
        ),
        (
            "pool without cidr",
            Fixture::of("IPPool", "ippools", "CREATE", "p")
                .object(json!({"metadata": {"name": "p"}, "spec": {}})),
        ),
        (
            "config with a text port",
            Fixture::of("EncryptionConfig", "encryptionconfigs", "CREATE", "default")
                .object(config_object("default", json!({"ipv4": {"port": "high"}}))),
        ),
        (
            "null object",
            Fixture::of("IPPool", "ippools", "CREATE", "v6").object(json!(null)),
        ),
    ]
}

/// Everything a decoded review carries, comparable.
fn shown(decoded: &Result<Decoded, BadReview>) -> String {
    format!("{decoded:?}")
}

#[test]
fn one_pass_decodes_what_two_passes_decode() {
    for (name, fixture) in fixtures() {
        let body = fixture.bytes();
        assert_eq!(shown(&decode(&body)), shown(&two_passes(&body)), "{name}");
    }
}

/// Objects that do not decode as their kind's type are left to the two passes, which say why.
const UNDECODABLE: [&str; 2] = ["pool without cidr", "config with a text port"];

#[test]
fn reviews_in_the_api_servers_order_take_one_pass() {
    for (name, fixture) in fixtures() {
        let body = fixture.bytes();
        assert_eq!(
            one_pass(&body).is_some(),
            !UNDECODABLE.contains(&name),
            "{name}"
        );
    }
}

/// Objects before the kind, a repeated field, no request: the two passes decide.
#[test]
fn other_orders_and_shapes_take_two_passes() {
    let pool = r#"{"metadata":{"name":"v6"},"spec":{"cidr":"2001:db8:1::/48","natOutgoing":true}}"#;
    let kind = r#"{"group":"kube-encrypt.dev","version":"v1alpha1","kind":"IPPool"}"#;
    let objects_first = format!(
        r#"{{"request":{{"oldObject":{pool},"uid":"u","kind":{kind},"name":"v6","operation":"DELETE"}}}}"#
    );
    let repeated = format!(
        r#"{{"request":{{"uid":"u","uid":"v","kind":{kind},"name":"v6","operation":"DELETE","oldObject":{pool}}}}}"#
    );
    let kind_first = format!(
        r#"{{"request":{{"uid":"u","kind":{kind},"name":"v6","operation":"DELETE","oldObject":{pool}}}}}"#
    );
    for body in [
        &objects_first,
        &repeated,
        r#"{"apiVersion":"admission.k8s.io/v1"}"#,
    ] {
        assert!(one_pass(body.as_bytes()).is_none(), "{body}");
        assert_eq!(
            shown(&decode(body.as_bytes())),
            shown(&two_passes(body.as_bytes())),
            "{body}"
        );
    }
    let mut not_utf8 = kind_first.clone().into_bytes();
    let uid = not_utf8.windows(4).position(|w| w == br#""u","#).unwrap();
    not_utf8[uid + 1] = 0xff;
    assert!(one_pass(&not_utf8).is_none());
    assert!(
        matches!(decode(&not_utf8), Err(BadReview::Malformed(_))),
        "a uid that is not UTF-8 is refused"
    );
    let late = decode(objects_first.as_bytes()).unwrap();
    let early = decode(kind_first.as_bytes()).unwrap();
    assert_eq!(
        format!("{:?}", late.subject),
        format!("{:?}", early.subject)
    );
    assert!(matches!(
        late.subject,
        Ok(Subject::Pool {
            old: Some(_),
            new: None
        })
    ));
}

/// The review's strings are read in place; one with an escape is decoded into its own copy.
#[test]
fn strings_are_borrowed_from_the_body_unless_escaped() {
    let fixture = Fixture::of("IPPool", "ippools", "DELETE", "v6")
        .old(pool_object("v6", &v6_pool()))
        .by("alice", &["dev"]);
    let body = fixture.bytes();
    let decoded = decode(&body).unwrap();
    let request = &decoded.request;
    let groups = request.user_info.groups.as_deref().unwrap();
    let username = request.user_info.username.as_ref().unwrap();
    for (what, text) in [
        ("uid", &request.uid),
        ("kind", &request.kind.kind),
        ("name", &request.name),
        ("username", &username.0),
        ("group", &groups[0].0),
    ] {
        assert!(matches!(text, Cow::Borrowed(_)), "{what} was copied");
    }
    let escaped = String::from_utf8(body)
        .unwrap()
        .replace(r#""username":"alice""#, r#""username":"al\u0069ce""#);
    let decoded = decode(escaped.as_bytes()).unwrap();
    let username = decoded.request.user_info.username.unwrap().0;
    assert!(matches!(username, Cow::Owned(_)));
    assert_eq!(username, "alice");
}
