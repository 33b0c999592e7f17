mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agentgateway_mock_llm::{
    CLOUD_PLATFORM, Credential, DEFAULT_REPLY, Fault, GOOGLE_TOKEN_URI, MockLlm, MockLlmConfig,
    ServiceAccountKey, VERTEX_ANTHROPIC_VERSION, VertexCall,
};
use common::{Client, gemini};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

const KEY_JSON: &str = include_str!("../testdata/vertex-service-account.json");
const EMAIL: &str = "gateway@agw-test-project.iam.gserviceaccount.com";
const GEMINI: &str = "/v1/projects/agw-test-project/locations/us-central1/publishers/google/models/gemini-2.5-flash:generateContent";
const GEMINI_SSE: &str = "/v1/projects/agw-test-project/locations/us-central1/publishers/google/models/gemini-2.5-flash:streamGenerateContent?alt=sse";
const CLAUDE: &str = "/v1/projects/agw-test-project/locations/us-east5/publishers/anthropic/models/claude-sonnet-4@20250514:rawPredict";
const CLAUDE_STREAM: &str = "/v1/projects/agw-test-project/locations/us-east5/publishers/anthropic/models/claude-sonnet-4@20250514:streamRawPredict";
const GRANT_TYPE: &str = "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer";

fn key() -> ServiceAccountKey {
    ServiceAccountKey::from_json(KEY_JSON).expect("the test key parses")
}

async fn start_with(ttl: Duration) -> MockLlm {
    MockLlm::start(MockLlmConfig {
        vertex_service_account: Some(key()),
        vertex_token_ttl: ttl,
        ..Default::default()
    })
    .await
    .expect("start mock-llm")
}

async fn start() -> MockLlm {
    start_with(Duration::from_secs(3599)).await
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_secs() as i64
}

/// The claims a service account's JWT grant carries (as google-auth libraries build them).
fn claims(aud: &str) -> Value {
    let now = now();
    json!({"iss": EMAIL, "scope": CLOUD_PLATFORM, "aud": aud, "iat": now, "exp": now + 3600})
}

/// Signs `claims` with the test key, `kid` naming the key.
fn jwt(claims: &Value, kid: Option<&str>) -> String {
    let file: Value = serde_json::from_str(KEY_JSON).expect("the key file is JSON");
    let pem = file["private_key"].as_str().expect("a private_key");
    let mut header = Header::new(Algorithm::RS256);
    header.kid = kid.map(str::to_owned);
    let key = EncodingKey::from_rsa_pem(pem.as_bytes()).expect("an RSA PEM key");
    jsonwebtoken::encode(&header, claims, &key).expect("a signed JWT")
}

fn signed(claims: &Value) -> String {
    jwt(claims, Some(&key().private_key_id))
}

async fn post_form(client: &mut Client, form: &str) -> common::Response {
    client
        .post_bytes(
            "/token",
            "application/x-www-form-urlencoded",
            form.as_bytes(),
            &[],
        )
        .await
        .expect("a response")
}

async fn grant(client: &mut Client, assertion: &str) -> common::Response {
    post_form(
        client,
        &format!("grant_type={GRANT_TYPE}&assertion={assertion}"),
    )
    .await
}

/// A token from the server's own token endpoint.
async fn token(server: &MockLlm, client: &mut Client) -> String {
    let resp = grant(client, &signed(&claims(&server.token_url()))).await;
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    resp.json()["access_token"]
        .as_str()
        .expect("an access_token")
        .to_owned()
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Asserts Google's OAuth error shape and returns the description.
fn oauth_error(resp: &common::Response, error: &str) -> String {
    assert_eq!(resp.status, 400, "{}", String::from_utf8_lossy(&resp.body));
    let v = resp.json();
    assert_eq!(v["error"], error, "{v}");
    assert_eq!(v.as_object().map(|o| o.len()), Some(2), "{v}");
    v["error_description"]
        .as_str()
        .expect("a description")
        .to_owned()
}

/// Asserts Google's API error shape and returns the message.
fn google_error(resp: &common::Response, code: u16, status: &str) -> String {
    assert_eq!(resp.status, code, "{}", String::from_utf8_lossy(&resp.body));
    let v = resp.json();
    assert_eq!(v["error"]["code"], code, "{v}");
    assert_eq!(v["error"]["status"], status, "{v}");
    v["error"]["message"]
        .as_str()
        .expect("a message")
        .to_owned()
}

/// Asserts Anthropic's error shape and returns the message.
fn anthropic_error(resp: &common::Response, status: u16, kind: &str) -> String {
    assert_eq!(
        resp.status,
        status,
        "{}",
        String::from_utf8_lossy(&resp.body)
    );
    let v = resp.json();
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], kind, "{v}");
    v["error"]["message"]
        .as_str()
        .expect("a message")
        .to_owned()
}

fn claude(text: &str) -> Value {
    json!({
        "anthropic_version": VERTEX_ANTHROPIC_VERSION,
        "max_tokens": 256,
        "messages": [{"role": "user", "content": text}],
    })
}

#[tokio::test]
async fn a_jwt_signed_with_the_key_gets_a_token() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let resp = grant(&mut client, &signed(&claims(&server.token_url()))).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert_eq!(
        resp.json(),
        json!({"access_token": "ya29.mock-1", "expires_in": 3599, "token_type": "Bearer"})
    );
    assert_eq!(server.token_grants(), 1);

    // The key's own token_uri is an accepted audience too, and each grant is a new token.
    let resp = grant(&mut client, &signed(&claims(GOOGLE_TOKEN_URI))).await;
    assert_eq!(resp.json()["access_token"], "ya29.mock-2");
    assert_eq!(server.token_grants(), 2);
    assert_eq!(server.requests()[0].path, "/token");
}

#[tokio::test]
async fn bad_grants_are_refused_with_googles_oauth_errors() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let aud = server.token_url();
    let with = |key: &str, value: Value| {
        let mut c = claims(&aud);
        c[key] = value;
        c
    };

    let msg = oauth_error(
        &grant(
            &mut client,
            &signed(&with("iss", json!("other@x.iam.gserviceaccount.com"))),
        )
        .await,
        "invalid_grant",
    );
    assert_eq!(msg, "Invalid grant: account not found");

    let msg = oauth_error(
        &grant(
            &mut client,
            &signed(&with("aud", json!("https://example.com/token"))),
        )
        .await,
        "invalid_grant",
    );
    assert!(msg.contains("audience"), "{msg}");

    let expired = with("exp", json!(now() - 60));
    let expired = {
        let mut c = expired;
        c["iat"] = json!(now() - 3660);
        c
    };
    let msg = oauth_error(
        &grant(&mut client, &signed(&expired)).await,
        "invalid_grant",
    );
    assert!(
        msg.starts_with("Invalid JWT: Token must be a short-lived token"),
        "{msg}"
    );

    let too_long = with("exp", json!(now() + 7200));
    let msg = oauth_error(
        &grant(&mut client, &signed(&too_long)).await,
        "invalid_grant",
    );
    assert!(msg.contains("short-lived"), "{msg}");

    // A signature made for other claims.
    let genuine = signed(&claims(&aud));
    let forged_claims = signed(&with("iss", json!("attacker@x.iam.gserviceaccount.com")));
    let (_, signature) = genuine.rsplit_once('.').unwrap();
    let (forged_body, _) = forged_claims.rsplit_once('.').unwrap();
    let spliced = format!("{}.{signature}", forged_body);
    let msg = oauth_error(&grant(&mut client, &spliced).await, "invalid_grant");
    assert_eq!(msg, "Invalid JWT Signature.");

    let wrong_kid = jwt(
        &claims(&aud),
        Some("0000000000000000000000000000000000000000"),
    );
    let msg = oauth_error(&grant(&mut client, &wrong_kid).await, "invalid_grant");
    assert_eq!(msg, "Invalid JWT Signature.");

    let no_scope = {
        let mut c = claims(&aud);
        c.as_object_mut().unwrap().remove("scope");
        c
    };
    oauth_error(
        &grant(&mut client, &signed(&no_scope)).await,
        "invalid_scope",
    );

    let msg = oauth_error(
        &post_form(&mut client, "grant_type=refresh_token&refresh_token=x").await,
        "unsupported_grant_type",
    );
    assert_eq!(msg, "Invalid grant_type: refresh_token");
    let msg = oauth_error(
        &post_form(&mut client, &format!("grant_type={GRANT_TYPE}")).await,
        "invalid_request",
    );
    assert_eq!(msg, "Missing required parameter: assertion");

    assert_eq!(server.token_grants(), 0);
}

#[tokio::test]
async fn gemini_on_vertex_with_an_issued_token_is_answered_and_recorded() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let token = token(&server, &mut client).await;
    let auth = bearer(&token);
    let headers = [("authorization", auth.as_str())];

    let resp = client
        .post(GEMINI, &gemini("hello"), &headers)
        .await
        .unwrap();
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    let v = resp.json();
    assert_eq!(
        v["candidates"][0]["content"]["parts"][0]["text"],
        DEFAULT_REPLY
    );
    assert_eq!(v["candidates"][0]["finishReason"], "STOP");
    assert_eq!(v["modelVersion"], "gemini-2.5-flash");

    let resp = client
        .post(GEMINI_SSE, &gemini("Reply with exactly: a b c"), &headers)
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("text/event-stream"));
    let chunks = resp.sse_crlf_json();
    assert_eq!(chunks.len(), 3);
    let text: String = chunks
        .iter()
        .map(|c| {
            c["candidates"][0]["content"]["parts"][0]["text"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(text, "a b c");

    let recorded = server.requests();
    let call = recorded[1].vertex.clone().unwrap();
    assert_eq!(
        call,
        VertexCall {
            project: "agw-test-project".into(),
            region: "us-central1".into(),
            publisher: "google".into(),
            model: "gemini-2.5-flash".into(),
            method: "generateContent".into(),
        }
    );
    assert_eq!(recorded[1].credential, Some(Credential::Bearer));
    assert_eq!(
        recorded[2].vertex.as_ref().map(|c| c.method.as_str()),
        Some("streamGenerateContent")
    );
    assert_eq!(server.token_grants(), 1);
}

#[tokio::test]
async fn vertex_calls_without_a_live_token_are_refused() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;

    let resp = client.post(GEMINI, &gemini("hi"), &[]).await.unwrap();
    let msg = google_error(&resp, 401, "UNAUTHENTICATED");
    assert!(
        msg.starts_with("Request is missing required authentication credential."),
        "{msg}"
    );

    let unknown = [("authorization", "Bearer ya29.never-issued")];
    let resp = client.post(GEMINI, &gemini("hi"), &unknown).await.unwrap();
    let msg = google_error(&resp, 401, "UNAUTHENTICATED");
    assert!(
        msg.starts_with("Request had invalid authentication credentials."),
        "{msg}"
    );
    // Claude's routes refuse in Google's shape too: the check happens before the model.
    let resp = client.post(CLAUDE, &claude("hi"), &unknown).await.unwrap();
    google_error(&resp, 401, "UNAUTHENTICATED");

    let token = token(&server, &mut client).await;
    let auth = bearer(&token);
    let live = [("authorization", auth.as_str())];
    assert_eq!(
        client
            .post(GEMINI, &gemini("hi"), &live)
            .await
            .unwrap()
            .status,
        200
    );
    server.expire_vertex_tokens();
    let resp = client.post(GEMINI, &gemini("hi"), &live).await.unwrap();
    google_error(&resp, 401, "UNAUTHENTICATED");
    // A fresh grant works again.
    let fresh = bearer(&self::token(&server, &mut client).await);
    let resp = client
        .post(GEMINI, &gemini("hi"), &[("authorization", fresh.as_str())])
        .await
        .unwrap();
    assert_eq!(resp.status, 200);

    // A token granted without the cloud-platform scope is not enough for Vertex AI.
    let mut narrow = claims(&server.token_url());
    narrow["scope"] = json!("https://www.googleapis.com/auth/devstorage.read_only");
    let resp = grant(&mut client, &signed(&narrow)).await;
    let narrow_token = bearer(resp.json()["access_token"].as_str().unwrap());
    let resp = client
        .post(
            GEMINI,
            &gemini("hi"),
            &[("authorization", narrow_token.as_str())],
        )
        .await
        .unwrap();
    let msg = google_error(&resp, 403, "PERMISSION_DENIED");
    assert_eq!(msg, "Request had insufficient authentication scopes.");

    let refused: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.vertex.is_some() && r.credential.is_none())
        .collect();
    assert_eq!(refused.len(), 5);
}

#[tokio::test]
async fn tokens_expire_after_their_ttl() {
    let server = start_with(Duration::ZERO).await;
    let mut client = Client::connect(server.addr()).await;
    let resp = grant(&mut client, &signed(&claims(&server.token_url()))).await;
    assert_eq!(resp.json()["expires_in"], 0);
    let auth = bearer(resp.json()["access_token"].as_str().unwrap());
    let resp = client
        .post(GEMINI, &gemini("hi"), &[("authorization", auth.as_str())])
        .await
        .unwrap();
    google_error(&resp, 401, "UNAUTHENTICATED");
}

#[tokio::test]
async fn claude_raw_predict_answers_the_messages_api_with_vertexs_rules() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let auth = bearer(&token(&server, &mut client).await);
    let headers = [("authorization", auth.as_str())];

    let resp = client
        .post(CLAUDE, &claude("hello"), &headers)
        .await
        .unwrap();
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    let v = resp.json();
    assert_eq!(v["type"], "message");
    assert_eq!(v["role"], "assistant");
    assert_eq!(v["model"], "claude-sonnet-4@20250514");
    assert!(
        v["id"].as_str().unwrap().starts_with("msg_vrtx_mock_"),
        "{v}"
    );
    assert_eq!(
        v["content"],
        json!([{"type": "text", "text": DEFAULT_REPLY}])
    );
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["usage"]["input_tokens"], 1);

    let mut no_version = claude("hello");
    no_version
        .as_object_mut()
        .unwrap()
        .remove("anthropic_version");
    let resp = client.post(CLAUDE, &no_version, &headers).await.unwrap();
    let msg = anthropic_error(&resp, 400, "invalid_request_error");
    assert_eq!(msg, "anthropic_version: Field required");

    let mut api_version = claude("hello");
    api_version["anthropic_version"] = json!("2023-06-01");
    let resp = client.post(CLAUDE, &api_version, &headers).await.unwrap();
    let msg = anthropic_error(&resp, 400, "invalid_request_error");
    assert!(msg.contains("vertex-2023-10-16"), "{msg}");

    let mut with_model = claude("hello");
    with_model["model"] = json!("claude-sonnet-4@20250514");
    let resp = client.post(CLAUDE, &with_model, &headers).await.unwrap();
    let msg = anthropic_error(&resp, 400, "invalid_request_error");
    assert_eq!(msg, "model: Extra inputs are not permitted");

    // The rest is the Messages API's validation.
    let mut no_max = claude("hello");
    no_max.as_object_mut().unwrap().remove("max_tokens");
    let resp = client.post(CLAUDE, &no_max, &headers).await.unwrap();
    let msg = anthropic_error(&resp, 400, "invalid_request_error");
    assert_eq!(msg, "max_tokens: Field required");

    let call = server.requests()[1].vertex.clone().unwrap();
    assert_eq!(
        (
            call.publisher.as_str(),
            call.model.as_str(),
            call.region.as_str()
        ),
        ("anthropic", "claude-sonnet-4@20250514", "us-east5")
    );
}

#[tokio::test]
async fn claude_streams_when_the_body_asks() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let auth = bearer(&token(&server, &mut client).await);
    let headers = [("authorization", auth.as_str())];
    let mut body = claude("Reply with exactly: streamed from vertex");
    body["stream"] = json!(true);

    for path in [CLAUDE_STREAM, CLAUDE] {
        let resp = client.post(path, &body, &headers).await.unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("content-type"), Some("text/event-stream"));
        let events = resp.sse_events();
        let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names.first(), Some(&"message_start"));
        assert_eq!(names.last(), Some(&"message_stop"));
        assert_eq!(events[0].1["message"]["model"], "claude-sonnet-4@20250514");
        let text: String = events
            .iter()
            .filter(|(n, _)| n == "content_block_delta")
            .map(|(_, e)| e["delta"]["text"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(text, "streamed from vertex");
    }

    // streamRawPredict without `stream: true` answers in one piece.
    body.as_object_mut().unwrap().remove("stream");
    let resp = client.post(CLAUDE_STREAM, &body, &headers).await.unwrap();
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert_eq!(resp.json()["type"], "message");
}

#[tokio::test]
async fn faults_use_each_publishers_error_shape() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let auth = bearer(&token(&server, &mut client).await);
    let headers = [("authorization", auth.as_str())];

    server.push_fault(Fault::status(429));
    let resp = client.post(GEMINI, &gemini("hi"), &headers).await.unwrap();
    assert_eq!(
        google_error(&resp, 429, "RESOURCE_EXHAUSTED"),
        "injected fault"
    );

    server.push_fault(Fault::status(529));
    let resp = client.post(CLAUDE, &claude("hi"), &headers).await.unwrap();
    anthropic_error(&resp, 529, "overloaded_error");

    server.push_fault(Fault::status(503));
    let resp = grant(&mut client, &signed(&claims(&server.token_url()))).await;
    assert_eq!(resp.status, 503);
    assert_eq!(resp.json()["error"], "internal_failure");

    // Mid-stream errors, in each API's stream format.
    let mut body = claude("Reply with exactly: a b c");
    body["stream"] = json!(true);
    let mut faulty = headers.to_vec();
    faulty.push(("x-mock-fault", "error-after=2"));
    let resp = client.post(CLAUDE_STREAM, &body, &faulty).await.unwrap();
    let events = resp.sse_events();
    assert_eq!(events.len(), 3);
    assert_eq!(events[2].0, "error");
    assert_eq!(events[2].1["error"]["type"], "overloaded_error");

    let resp = client
        .post(GEMINI_SSE, &gemini("Reply with exactly: a b c"), &faulty)
        .await
        .unwrap();
    let chunks = resp.sse_crlf_json();
    assert_eq!(chunks.len(), 3);
    assert_eq!(chunks[2]["error"]["status"], "UNAVAILABLE");

    let unknown = "/v1/projects/p/locations/l/publishers/google/models/m:countTokens";
    let resp = client.post(unknown, &gemini("hi"), &headers).await.unwrap();
    google_error(&resp, 404, "NOT_FOUND");
}

#[tokio::test]
async fn without_a_service_account_nothing_is_checked() {
    let server = MockLlm::start(MockLlmConfig::default()).await.unwrap();
    let mut client = Client::connect(server.addr()).await;

    let resp = grant(&mut client, "any.unverified.assertion").await;
    assert_eq!(resp.status, 200);
    assert_eq!(server.token_grants(), 1);

    let resp = client.post(GEMINI, &gemini("hi"), &[]).await.unwrap();
    assert_eq!(resp.status, 200);
    let resp = client
        .post(
            CLAUDE,
            &claude("hi"),
            &[("authorization", "Bearer anything")],
        )
        .await
        .unwrap();
    assert_eq!(resp.status, 200);

    let recorded = server.requests();
    assert_eq!(recorded[1].credential, None);
    assert_eq!(recorded[2].credential, Some(Credential::Bearer));
}

const PREDICT: &str = "/v1/projects/agw-test-project/locations/us-central1/publishers/google/models/text-embedding-005:predict";

#[tokio::test]
async fn predict_embeds_instances_with_token_counts_behind_the_token_check() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let body = json!({"instances": [{"content": "hello world"}, {"content": "one two three", "task_type": "RETRIEVAL_QUERY"}],
        "parameters": {"outputDimensionality": 16, "autoTruncate": true}});
    let resp = client.post(PREDICT, &body, &[]).await.unwrap();
    google_error(&resp, 401, "UNAUTHENTICATED");

    let auth = bearer(&token(&server, &mut client).await);
    let headers = [("authorization", auth.as_str())];
    let resp = client.post(PREDICT, &body, &headers).await.unwrap();
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    let v = resp.json();
    let predictions = v["predictions"].as_array().unwrap();
    assert_eq!(predictions.len(), 2);
    let first = &predictions[0]["embeddings"];
    assert_eq!(first["values"].as_array().unwrap().len(), 16);
    assert_eq!(
        first["statistics"],
        json!({"truncated": false, "token_count": 2})
    );
    assert_eq!(predictions[1]["embeddings"]["statistics"]["token_count"], 3);
    assert_eq!(v["metadata"]["billableCharacterCount"], 24);
    let call = server.requests().into_iter().last().unwrap();
    assert_eq!(call.credential, Some(Credential::Bearer));
    assert_eq!(call.vertex.unwrap().method, "predict");

    // Eight values by default: the OpenAI route's vector of the same text.
    let plain = json!({"instances": [{"content": "hello world"}]});
    let resp = client.post(PREDICT, &plain, &headers).await.unwrap();
    let openai = client
        .post("/v1/embeddings", &json!({"input": "hello world"}), &[])
        .await
        .unwrap();
    assert_eq!(
        resp.json()["predictions"][0]["embeddings"]["values"],
        openai.json()["data"][0]["embedding"]
    );
}

#[tokio::test]
async fn predict_refuses_what_the_embeddings_api_refuses() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let auth = bearer(&token(&server, &mut client).await);
    let headers = [("authorization", auth.as_str())];
    for (path, body, needle) in [
        (PREDICT, json!({"instances": []}), "at least one instance"),
        (
            PREDICT,
            json!({"instances": [{"text": "x"}]}),
            "unknown field \"text\"",
        ),
        (
            PREDICT,
            json!({"instances": [{"content": "x"}], "parameters": {"outputDimensionality": 0}}),
            "outputDimensionality",
        ),
        (
            "/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.5-flash:predict",
            json!({"instances": [{"content": "x"}]}),
            "embedding models only",
        ),
    ] {
        let resp = client.post(path, &body, &headers).await.unwrap();
        let msg = google_error(&resp, 400, "INVALID_ARGUMENT");
        assert!(msg.contains(needle), "{msg}");
    }
    server.push_fault(Fault::status(503));
    let resp = client
        .post(PREDICT, &json!({"instances": [{"content": "x"}]}), &headers)
        .await
        .unwrap();
    assert_eq!(google_error(&resp, 503, "UNAVAILABLE"), "injected fault");
}
