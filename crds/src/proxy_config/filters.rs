//! What a rule's (and a weighted backend's) HTTPRoute filters and timeouts become in the proxy's
//! config: resolved (header names lower case, the redirect's status code defaulted), so the
//! proxy parses each name and value once at load and does nothing per request for a rule
//! without filters. Rules: [`crate::validation::filters`].

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `RequestHeaderModifier` / `ResponseHeaderModifier`: `set` replaces, `add` appends, `remove`
/// deletes; applied in that order.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct HeaderModifierConfig {
    /// Headers set, replacing the message's values; names lower case and unique.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set: Vec<HeaderConfig>,
    /// Headers appended to the message's values; names lower case and unique.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<HeaderConfig>,
    /// Header names removed; lower case and unique.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

impl HeaderModifierConfig {
    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }
}

/// A header a filter writes.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct HeaderConfig {
    /// The name, lower case.
    pub name: String,
    /// The value.
    pub value: String,
}

/// How a redirect or a rewrite changes the request's path.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "type", content = "value")]
pub enum PathModifierConfig {
    /// The path becomes the value.
    ReplaceFullPath(String),
    /// The prefix the matching `PathPrefix` match matched becomes the value (every match of the
    /// rule is a `PathPrefix`).
    ReplacePrefixMatch(String),
}

/// `RequestRedirect`: the proxy answers with a redirect; nothing is sent upstream.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RedirectConfig {
    /// `http` or `https`; absent: the request's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    /// The host; absent: the request's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The port; absent: the scheme's well-known port when `scheme` is set, else the listener's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The path change; absent: the request's path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathModifierConfig>,
    /// 301, 302, 303, 307 or 308.
    pub status_code: u16,
}
