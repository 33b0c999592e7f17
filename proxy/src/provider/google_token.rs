//! Vertex AI access tokens from a service-account key: the OAuth2 JWT-bearer grant (RFC 7523,
//! as Google documents it for service accounts). A JWT signed RS256 with the key's
//! `private_key` (`iss` = `client_email`, `aud` = Google's token endpoint, the `cloud-platform`
//! scope, one hour) is exchanged at the key's `token_uri` for an access token, sent as
//! `Authorization: Bearer`.
//!
//! The token is cached and refreshed before it expires: once a quarter of its lifetime (at most
//! five minutes) remains, the next request starts one refresh in the background and keeps using
//! the current token. Only a request that finds no usable token waits, and concurrent ones share
//! one grant. The token endpoint is the key's own `token_uri`, so a test or a private endpoint
//! serves it by naming it in the key.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use agentgateway_crds::proxy_config::{EvictionConfig, ProviderConfig, TlsConfig};
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Uri, header};
use http_body_util::{BodyExt, Limited};
use jsonwebtoken::{Algorithm, EncodingKey, Header};

use crate::upstream::{UpstreamClient, build_client};
use crate::upstream_body::UpstreamBody;

/// The scope every Vertex AI call needs.
const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// The `aud` of every grant: Google documents it as always its token endpoint, wherever the grant
/// is posted (google-auth does the same).
const AUDIENCE: &str = "https://oauth2.googleapis.com/token";
/// The grant type of RFC 7523.
const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// The lifetime asked for in the assertion: Google's maximum.
const ASSERTION_LIFETIME_S: u64 = 3600;
/// The whole exchange with the token endpoint, connect included.
const GRANT_TIMEOUT: Duration = Duration::from_secs(10);
/// The most of the endpoint's answer read.
const MAX_ANSWER: usize = 64 << 10;
/// The longest endpoint error message kept for logs and the client's error.
const MAX_MESSAGE: usize = 256;

/// Why no access token could be had.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The key is not a usable service-account key.
    #[error("the service-account key is not usable: {0}")]
    InvalidKey(&'static str),
    /// The grant could not be signed.
    #[error("failed to sign the token grant: {0}")]
    Sign(String),
    /// The token endpoint could not be reached.
    #[error("failed to reach the token endpoint {endpoint}: {reason}")]
    Unreachable { endpoint: String, reason: String },
    /// The token endpoint did not answer in time.
    #[error("the token endpoint {0} did not answer within 10s")]
    TimedOut(String),
    /// The token endpoint refused the grant.
    #[error("the token endpoint refused the grant: HTTP {status}: {message}")]
    Refused { status: u16, message: String },
    /// The answer held no token.
    #[error("the token endpoint's answer holds no access token")]
    Malformed,
}

/// The access tokens of one `vertexai` provider.
pub struct GoogleTokens {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for GoogleTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key or a token.
        f.debug_struct("GoogleTokens")
            .field("client_email", &self.inner.email)
            .field("token_uri", &self.inner.token_uri)
            .finish_non_exhaustive()
    }
}

struct Inner {
    email: String,
    key: EncodingKey,
    key_id: Option<String>,
    token_uri: Uri,
    client: UpstreamClient,
    cached: Mutex<Option<Cached>>,
    /// Held while a grant is in flight, so concurrent requests share one.
    granting: tokio::sync::Mutex<()>,
}

#[derive(Clone)]
struct Cached {
    bearer: HeaderValue,
    refresh_at: Instant,
    expires_at: Instant,
    refreshing: bool,
}

#[derive(serde::Deserialize)]
struct ServiceAccount {
    client_email: String,
    private_key: String,
    #[serde(default)]
    private_key_id: Option<String>,
    token_uri: String,
}

#[derive(serde::Serialize)]
struct Claims<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
}

#[derive(serde::Deserialize)]
struct Granted {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl GoogleTokens {
    /// Tokens for the service-account key `key` (the JSON the compiler re-encodes).
    pub fn new(key: &str) -> Result<Self, TokenError> {
        let account: ServiceAccount = serde_json::from_str(key)
            .map_err(|_| TokenError::InvalidKey("it is not a service-account key JSON"))?;
        let encoding = EncodingKey::from_rsa_pem(account.private_key.as_bytes())
            .map_err(|_| TokenError::InvalidKey("its private_key is not an RSA key in PEM"))?;
        let token_uri: Uri = account
            .token_uri
            .parse()
            .map_err(|_| TokenError::InvalidKey("its token_uri is not a URL"))?;
        let (https, port) = match token_uri.scheme_str() {
            Some("https") => (true, 443),
            Some("http") => (false, 80),
            _ => return Err(TokenError::InvalidKey("its token_uri is not http(s)")),
        };
        let host = token_uri
            .host()
            .ok_or(TokenError::InvalidKey("its token_uri has no host"))?;
        // The token endpoint is Google's (or the key's own), never the provider's endpoint: it
        // gets the public web roots, not the provider's TLS settings.
        let endpoint = ProviderConfig {
            name: "vertexai-token-endpoint".into(),
            host: host.to_string(),
            port: token_uri.port_u16().unwrap_or(port),
            tls: https.then(TlsConfig::default),
            connect_timeout_ms: GRANT_TIMEOUT.as_millis() as u64,
            request_timeout_ms: GRANT_TIMEOUT.as_millis() as u64,
            eviction: EvictionConfig {
                base_ms: 1,
                max_ms: 1,
                consecutive_failures: 1,
            },
            ..ProviderConfig::default()
        };
        let client = build_client(&endpoint)
            .map_err(|_| TokenError::InvalidKey("its token endpoint cannot be reached over TLS"))?;
        Ok(Self {
            inner: Arc::new(Inner {
                email: account.client_email,
                key: encoding,
                key_id: account.private_key_id,
                token_uri,
                client,
                cached: Mutex::new(None),
                granting: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// The `Authorization` value for the next request: the cached token while it is valid
    /// (starting a refresh in the background when it nears its end), else a new one.
    pub async fn bearer(&self) -> Result<HeaderValue, TokenError> {
        if let Some(bearer) = self.inner.usable(true) {
            return Ok(bearer);
        }
        let _granting = self.inner.granting.lock().await;
        // Another request may have obtained one while this one waited.
        if let Some(bearer) = self.inner.usable(false) {
            return Ok(bearer);
        }
        self.inner.grant().await
    }

    /// Forgets the cached token: the provider refused it (revoked, or the key rotated), so the
    /// next request obtains a new one instead of failing until it expires.
    pub fn invalidate(&self) {
        *self
            .inner
            .cached
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }
}

impl Inner {
    /// The cached token if it is still valid; when `refresh` and it nears its end, one
    /// background refresh is started.
    fn usable(self: &Arc<Self>, refresh: bool) -> Option<HeaderValue> {
        let now = Instant::now();
        let mut cached = self
            .cached
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = cached.as_mut().filter(|c| now < c.expires_at)?;
        if refresh && now >= entry.refresh_at && !entry.refreshing {
            entry.refreshing = true;
            let inner = self.clone();
            tokio::spawn(async move {
                let _granting = inner.granting.lock().await;
                if let Err(e) = inner.grant().await {
                    tracing::warn!(client_email = %inner.email, error = %e,
                        "failed to refresh the Vertex AI access token; the current one is used until it expires");
                    if let Some(entry) = inner
                        .cached
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .as_mut()
                    {
                        entry.refreshing = false;
                    }
                }
            });
        }
        Some(entry.bearer.clone())
    }

    /// Exchanges a new assertion for a token and caches it.
    async fn grant(&self) -> Result<HeaderValue, TokenError> {
        let assertion = self.assertion()?;
        let body = format!("grant_type={}&assertion={assertion}", urlencode(GRANT_TYPE));
        let endpoint = self.token_uri.to_string();
        let request = Request::builder()
            .method(Method::POST)
            .uri(self.token_uri.clone())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json")
            .body(UpstreamBody::full(Bytes::from(body)))
            .map_err(|e| TokenError::Unreachable {
                endpoint: endpoint.clone(),
                reason: e.to_string(),
            })?;
        let started = Instant::now();
        let exchange = async {
            let response =
                self.client
                    .request(request)
                    .await
                    .map_err(|e| TokenError::Unreachable {
                        endpoint: endpoint.clone(),
                        reason: e.to_string(),
                    })?;
            let status = response.status();
            let bytes = Limited::new(response.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map(|c| c.to_bytes())
                .map_err(|e| TokenError::Unreachable {
                    endpoint: endpoint.clone(),
                    reason: e.to_string(),
                })?;
            Ok::<_, TokenError>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(GRANT_TIMEOUT, exchange)
            .await
            .map_err(|_| TokenError::TimedOut(endpoint.clone()))??;
        if !status.is_success() {
            return Err(TokenError::Refused {
                status: status.as_u16(),
                message: refusal(&bytes),
            });
        }
        let granted: Granted = serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)?;
        let mut bearer = HeaderValue::try_from(format!("Bearer {}", granted.access_token))
            .map_err(|_| TokenError::Malformed)?;
        if granted.access_token.is_empty() {
            return Err(TokenError::Malformed);
        }
        bearer.set_sensitive(true);
        let lifetime = lifetime(granted.expires_in);
        // Stop using a token a little before Google does, and refresh well before that.
        let expires_at = started + lifetime - (lifetime / 10).min(Duration::from_secs(10));
        let refresh_at = started + lifetime - (lifetime / 4).min(Duration::from_secs(300));
        *self
            .cached
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Cached {
            bearer: bearer.clone(),
            refresh_at,
            expires_at,
            refreshing: false,
        });
        tracing::debug!(client_email = %self.email, lifetime_s = lifetime.as_secs(), "obtained a Vertex AI access token");
        Ok(bearer)
    }

    /// The signed JWT of the grant.
    fn assertion(&self) -> Result<String, TokenError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut header = Header::new(Algorithm::RS256);
        header.kid = self.key_id.clone();
        let claims = Claims {
            iss: &self.email,
            scope: SCOPE,
            aud: AUDIENCE,
            iat: now,
            exp: now + ASSERTION_LIFETIME_S,
        };
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| TokenError::Sign(e.to_string()))
    }
}

/// The longest token lifetime believed: Google's last at most 12 hours, and a larger
/// `expires_in` (up to `u64::MAX`) must neither overflow the clock nor pin a token for ever.
const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// The lifetime of a granted token: its `expires_in` (the assertion's when absent), bounded.
fn lifetime(expires_in: Option<u64>) -> Duration {
    Duration::from_secs(expires_in.unwrap_or(ASSERTION_LIFETIME_S)).min(MAX_LIFETIME)
}

/// What the endpoint said, bounded: OAuth's `error_description` or `error`.
fn refusal(bytes: &[u8]) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(bytes).ok();
    let message = parsed
        .as_ref()
        .and_then(|v| {
            v.get("error_description")
                .or_else(|| v.get("error"))
                .and_then(serde_json::Value::as_str)
        })
        .unwrap_or("no error description");
    let mut message: String = message.chars().filter(|c| !c.is_control()).collect();
    if message.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
    }
    message
}

/// `application/x-www-form-urlencoded` escaping of a value.
fn urlencode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = include_str!("../../../mock-llm/testdata/vertex-service-account.json");

    #[test]
    fn a_key_needs_an_rsa_private_key_and_an_http_token_uri() {
        assert!(GoogleTokens::new(KEY).is_ok());
        let mut key: serde_json::Value = serde_json::from_str(KEY).unwrap();
        key["token_uri"] = "ftp://example.com/token".into();
        assert!(matches!(
            GoogleTokens::new(&key.to_string()),
            Err(TokenError::InvalidKey(_))
        ));
        key["token_uri"] = "https://oauth2.googleapis.com/token".into();
        key["private_key"] =
            "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n".into();
        let error = GoogleTokens::new(&key.to_string()).unwrap_err();
        assert!(!error.to_string().contains("not a key"), "{error}");
        assert!(!format!("{:?}", GoogleTokens::new(KEY).unwrap()).contains("PRIVATE"));
    }

    #[test]
    fn the_assertion_is_an_rs256_jwt_for_the_token_endpoint() {
        let tokens = GoogleTokens::new(KEY).unwrap();
        let jwt = tokens.inner.assertion().unwrap();
        let header = jsonwebtoken::decode_header(&jwt).unwrap();
        assert_eq!(header.alg, Algorithm::RS256);
        assert_eq!(
            header.kid.as_deref(),
            Some("0123456789abcdef0123456789abcdef01234567")
        );
        let payload = jwt.split('.').nth(1).unwrap();
        use base64::Engine;
        let claims: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            claims["iss"],
            "gateway@agw-test-project.iam.gserviceaccount.com"
        );
        assert_eq!(claims["aud"], "https://oauth2.googleapis.com/token");
        assert_eq!(claims["scope"], SCOPE);
        assert_eq!(
            claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
            ASSERTION_LIFETIME_S
        );
    }

    #[test]
    fn a_lifetime_is_bounded_so_no_answer_overflows_the_clock() {
        assert_eq!(lifetime(Some(3599)), Duration::from_secs(3599));
        assert_eq!(lifetime(None), Duration::from_secs(ASSERTION_LIFETIME_S));
        assert_eq!(lifetime(Some(u64::MAX)), MAX_LIFETIME);
        let _ = Instant::now() + lifetime(Some(u64::MAX));
    }

    #[test]
    fn a_refusal_is_bounded_and_has_no_control_characters() {
        let long = format!(
            r#"{{"error":"invalid_grant","error_description":"{}\n"}}"#,
            "é".repeat(400)
        );
        let message = refusal(long.as_bytes());
        assert!(message.len() <= MAX_MESSAGE && !message.contains('\n'));
        assert_eq!(refusal(br#"{"error":"invalid_grant"}"#), "invalid_grant");
        assert_eq!(refusal(b"<html>"), "no error description");
        assert_eq!(
            urlencode(GRANT_TYPE),
            "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"
        );
    }
}
