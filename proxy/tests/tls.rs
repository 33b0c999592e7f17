//! Providers over TLS: a private CA from `caCertificateRef`, SNI, `insecureSkipVerify`, and the
//! web PKI roots refusing a certificate they do not know.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use common::*;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use tokio::net::{TcpListener, TcpStream};

/// A TLS terminator for `llm.test` in front of `upstream`; returns its address and the CA's PEM.
async fn tls_front(upstream: SocketAddr) -> (SocketAddr, String) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::from_params(&ca_params, &ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["llm.test".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut plain = TcpStream::connect(upstream).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    (addr, ca_cert.pem())
}

fn tls_backend(front: SocketAddr, tls: &str) -> String {
    format!(
        "apiVersion: agentgateway.dev/v1alpha1\nkind: AgentgatewayBackend\nmetadata:\n  name: secure\n  namespace: default\nspec:\n  ai:\n    provider:\n      host: 127.0.0.1\n      port: {}\n      openai: {{model: m}}\n      policies:\n        tls: {tls}\n",
        front.port()
    )
}

fn ca_config_map(pem: &str) -> String {
    let indented: String = pem.lines().map(|l| format!("    {l}\n")).collect();
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: llm-ca\n  namespace: default\ndata:\n  ca.crt: |\n{indented}"
    )
}

#[tokio::test]
async fn a_provider_behind_a_private_ca_is_reached_with_its_ca_and_sni() {
    let llm = mock("llm").await;
    let (front, ca) = tls_front(llm.addr()).await;
    let proxy = start_proxy(&config(&[
        ca_config_map(&ca),
        tls_backend(front, "{sni: llm.test, caCertificateRef: {name: llm-ca}}"),
        route("secure", "secure", None),
    ]))
    .await;
    let reply = proxy.chat(chat("Reply with exactly: over tls")).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json()["choices"][0]["message"]["content"], "over tls");
}

#[tokio::test]
async fn the_web_pki_roots_refuse_an_unknown_ca() {
    let llm = mock("llm").await;
    let (front, _) = tls_front(llm.addr()).await;
    let proxy = start_proxy(&config(&[
        tls_backend(front, "{sni: llm.test}"),
        route("secure", "secure", None),
    ]))
    .await;
    let reply = proxy.chat(chat("hi")).await;
    assert_eq!(reply.status, 503);
    assert_eq!(llm.request_count(), 0);
}

#[tokio::test]
async fn insecure_skip_verify_accepts_any_certificate() {
    let llm = mock("llm").await;
    let (front, _) = tls_front(llm.addr()).await;
    let proxy = start_proxy(&config(&[
        tls_backend(front, "{insecureSkipVerify: true}"),
        route("secure", "secure", None),
    ]))
    .await;
    assert_eq!(proxy.chat(chat("hi")).await.status, 200);
}
