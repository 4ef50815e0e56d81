//! The HTTP layer: bytes ⇄ request structs, the router, status codes and the envelope.
//! It imports neither redis nor sea-orm; it talks to the domain only.
mod accounts;
pub mod body;
mod client_ip;
pub mod conns;
mod discovery;
pub mod envelope;
pub mod error;
pub mod gateway;
mod oauth;
mod ops;
mod routes;
mod tokens;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT_LANGUAGE, ALLOW, RETRY_AFTER};
use hyper::http::request::Parts;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Response};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use serde::de::DeserializeOwned;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use conns::{ConnLimits, Conns};
use envelope::Replier;
pub use envelope::{Body, Lang};
use error::ApiError;
use routes::{GetRoute, PostRoute, Route};

use crate::domain::limits::network;
use crate::domain::Engine;
use crate::store::{RecordBackend, TokenBackend};

/// HTTP settings.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Answer HTTP 200 to every request (legacy clients that treat non-200 as a
    /// transport error); the body is the same.
    pub compat_http_200: bool,
    /// The request body cap; larger bodies get 413 / code 1001 before being read.
    pub max_body_bytes: usize,
    /// The language of `error` texts when the request has no `Accept-Language: zh|en`.
    pub lang: Lang,
    /// How long in-flight requests may take to finish once shutdown starts.
    pub shutdown_grace: Duration,
    /// How long (seconds) a gateway may cache a positive forward-auth answer; never past
    /// the token's expiry. 0: `Cache-Control: no-store`.
    pub forward_auth_cache_secs: u64,
    /// Open connections served at once; further ones wait in the listen backlog.
    pub max_connections: usize,
    /// Connections one client network (an IPv4 address, an IPv6 /64) may hold (0: no
    /// limit): past it, a new one is closed at once, so one client cannot take every
    /// slot.
    pub max_connections_per_ip: usize,
    /// How long a new connection has to send a complete request head.
    pub header_timeout: Duration,
    /// How long a keep-alive connection may wait for its next request head.
    pub idle_timeout: Duration,
    /// How long a request's body may take to arrive once its head has (then the
    /// connection is closed).
    pub body_timeout: Duration,
    /// Refuse (403) a forward-auth or gRPC check carrying a header a framework could read
    /// as one of the identity headers tokencache answers with (`gateway::spoofed`).
    pub refuse_identity_headers: bool,
    /// The proxies whose `X-Forwarded-For` hops are believed (see `client_ip`); empty:
    /// the TCP peer is the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The issuer the discovery documents name (`--issuer`); empty: `http://` and the
    /// request's `Host`.
    pub issuer: String,
}

impl HttpSettings {
    /// The defaults: the `Default` impl and the command line's defaults both read these.
    pub const DEFAULT: HttpSettings = HttpSettings {
        compat_http_200: false,
        max_body_bytes: 16 * 1024,
        lang: Lang::En,
        shutdown_grace: Duration::from_secs(10),
        forward_auth_cache_secs: 0,
        max_connections: 10_000,
        max_connections_per_ip: 1_000,
        // nginx's client_header_timeout and keepalive_timeout.
        header_timeout: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(75),
        // nginx's client_body_timeout.
        body_timeout: Duration::from_secs(60),
        refuse_identity_headers: true,
        trusted_proxies: Vec::new(),
        issuer: String::new(),
    };
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Everything a request handler can reach.
pub struct State<T, R> {
    pub engine: Engine<T, R>,
    pub http: HttpSettings,
}

/// One request with its body read, as the handlers see it.
pub struct Request<'a, T, R> {
    state: &'a State<T, R>,
    parts: Parts,
    body: Bytes,
    pub peer: SocketAddr,
    pub reply: Replier,
    /// Taken from `x-request-id` or generated; echoed back and put on log lines.
    pub request_id: &'a str,
}

impl<T: TokenBackend, R: RecordBackend> Request<'_, T, R> {
    /// The body as the endpoint's struct, from JSON or a form.
    pub fn parse<B: DeserializeOwned>(&self) -> Result<B, ApiError> {
        body::parse(&self.parts, &self.body)
    }

    pub fn engine(&self) -> &Engine<T, R> {
        &self.state.engine
    }
}

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The caller's request id when it is a sane one (1-128 visible ASCII), else a new one.
fn request_id(headers: &HeaderMap) -> String {
    match headers.get(&X_REQUEST_ID).and_then(|v| v.to_str().ok()) {
        Some(id) if (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic()) => {
            id.to_owned()
        }
        _ => format!("{:016x}", rand::random::<u64>()),
    }
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

fn lang_of(headers: &HeaderMap, default: Lang) -> Lang {
    let Some(value) = headers.get(ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()) else {
        return default;
    };
    let first = value
        .trim_start()
        .get(..2)
        .unwrap_or("")
        .to_ascii_lowercase();
    match first.as_str() {
        "zh" => Lang::Zh,
        "en" => Lang::En,
        _ => default,
    }
}

/// Routes one request; never fails (errors become envelopes). Times it for metrics and
/// tags the answer with its request id.
pub async fn handle<T: TokenBackend, R: RecordBackend>(
    state: Arc<State<T, R>>,
    peer: SocketAddr,
    req: hyper::Request<Incoming>,
    conn: &conns::Conn,
) -> Result<Response<Body>, Infallible> {
    let started = Instant::now();
    let id = request_id(req.headers());
    let method = method_label(req.method());
    let (route, label) = Route::of(req.uri().path());
    let mut response = route_request(&state, peer, req, route, label, &id, conn).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(X_REQUEST_ID.clone(), value);
    }
    crate::telemetry::http_request(label, method, response.status().as_u16(), started);
    Ok(response)
}

async fn route_request<T: TokenBackend, R: RecordBackend>(
    state: &State<T, R>,
    peer: SocketAddr,
    req: hyper::Request<Incoming>,
    route: Option<Route>,
    label: &'static str,
    request_id: &str,
    conn: &conns::Conn,
) -> Response<Body> {
    let reply = Replier {
        lang: lang_of(req.headers(), state.http.lang),
        compat_http_200: state.http.compat_http_200,
    };
    let (parts, incoming) = req.into_parts();
    let result = match route.map(|r| (r, r.allows(&parts.method))) {
        None => Err(ApiError::NoRoute),
        Some((_, Err(allow))) => Err(ApiError::WrongMethod(allow)),
        Some((Route::Get(GetRoute::Healthz), Ok(()))) => Ok(ops::healthz()),
        Some((Route::Get(GetRoute::Readyz), Ok(()))) => Ok(Box::pin(ops::readyz(state)).await),
        Some((Route::Get(GetRoute::Metrics), Ok(()))) => Ok(ops::metrics(state)),
        Some((Route::Get(GetRoute::Jwks), Ok(()))) => discovery::jwks(state),
        Some((Route::Get(GetRoute::Discovery), Ok(()))) => {
            Ok(discovery::metadata(state, &parts.headers))
        }
        Some((Route::Auth, Ok(()))) => Ok(gateway::auth(state, &parts.headers).await),
        Some((Route::Post(post), Ok(()))) => {
            // Timed by the sweeper of `conns`: no timer of its own per request.
            conn.reading_body();
            let body = body::read(incoming, &parts, state.http.max_body_bytes).await;
            conn.body_read();
            match body {
                Ok(body) => {
                    let req = Request {
                        state,
                        parts,
                        body,
                        peer,
                        reply,
                        request_id,
                    };
                    match post {
                        // The hot path stays inline; every other handler is boxed, so the
                        // future of every request is not as large as the largest handler's:
                        // 1,608 bytes instead of 7,288 (readyz boxed too), moved on every
                        // request.
                        PostRoute::CheckToken => tokens::check_token(&req).await,
                        other => Box::pin(cold_post(&req, other)).await,
                    }
                }
                Err(e) => Err(e),
            }
        }
    };
    result.unwrap_or_else(|e| error_response(&e, reply, label, request_id))
}

/// The POST routes other than check_token.
async fn cold_post<T: TokenBackend, R: RecordBackend>(
    req: &Request<'_, T, R>,
    route: PostRoute,
) -> Result<Response<Body>, ApiError> {
    match route {
        PostRoute::Authorize => tokens::authorize(req, true).await,
        PostRoute::AuthorizeNopwd => tokens::authorize(req, false).await,
        PostRoute::CheckToken => tokens::check_token(req).await,
        PostRoute::RefreshToken => tokens::refresh_token(req).await,
        PostRoute::Logout => tokens::logout(req).await,
        PostRoute::OAuthToken => oauth::token(req).await,
        PostRoute::OAuthIntrospect => oauth::introspect(req).await,
        PostRoute::OAuthRevoke => oauth::revoke(req).await,
        PostRoute::GetVerify => accounts::get_verify(req).await,
        PostRoute::CheckUser => accounts::check_user(req).await,
        PostRoute::Doaction => accounts::doaction(req).await,
        PostRoute::GetUserinfo => accounts::get_userinfo(req).await,
        PostRoute::UpdateUserinfo => accounts::update_userinfo(req).await,
    }
}

/// The one place an error becomes a response, and is logged.
fn error_response(e: &ApiError, reply: Replier, route: &str, request_id: &str) -> Response<Body> {
    if e.is_server_side() {
        tracing::warn!(route, request_id, error = %error::chain(e), "request failed");
    } else {
        tracing::debug!(route, request_id, error = %e, "request refused");
    }
    let answer = e.answer();
    let mut response = if route.starts_with("/oauth2/") {
        // The OAuth endpoints answer in OAuth's error format, also before their handler.
        oauth::error_answer(&answer)
    } else {
        reply.fail(answer.code, Some(answer.status))
    };
    if let ApiError::WrongMethod(allow) = e {
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static(allow));
    }
    if let Some(seconds) = e.retry_after() {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// Serves HTTP/1.1 on `listener` until `shutdown` resolves, then stops accepting and
/// lets in-flight requests finish (bounded by `shutdown_grace`).
pub async fn serve<T: TokenBackend, R: RecordBackend>(
    listener: TcpListener,
    state: Arc<State<T, R>>,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    // No header-read timer: hyper arms one per request, which cost check_token a fifth
    // of its throughput (measured with ../shared/bench/ratio.sh). Idle and slow clients
    // are closed by `conns`' sweeper instead, and one address holds a share of the slots.
    builder.keep_alive(true);
    let slots = Arc::new(Semaphore::new(state.http.max_connections.max(1)));
    let conns = Conns::new(ConnLimits {
        header_timeout: state.http.header_timeout,
        idle_timeout: state.http.idle_timeout,
        body_timeout: state.http.body_timeout,
        per_ip: state.http.max_connections_per_ip,
    });
    let sweeper = conns.start_sweeper();
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // One share per client network (an IPv6 client picks any address of its /64).
        let network = network(peer.ip(), state.engine.rules.limits.ipv6_prefix);
        let Some(admitted) = conns.admit(network) else {
            // Over its address's share: closed at once, the slot given back.
            crate::telemetry::connections_closed("ip_share", 1);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let conn_state = state.clone();
        let tracked = admitted.conn.clone();
        let service = service_fn(move |req| {
            tracked.begin();
            let done = tracked.clone();
            let state = conn_state.clone();
            async move {
                let response = handle(state, peer, req, &done).await;
                done.end();
                response
            }
        });
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            tokio::select! {
                result = conn => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                }
                // Past its deadline: dropping the connection closes it.
                () = admitted.conn.close.notified() => {}
            }
            drop(admitted);
            drop(slot);
        });
    }
    drop(listener);
    sweeper.abort();
    let grace = state.http.shutdown_grace;
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            ?grace,
            "shutdown grace period over; dropping open connections"
        );
    }
}
