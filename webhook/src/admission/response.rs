//! AdmissionResponses: admitted (with warnings), denied with every failing rule, or refused
//! because the object could not be read.

use kube::core::response::{StatusCause, StatusDetails};
use kube::core::Status;
use kube_encrypt_api::rules::Finding;

use super::review::{Request, Response};
use super::subject::SubjectError;
use super::verdict::Verdict;

/// HTTP code of a denial: the request is understood and refused.
const DENIED: u16 = 403;
/// HTTP code of a review whose object cannot be read.
const UNDECODABLE: u16 = 400;

/// The response carrying `verdict`.
pub fn of_verdict<'a>(request: &'a Request, verdict: Verdict) -> Response<'a> {
    let mut response = Response::allow(request);
    response.warnings = verdict.warnings;
    if verdict.denials.is_empty() {
        return response;
    }
    let message = denial_message(request, &verdict.denials);
    response.allowed = false;
    response.status = Some(
        Status::failure(&message, "Forbidden")
            .with_code(DENIED)
            .with_details(details(request, &verdict.denials)),
    );
    response
}

/// The response refusing a review whose objects cannot be decoded.
pub fn undecodable<'a>(request: &'a Request, error: &SubjectError) -> Response<'a> {
    let mut response = Response::allow(request);
    response.allowed = false;
    response.status = Some(
        Status::failure(
            &format!("kube-encrypt cannot judge this request: {error}"),
            "BadRequest",
        )
        .with_code(UNDECODABLE),
    );
    response
}

/// `IPPool "v6" is refused by 2 kube-encrypt rules:` and one line per finding:
/// `- rule: field: what is wrong; what to change`.
fn denial_message(request: &Request, denials: &[Finding]) -> String {
    let rules = match denials.len() {
        1 => "1 kube-encrypt rule".to_owned(),
        n => format!("{n} kube-encrypt rules"),
    };
    let mut message = format!(
        "{} {:?} is refused by {rules}:",
        request.kind.kind, request.name
    );
    for finding in denials {
        message.push_str("\n- ");
        message.push_str(&finding.to_string());
    }
    message
}

fn details(request: &Request, denials: &[Finding]) -> StatusDetails {
    StatusDetails {
        name: request.name.to_string(),
        group: request.kind.group.to_string(),
        kind: request.kind.kind.to_string(),
        causes: denials
            .iter()
            .map(|f| StatusCause {
                reason: f.rule.as_str().to_owned(),
                message: f.message.clone(),
                field: f.field.clone(),
            })
            .collect(),
        uid: String::new(),
        retry_after_seconds: 0,
    }
}
