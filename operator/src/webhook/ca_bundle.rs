//! Puts the CA bundle into `clientConfig.caBundle` of every webhook of our Validating- and
//! MutatingWebhookConfiguration (created by the chart without it, so rendering stays deterministic).
//! A strategic merge patch under the operator's field manager touches only `caBundle`: what the
//! chart declares keeps its owner, and neither side undoes the other.

use base64::Engine;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use kube::api::Patch;
use kube::{Api, Client};
use serde_json::json;

use crate::apply::patch_params;

/// The webhooks of a configuration whose `caBundle` differs from `bundle`.
fn stale<'a>(
    webhooks: impl Iterator<Item = (&'a str, Option<&'a [u8]>)>,
    bundle: &[u8],
) -> Vec<String> {
    webhooks
        .filter(|(_, current)| *current != Some(bundle))
        .map(|(name, _)| name.to_string())
        .collect()
}

fn patch_for(names: &[String], bundle: &[u8]) -> serde_json::Value {
    let encoded = base64::engine::general_purpose::STANDARD.encode(bundle);
    json!({
        "webhooks": names
            .iter()
            .map(|name| json!({"name": name, "clientConfig": {"caBundle": encoded}}))
            .collect::<Vec<_>>()
    })
}

/// What happened to one configuration.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The configuration does not exist (yet).
    Absent,
    /// Every webhook already trusted the bundle.
    UpToDate,
    /// The bundle was written into this many webhooks.
    Patched(usize),
}

/// Ensures both configurations named `name` trust `bundle`.
pub async fn ensure(
    client: &Client,
    name: &str,
    bundle: &[u8],
) -> Result<[Outcome; 2], kube::Error> {
    let validating = ensure_one(
        Api::<ValidatingWebhookConfiguration>::all(client.clone()),
        name,
        bundle,
    )
    .await?;
    let mutating = ensure_one(
        Api::<MutatingWebhookConfiguration>::all(client.clone()),
        name,
        bundle,
    )
    .await?;
    Ok([validating, mutating])
}

/// One webhook's name and current `caBundle`.
type WebhookBundle = (String, Option<Vec<u8>>);

/// The two configuration kinds, seen the same way: their webhooks' names and `caBundle`s.
trait WebhookBundles {
    fn bundles(&self) -> Vec<WebhookBundle>;
}

/// The two webhook kinds are distinct types with the same `name` and `clientConfig`.
fn webhook_bundle(name: &str, client_config: &WebhookClientConfig) -> WebhookBundle {
    let bundle = client_config.ca_bundle.as_ref().map(|b| b.0.clone());
    (name.to_string(), bundle)
}

impl WebhookBundles for ValidatingWebhookConfiguration {
    fn bundles(&self) -> Vec<WebhookBundle> {
        let webhooks = self.webhooks.iter().flatten();
        webhooks
            .map(|w| webhook_bundle(&w.name, &w.client_config))
            .collect()
    }
}

impl WebhookBundles for MutatingWebhookConfiguration {
    fn bundles(&self) -> Vec<WebhookBundle> {
        let webhooks = self.webhooks.iter().flatten();
        webhooks
            .map(|w| webhook_bundle(&w.name, &w.client_config))
            .collect()
    }
}

async fn ensure_one<K>(api: Api<K>, name: &str, bundle: &[u8]) -> Result<Outcome, kube::Error>
where
    K: WebhookBundles + kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned,
{
    let Some(config) = api.get_opt(name).await? else {
        return Ok(Outcome::Absent);
    };
    let current = config.bundles();
    let names = stale(
        current.iter().map(|(n, b)| (n.as_str(), b.as_deref())),
        bundle,
    );
    if names.is_empty() {
        return Ok(Outcome::UpToDate);
    }
    api.patch(
        name,
        &patch_params(),
        &Patch::Strategic(patch_for(&names, bundle)),
    )
    .await?;
    Ok(Outcome::Patched(names.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_webhooks_without_the_bundle_are_patched_and_by_name() {
        let bundle = b"PEM".as_slice();
        let names = stale(
            [
                ("a", Some(bundle)),
                ("b", None),
                ("c", Some(b"OLD".as_slice())),
            ]
            .into_iter(),
            bundle,
        );
        assert_eq!(names, vec!["b".to_string(), "c".to_string()]);
        let patch = patch_for(&names, bundle);
        assert_eq!(
            patch,
            json!({"webhooks": [
                {"name": "b", "clientConfig": {"caBundle": "UEVN"}},
                {"name": "c", "clientConfig": {"caBundle": "UEVN"}}
            ]})
        );
    }
}
