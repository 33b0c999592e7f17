//! AWS Signature Version 4 as Bedrock checks it: the server re-signs the request with the
//! configured credentials (`aws-sigv4`, the signer the AWS SDKs use) and compares signatures.
//!
//! The re-signing takes the method, the request target exactly as received (path still
//! percent-encoded), only the headers named in `SignedHeaders`, the body bytes, the region and
//! date of the credential scope, service `bedrock`, and the time of `x-amz-date`. It uses
//! [`SigningSettings::default`], which is what the AWS SDK uses for `bedrock-runtime`: the
//! canonical URI is the received path normalized (RFC 3986 dot segments) and percent-encoded
//! *again* (`PercentEncodingMode::Double`, so a model ARN's `%3A` signs as `%253A`); only S3
//! signs single-encoded, unnormalized paths. A client signing with default settings and
//! `SignableBody::Bytes` of the body it sends matches.
//!
//! Rejections are 403s named as AWS names them, checked in this order: no `Authorization`
//! (`MissingAuthenticationTokenException`), a malformed one or no `x-amz-date`
//! (`IncompleteSignatureException`), an unknown access key id or a missing, unexpected or wrong
//! `x-amz-security-token` (`UnrecognizedClientException`), a scope for another service or
//! date, a date more than 5 minutes off, or a signature that does not match
//! (`InvalidSignatureException`).

use std::fmt;
use std::time::{Duration, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SigningParams as HttpSigningParams, SigningSettings, sign,
};
use aws_sigv4::sign::v4::SigningParams;
use aws_smithy_runtime_api::client::identity::Identity;
use aws_smithy_types::DateTime;
use aws_smithy_types::date_time::Format;

use crate::http::ProviderHead;

/// The signing service name of `bedrock-runtime`.
pub const SERVICE: &str = "bedrock";

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// How far `x-amz-date` may be from the server's clock, as AWS allows.
const MAX_SKEW_SECS: i64 = 5 * 60;
/// Bounds the `SignedHeaders` list (a request has at most 64 headers anyway).
const MAX_SIGNED_HEADERS: usize = 64;

pub(crate) const SIGNATURE_MISMATCH: &str = "The request signature we calculated does not match \
    the signature you provided. Check your AWS Secret Access Key and signing method. Consult the \
    service documentation for details.";
const BAD_TOKEN: &str = "The security token included in the request is invalid.";

/// AWS credentials the server checks Bedrock requests against.
#[derive(Clone, PartialEq, Eq)]
pub struct AwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Temporary credentials' token, which then must come as `x-amz-security-token`.
    pub session_token: Option<String>,
}

impl AwsCredentials {
    pub fn new(access_key_id: impl Into<String>, secret_access_key: impl Into<String>) -> Self {
        AwsCredentials {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token: None,
        }
    }

    pub fn with_session_token(mut self, token: impl Into<String>) -> Self {
        self.session_token = Some(token.into());
        self
    }

    fn identity(&self) -> Identity {
        Credentials::new(
            self.access_key_id.clone(),
            self.secret_access_key.clone(),
            self.session_token.clone(),
            None,
            "mock-llm",
        )
        .into()
    }
}

/// Secrets stay out of logs and test output.
impl fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Why a request's signature was refused: always a 403 with this `x-amzn-errortype`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Rejection {
    pub error_type: &'static str,
    pub message: String,
}

impl Rejection {
    fn new(error_type: &'static str, message: impl Into<String>) -> Self {
        Rejection {
            error_type,
            message: message.into(),
        }
    }

    fn incomplete(message: impl Into<String>) -> Self {
        Rejection::new("IncompleteSignatureException", message)
    }

    fn invalid(message: impl Into<String>) -> Self {
        Rejection::new("InvalidSignatureException", message)
    }

    fn unrecognized() -> Self {
        Rejection::new("UnrecognizedClientException", BAD_TOKEN)
    }
}

/// The parts of `AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/SERVICE/aws4_request,
/// SignedHeaders=a;b, Signature=HEX`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Authorization<'a> {
    pub access_key_id: &'a str,
    pub date: &'a str,
    pub region: &'a str,
    pub service: &'a str,
    pub signed_headers: Vec<&'a str>,
    pub signature: &'a str,
}

pub(crate) fn parse_authorization(value: &str) -> Result<Authorization<'_>, Rejection> {
    let value = value.trim();
    let params = value
        .strip_prefix(ALGORITHM)
        .filter(|rest| rest.starts_with(' '))
        .ok_or_else(|| {
            Rejection::incomplete(format!(
                "Authorization header requires '{ALGORITHM}' as its scheme. Authorization={value}"
            ))
        })?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in params.split(',') {
        let Some((key, v)) = part.trim().split_once('=') else {
            continue;
        };
        let slot = match key {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed,
            "Signature" => &mut signature,
            _ => continue,
        };
        slot.get_or_insert(v);
    }
    let missing = |name: &str| {
        Rejection::incomplete(format!(
            "Authorization header requires '{name}' parameter. Authorization={value}"
        ))
    };
    let credential = credential.ok_or_else(|| missing("Credential"))?;
    let signed = signed.ok_or_else(|| missing("SignedHeaders"))?;
    let signature = signature.ok_or_else(|| missing("Signature"))?;

    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, terminator] = scope[..] else {
        return Err(Rejection::incomplete(format!(
            "Credential should be scoped to a valid region, a service and the terminator \
             'aws4_request' (AKID/YYYYMMDD/REGION/SERVICE/aws4_request), got '{credential}'."
        )));
    };
    if terminator != "aws4_request" {
        return Err(Rejection::incomplete(
            "Credential should be scoped with a valid terminator: 'aws4_request'.",
        ));
    }
    if access_key_id.is_empty() || region.is_empty() {
        return Err(Rejection::incomplete(
            "Credential should be scoped to a valid region and access key id.",
        ));
    }
    let signed_headers: Vec<&str> = signed.split(';').collect();
    if signed_headers.len() > MAX_SIGNED_HEADERS || signed_headers.iter().any(|h| h.is_empty()) {
        return Err(Rejection::incomplete(format!(
            "SignedHeaders '{signed}' is not a ';'-separated list of header names."
        )));
    }
    Ok(Authorization {
        access_key_id,
        date,
        region,
        service,
        signed_headers,
        signature,
    })
}

/// `YYYYMMDD'T'HHMMSS'Z'` as Unix seconds.
fn parse_amz_date(v: &str) -> Option<i64> {
    let b = v.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' || !digits(0..8) || !digits(9..15) {
        return None;
    }
    let extended = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &v[0..4],
        &v[4..6],
        &v[6..8],
        &v[9..11],
        &v[11..13],
        &v[13..15]
    );
    DateTime::from_str(&extended, Format::DateTime)
        .ok()
        .map(|d| d.secs())
}

/// Unix seconds as `YYYYMMDD'T'HHMMSS'Z'`.
fn format_amz_date(secs: i64) -> String {
    DateTime::from_secs(secs)
        .fmt(Format::DateTime)
        .map(|s| s.replace(['-', ':'], ""))
        .unwrap_or_else(|_| secs.to_string())
}

/// What a verified (or, unchecked, merely parsed) signature tells about the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Signer {
    pub access_key_id: String,
    pub region: String,
}

/// Verifies the request's SigV4 signature against `creds` at Unix time `now`.
pub(crate) fn verify(
    creds: &AwsCredentials,
    method: &str,
    head: &ProviderHead,
    body: &[u8],
    now: i64,
) -> Result<Signer, Rejection> {
    let auth = head.header_values("authorization").next().ok_or_else(|| {
        Rejection::new(
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        )
    })?;
    let auth = parse_authorization(auth)?;
    let amz_date = head.header_values("x-amz-date").next().ok_or_else(|| {
        Rejection::incomplete(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        )
    })?;
    let amz_date = amz_date.trim();
    let signed_at = parse_amz_date(amz_date).ok_or_else(|| {
        Rejection::incomplete(format!(
            "Date must be in ISO-8601 'basic format'. Got '{amz_date}'. See \
             http://en.wikipedia.org/wiki/ISO_8601"
        ))
    })?;
    if auth.access_key_id != creds.access_key_id {
        return Err(Rejection::unrecognized());
    }
    let token = head.header_values("x-amz-security-token").next();
    if token.map(str::trim) != creds.session_token.as_deref() {
        return Err(Rejection::unrecognized());
    }
    if auth.date != &amz_date[..8] {
        return Err(Rejection::invalid(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from \
             HTTP: '{}' != '{}', from '{amz_date}'.",
            auth.date,
            &amz_date[..8]
        )));
    }
    if auth.service != SERVICE {
        return Err(Rejection::invalid(format!(
            "Credential should be scoped to correct service: '{SERVICE}'. "
        )));
    }
    let (earliest, latest) = (
        now.saturating_sub(MAX_SKEW_SECS),
        now.saturating_add(MAX_SKEW_SECS),
    );
    if signed_at < earliest {
        return Err(Rejection::invalid(format!(
            "Signature expired: {amz_date} is now earlier than {} ({} - 5 min.)",
            format_amz_date(earliest),
            format_amz_date(now)
        )));
    }
    if signed_at > latest {
        return Err(Rejection::invalid(format!(
            "Signature not yet current: {amz_date} is still later than {} ({} + 5 min.)",
            format_amz_date(latest),
            format_amz_date(now)
        )));
    }

    let expected = expected_signature(creds, method, head, body, &auth, signed_at)
        .ok_or_else(|| Rejection::invalid(SIGNATURE_MISMATCH))?;
    if !expected.eq_ignore_ascii_case(auth.signature) {
        return Err(Rejection::invalid(SIGNATURE_MISMATCH));
    }
    Ok(Signer {
        access_key_id: auth.access_key_id.to_owned(),
        region: auth.region.to_owned(),
    })
}

/// The signature `creds` give this request; `None` when it cannot be signed at all (a header
/// value or target that is no valid HTTP), which can then match nothing.
fn expected_signature(
    creds: &AwsCredentials,
    method: &str,
    head: &ProviderHead,
    body: &[u8],
    auth: &Authorization<'_>,
    signed_at: i64,
) -> Option<String> {
    let mut names: Vec<String> = auth
        .signed_headers
        .iter()
        .map(|n| n.to_ascii_lowercase())
        .collect();
    names.sort();
    names.dedup();
    let headers: Vec<(&str, &str)> = names
        .iter()
        .flat_map(|name| head.header_values(name).map(move |v| (name.as_str(), v)))
        .collect();
    // The signer reads the host from the URI when `host` is not among the headers; an authority
    // that is no real host keeps an unsigned `Host` from ever matching.
    let uri = if head.target.starts_with('/') {
        format!("http://unsigned-host.invalid{}", head.target)
    } else {
        head.target.clone()
    };
    let request =
        SignableRequest::new(method, uri, headers.into_iter(), SignableBody::Bytes(body)).ok()?;
    let identity = creds.identity();
    let time = UNIX_EPOCH + Duration::from_secs(u64::try_from(signed_at).ok()?);
    let params: HttpSigningParams<'_> = SigningParams::builder()
        .identity(&identity)
        .region(auth.region)
        .name(SERVICE)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .ok()?
        .into();
    let output = sign(request, &params).ok()?;
    Some(output.signature().to_owned())
}

#[cfg(test)]
mod tests {
    use aws_sigv4::http_request::SignableBody;

    use super::*;

    const NOW: i64 = 1_735_732_800; // 2025-01-01T12:00:00Z

    fn creds() -> AwsCredentials {
        AwsCredentials::new("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    }

    /// Signs like a client would: default settings, the path as sent.
    fn signed_head(creds: &AwsCredentials, target: &str, body: &[u8], at: i64) -> ProviderHead {
        let mut headers = vec![
            ("host".to_owned(), "127.0.0.1:9".to_owned()),
            ("content-type".to_owned(), "application/json".to_owned()),
        ];
        let pairs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let request = SignableRequest::new(
            "POST",
            format!("http://127.0.0.1:9{target}"),
            pairs.into_iter(),
            SignableBody::Bytes(body),
        )
        .unwrap();
        let identity = creds.identity();
        let params: HttpSigningParams<'_> = SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name(SERVICE)
            .time(UNIX_EPOCH + Duration::from_secs(at as u64))
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let (instructions, _) = sign(request, &params).unwrap().into_parts();
        for (name, value) in instructions.headers() {
            headers.push((name.to_owned(), value.to_owned()));
        }
        ProviderHead {
            target: target.to_owned(),
            headers,
            ..ProviderHead::default()
        }
    }

    const ARN_PATH: &str =
        "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.x/converse";

    #[test]
    fn a_default_signed_request_verifies_and_names_its_region() {
        let body = br#"{"messages":[]}"#;
        let head = signed_head(&creds(), ARN_PATH, body, NOW);
        let signer = verify(&creds(), "POST", &head, body, NOW + 10).unwrap();
        assert_eq!(signer.region, "us-east-1");
        assert_eq!(signer.access_key_id, "AKIDEXAMPLE");
    }

    #[test]
    fn tampering_or_wrong_keys_are_rejected_by_name() {
        let body = br#"{"messages":[]}"#;
        let head = signed_head(&creds(), ARN_PATH, body, NOW);
        let err = |r: Result<Signer, Rejection>| r.unwrap_err().error_type;

        assert_eq!(
            err(verify(&creds(), "POST", &head, b"{}", NOW)),
            "InvalidSignatureException"
        );
        let mut other_secret = creds();
        other_secret.secret_access_key = "other".into();
        assert_eq!(
            err(verify(&other_secret, "POST", &head, body, NOW)),
            "InvalidSignatureException"
        );
        let other_id = AwsCredentials::new("AKIDOTHER", "x");
        assert_eq!(
            err(verify(&other_id, "POST", &head, body, NOW)),
            "UnrecognizedClientException"
        );
        let with_token = creds().with_session_token("tok");
        assert_eq!(
            err(verify(&with_token, "POST", &head, body, NOW)),
            "UnrecognizedClientException"
        );
        let late = verify(&creds(), "POST", &head, body, NOW + 301).unwrap_err();
        assert!(late.message.starts_with("Signature expired: "), "{late:?}");
        let early = verify(&creds(), "POST", &head, body, NOW - 301).unwrap_err();
        assert!(
            early.message.starts_with("Signature not yet current"),
            "{early:?}"
        );

        let mut unsigned_path = head.clone();
        unsigned_path.target = ARN_PATH.replace("us.x", "us.y");
        assert_eq!(
            err(verify(&creds(), "POST", &unsigned_path, body, NOW)),
            "InvalidSignatureException"
        );
        let mut no_auth = head.clone();
        no_auth.headers.retain(|(n, _)| n != "authorization");
        assert_eq!(
            err(verify(&creds(), "POST", &no_auth, body, NOW)),
            "MissingAuthenticationTokenException"
        );
    }

    #[test]
    fn session_tokens_must_come_and_match() {
        let body = b"{}";
        let creds = creds().with_session_token("session-token");
        let head = signed_head(&creds, ARN_PATH, body, NOW);
        assert!(head.header_values("x-amz-security-token").next().is_some());
        verify(&creds, "POST", &head, body, NOW).unwrap();
        let mut forged = head.clone();
        for (n, v) in &mut forged.headers {
            if n == "x-amz-security-token" {
                *v = "other".into();
            }
        }
        assert_eq!(
            verify(&creds, "POST", &forged, body, NOW)
                .unwrap_err()
                .error_type,
            "UnrecognizedClientException"
        );
    }

    #[test]
    fn authorization_parsing() {
        let a = parse_authorization(
            "AWS4-HMAC-SHA256 Credential=AK/20250101/eu-west-3/bedrock/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, Signature=abc",
        )
        .unwrap();
        assert_eq!(
            (a.access_key_id, a.date, a.region, a.service, a.signature),
            ("AK", "20250101", "eu-west-3", "bedrock", "abc")
        );
        assert_eq!(a.signed_headers, ["content-type", "host", "x-amz-date"]);
        for bad in [
            "Bearer x",
            "AWS4-HMAC-SHA256",
            "AWS4-HMAC-SHA256 SignedHeaders=host, Signature=x",
            "AWS4-HMAC-SHA256 Credential=AK/20250101/r/bedrock/aws4, SignedHeaders=host, Signature=x",
            "AWS4-HMAC-SHA256 Credential=AK/20250101/r/bedrock/aws4_request, SignedHeaders=a;;b, Signature=x",
        ] {
            let e = parse_authorization(bad).unwrap_err();
            assert_eq!(e.error_type, "IncompleteSignatureException", "{bad}");
        }
    }

    #[test]
    fn amz_dates_round_trip() {
        assert_eq!(parse_amz_date("20250101T120000Z"), Some(NOW));
        assert_eq!(format_amz_date(NOW), "20250101T120000Z");
        for bad in [
            "2025-01-01T12:00:00Z",
            "20250101T120000",
            "20251301T120000Z",
            "",
        ] {
            assert_eq!(parse_amz_date(bad), None, "{bad}");
        }
    }
}
