//! The answer as written: a plain admission is written by hand, every other answer by serde;
//! both must give the same bytes serde gives.

use kube::core::Status;

use crate::admission::Response;

/// Strings with and without what JSON escapes (quotes, backslashes, control characters) and
/// what it does not (DEL, non-ASCII).
const TEXTS: [&str; 9] = [
    "5f1e2c3a-8f5e-4a43-9d59-0cfb9f3c1d77",
    "",
    "a\"b",
    "back\\slash",
    "tab\there",
    "nul\u{0}",
    "\u{1f}x",
    "del\u{7f}",
    "é😀",
];

/// A random string of characters JSON writes as they are and characters it escapes.
fn random_text(rng: &mut fastrand::Rng) -> String {
    const CHARS: [char; 10] = ['a', '-', '/', '"', '\\', '\n', '\u{1}', '\u{7f}', 'é', '😀'];
    (0..rng.usize(0..12))
        .map(|_| CHARS[rng.usize(..CHARS.len())])
        .collect()
}

/// Admissions plain and with warnings, and a denial.
fn responses(uid: &str) -> [Response<'_>; 3] {
    let allow = || Response {
        uid,
        allowed: true,
        ..Default::default()
    };
    [
        allow(),
        Response {
            warnings: vec!["mind the \"gap\"".into()],
            ..allow()
        },
        Response {
            allowed: false,
            status: Some(Status::failure("refused", "Forbidden").with_code(403)),
            ..allow()
        },
    ]
}

fn assert_written_as_serde_writes(uid: &str, api_version: &str) {
    for response in responses(uid) {
        let answer = response.into_answer(api_version);
        let serde = serde_json::to_vec(&answer).expect("serializes");
        assert_eq!(
            String::from_utf8_lossy(&answer.to_json()),
            String::from_utf8_lossy(&serde),
            "uid {uid:?}, apiVersion {api_version:?}"
        );
    }
}

#[test]
fn answers_are_written_as_serde_writes_them() {
    for uid in TEXTS {
        for api_version in TEXTS {
            assert_written_as_serde_writes(uid, api_version);
        }
    }
    let mut rng = fastrand::Rng::with_seed(5);
    for _ in 0..500 {
        assert_written_as_serde_writes(&random_text(&mut rng), &random_text(&mut rng));
    }
}
