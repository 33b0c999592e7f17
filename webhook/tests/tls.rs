#![allow(clippy::unwrap_used)]
//! The webhook over real TLS on loopback: HTTP/1.1 and HTTP/2 via ALPN, a certificate rotated
//! while serving, clients that cannot speak TLS 1.2+, and a graceful stop.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use agentgateway_webhook::{CertResolver, VALIDATE_PATH, router, serve_tls};
use axum::body::Bytes;
use http::{Request, Version};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// A CA and a serving certificate it signed for `localhost` and `127.0.0.1`.
struct Pki {
    ca: CertificateDer<'static>,
    chain_pem: String,
    key_pem: String,
    leaf: CertificateDer<'static>,
}

fn pki(organization: &str) -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("{organization} webhook CA"));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);

    let mut params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().unwrap();
    let leaf = params.signed_by(&key, &issuer).unwrap();
    Pki {
        ca: ca.der().clone(),
        chain_pem: format!("{}{}", leaf.pem(), ca.pem()),
        key_pem: key.serialize_pem(),
        leaf: leaf.der().clone(),
    }
}

fn client(ca: &CertificateDer<'static>, alpn: &[u8]) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let mut config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    TlsConnector::from(Arc::new(config))
}

async fn connect(
    addr: SocketAddr,
    connector: &TlsConnector,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").unwrap();
    connector.connect(name, tcp).await
}

fn presented_leaf(tls: &TlsStream<TcpStream>) -> Vec<u8> {
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

fn review_request(uri: &str) -> Request<Full<Bytes>> {
    Request::post(uri)
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(common::fixture(
            "reviews",
            "validate-create-valid.json",
        ))))
        .unwrap()
}

async fn read_answer(response: http::Response<hyper::body::Incoming>) -> Value {
    assert_eq!(response.status(), http::StatusCode::OK);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

fn assert_allowed(answer: &Value) {
    assert_eq!(
        answer["response"]["uid"],
        "0c9a8d74-9cb7-44dd-b98e-09fd62def2f4"
    );
    assert_eq!(answer["response"]["allowed"], true);
}

async fn review_over_http1(tls: TlsStream<TcpStream>) -> Value {
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(connection);
    let response = sender
        .send_request(review_request(VALIDATE_PATH))
        .await
        .unwrap();
    assert_eq!(response.version(), Version::HTTP_11);
    read_answer(response).await
}

type H2Sender = hyper::client::conn::http2::SendRequest<Full<Bytes>>;

async fn http2(tls: TlsStream<TcpStream>) -> H2Sender {
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(connection);
    sender
}

async fn review_over_http2(sender: &mut H2Sender) -> Value {
    let uri = format!("https://localhost{VALIDATE_PATH}");
    let response = sender.send_request(review_request(&uri)).await.unwrap();
    assert_eq!(response.version(), Version::HTTP_2);
    read_answer(response).await
}

/// What a client that does not speak TLS 1.2+ gets back: everything the server sends until it
/// closes the connection.
async fn reply_to(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(bytes).await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut reply))
        .await
        .expect("the server closes the connection")
        .ok();
    reply
}

/// The first bytes the server answers `bytes` with (it may wait for more from the client).
async fn first_reply_to(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(bytes).await.unwrap();
    let mut reply = vec![0; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut reply))
        .await
        .expect("the server answers")
        .unwrap();
    reply.truncate(n);
    reply
}

/// A ClientHello offering only protocol `version` (no `supported_versions` extension, so the
/// legacy version field is the offer), with ECDHE-ECDSA/RSA AES-GCM suites and the extensions a
/// TLS 1.2 server needs. With `[3, 3]` it is an acceptable TLS 1.2 hello; with `[3, 2]` it is
/// TLS 1.1, and nothing else differs.
fn client_hello(version: [u8; 2]) -> Vec<u8> {
    let extensions: Vec<u8> = [
        &[0x00, 0x0a, 0x00, 0x06, 0x00, 0x04, 0x00, 0x1d, 0x00, 0x17][..], // supported groups
        &[0x00, 0x0b, 0x00, 0x02, 0x01, 0x00],                             // EC point formats
        &[
            0x00, 0x0d, 0x00, 0x08, 0x00, 0x06, 0x04, 0x03, 0x08, 0x04, 0x04, 0x01,
        ], // signature algorithms
        &[0x00, 0x17, 0x00, 0x00],                                         // extended master secret
    ]
    .concat();
    let mut body = version.to_vec();
    body.extend([7u8; 32]); // random
    body.push(0); // no session id
    body.extend([0x00, 0x04, 0xc0, 0x2b, 0xc0, 0x2f]); // cipher suites
    body.extend([0x01, 0x00]); // null compression
    body.extend(u16::try_from(extensions.len()).unwrap().to_be_bytes());
    body.extend(extensions);
    let mut handshake = vec![0x01, 0x00];
    handshake.extend(u16::try_from(body.len()).unwrap().to_be_bytes());
    handshake.extend(body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend(u16::try_from(handshake.len()).unwrap().to_be_bytes());
    record.extend(handshake);
    record
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_reviews_over_tls_and_rotates_the_certificate_without_a_restart() {
    let resolver = CertResolver::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (state, _registry) = common::state();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_tls(
        listener,
        router(state),
        resolver.clone(),
        async {
            let _ = stopped.await;
        },
    ));
    let first = pki("first");
    let second = pki("second");

    // No certificate yet: the handshake fails, the server stays up.
    assert!(!resolver.is_loaded());
    assert!(
        connect(addr, &client(&first.ca, b"http/1.1"))
            .await
            .is_err()
    );

    resolver
        .set_pem(first.chain_pem.as_bytes(), first.key_pem.as_bytes())
        .unwrap();
    assert!(resolver.is_loaded());

    let tls = connect(addr, &client(&first.ca, b"http/1.1"))
        .await
        .unwrap();
    assert_eq!(presented_leaf(&tls), first.leaf.to_vec());
    assert_allowed(&review_over_http1(tls).await);

    let tls = connect(addr, &client(&first.ca, b"h2")).await.unwrap();
    let mut before_rotation = http2(tls).await;
    assert_allowed(&review_over_http2(&mut before_rotation).await);

    // Plaintext HTTP and TLS 1.1 are refused; neither gets an HTTP answer.
    let plaintext = reply_to(
        addr,
        b"POST /validate HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    assert!(!plaintext.starts_with(b"HTTP/"), "{plaintext:?}");
    // The same hello as TLS 1.2 gets a ServerHello; as TLS 1.1 a protocol_version alert, then EOF.
    let tls12 = first_reply_to(addr, &client_hello([3, 3])).await;
    assert_eq!(
        tls12.first(),
        Some(&0x16),
        "a handshake record, got {tls12:?}"
    );
    let tls11 = reply_to(addr, &client_hello([3, 2])).await;
    assert_eq!(tls11.first(), Some(&0x15), "an alert record, got {tls11:?}");
    assert_eq!(tls11.get(6), Some(&70), "protocol_version, got {tls11:?}");

    // Rotate to a certificate from another CA while serving.
    resolver
        .set_pem(second.chain_pem.as_bytes(), second.key_pem.as_bytes())
        .unwrap();
    let tls = connect(addr, &client(&second.ca, b"http/1.1"))
        .await
        .unwrap();
    assert_eq!(presented_leaf(&tls), second.leaf.to_vec());
    assert_allowed(&review_over_http1(tls).await);
    assert!(connect(addr, &client(&first.ca, b"h2")).await.is_err());
    // The connection made before the rotation keeps working.
    assert_allowed(&review_over_http2(&mut before_rotation).await);

    // A broken pair is refused and the second certificate stays.
    assert!(
        resolver
            .set_pem(first.chain_pem.as_bytes(), second.key_pem.as_bytes())
            .is_err()
    );
    let tls = connect(addr, &client(&second.ca, b"h2")).await.unwrap();
    assert_eq!(presented_leaf(&tls), second.leaf.to_vec());
    let mut after_rotation = http2(tls).await;
    assert_allowed(&review_over_http2(&mut after_rotation).await);

    // Shutdown: stop accepting, drain (open HTTP/2 connections get a GOAWAY), return.
    stop.send(()).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(7), server)
        .await
        .expect("the server stops within the drain timeout")
        .unwrap();
    assert!(result.is_ok(), "{result:?}");
    assert!(TcpStream::connect(addr).await.is_err(), "still accepting");
}
