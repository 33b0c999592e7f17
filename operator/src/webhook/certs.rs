//! The webhook's certificates, generated with rcgen: a CA (its PEM is the webhook configurations'
//! `caBundle`) and a serving certificate it signs for the webhook Service's DNS names. Pure: the
//! clock is an argument, so renewal decisions are tested without waiting.

use std::net::IpAddr;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use time::OffsetDateTime;
use x509_parser::extensions::GeneralName;
use x509_parser::pem::Pem;

/// Certificates are valid from a little before they are made: clocks of the API server and the
/// operator's node may differ.
const BACKDATE: Duration = Duration::from_secs(5 * 60);

/// Why a certificate could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// rcgen refused the parameters or the key.
    #[error("failed to generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// A stored PEM is not a certificate.
    #[error("failed to parse the certificate in {what}: {reason}")]
    Parse {
        /// Which PEM (`ca.crt`, `tls.crt`).
        what: &'static str,
        /// The parser's complaint.
        reason: String,
    },
    /// A validity period past what the calendar can represent.
    #[error("certificate validity {0:?} is out of range")]
    Validity(Duration),
}

/// A certificate and its private key, both PEM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyedCert {
    /// The certificate.
    pub cert_pem: String,
    /// Its PKCS#8 private key.
    pub key_pem: String,
}

/// What the certificate Secret holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Material {
    /// The CA that signs the serving certificate.
    pub ca: KeyedCert,
    /// The CA certificates the API server must trust: the current CA first, then the previous
    /// one while it is still valid, so a rotation of the CA never leaves a replica untrusted.
    pub ca_bundle_pem: String,
    /// The serving certificate (leaf only) and key.
    pub serving: KeyedCert,
}

/// How long certificates live.
#[derive(Clone, Copy, Debug)]
pub struct Lifetimes {
    /// The serving certificate's validity; it is renewed when a third of it is left.
    pub serving: Duration,
    /// The CA's validity; renewed (with an overlap in the bundle) when a third is left.
    pub ca: Duration,
}

impl Lifetimes {
    /// A serving certificate valid for `serving`, and a CA ten times as long.
    pub fn from_serving(serving: Duration) -> Self {
        Self {
            serving,
            ca: serving.saturating_mul(10),
        }
    }
}

/// What a replica does with the stored material.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Nothing to do until `recheck_at` (unix seconds).
    Keep {
        /// When the serving certificate reaches its renewal point.
        recheck_at: i64,
    },
    /// Sign a new serving certificate with the same CA (the `caBundle` stays as it is).
    RenewServing,
    /// Make a new CA too: the current one is near its end, or unreadable.
    RenewCa,
}

fn at(unix: i64) -> Result<OffsetDateTime, CertError> {
    OffsetDateTime::from_unix_timestamp(unix).map_err(|_| CertError::Validity(Duration::ZERO))
}

fn window(params: &mut CertificateParams, now: i64, validity: Duration) -> Result<(), CertError> {
    let seconds = i64::try_from(validity.as_secs()).map_err(|_| CertError::Validity(validity))?;
    params.not_before = at(now - BACKDATE.as_secs() as i64)?;
    params.not_after = at(now
        .checked_add(seconds)
        .ok_or(CertError::Validity(validity))?)?;
    Ok(())
}

/// A new self-signed CA valid for `validity` from `now` (unix seconds).
pub fn generate_ca(now: i64, validity: Duration) -> Result<KeyedCert, CertError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, format!("agentgateway-webhook-ca-{now}"));
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    window(&mut params, now, validity)?;
    let cert = params.self_signed(&key)?;
    Ok(KeyedCert {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A serving certificate for `names` (DNS names or IP literals), signed by `ca`.
pub fn issue_serving(
    ca: &KeyedCert,
    names: &[String],
    now: i64,
    validity: Duration,
) -> Result<KeyedCert, CertError> {
    let ca_key = KeyPair::from_pem(&ca.key_pem)?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, ca_key)?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.subject_alt_names = names
        .iter()
        .map(|name| match name.parse::<IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => Ok(SanType::DnsName(name.clone().try_into()?)),
        })
        .collect::<Result<_, rcgen::Error>>()?;
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CommonName,
        names.first().cloned().unwrap_or_default(),
    );
    params.distinguished_name = dn;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    window(&mut params, now, validity)?;
    let cert = params.signed_by(&key, &issuer)?;
    Ok(KeyedCert {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Brand-new material: a CA and a serving certificate. `previous_ca_pem` (the CA a replica
/// trusted so far, if any) stays in the bundle while it is valid, so replicas still serving the
/// old certificate are trusted until they switch.
pub fn generate(
    names: &[String],
    now: i64,
    lifetimes: Lifetimes,
    previous_ca_pem: Option<&str>,
) -> Result<Material, CertError> {
    let ca = generate_ca(now, lifetimes.ca)?;
    let serving = issue_serving(&ca, names, now, lifetimes.serving)?;
    let mut ca_bundle_pem = ca.cert_pem.clone();
    if let Some(previous) = previous_ca_pem
        && previous != ca.cert_pem
        && not_after(previous, "ca.crt").is_ok_and(|end| end > now)
    {
        ca_bundle_pem.push_str(previous);
    }
    Ok(Material {
        ca,
        ca_bundle_pem,
        serving,
    })
}

/// The same CA, a new serving certificate.
pub fn renew_serving(
    material: &Material,
    names: &[String],
    now: i64,
    lifetimes: Lifetimes,
) -> Result<Material, CertError> {
    Ok(Material {
        serving: issue_serving(&material.ca, names, now, lifetimes.serving)?,
        ..material.clone()
    })
}

/// What to do with `material` at `now`: renew the serving certificate once two thirds of its life
/// are over or when it lacks one of `names`, the CA likewise.
pub fn plan(material: &Material, names: &[String], now: i64) -> Plan {
    let Ok((ca_start, ca_end)) = validity(&material.ca.cert_pem, "ca.crt") else {
        return Plan::RenewCa;
    };
    if renewal_point(ca_start, ca_end) <= now || KeyPair::from_pem(&material.ca.key_pem).is_err() {
        return Plan::RenewCa;
    }
    let Ok((start, end)) = validity(&material.serving.cert_pem, "tls.crt") else {
        return Plan::RenewServing;
    };
    let covers_names = subject_names(&material.serving.cert_pem)
        .is_ok_and(|have| names.iter().all(|name| have.contains(name)));
    let renew_at = renewal_point(start, end);
    if renew_at <= now || !covers_names || end > ca_end {
        return Plan::RenewServing;
    }
    Plan::Keep {
        recheck_at: renew_at,
    }
}

/// Two thirds into the validity period as issued: `start` is backdated by [`BACKDATE`], which
/// must not count, or a short-lived certificate would be due for renewal the moment it is made.
fn renewal_point(start: i64, end: i64) -> i64 {
    let issued = (start + BACKDATE.as_secs() as i64).min(end);
    issued + (end - issued) * 2 / 3
}

fn first_pem(pem: &str, what: &'static str) -> Result<Pem, CertError> {
    let parse_error = |reason: String| CertError::Parse { what, reason };
    Pem::iter_from_buffer(pem.as_bytes())
        .next()
        .ok_or_else(|| parse_error("no PEM block".into()))?
        .map_err(|e| parse_error(e.to_string()))
}

/// `(notBefore, notAfter)` of the first certificate in `pem`, as unix seconds.
pub fn validity(pem: &str, what: &'static str) -> Result<(i64, i64), CertError> {
    let block = first_pem(pem, what)?;
    let cert = block.parse_x509().map_err(|e| CertError::Parse {
        what,
        reason: e.to_string(),
    })?;
    let validity = cert.validity();
    Ok((
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
    ))
}

/// `notAfter` of the first certificate in `pem`, as unix seconds.
pub fn not_after(pem: &str, what: &'static str) -> Result<i64, CertError> {
    validity(pem, what).map(|(_, end)| end)
}

/// The DNS names and IP addresses the first certificate in `pem` is valid for.
pub fn subject_names(pem: &str) -> Result<Vec<String>, CertError> {
    let what = "tls.crt";
    let block = first_pem(pem, what)?;
    let cert = block.parse_x509().map_err(|e| CertError::Parse {
        what,
        reason: e.to_string(),
    })?;
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Ok(Vec::new());
    };
    Ok(san
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some((*dns).to_string()),
            GeneralName::IPAddress(bytes) => match bytes.len() {
                4 => <[u8; 4]>::try_from(*bytes)
                    .ok()
                    .map(|b| IpAddr::from(b).to_string()),
                16 => <[u8; 16]>::try_from(*bytes)
                    .ok()
                    .map(|b| IpAddr::from(b).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect())
}

/// The names a webhook reached through Service `service` in `namespace` is called by, plus
/// `extra` names (an address for URL-configured webhooks).
pub fn service_names(service: &str, namespace: &str, extra: &[String]) -> Vec<String> {
    let mut names = vec![
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
        format!("{service}.{namespace}"),
        service.to_string(),
    ];
    for name in extra {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;
    const DAY: Duration = Duration::from_secs(86_400);

    fn names() -> Vec<String> {
        service_names(
            "agentgateway-webhook",
            "agentgateway-system",
            &["127.0.0.1".into()],
        )
    }

    #[test]
    fn the_serving_certificate_names_the_service_and_chains_to_the_ca() {
        let material = generate(&names(), NOW, Lifetimes::from_serving(DAY), None).unwrap();
        let have = subject_names(&material.serving.cert_pem).unwrap();
        assert!(have.contains(&"agentgateway-webhook.agentgateway-system.svc".to_string()));
        assert!(have.contains(&"127.0.0.1".to_string()));
        let (start, end) = validity(&material.serving.cert_pem, "tls.crt").unwrap();
        assert_eq!(end - start, 86_400 + 300);
        assert_eq!(material.ca_bundle_pem, material.ca.cert_pem);

        // rustls accepts the chain for the Service name.
        let mut roots = rustls::RootCertStore::empty();
        let ca_der = rustls_pemfile::certs(&mut material.ca.cert_pem.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        roots.add(ca_der).unwrap();
        let leaf = rustls_pemfile::certs(&mut material.serving.cert_pem.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            std::sync::Arc::new(roots),
            std::sync::Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap();
        let name =
            rustls::pki_types::ServerName::try_from("agentgateway-webhook.agentgateway-system.svc")
                .unwrap();
        let when = rustls::pki_types::UnixTime::since_unix_epoch(Duration::from_secs(NOW as u64));
        rustls::client::danger::ServerCertVerifier::verify_server_cert(
            verifier.as_ref(),
            &leaf,
            &[],
            &name,
            &[],
            when,
        )
        .unwrap();
    }

    #[test]
    fn fresh_material_is_kept_until_two_thirds_of_its_life() {
        let lifetimes = Lifetimes::from_serving(DAY * 30);
        let material = generate(&names(), NOW, lifetimes, None).unwrap();
        let Plan::Keep { recheck_at } = plan(&material, &names(), NOW) else {
            panic!("fresh material must be kept");
        };
        assert!(recheck_at > NOW + 19 * 86_400 && recheck_at < NOW + 21 * 86_400);
        assert_eq!(plan(&material, &names(), recheck_at), Plan::RenewServing);
    }

    #[test]
    fn a_renewed_serving_certificate_keeps_the_ca_and_the_bundle() {
        let lifetimes = Lifetimes::from_serving(DAY);
        let material = generate(&names(), NOW, lifetimes, None).unwrap();
        let later = NOW + 20 * 3600;
        let renewed = renew_serving(&material, &names(), later, lifetimes).unwrap();
        assert_eq!(renewed.ca, material.ca);
        assert_eq!(renewed.ca_bundle_pem, material.ca_bundle_pem);
        assert_ne!(renewed.serving, material.serving);
        assert!(matches!(plan(&renewed, &names(), later), Plan::Keep { .. }));
    }

    #[test]
    fn a_short_lived_certificate_is_renewed_after_two_thirds_not_at_once() {
        let lifetimes = Lifetimes::from_serving(Duration::from_secs(60));
        let material = generate(&names(), NOW, lifetimes, None).unwrap();
        assert_eq!(
            plan(&material, &names(), NOW),
            Plan::Keep {
                recheck_at: NOW + 40
            }
        );
        assert_eq!(plan(&material, &names(), NOW + 40), Plan::RenewServing);
    }

    #[test]
    fn a_missing_name_or_an_old_ca_forces_renewal() {
        let lifetimes = Lifetimes::from_serving(DAY);
        let material = generate(&names(), NOW, lifetimes, None).unwrap();
        let mut more = names();
        more.push("other.example".into());
        assert_eq!(plan(&material, &more, NOW), Plan::RenewServing);
        assert_eq!(plan(&material, &names(), NOW + 8 * 86_400), Plan::RenewCa);
        let mut broken = material.clone();
        broken.ca.cert_pem = "garbage".into();
        assert_eq!(plan(&broken, &names(), NOW), Plan::RenewCa);
        let mut broken = material;
        broken.serving.cert_pem = String::new();
        assert_eq!(plan(&broken, &names(), NOW), Plan::RenewServing);
    }

    #[test]
    fn a_new_ca_keeps_the_previous_one_in_the_bundle_while_it_is_valid() {
        let lifetimes = Lifetimes::from_serving(DAY);
        let old = generate(&names(), NOW, lifetimes, None).unwrap();
        let new = generate(&names(), NOW + 60, lifetimes, Some(&old.ca.cert_pem)).unwrap();
        assert!(new.ca_bundle_pem.starts_with(&new.ca.cert_pem));
        assert!(new.ca_bundle_pem.ends_with(&old.ca.cert_pem));
        let expired = generate(
            &names(),
            NOW + 20 * 86_400,
            lifetimes,
            Some(&old.ca.cert_pem),
        )
        .unwrap();
        assert_eq!(expired.ca_bundle_pem, expired.ca.cert_pem);
    }
}
