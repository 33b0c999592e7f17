//! Checking the assertion of an OAuth 2.0 JWT-bearer grant (RFC 7523) as Google's token endpoint
//! does for a service account: an RS256 JWT signed with the account's key, naming the key
//! (`kid`), the account (`iss`), the token endpoint (`aud`) and the scopes wanted (`scope`),
//! valid for at most an hour (`iat`, `exp`).
//!
//! Failures are Google's OAuth errors: `invalid_grant` with Google's descriptions for a bad
//! signature or key id (`Invalid JWT Signature.`), an unknown account, a wrong audience or bad
//! times; `invalid_scope` for a grant that asks for no scope.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::Value;

use crate::service_account::ServiceAccountKey;

/// The scope Vertex AI requires of an access token.
pub const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";

/// The longest life Google allows an assertion, in seconds.
const MAX_LIFETIME: i64 = 3600;
/// How far in the future `iat` may be, for clocks slightly ahead of the server's.
const CLOCK_SKEW: i64 = 300;

const BAD_SIGNATURE: &str = "Invalid JWT Signature.";
const BAD_TIMES: &str = "Invalid JWT: Token must be a short-lived token (60 minutes) and in a \
    reasonable timeframe. Check your iat and exp values in the JWT claim.";

/// A refused grant: the OAuth `error` and its `error_description`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct GrantError {
    pub error: &'static str,
    pub description: String,
}

fn invalid_grant(description: impl Into<String>) -> GrantError {
    GrantError {
        error: "invalid_grant",
        description: description.into(),
    }
}

/// What a valid assertion asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Grant {
    /// `scope` includes [`CLOUD_PLATFORM`], which Vertex AI requires.
    pub cloud_platform: bool,
}

/// Verifies `assertion` against `key`; `audiences` are the token URLs accepted as `aud`, `now`
/// the server's Unix time.
pub(crate) fn verify(
    key: &ServiceAccountKey,
    assertion: &str,
    audiences: &[&str],
    now: i64,
) -> Result<Grant, GrantError> {
    let header = jsonwebtoken::decode_header(assertion).map_err(|e| {
        invalid_grant(format!(
            "Invalid JWT: the assertion is not a signed JWT (header.claims.signature): {e}"
        ))
    })?;
    // Google looks the verifying key up by `kid`; a wrong one finds no key that verifies.
    if header.alg != Algorithm::RS256 || header.kid.as_deref() != Some(&key.private_key_id) {
        return Err(invalid_grant(BAD_SIGNATURE));
    }
    let mut validation = Validation::new(Algorithm::RS256);
    // The claims are checked below, to answer with Google's descriptions.
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_aud = false;
    let claims = jsonwebtoken::decode::<Value>(assertion, key.public_key(), &validation)
        .map_err(|e| match e.kind() {
            ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm => {
                invalid_grant(BAD_SIGNATURE)
            }
            _ => invalid_grant(format!("Invalid JWT: {e}")),
        })?
        .claims;

    if claims.get("iss").and_then(Value::as_str) != Some(key.client_email.as_str()) {
        return Err(invalid_grant("Invalid grant: account not found"));
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => audiences.contains(&a.as_str()),
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .any(|a| audiences.contains(&a)),
        _ => false,
    };
    if !aud_ok {
        let got = claims.get("aud").map(Value::to_string).unwrap_or_default();
        return Err(invalid_grant(format!(
            "Invalid JWT: Failed audience check. The expected value was {} but got {got}.",
            audiences.first().copied().unwrap_or_default()
        )));
    }
    let time = |name: &str| claims.get(name).and_then(Value::as_f64).map(|t| t as i64);
    let (Some(iat), Some(exp)) = (time("iat"), time("exp")) else {
        return Err(invalid_grant(BAD_TIMES));
    };
    let lifetime = exp.saturating_sub(iat);
    if lifetime <= 0
        || lifetime > MAX_LIFETIME
        || exp <= now
        || iat > now.saturating_add(CLOCK_SKEW)
    {
        return Err(invalid_grant(BAD_TIMES));
    }
    let scope = claims.get("scope").and_then(Value::as_str).unwrap_or("");
    if scope.trim().is_empty() {
        return Err(GrantError {
            error: "invalid_scope",
            description: "Invalid OAuth scope or ID token audience provided.".to_owned(),
        });
    }
    Ok(Grant {
        cloud_platform: scope.split_whitespace().any(|s| s == CLOUD_PLATFORM),
    })
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    use super::*;

    const KEY: &str = include_str!("../testdata/vertex-service-account.json");
    const AUD: &str = "http://127.0.0.1:1/token";
    const NOW: i64 = 1_750_000_000;

    fn key() -> ServiceAccountKey {
        ServiceAccountKey::from_json(KEY).unwrap()
    }

    fn sign(claims: &Value, kid: Option<&str>) -> String {
        let file: Value = serde_json::from_str(KEY).unwrap();
        let pem = file["private_key"].as_str().unwrap();
        let mut header = Header::new(Algorithm::RS256);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(
            &header,
            claims,
            &EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
        )
        .unwrap()
    }

    fn claims() -> Value {
        json!({
            "iss": "gateway@agw-test-project.iam.gserviceaccount.com",
            "scope": CLOUD_PLATFORM,
            "aud": AUD,
            "iat": NOW,
            "exp": NOW + 3600,
        })
    }

    fn check(claims: &Value) -> Result<Grant, GrantError> {
        let key = key();
        let jwt = sign(claims, Some(&key.private_key_id));
        verify(&key, &jwt, &[AUD], NOW + 1)
    }

    #[test]
    fn a_well_formed_grant_passes() {
        assert_eq!(
            check(&claims()),
            Ok(Grant {
                cloud_platform: true
            })
        );
        let mut other_scope = claims();
        other_scope["scope"] = "https://www.googleapis.com/auth/devstorage.read_only".into();
        assert_eq!(
            check(&other_scope),
            Ok(Grant {
                cloud_platform: false
            })
        );
    }

    #[test]
    fn each_claim_is_checked() {
        let with = |k: &str, v: Value| {
            let mut c = claims();
            c[k] = v;
            check(&c).unwrap_err()
        };
        assert_eq!(
            with("iss", "x@y".into()).description,
            "Invalid grant: account not found"
        );
        assert!(
            with("aud", "https://oauth2.googleapis.com/token".into())
                .description
                .contains("audience")
        );
        assert_eq!(with("exp", (NOW + 3601).into()).description, BAD_TIMES);
        assert_eq!(with("exp", NOW.into()).description, BAD_TIMES);
        assert_eq!(with("iat", (NOW + 3000).into()).description, BAD_TIMES);
        assert_eq!(with("scope", "".into()).error, "invalid_scope");
        let mut no_iat = claims();
        no_iat.as_object_mut().unwrap().remove("iat");
        assert_eq!(check(&no_iat).unwrap_err().description, BAD_TIMES);
    }

    #[test]
    fn signatures_and_key_ids_are_checked() {
        let key = key();
        let jwt = sign(&claims(), Some("another-key-id"));
        assert_eq!(
            verify(&key, &jwt, &[AUD], NOW).unwrap_err().description,
            BAD_SIGNATURE
        );
        let jwt = sign(&claims(), Some(&key.private_key_id));
        let (signed, _) = jwt.rsplit_once('.').unwrap();
        let forged = format!("{signed}.AAAA");
        assert_eq!(
            verify(&key, &forged, &[AUD], NOW).unwrap_err().description,
            BAD_SIGNATURE
        );
        let err = verify(&key, "not-a-jwt", &[AUD], NOW).unwrap_err();
        assert_eq!(err.error, "invalid_grant");
    }
}
