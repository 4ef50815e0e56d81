//! The HTTP layer: bytes ⇄ request structs, the router, status codes and the envelope.
//! It imports neither redis nor sea-orm; it talks to the domain only.
mod accounts;
pub mod body;
mod client_ip;
pub mod envelope;
pub mod error;
mod tokens;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue, ACCEPT_LANGUAGE, ALLOW, RETRY_AFTER};
use hyper::http::request::Parts;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use serde::de::DeserializeOwned;
use tokio::net::TcpListener;

use envelope::Replier;
pub use envelope::{Body, Lang};
use error::ApiError;

use crate::domain::Engine;
use crate::store::{RecordStore, TokenStore};

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
    /// Take the client IP from the first `X-Forwarded-For` hop (behind a trusted proxy).
    pub trust_forwarded_for: bool,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            compat_http_200: false,
            max_body_bytes: 16 * 1024,
            lang: Lang::En,
            shutdown_grace: Duration::from_secs(10),
            trust_forwarded_for: false,
        }
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
}

impl<T: TokenStore, R: RecordStore> Request<'_, T, R> {
    /// The body as the endpoint's struct, from JSON or a form.
    pub fn parse<B: DeserializeOwned>(&self) -> Result<B, ApiError> {
        body::parse(&self.parts, &self.body)
    }

    pub fn engine(&self) -> &Engine<T, R> {
        &self.state.engine
    }
}

/// The routes that take a signed JSON or form body.
const POST_ROUTES: [&str; 9] = [
    "/api/v1/authorize",
    "/api/v1/authorize_nopwd",
    "/api/v1/check_token",
    "/api/v1/refresh_token",
    "/api/v1/get_verify",
    "/api/v1/check_user",
    "/api/v1/doaction",
    "/api/v1/get_userinfo",
    "/api/v1/update_userinfo",
];

/// Maps the legacy prefix `/oauth2/api/v1/…` onto `/api/v1/…`.
fn canonical(path: &str) -> &str {
    match path.strip_prefix("/oauth2") {
        Some(rest) if rest.starts_with("/api/v1/") => rest,
        _ => path,
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

/// Routes one request; never fails (errors become envelopes).
pub async fn handle<T: TokenStore, R: RecordStore>(
    state: Arc<State<T, R>>,
    peer: SocketAddr,
    req: hyper::Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let reply = Replier {
        lang: lang_of(req.headers(), state.http.lang),
        compat_http_200: state.http.compat_http_200,
    };
    let (parts, incoming) = req.into_parts();
    let path = canonical(parts.uri.path()).to_owned();
    let result = match (&parts.method, path.as_str()) {
        (&Method::POST, p) if POST_ROUTES.contains(&p) => {
            match body::read(incoming, &parts, state.http.max_body_bytes).await {
                Ok(body) => {
                    let req = Request {
                        state: &state,
                        parts,
                        body,
                        peer,
                        reply,
                    };
                    match p {
                        "/api/v1/authorize" => tokens::authorize(&req, true).await,
                        "/api/v1/authorize_nopwd" => tokens::authorize(&req, false).await,
                        "/api/v1/check_token" => tokens::check_token(&req).await,
                        "/api/v1/refresh_token" => tokens::refresh_token(&req).await,
                        "/api/v1/get_verify" => accounts::get_verify(&req).await,
                        "/api/v1/check_user" => accounts::check_user(&req).await,
                        "/api/v1/doaction" => accounts::doaction(&req).await,
                        "/api/v1/get_userinfo" => accounts::get_userinfo(&req).await,
                        _ => accounts::update_userinfo(&req).await,
                    }
                }
                Err(e) => Err(e),
            }
        }
        (_, p) if POST_ROUTES.contains(&p) => Err(ApiError::WrongMethod),
        _ => Err(ApiError::NoRoute),
    };
    Ok(result.unwrap_or_else(|e| error_response(&e, reply, &path)))
}

/// The one place an error becomes a response, and is logged.
fn error_response(e: &ApiError, reply: Replier, path: &str) -> Response<Body> {
    if e.is_server_side() {
        tracing::warn!(route = path, error = %error::chain(e), "request failed");
    } else {
        tracing::debug!(route = path, error = %e, "request refused");
    }
    let (code, status) = e.classify();
    let mut response = reply.fail(code, status);
    if matches!(e, ApiError::WrongMethod) {
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("POST"));
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
pub async fn serve<T: TokenStore, R: RecordStore>(
    listener: TcpListener,
    state: Arc<State<T, R>>,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
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
        let _ = stream.set_nodelay(true);
        let conn_state = state.clone();
        let service = service_fn(move |req| handle(conn_state.clone(), peer, req));
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
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
