//! The hand-walked one pass against serde_json: it may leave a body to the two passes, but a
//! body it decodes must be one serde_json accepts, decoded the same.

use serde_json::json;

use super::{config_object, Review};
use crate::admission::decode::{decode, one_pass, two_passes, Decoded};
use crate::admission::skim::{Skim, MAX_SKIP_DEPTH};
use crate::admission::BadReview;

fn shown(decoded: &Result<Decoded, BadReview>) -> String {
    format!("{decoded:?}")
}

/// A config update whose request carries `options` spelled as `value` (a field no rule reads).
fn with_options(value: &str) -> Vec<u8> {
    let review = Review::update_config(
        config_object("default", json!({"ipv4": {"enabled": true}})),
        config_object("default", json!({"ipv4": {"enabled": true, "mtu": 1400}})),
    );
    let body = String::from_utf8(review.bytes()).unwrap();
    body.replacen(
        r#""request":{"#,
        &format!(r#""request":{{"options":{value},"#),
        1,
    )
    .into_bytes()
}

/// Asserts the one pass agrees with serde_json about `body`: the same decoding when it takes
/// the body, and serde_json accepts every body it takes. Whether it took it.
fn agrees(body: &[u8]) -> bool {
    let slow = two_passes(body);
    match one_pass(body) {
        Some(fast) => {
            let (fast, slow) = (shown(&Ok(fast)), shown(&slow));
            assert_eq!(fast, slow, "{}", String::from_utf8_lossy(body));
            true
        }
        None => {
            assert_eq!(shown(&decode(body)), shown(&slow));
            false
        }
    }
}

#[test]
fn valid_skipped_values_are_skipped() {
    let values = [
        "null",
        "true",
        "false",
        "0",
        "-0",
        "12",
        "-3.25",
        "1e5",
        "1E+05",
        "2.5e-3",
        r#""""#,
        r#""plain text""#,
        r#""é ü 字 🦀""#,
        r#""\"\\\/\b\f\n\r\t""#,
        r#""\u00e9\uD83E\uDD80\uDFFF""#,
        "[]",
        "{}",
        "[[[]],{},[{}]]",
        r#"{"a":{"b":[1,2,{"c":"d"}]},"a":2}"#,
        r#"{"k\u0065y":1,"with \"quotes\"":2}"#,
        " \n\t\r{ \"a\" \n: [ 1 , \"x\" ] } ",
        &format!(
            "{}1{}",
            "[".repeat(MAX_SKIP_DEPTH),
            "]".repeat(MAX_SKIP_DEPTH)
        ),
    ];
    for value in values {
        assert!(agrees(&with_options(value)), "{value} was not skipped");
    }
}

#[test]
fn invalid_skipped_values_are_refused() {
    let values = [
        "",
        "01",
        "-",
        "+1",
        "1.",
        ".5",
        "1e",
        "1e+",
        "0x10",
        "tru",
        "nul",
        "True",
        "NaN",
        "\"a\u{1}b\"",
        "\"a\tb\"",
        r#""\x""#,
        r#""\u12G4""#,
        r#""\u12""#,
        r#""open"#,
        "[1,]",
        "[,1]",
        "[1 2]",
        r#"{"a":1,}"#,
        r#"{"a"}"#,
        r#"{"a" 1}"#,
        "{1:2}",
        r#"{"a":1 "b":2}"#,
        "[1}",
        r#"{"a":1]"#,
        "'a'",
    ];
    for value in values {
        let body = with_options(value);
        assert!(!agrees(&body), "{value:?} was taken");
        assert!(
            matches!(decode(&body), Err(BadReview::Malformed(_))),
            "{value:?}"
        );
    }
}

/// Nesting past the skipper's limit goes to serde_json, which takes it within its own.
#[test]
fn deep_skipped_values_go_to_serde_json() {
    let depth = MAX_SKIP_DEPTH + 1;
    let body = with_options(&format!("{}{}", "[".repeat(depth), "]".repeat(depth)));
    assert!(!agrees(&body));
    assert!(decode(&body).is_ok());
}

#[test]
fn what_follows_the_review_must_be_whitespace() {
    let mut body = with_options("1");
    body.extend_from_slice(b" \n");
    assert!(agrees(&body));
    for tail in [&b"x"[..], b"{}", b","] {
        let mut body = with_options("1");
        body.extend_from_slice(tail);
        assert!(!agrees(&body));
        assert!(decode(&body).is_err());
    }
}

/// `"\u0075id"` is `uid`: a field read by name is left to serde_json when its key has escapes.
#[test]
fn escaped_keys_of_read_fields_go_to_serde_json() {
    let body = String::from_utf8(with_options("1")).unwrap();
    for (plain, escaped) in [
        (r#""uid":"705ab4f5"#, r#""\u0075id":"705ab4f5"#),
        (r#""spec":"#, r#""sp\u0065c":"#),
    ] {
        let escaped = body.replacen(plain, escaped, 1);
        assert!(!agrees(escaped.as_bytes()), "{escaped}");
        assert!(decode(escaped.as_bytes()).is_ok());
    }
}

/// A repeated field anywhere the one pass reads is left to serde_json, which refuses it.
#[test]
fn repeated_fields_go_to_serde_json() {
    let body = String::from_utf8(with_options("1")).unwrap();
    for (once, twice) in [
        (r#""uid":"705ab4f5"#, r#""uid":"x","uid":"705ab4f5"#),
        (r#""spec":"#, r#""spec":{},"spec":"#),
        (r#""name":"default","#, r#""name":"a","name":"default","#),
    ] {
        let repeated = body.replacen(once, twice, 1);
        assert!(!agrees(repeated.as_bytes()), "{repeated}");
    }
}

/// A dry-run pool update by a user whose name and groups hold escapes, with a subresource of
/// `null` and an escaped operation: every field the one pass reads, spelled as serde_json
/// (not the API server) might write it.
fn with_escapes() -> Vec<u8> {
    let spec = || serde_json::from_value(json!({"cidr": "198.51.100.0/24"})).unwrap();
    let review = Review::update_pool("p\u{e9}\"1", spec(), spec())
        .by("system:serviceaccount:\"x\"\n", &["g\\1", "g2"])
        .dry_run();
    let body = String::from_utf8(review.bytes()).unwrap();
    body.replacen(r#""operation":"UPDATE""#, r#""operation":"UPD\u0041TE""#, 1)
        .replacen(r#""request":{"#, r#""request":{"subResource":null,"#, 1)
        .into_bytes()
}

/// Random edits of real reviews, bounded and seeded: wherever the one pass takes the edited
/// body, serde_json takes it too and decodes the same.
#[test]
fn random_edits_are_decoded_as_serde_json_decodes_them() {
    let options = with_options(r#"{"kind":"UpdateOptions","n":[1.5e3,-2,true,null,"\n"]}"#);
    for body in [options, with_escapes()] {
        let taken = random_edits_agree(&body);
        assert!(taken > 1_000, "only {taken} edited bodies were taken");
    }
}

/// How many of 20,000 random edits of `body` the one pass took (each agreeing with serde_json).
fn random_edits_agree(body: &[u8]) -> usize {
    assert!(agrees(body));
    let specials = b"{}[]\":,0123456789-+.eEtrufalsn\\/ \t\n\x01\x7f";
    let mut rng = fastrand::Rng::with_seed(23);
    let mut taken = 0;
    for _ in 0..20_000 {
        let mut edited = body.to_vec();
        for _ in 0..rng.usize(1..3) {
            let at = rng.usize(..edited.len());
            let byte = specials[rng.usize(..specials.len())];
            match rng.u8(0..3) {
                0 => edited[at] = byte,
                1 => drop(edited.remove(at)),
                _ => edited.insert(at, byte),
            }
        }
        taken += usize::from(agrees(&edited));
    }
    taken
}

/// The word-at-a-time scan finds the first quote, backslash or control character wherever it
/// is, as a byte-by-byte scan does.
#[test]
fn strings_end_where_a_byte_by_byte_scan_ends_them() {
    let mut rng = fastrand::Rng::with_seed(5);
    for len in 0..40 {
        for _ in 0..50 {
            let content: String = (0..len)
                .map(|_| match rng.u8(0..20) {
                    0 => '\\',
                    1 => '\u{1f}',
                    2 => 'é',
                    3 => '\u{7f}',
                    _ => rng.alphanumeric(),
                })
                .collect();
            let text = format!("\"{content}\" ");
            let expected = byte_by_byte(&text);
            assert_eq!(Skim::new(&text).skip(), expected, "{text:?}");
        }
    }
}

/// Whether `text` starts with a valid JSON string, scanned one byte at a time.
fn byte_by_byte(text: &str) -> Option<()> {
    let mut bytes = text.bytes().skip(1);
    loop {
        match bytes.next()? {
            b'"' => return Some(()),
            b'\\' => match bytes.next()? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                b'u' => {
                    let hex = bytes.by_ref().take(4).filter(u8::is_ascii_hexdigit);
                    (hex.count() == 4).then_some(())?;
                }
                _ => return None,
            },
            0..0x20 => return None,
            _ => {}
        }
    }
}
