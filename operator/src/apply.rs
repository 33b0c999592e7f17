//! Server-side apply with one field manager, and change detection: each applied object carries
//! the hash of its desired state in an annotation, and an object whose live copy carries the hash
//! of what would be applied is not applied again. So a restarted operator, or one woken by an
//! unrelated change, makes no writes at all.

use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use agentgateway_crds::proxy_config::delivery::fnv64_hex;

use crate::context::Context;
use crate::error::Error;

/// The field manager of every write of the operator.
pub const FIELD_MANAGER: &str = "agentgateway-operator";
/// Create and replace under [`FIELD_MANAGER`], so `managedFields` says who wrote what.
pub fn post_params() -> PostParams {
    PostParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PostParams::default()
    }
}

/// A merge or strategic-merge patch under [`FIELD_MANAGER`] (server-side apply uses
/// `PatchParams::apply`).
pub fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    }
}

/// The annotation holding the hash of the desired object that was last applied.
pub const APPLIED_HASH_ANNOTATION: &str = "agentgateway.dev/applied-hash";

/// What [`apply_owned`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The live object already carries the desired hash: nothing was sent.
    Unchanged,
    /// The object was applied.
    Written,
}

/// A stable 64-bit FNV-1a hash of `object`'s JSON, as 16 hex digits. Stable across processes and
/// releases (unlike `std`'s hasher), so a new operator version recognizes what an old one wrote.
pub fn applied_hash<K: Serialize>(object: &K) -> Result<String, serde_json::Error> {
    Ok(fnv64_hex(&serde_json::to_vec(object)?))
}

/// Hashes `object` (without any previous hash annotation) and records the hash in its
/// annotations; returns the hash.
pub fn stamp<K: Resource + Serialize>(object: &mut K) -> Result<String, serde_json::Error> {
    let meta = object.meta_mut();
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(APPLIED_HASH_ANNOTATION);
        // An empty map serializes differently from none; the hash must not see the difference.
        if annotations.is_empty() {
            meta.annotations = None;
        }
    }
    let hash = applied_hash(object)?;
    object
        .annotations_mut()
        .insert(APPLIED_HASH_ANNOTATION.to_string(), hash.clone());
    Ok(hash)
}

/// Whether `live` exists and carries `hash`.
pub fn carries_hash(live: Option<&ObjectMeta>, hash: &str) -> bool {
    live.and_then(|m| m.annotations.as_ref()?.get(APPLIED_HASH_ANNOTATION))
        .is_some_and(|h| h == hash)
}

/// Whether the object of `meta` names the owner with `uid` as its controller.
pub fn controlled_by(meta: &ObjectMeta, uid: &str) -> bool {
    meta.owner_references
        .iter()
        .flatten()
        .any(|r| r.controller == Some(true) && r.uid == uid)
}

/// Who controls the object of `meta`, for a conflict message.
fn holder(meta: &ObjectMeta) -> String {
    match meta
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
    {
        Some(r) => format!("it is controlled by {} {} (uid {})", r.kind, r.name, r.uid),
        None => "it has no controller".to_string(),
    }
}

/// Applies `desired` unless its live copy carries its hash. `desired` names its owner as its
/// controller; an object of that name which exists but is controlled by anything else is never
/// written ([`Error::Conflict`]). `live` is the metadata of the cached copy; the caches of owned
/// kinds only hold objects labelled as ours, so on a miss the object is read by name before
/// anything is written.
pub async fn apply_owned<K>(
    ctx: &Context,
    desired: K,
    live: Option<ObjectMeta>,
) -> Result<Applied, Error>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + k8s_openapi::Resource
        + Serialize
        + DeserializeOwned
        + Clone
        + Debug,
{
    let namespace = desired.namespace().unwrap_or_default();
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &namespace);
    apply_with(ctx, &api, <K as k8s_openapi::Resource>::KIND, desired, live).await
}

/// [`apply_owned`] for an object whose API version is chosen at run time (the autoscaler and
/// the disruption budget, see `resources::scaling`): always read by name first, as no cache
/// holds these kinds.
pub async fn apply_owned_dynamic(
    ctx: &Context,
    kind: &'static str,
    resource: &ApiResource,
    desired: DynamicObject,
) -> Result<Applied, Error> {
    let namespace = desired.namespace().unwrap_or_default();
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &namespace, resource);
    apply_with(ctx, &api, kind, desired, None).await
}

/// What [`apply_owned`] does, through `api`.
async fn apply_with<K>(
    ctx: &Context,
    api: &Api<K>,
    kind: &'static str,
    mut desired: K,
    live: Option<ObjectMeta>,
) -> Result<Applied, Error>
where
    K: Resource + Serialize + DeserializeOwned + Clone + Debug,
{
    let name = desired.name_any();
    let namespace = desired.namespace().unwrap_or_default();
    let Some(owner) = desired
        .owner_references()
        .iter()
        .find(|r| r.controller == Some(true))
        .cloned()
    else {
        return Err(Error::MissingField {
            kind,
            name,
            field: "metadata.ownerReferences",
        });
    };
    let hash = stamp(&mut desired).map_err(|source| Error::HashObject {
        kind,
        name: name.clone(),
        source,
    })?;
    let live = match live {
        Some(live) => Some(live),
        None => api
            .get_opt(&name)
            .await
            .map_err(|source| Error::Get {
                kind,
                namespace: namespace.clone(),
                name: name.clone(),
                source: Box::new(source),
            })?
            .map(|object| object.meta().clone()),
    };
    let conflict = |holder: String| Error::Conflict {
        kind,
        namespace: namespace.clone(),
        name: name.clone(),
        gateway: owner.name.clone(),
        holder,
    };
    match &live {
        Some(live) if !controlled_by(live, &owner.uid) => {
            return Err(conflict(holder(live)));
        }
        Some(live) if carries_hash(Some(live), &hash) => return Ok(Applied::Unchanged),
        _ => {}
    }
    // Created with server-side apply too, not a POST: the fields a create sets belong to an
    // `Update` entry that a later apply cannot remove (a config that moved from `data` to
    // `binaryData` would keep its stale `data`). Someone creating the object between the read
    // above and this write is the one window left; an object they gave a controller stays safe
    // even then, as the API server refuses a second controller reference.
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(&name, &params, &Patch::Apply(&desired))
        .await
        .map_err(|source| Error::Apply {
            kind,
            namespace: namespace.clone(),
            name: name.clone(),
            source: Box::new(source),
        })?;
    ctx.metrics.wrote(kind);
    tracing::info!(kind, namespace = %namespace, name = %name, hash = %hash, "applied");
    Ok(Applied::Written)
}

/// Server-side applies `body` (apiVersion, kind, metadata name/namespace and the status fields we
/// own) to the status subresource: only those fields become ours, the rest stays untouched.
pub async fn apply_status<K>(api: &Api<K>, name: &str, body: &serde_json::Value) -> kube::Result<K>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch_status(name, &params, &Patch::Apply(body)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::tests::owner;
    use agentgateway_crds::proxy_config::ProxyConfig;
    use k8s_openapi::api::core::v1::ConfigMap;

    fn config_map() -> ConfigMap {
        crate::resources::config_map(&owner(), &ProxyConfig::default(), &Default::default())
            .unwrap()
    }

    #[test]
    fn the_same_object_always_has_the_same_hash() {
        assert_eq!(
            applied_hash(&config_map()).unwrap(),
            applied_hash(&config_map()).unwrap()
        );
        // Pinned: a change here means every object is re-applied once after an upgrade.
        assert_eq!(applied_hash(&"agentgateway").unwrap().len(), 16);
    }

    #[test]
    fn a_different_object_has_a_different_hash() {
        let mut other = config_map();
        other
            .data
            .as_mut()
            .unwrap()
            .insert("config.yaml".into(), "listeners: []".into());
        assert_ne!(
            applied_hash(&config_map()).unwrap(),
            applied_hash(&other).unwrap()
        );
    }

    #[test]
    fn stamping_twice_gives_the_same_hash() {
        let mut once = config_map();
        let first = stamp(&mut once).unwrap();
        let mut twice = once.clone();
        let second = stamp(&mut twice).unwrap();
        assert_eq!(first, second);
        assert_eq!(once.annotations()[APPLIED_HASH_ANNOTATION], first);
    }

    #[test]
    fn only_the_controller_reference_with_the_gateways_uid_counts() {
        let mut map = config_map().metadata;
        assert!(controlled_by(&map, "uid-1"));
        assert!(!controlled_by(&map, "uid-2"));
        assert!(holder(&map).starts_with("it is controlled by Gateway agentgateway-proxy"));
        map.owner_references.as_mut().unwrap()[0].controller = Some(false);
        assert!(!controlled_by(&map, "uid-1"));
        assert_eq!(holder(&map), "it has no controller");
        map.owner_references = None;
        assert!(!controlled_by(&map, "uid-1"));
    }

    #[test]
    fn only_a_live_object_with_the_same_hash_is_current() {
        let mut live = config_map();
        let hash = stamp(&mut live).unwrap();
        assert!(carries_hash(Some(&live.metadata), &hash));
        assert!(!carries_hash(Some(&live.metadata), "0000000000000000"));
        assert!(!carries_hash(Some(&config_map().metadata), &hash));
        assert!(!carries_hash(None, &hash));
    }
}
