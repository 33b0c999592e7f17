//! Accept loop, per-connection request loop, and the choice and execution of faults.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::faults::{Action, Fault};
use crate::handlers::{self, ApiHeaders, Ctx, ErrorReply, Flow, Verdict};
use crate::http::{BodyKind, Conn, FullHead, ReadError};
use crate::response_store::ResponseStore;
use crate::tokens::TokenStore;
use crate::{DEFAULT_REPLY, INSTANCE_HEADER, MockLlmConfig, RecordedRequest};

pub(crate) struct Shared {
    pub config: MockLlmConfig,
    pub reply: String,
    /// Header lines appended to every JSON response; precomputed once.
    pub json_extra: Vec<u8>,
    pub sse_extra: Vec<u8>,
    pub models_json: Vec<u8>,
    faults: Mutex<FaultState>,
    /// Lets the fault-free fast path skip the lock.
    faults_armed: AtomicBool,
    requests: Mutex<Vec<RecordedRequest>>,
    request_count: AtomicUsize,
    next_id: AtomicU64,
    /// The OAuth tokens `/token` issued, for Vertex AI routes to check.
    pub tokens: TokenStore,
    /// `http://{bound address}/token`, an audience JWT grants may name.
    pub token_url: String,
    /// The Responses API responses stored for `previous_response_id`.
    pub responses: ResponseStore,
}

#[derive(Default)]
struct FaultState {
    instance: Option<Fault>,
    queue: VecDeque<Fault>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not wedge the server for the remaining requests.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub fn new(config: MockLlmConfig, addr: SocketAddr) -> Shared {
        // A name with CR/LF would let a test config forge headers; keep the line well-formed.
        let name: String = config
            .name
            .chars()
            .map(|c| if c.is_control() { '_' } else { c })
            .collect();
        let json_extra = format!("{INSTANCE_HEADER}: {name}\r\n").into_bytes();
        let mut sse_extra = json_extra.clone();
        sse_extra.extend_from_slice(b"Cache-Control: no-cache\r\n");
        let models_json = handlers::models_json(&config.model);
        Shared {
            reply: config
                .reply
                .clone()
                .unwrap_or_else(|| DEFAULT_REPLY.to_owned()),
            config,
            json_extra,
            sse_extra,
            models_json,
            faults: Mutex::default(),
            faults_armed: AtomicBool::new(false),
            requests: Mutex::default(),
            request_count: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            tokens: TokenStore::default(),
            token_url: format!("http://{addr}/token"),
            responses: ResponseStore::default(),
        }
    }

    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn update_faults(&self, f: impl FnOnce(&mut FaultState)) {
        let mut state = lock(&self.faults);
        f(&mut state);
        let armed = state.instance.is_some() || !state.queue.is_empty();
        self.faults_armed.store(armed, Ordering::Release);
    }

    pub fn set_fault(&self, fault: Option<Fault>) {
        self.update_faults(|s| s.instance = fault);
    }

    pub fn push_fault(&self, fault: Fault) {
        self.update_faults(|s| s.queue.push_back(fault));
    }

    pub fn clear_faults(&self) {
        self.update_faults(|s| *s = FaultState::default());
    }

    fn next_fault(&self) -> Option<Fault> {
        if !self.faults_armed.load(Ordering::Acquire) {
            return None;
        }
        let mut taken = None;
        self.update_faults(|s| taken = s.queue.pop_front().or_else(|| s.instance.clone()));
        taken
    }

    fn record(&self, head: Option<FullHead>, body: &[u8], verdict: &Verdict) {
        self.request_count.fetch_add(1, Ordering::Relaxed);
        if let Some(h) = head {
            // Copied so a kept request does not pin the connection's read buffer.
            let body = Bytes::copy_from_slice(body);
            let req = RecordedRequest {
                method: h.method,
                path: h.path,
                headers: h.headers,
                body,
                credential: verdict.credential,
                bedrock: verdict.bedrock.clone(),
                vertex: verdict.vertex.clone(),
            };
            lock(&self.requests).push(req);
        }
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.requests).clone()
    }

    pub fn request_count(&self) -> usize {
        self.request_count.load(Ordering::Relaxed)
    }

    pub fn clear_requests(&self) {
        let mut requests = lock(&self.requests);
        requests.clear();
        self.request_count.store(0, Ordering::Relaxed);
    }
}

pub(crate) async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let template = shutdown.clone();
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => return,
            res = listener.accept() => res,
        };
        match accepted {
            Ok((stream, _)) => {
                let shared = shared.clone();
                let mut stop = template.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = stop.wait_for(|stop| *stop) => {}
                        _ = serve_connection(&shared, stream) => {}
                    }
                });
            }
            Err(e) => {
                // Typically EMFILE; back off instead of spinning on the error.
                tracing::debug!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

async fn serve_connection(shared: &Shared, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut conn = Conn::new(stream);
    loop {
        let head = match conn
            .read_head(shared.config.record, handlers::classify)
            .await
        {
            Ok(Some(head)) => head,
            Ok(None) => return,
            Err(e) => return reject(shared, &mut conn, e).await,
        };
        if head.expect_continue && head.body != BodyKind::Empty {
            conn.out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
            if conn.flush_out().await.is_err() {
                return;
            }
        }
        let body = match conn.read_body(head.body).await {
            Ok(body) => body,
            Err(e) => return reject(shared, &mut conn, e).await,
        };
        // Checked before faults apply so the record shows what came even when a fault answers.
        let verdict = handlers::verdict(shared, head.route, head.provider.as_ref(), &body);
        shared.record(head.full, &body, &verdict);

        let fault = match head.fault_spec.as_deref().map(str::parse::<Fault>) {
            Some(Ok(fault)) => Some(fault),
            Some(Err(e)) => {
                let msg = format!("invalid {}: {e}", crate::FAULT_HEADER);
                let reply = ErrorReply::new(400, &msg, "invalid_request_error", "invalid_fault");
                let close = !head.keep_alive;
                let ctx = Ctx::plain(close);
                match handlers::send_route_error(shared, &mut conn, head.route, reply, &ctx).await {
                    Ok(Flow::KeepAlive) => continue,
                    _ => return,
                }
            }
            None => shared.next_fault(),
        };
        let plan = fault.as_ref().map(Fault::plan).unwrap_or_default();
        if let Some(delay) = plan.delay {
            tokio::time::sleep(delay).await;
        }
        let close = !head.keep_alive;
        let res = match plan.action {
            Some(Action::Reset) => {
                // SO_LINGER 0 turns the close into a RST, which is what a crashed upstream looks like.
                let _ = conn.stream.set_zero_linger();
                return;
            }
            Some(Action::Stall) => return conn.drain_until_closed().await,
            Some(Action::Status {
                status,
                retry_after,
                error_type,
            }) => {
                let ctx = Ctx::plain(close);
                handlers::send_fault_status(
                    shared,
                    &mut conn,
                    head.route,
                    status,
                    retry_after,
                    error_type,
                    &ctx,
                )
                .await
            }
            Some(Action::CutAfter(_) | Action::ErrorAfter(_)) | None => {
                let ctx = Ctx {
                    chunk_delay: plan.chunk_delay.unwrap_or(shared.config.chunk_delay),
                    cut_after: match plan.action {
                        Some(Action::CutAfter(n)) => Some(n),
                        _ => None,
                    },
                    error_after: match plan.action {
                        Some(Action::ErrorAfter(n)) => Some(n),
                        _ => None,
                    },
                    close,
                };
                let headers = ApiHeaders {
                    anthropic_version: head.anthropic_version.as_deref(),
                    provider: head.provider.as_ref(),
                    bedrock_denial: verdict.bedrock_denial.as_ref(),
                    vertex_denial: verdict.vertex_denial,
                };
                handlers::dispatch(shared, &mut conn, head.route, &headers, &body, ctx).await
            }
        };
        match res {
            Ok(Flow::KeepAlive) => {}
            Ok(Flow::Close) | Err(_) => return,
        }
    }
}

async fn reject(shared: &Shared, conn: &mut Conn, e: ReadError) {
    let (status, msg) = match e {
        ReadError::Io(e) => {
            tracing::trace!(error = %e, "connection read failed");
            return;
        }
        ReadError::Malformed(msg) => (400, msg),
        ReadError::TooLarge => (413, "request too large"),
    };
    let reply = ErrorReply::new(status, msg, "invalid_request_error", "invalid_request");
    let _: io::Result<Flow> = handlers::send_error(shared, conn, reply, &Ctx::plain(true)).await;
}
