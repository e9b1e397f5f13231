//! Keeps the caBundle of every webhook in the ValidatingWebhookConfiguration equal to the
//! self-signed CA: written at start, and again whenever someone resets it (a GitOps re-apply
//! of the manifest with an empty caBundle) or the configuration appears later than the
//! webhook. Written with a read-modify-replace, so a concurrent change is never overwritten.

use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::ByteString;
use kube::api::PostParams;
use kube::Api;

/// How often the caBundle is checked once it is right.
pub const RECHECK_EVERY: Duration = Duration::from_secs(60);
/// How soon to try again after a failure or while the configuration does not exist.
pub const RETRY_EVERY: Duration = Duration::from_secs(5);

/// What one check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BundleState {
    /// Every webhook already carries the CA.
    Current,
    /// The caBundle of this many webhooks was written.
    Written(usize),
    /// The ValidatingWebhookConfiguration does not exist (yet).
    Missing,
}

/// Sets `bundle` as the caBundle of every webhook of the configuration `name`.
pub async fn ensure(
    api: &Api<ValidatingWebhookConfiguration>,
    name: &str,
    bundle: &[u8],
) -> Result<BundleState, kube::Error> {
    let Some(mut config) = api.get_opt(name).await? else {
        return Ok(BundleState::Missing);
    };
    let webhooks = config.webhooks.iter_mut().flatten();
    let mut written = 0;
    for webhook in webhooks {
        if webhook
            .client_config
            .ca_bundle
            .as_ref()
            .map(|b| b.0.as_slice())
            != Some(bundle)
        {
            webhook.client_config.ca_bundle = Some(ByteString(bundle.to_vec()));
            written += 1;
        }
    }
    if written == 0 {
        return Ok(BundleState::Current);
    }
    let params = PostParams {
        field_manager: Some(crate::FIELD_MANAGER.to_owned()),
        ..Default::default()
    };
    api.replace(name, &params, &config).await?;
    Ok(BundleState::Written(written))
}

/// Runs [`ensure`] until the task is dropped.
pub async fn keep(api: Api<ValidatingWebhookConfiguration>, name: String, bundle: Vec<u8>) {
    let mut missing_reported = false;
    loop {
        let wait = match ensure(&api, &name, &bundle).await {
            Ok(BundleState::Current) => RECHECK_EVERY,
            Ok(BundleState::Written(n)) => {
                tracing::info!(configuration = %name, webhooks = n, "caBundle written");
                RECHECK_EVERY
            }
            Ok(BundleState::Missing) => {
                if !std::mem::replace(&mut missing_reported, true) {
                    tracing::warn!(configuration = %name, "ValidatingWebhookConfiguration not found; will write its caBundle once it exists (check --webhook-configuration)");
                }
                RETRY_EVERY
            }
            Err(e) => {
                tracing::warn!(configuration = %name, error = %e, "cannot write the caBundle; retrying");
                RETRY_EVERY
            }
        };
        tokio::time::sleep(wait).await;
    }
}
