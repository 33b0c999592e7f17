//! Amazon Bedrock's request signing: AWS Signature Version 4 (service `bedrock`) over the
//! method, URI, `host`, `content-type` and the exact body bytes, with the `aws-sigv4` crate and
//! the credentials of the provider's `auth.aws` Secret. Only those headers are signed: the
//! client's other headers travel unsigned, so nothing a client sends can break the signature.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use http::{HeaderMap, Request, header};

/// The SigV4 signing name of Bedrock's runtime API.
const SERVICE: &str = "bedrock";

/// The headers signed: those SigV4 requires and the one that says how to read the body.
const SIGNED_HEADERS: [header::HeaderName; 2] = [header::HOST, header::CONTENT_TYPE];

/// Signs requests for one `bedrock` provider.
pub struct AwsSigner {
    identity: Identity,
    region: String,
}

impl std::fmt::Debug for AwsSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the keys.
        f.debug_struct("AwsSigner")
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// Why a Bedrock provider's credentials cannot be used, or a request cannot be signed.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    /// The credential is not the JSON object the compiler writes.
    #[error("the AWS credential is not an object with accessKeyId and secretAccessKey")]
    InvalidCredential,
    /// The signer refused the request.
    #[error("failed to sign the request with SigV4: {0}")]
    Sign(String),
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct AwsCredential {
    access_key_id: String,
    secret_access_key: String,
    #[serde(default)]
    session_token: Option<String>,
}

impl AwsSigner {
    /// A signer for `region` with `credential` (`{"accessKeyId", "secretAccessKey",
    /// "sessionToken"?}`).
    pub fn new(credential: &str, region: &str) -> Result<Self, SigningError> {
        let parsed: AwsCredential =
            serde_json::from_str(credential).map_err(|_| SigningError::InvalidCredential)?;
        if parsed.access_key_id.is_empty() || parsed.secret_access_key.is_empty() {
            return Err(SigningError::InvalidCredential);
        }
        let credentials = Credentials::new(
            parsed.access_key_id,
            parsed.secret_access_key,
            parsed.session_token.filter(|t| !t.is_empty()),
            None,
            "agentgateway-secret",
        );
        Ok(Self {
            identity: credentials.into(),
            region: region.to_string(),
        })
    }

    /// Adds `authorization`, `x-amz-date` and, with temporary credentials,
    /// `x-amz-security-token` to `request`, whose body is `body`.
    pub fn sign<B>(&self, request: &mut Request<B>, body: &[u8]) -> Result<(), SigningError> {
        self.sign_at(request, body, SystemTime::now())
    }

    fn sign_at<B>(
        &self,
        request: &mut Request<B>,
        body: &[u8],
        time: SystemTime,
    ) -> Result<(), SigningError> {
        let params = v4::SigningParams::builder()
            .identity(&self.identity)
            .region(&self.region)
            .name(SERVICE)
            .time(time)
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| SigningError::Sign(e.to_string()))?
            .into();
        let uri = request.uri().to_string();
        let headers = signed_headers(request.headers());
        let signable = SignableRequest::new(
            request.method().as_str(),
            &uri,
            headers
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_str())),
            SignableBody::Bytes(body),
        )
        .map_err(|e| SigningError::Sign(e.to_string()))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|e| SigningError::Sign(e.to_string()))?
            .into_parts();
        instructions.apply_to_request_http1x(request);
        for (name, value) in request.headers_mut().iter_mut() {
            if name == header::AUTHORIZATION || name.as_str() == "x-amz-security-token" {
                value.set_sensitive(true);
            }
        }
        Ok(())
    }
}

/// The request's headers that are signed, as text (a value that is not text is not signed).
fn signed_headers(headers: &HeaderMap) -> Vec<(header::HeaderName, String)> {
    SIGNED_HEADERS
        .iter()
        .filter_map(|name| {
            let value = headers.get(name)?.to_str().ok()?;
            Some((name.clone(), value.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(token: Option<&str>) -> AwsSigner {
        let credential = serde_json::json!({
            "accessKeyId": "AKIDEXAMPLE",
            "secretAccessKey": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "sessionToken": token,
        });
        AwsSigner::new(&credential.to_string(), "us-east-1").unwrap()
    }

    fn request() -> Request<()> {
        Request::post("https://bedrock-runtime.us-east-1.amazonaws.com/model/m%3A0/converse")
            .header("host", "bedrock-runtime.us-east-1.amazonaws.com")
            .header("content-type", "application/json")
            .header("x-client-header", "anything")
            .body(())
            .unwrap()
    }

    #[test]
    fn a_request_gets_a_v4_signature_over_host_and_content_type() {
        let mut request = request();
        let time = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        signer(None).sign_at(&mut request, b"{}", time).unwrap();
        let auth = request.headers()["authorization"].to_str().unwrap();
        assert!(
            auth.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20231114/us-east-1/bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature="
            ),
            "{auth}"
        );
        assert!(request.headers()["authorization"].is_sensitive());
        assert_eq!(request.headers()["x-amz-date"], "20231114T221320Z");
        assert!(!request.headers().contains_key("x-amz-security-token"));

        // The same request and time sign the same; another body does not.
        let mut again = super::tests::request();
        signer(None).sign_at(&mut again, b"{}", time).unwrap();
        assert_eq!(
            again.headers()["authorization"],
            request.headers()["authorization"]
        );
        let mut other = super::tests::request();
        signer(None).sign_at(&mut other, b"{ }", time).unwrap();
        assert_ne!(
            other.headers()["authorization"],
            request.headers()["authorization"]
        );
    }

    #[test]
    fn temporary_credentials_send_their_session_token() {
        let mut request = request();
        signer(Some("session-tok"))
            .sign(&mut request, b"{}")
            .unwrap();
        assert_eq!(request.headers()["x-amz-security-token"], "session-tok");
        assert!(request.headers()["x-amz-security-token"].is_sensitive());
        let auth = request.headers()["authorization"].to_str().unwrap();
        assert!(auth.contains("x-amz-security-token"), "{auth}");
    }

    #[test]
    fn a_credential_that_is_not_the_compilers_json_is_refused_without_echoing_it() {
        for bad in [
            "AKID:hunter2",
            r#"{"accessKeyId":"hunter2"}"#,
            r#"{"accessKeyId":"","secretAccessKey":"hunter2"}"#,
        ] {
            let error = AwsSigner::new(bad, "us-east-1").unwrap_err();
            assert!(!error.to_string().contains("hunter2"), "{error}");
        }
        assert!(!format!("{:?}", signer(Some("tok"))).contains("EXAMPLEKEY"));
    }
}
