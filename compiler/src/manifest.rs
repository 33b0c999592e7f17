//! Multi-document YAML manifests (what `kubectl apply -f` reads) into typed [`Inputs`].
//! Errors name the source, the document and the field, because the proxy logs them when it rejects
//! an edit and keeps serving the previous config.

use std::fmt;

use agentgateway_crds::GATEWAY_API_GROUP;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_yaml::{Mapping, Value};

use crate::inputs::{DEFAULT_NAMESPACE, Inputs, KubeObject, ObjectRef, Origin};

/// The document a manifest error is in, and the object when its kind and name are known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocumentLocation {
    /// The source's name, e.g. the file path.
    pub source_name: String,
    /// The document's number, counting from 1.
    pub document: usize,
    /// `Kind namespace/name`, when the document got that far.
    pub object: Option<String>,
}

impl fmt::Display for DocumentLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: document {}", self.source_name, self.document)?;
        match &self.object {
            Some(object) => write!(f, " ({object})"),
            None => Ok(()),
        }
    }
}

/// Why manifests could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// The text is not YAML; the message carries the line and column.
    #[error("{at}: {message}")]
    ParseYaml {
        /// Where.
        at: DocumentLocation,
        /// The YAML parser's message.
        message: String,
        /// 1-based line in the source, when known.
        line: Option<usize>,
        /// 1-based column in the source, when known.
        column: Option<usize>,
    },
    /// The document is not a Kubernetes object (a mapping with `apiVersion` and `kind`).
    #[error("{at}: {message}")]
    ReadTypeMeta {
        /// Where.
        at: DocumentLocation,
        /// What is missing.
        message: String,
    },
    /// A field does not fit the object's kind.
    #[error("{at}: {}", join_field(.field, .message))]
    DecodeField {
        /// Where.
        at: DocumentLocation,
        /// The field path, e.g. `spec.ai.provider.port`.
        field: String,
        /// What is wrong, e.g. `invalid type: string "abc", expected i32`.
        message: String,
    },
    /// The same object appears twice.
    #[error("{at}: duplicate of {first}")]
    DuplicateObject {
        /// The second occurrence.
        at: DocumentLocation,
        /// The first occurrence.
        first: Origin,
    },
}

/// Parses multi-document YAML sources (name, text), e.g. file paths and contents, into [`Inputs`].
/// Empty documents and kinds the compiler does not read are skipped; `kind: List` is expanded.
pub fn parse_manifests(sources: &[(String, String)]) -> Result<Inputs, ManifestError> {
    let mut inputs = Inputs::default();
    for (source_name, text) in sources {
        for (i, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
            let mut at = DocumentLocation {
                source_name: source_name.clone(),
                document: i + 1,
                object: None,
            };
            let value = Value::deserialize(document).map_err(|e| {
                let location = e.location();
                ManifestError::ParseYaml {
                    at: at.clone(),
                    message: e.to_string(),
                    line: location.as_ref().map(|l| l.line()),
                    column: location.as_ref().map(|l| l.column()),
                }
            })?;
            if value.is_null() {
                continue;
            }
            read_document(&mut inputs, &mut at, value)?;
        }
    }
    Ok(inputs)
}

/// One document: an object, or a `List` of them.
fn read_document(
    inputs: &mut Inputs,
    at: &mut DocumentLocation,
    value: Value,
) -> Result<(), ManifestError> {
    let (api_version, kind) = type_meta(at, &value, "")?;
    if api_version == "v1" && kind == "List" {
        let items = match value.get("items") {
            Some(Value::Sequence(items)) => items.clone(),
            None | Some(Value::Null) => Vec::new(),
            Some(_) => return Err(field_error(at, "items", "must be a list of objects")),
        };
        for (i, item) in items.into_iter().enumerate() {
            read_object(inputs, at, &format!("items[{i}]."), item)?;
        }
        return Ok(());
    }
    read_object(inputs, at, "", value)
}

/// Dispatches on `apiVersion` and `kind`; kinds the compiler does not read are skipped.
fn read_object(
    inputs: &mut Inputs,
    at: &mut DocumentLocation,
    prefix: &str,
    value: Value,
) -> Result<(), ManifestError> {
    let (api_version, kind) = type_meta(at, &value, prefix)?;
    let (group, version) = api_version
        .rsplit_once('/')
        .unwrap_or(("", api_version.as_str()));
    match (group, version, kind.as_str()) {
        ("agentgateway.dev", "v1alpha1", "AgentgatewayBackend") => {
            push(inputs, at, prefix, value, |i| &mut i.backends)
        }
        ("agentgateway.dev", "v1alpha1", "AgentgatewayPolicy") => {
            push(inputs, at, prefix, value, |i| &mut i.policies)
        }
        ("agentgateway.dev", _, "AgentgatewayBackend" | "AgentgatewayPolicy") => Err(field_error(
            at,
            &format!("{prefix}apiVersion"),
            format!("unsupported version {api_version:?}: expected agentgateway.dev/v1alpha1"),
        )),
        (GATEWAY_API_GROUP, "v1" | "v1beta1", "Gateway") => {
            push(inputs, at, prefix, value, |i| &mut i.gateways)
        }
        (GATEWAY_API_GROUP, "v1" | "v1beta1", "HTTPRoute") => {
            push(inputs, at, prefix, value, |i| &mut i.routes)
        }
        (GATEWAY_API_GROUP, "v1" | "v1beta1", "GatewayClass") => {
            push(inputs, at, prefix, value, |i| &mut i.gateway_classes)
        }
        (GATEWAY_API_GROUP, "v1beta1" | "v1", "ReferenceGrant") => {
            push(inputs, at, prefix, value, |i| &mut i.reference_grants)
        }
        ("", "v1", "Secret") => {
            push(inputs, at, prefix, value, |i| &mut i.secrets)?;
            if let Some(secret) = inputs.secrets.last_mut() {
                merge_string_data(secret);
            }
            Ok(())
        }
        ("", "v1", "ConfigMap") => push(inputs, at, prefix, value, |i| &mut i.config_maps),
        _ => Ok(()),
    }
}

/// Decodes one object into its list, defaulting its namespace and recording where it came from.
fn push<T: KubeObject + DeserializeOwned>(
    inputs: &mut Inputs,
    at: &mut DocumentLocation,
    prefix: &str,
    mut value: Value,
    list: impl FnOnce(&mut Inputs) -> &mut Vec<T>,
) -> Result<(), ManifestError> {
    normalize_metadata::<T>(at, prefix, &mut value)?;
    let object: T = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            prefix.trim_end_matches('.').to_string()
        } else {
            format!("{prefix}{path}")
        };
        field_error(at, &field, e.into_inner().to_string())
    })?;
    let reference = ObjectRef::of(&object);
    let origin = Origin {
        source: at.source_name.clone(),
        document: at.document,
    };
    if let Some(first) = inputs.origins.get(&reference) {
        return Err(ManifestError::DuplicateObject {
            at: at.clone(),
            first: first.clone(),
        });
    }
    inputs.origins.insert(reference, origin);
    list(inputs).push(object);
    Ok(())
}

/// Requires `metadata.name` and defaults `metadata.namespace`, naming the object in `at` so later
/// errors about the document say which object it is.
fn normalize_metadata<T: KubeObject>(
    at: &mut DocumentLocation,
    prefix: &str,
    value: &mut Value,
) -> Result<(), ManifestError> {
    let Some(root) = value.as_mapping_mut() else {
        return Err(type_meta_error(at, prefix, "must be a mapping"));
    };
    let metadata = root
        .entry("metadata".into())
        .or_insert_with(|| Value::Mapping(Mapping::new()));
    let Some(metadata) = metadata.as_mapping_mut() else {
        return Err(field_error(
            at,
            &format!("{prefix}metadata"),
            "must be a mapping",
        ));
    };
    let name = match metadata.get("name") {
        Some(Value::String(name)) if !name.is_empty() => name.clone(),
        _ => {
            at.object = Some(T::KIND.to_string());
            return Err(field_error(
                at,
                &format!("{prefix}metadata.name"),
                "required",
            ));
        }
    };
    let namespace = if T::NAMESPACED {
        match metadata.get("namespace") {
            Some(Value::String(ns)) if !ns.is_empty() => ns.clone(),
            _ => {
                metadata.insert("namespace".into(), DEFAULT_NAMESPACE.into());
                DEFAULT_NAMESPACE.to_string()
            }
        }
    } else {
        String::new()
    };
    let reference = ObjectRef {
        kind: T::KIND.to_string(),
        namespace,
        name,
    };
    at.object = Some(reference.to_string());
    Ok(())
}

/// Reads `apiVersion` and `kind`, both required.
fn type_meta(
    at: &DocumentLocation,
    value: &Value,
    prefix: &str,
) -> Result<(String, String), ManifestError> {
    if !value.is_mapping() {
        return Err(type_meta_error(
            at,
            prefix,
            "must be a mapping with apiVersion and kind",
        ));
    }
    let field = |name: &str| match value.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    };
    match (field("apiVersion"), field("kind")) {
        (Some(api_version), Some(kind)) => Ok((api_version, kind)),
        (None, _) => Err(type_meta_error(at, prefix, "apiVersion is required")),
        (_, None) => Err(type_meta_error(at, prefix, "kind is required")),
    }
}

fn type_meta_error(at: &DocumentLocation, prefix: &str, message: &str) -> ManifestError {
    let message = match prefix.trim_end_matches('.') {
        "" => format!("not a Kubernetes object: {message}"),
        item => format!("{item}: not a Kubernetes object: {message}"),
    };
    ManifestError::ReadTypeMeta {
        at: at.clone(),
        message,
    }
}

fn field_error(at: &DocumentLocation, field: &str, message: impl Into<String>) -> ManifestError {
    ManifestError::DecodeField {
        at: at.clone(),
        field: field.to_string(),
        message: message.into(),
    }
}

/// `stringData` is write-only convenience: the API server merges it over `data`, so do the same.
fn merge_string_data(secret: &mut Secret) {
    if let Some(string_data) = secret.string_data.take() {
        let data = secret.data.get_or_insert_with(Default::default);
        for (key, value) in string_data {
            data.insert(key, ByteString(value.into_bytes()));
        }
    }
}

/// `field: message`, or just the message when the error is about the whole object.
fn join_field(field: &str, message: &str) -> String {
    if field.is_empty() {
        message.to_string()
    } else {
        format!("{field}: {message}")
    }
}
