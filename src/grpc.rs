//! Envoy's external authorization over gRPC (`envoy.service.auth.v3.Authorization/Check`,
//! what Envoy's and Istio's `ext_authz` filter calls with `grpc_service`), on a listener
//! of its own (`--grpc-listen`).
//!
//! The token comes from the checked request's `authorization` header (`Bearer …`) and is
//! looked up with the same one-round-trip path as check_token and forward-auth. The
//! answers, in Envoy's terms:
//!
//! | token | answer | Envoy does |
//! |---|---|---|
//! | live | `OK`, the identity headers set (overwritten) on the upstream request | passes the request on |
//! | missing, unknown, expired, revoked | `UNAUTHENTICATED` with a denied response: 401, `WWW-Authenticate: Bearer error="invalid_token"` | answers the client with that 401 |
//! | the token store does not answer | the call fails with gRPC `UNAVAILABLE` | `failure_mode_allow`, or `status_on_error` (403 by default) |
//! | a stored value it cannot read | the call fails with gRPC `INTERNAL` | the same |
//! | the request carries an identity header of its own (`X_Auth_Username`, any case) | `PERMISSION_DENIED` with a denied response: 403 | answers the client with that 403 |
//!
//! ## The transport, by hand on hyper's HTTP/2
//!
//! The one method is served without tonic's server: each call's body (one gRPC
//! length-prefixed message, at most 64 KiB) is read whole, decoded into a slim
//! `CheckRequest` that declares only the fields read here (the checked request's header
//! map and raw header list; protobuf skips the rest of Envoy's attribute context unread),
//! and answered with one message and `grpc-status` in the trailers; a call that fails is
//! answered trailers-only. The answer is encoded from envoy-types' own `CheckResponse`
//! (generated from Envoy's protos). Why: under h2load, tonic's generated server (its
//! layers, the whole `CheckRequest` decoded into owned strings and a hashed map, large
//! futures moved in memory) cost each Check 10.0–10.2 µs of server CPU, this 8.2–8.5 µs,
//! against 6.1–7.0 µs for a bare hyper HTTP/2 server doing the same GET
//! (`loadtest/ceiling_grpc`; docs/loadtest.md). Tested against Python's grpcio client built from
//! Envoy's published protos (`tests/grpc.rs`), including a compressed message, an unknown
//! method, an oversized and an undecodable one.
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use envoy_types::ext_authz::v3::pb::{CheckResponse, HeaderAppendAction, HttpStatusCode};
use envoy_types::ext_authz::v3::{
    CheckResponseExt, DeniedHttpResponseBuilder, OkHttpResponseBuilder,
};
use http_body::Frame;
use http_body_util::BodyExt;
use prost::Message;
use tokio::net::TcpListener;
use tonic::Status;

use crate::http::error::{chain, domain_answer};
use crate::http::gateway::{bearer_value, header_text, spoofed};
use crate::http::State;
use crate::store::{RecordBackend, TokenBackend};
use crate::telemetry;

/// The method's path.
const CHECK: &str = "/envoy.service.auth.v3.Authorization/Check";

/// The largest `CheckRequest` accepted: a request's attributes are a few KiB.
const MAX_MESSAGE: usize = 64 * 1024;

/// The part of Envoy's `CheckRequest` read here, with Envoy's field numbers
/// (`envoy/service/auth/v3/external_auth.proto`, `attribute_context.proto`,
/// `envoy/config/core/v3/base.proto`); every other field is skipped unread. Strings are
/// read as bytes, slices of the message (no copy, no UTF-8 check but where read), and the
/// header map as what it is on the wire, a list of key-value entries (no hashing).
mod slim {
    use bytes::Bytes;

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct CheckRequest {
        #[prost(message, optional, tag = "1")]
        pub attributes: Option<AttributeContext>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AttributeContext {
        #[prost(message, optional, tag = "4")]
        pub request: Option<Request>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Request {
        #[prost(message, optional, tag = "2")]
        pub http: Option<HttpRequest>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct HttpRequest {
        /// `map<string, string> headers`: lower-case names, as Envoy sends them.
        #[prost(message, repeated, tag = "3")]
        pub headers: Vec<Entry>,
        /// The raw header list Envoy sends instead when so configured.
        #[prost(message, optional, tag = "13")]
        pub header_map: Option<HeaderMap>,
    }

    /// One entry of a protobuf map.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Entry {
        #[prost(bytes = "bytes", tag = "1")]
        pub key: Bytes,
        #[prost(bytes = "bytes", tag = "2")]
        pub value: Bytes,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct HeaderMap {
        #[prost(message, repeated, tag = "1")]
        pub headers: Vec<HeaderValue>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct HeaderValue {
        #[prost(bytes = "bytes", tag = "1")]
        pub key: Bytes,
        #[prost(bytes = "bytes", tag = "2")]
        pub value: Bytes,
        #[prost(bytes = "bytes", tag = "3")]
        pub raw_value: Bytes,
    }
}

fn http_of(request: &slim::CheckRequest) -> Option<&slim::HttpRequest> {
    request.attributes.as_ref()?.request.as_ref()?.http.as_ref()
}

/// The `authorization` header of the checked request: from the header map Envoy sends
/// (lower-case names; of a repeated key, the last, as a map keeps it), or from its raw
/// header list when it sends that instead. Not UTF-8: no token.
fn authorization(request: &slim::CheckRequest) -> Option<&str> {
    let http = http_of(request)?;
    let value = match http
        .headers
        .iter()
        .rev()
        .find(|e| &e.key[..] == b"authorization")
    {
        Some(entry) => &entry.value,
        None => http
            .header_map
            .as_ref()?
            .headers
            .iter()
            .find(|h| h.key.eq_ignore_ascii_case(b"authorization"))
            .map(|h| {
                if h.value.is_empty() {
                    &h.raw_value
                } else {
                    &h.value
                }
            })?,
    };
    std::str::from_utf8(value).ok()
}

/// Every header name of the checked request (the map, and the raw list) that is UTF-8.
fn header_names(request: &slim::CheckRequest) -> impl Iterator<Item = &str> {
    let http = http_of(request);
    let map = http
        .into_iter()
        .flat_map(|h| h.headers.iter().map(|e| &e.key));
    let raw = http
        .and_then(|h| h.header_map.as_ref())
        .into_iter()
        .flat_map(|m| m.headers.iter().map(|h| &h.key));
    map.chain(raw).filter_map(|k| std::str::from_utf8(k).ok())
}

/// The answer to one `Check`: the `CheckResponse`, or the status the call fails with.
async fn check<T, R>(
    state: &State<T, R>,
    request: &slim::CheckRequest,
) -> Result<CheckResponse, Status>
where
    T: TokenBackend,
    R: RecordBackend,
{
    if state.http.refuse_identity_headers {
        if let Some(name) = spoofed(header_names(request)) {
            tracing::info!(
                header = name,
                "gRPC check refused: the request carries an identity header"
            );
            telemetry::grpc_check("spoofed");
            let mut denied = DeniedHttpResponseBuilder::new();
            denied
                .set_http_status(HttpStatusCode::Forbidden)
                .set_body(format!(
                "refused: the request carries the header {name}, which only tokencache may set\n"
            ));
            let mut response = CheckResponse::with_status(Status::permission_denied(
                "the request carries an identity header",
            ));
            response.set_http_response(denied);
            return Ok(response);
        }
    }
    let token = authorization(request).and_then(bearer_value);
    // Boxed: the check's future is large, and moved with every call's otherwise.
    match Box::pin(state.engine.check_token(token)).await {
        Ok(info) => {
            let Ok(jwt) =
                crate::upstream::for_check(state.engine.upstream.as_deref(), token, &info)
            else {
                tracing::warn!("gRPC check: no signing key for the upstream JWT");
                telemetry::grpc_check("unavailable");
                return Err(Status::unavailable("no signing key"));
            };
            telemetry::grpc_check("ok");
            let mut ok = OkHttpResponseBuilder::new();
            // Overwritten, never appended: a client cannot send its own identity.
            let set = Some(HeaderAppendAction::OverwriteIfExistsOrAdd);
            if let Some(jwt) = jwt {
                // Phantom token: the upstream gets the JWT in place of the opaque token.
                ok.add_header(
                    "authorization",
                    jwt.bearer.to_str().unwrap_or_default(),
                    set,
                    true,
                );
            }
            ok.add_header("x-auth-username", header_text(&info.username), set, true)
                .add_header("x-auth-app-key", header_text(&info.app_key), set, true)
                .add_header(
                    "x-auth-token-type",
                    header_text(&info.token_type),
                    set,
                    true,
                )
                .add_header(
                    "x-auth-expires-in",
                    info.seconds_left.to_string(),
                    set,
                    true,
                );
            let mut response = CheckResponse::with_status(Status::ok("token is live"));
            response.set_http_response(ok);
            Ok(response)
        }
        Err(e) => {
            let status = domain_answer(&e).forward_auth;
            if status.is_server_error() {
                tracing::warn!(error = %chain(&e), "gRPC ext_authz check failed");
                let (result, status) = if status.as_u16() == 503 {
                    (
                        "unavailable",
                        Status::unavailable("token store unavailable"),
                    )
                } else {
                    ("error", Status::internal("token store error"))
                };
                telemetry::grpc_check(result);
                return Err(status);
            }
            telemetry::grpc_check("denied");
            let mut denied = DeniedHttpResponseBuilder::new();
            denied
                .set_http_status(HttpStatusCode::Unauthorized)
                .add_header(
                    "www-authenticate",
                    "Bearer error=\"invalid_token\"",
                    Some(HeaderAppendAction::OverwriteIfExistsOrAdd),
                    false,
                );
            let mut response = CheckResponse::with_status(Status::unauthenticated("invalid token"));
            response.set_http_response(denied);
            Ok(response)
        }
    }
}

/// A gRPC answer's body: at most one message, then the trailers.
pub struct Unary {
    message: Option<Bytes>,
    trailers: Option<hyper::HeaderMap>,
}

impl http_body::Body for Unary {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(message) = self.message.take() {
            return Poll::Ready(Some(Ok(Frame::data(message))));
        }
        Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.message.is_none() && self.trailers.is_none()
    }
}

fn grpc_response(body: Unary, status: Option<&Status>) -> hyper::Response<Unary> {
    let mut response = hyper::Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/grpc"),
    );
    if let Some(status) = status {
        status_headers(headers, status);
    }
    response
}

/// `grpc-status` and `grpc-message` (the messages here are plain ASCII, no `%`).
fn status_headers(headers: &mut hyper::HeaderMap, status: &Status) {
    headers.insert(
        "grpc-status",
        hyper::header::HeaderValue::from(status.code() as i32),
    );
    if !status.message().is_empty() {
        if let Ok(message) = hyper::header::HeaderValue::from_str(status.message()) {
            headers.insert("grpc-message", message);
        }
    }
}

/// A call that fails: trailers-only (the status in the headers, no message).
fn failed(status: Status) -> hyper::Response<Unary> {
    grpc_response(
        Unary {
            message: None,
            trailers: None,
        },
        Some(&status),
    )
}

/// The one message of a unary call's body (gRPC's length-prefixed framing).
fn message(body: &Bytes) -> Result<Bytes, Status> {
    let Some((&[compressed, a, b, c, d], rest)) = body.split_first_chunk::<5>() else {
        return Err(Status::internal("the call carried no request message"));
    };
    if compressed != 0 {
        return Err(Status::unimplemented(
            "compressed messages are not accepted (no grpc-encoding is supported)",
        ));
    }
    let length = u32::from_be_bytes([a, b, c, d]) as usize;
    if length > MAX_MESSAGE {
        return Err(Status::resource_exhausted(
            "the request message is larger than 64 KiB",
        ));
    }
    if rest.len() != length {
        return Err(Status::internal(
            "the call's body is not exactly one request message",
        ));
    }
    Ok(body.slice(5..))
}

/// One call on the gRPC listener.
async fn call<T, R>(
    state: Arc<State<T, R>>,
    request: hyper::Request<hyper::body::Incoming>,
) -> hyper::Response<Unary>
where
    T: TokenBackend,
    R: RecordBackend,
{
    if request.uri().path() != CHECK {
        return failed(Status::unimplemented(
            "this listener serves envoy.service.auth.v3.Authorization/Check only",
        ));
    }
    let body = match http_body_util::Limited::new(request.into_body(), 5 + MAX_MESSAGE)
        .collect()
        .await
    {
        Ok(body) => body.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return failed(Status::resource_exhausted(
                "the request message is larger than 64 KiB",
            ))
        }
        Err(_) => return failed(Status::cancelled("the request's body was cut short")),
    };
    let decoded = message(&body).and_then(|m| {
        slim::CheckRequest::decode(m)
            .map_err(|_| Status::internal("the request message is not a CheckRequest"))
    });
    let request = match decoded {
        Ok(request) => request,
        Err(status) => return failed(status),
    };
    match check(&state, &request).await {
        Ok(response) => {
            let length = response.encoded_len();
            let mut framed = Vec::with_capacity(5 + length);
            framed.push(0);
            framed.extend_from_slice(&(length as u32).to_be_bytes());
            // Into a Vec of the right size: encoding cannot run out of room.
            let _ = response.encode(&mut framed);
            let mut trailers = hyper::HeaderMap::with_capacity(1);
            status_headers(&mut trailers, &Status::ok(""));
            grpc_response(
                Unary {
                    message: Some(Bytes::from(framed)),
                    trailers: Some(trailers),
                },
                None,
            )
        }
        Err(status) => failed(status),
    }
}

/// Serves the service on an already-bound listener until `shutdown` resolves: HTTP/2
/// connections served by hyper, each call answered by `call` (this listener serves one
/// method). Connections still open at `shutdown` get
/// the shutdown grace to finish. As on the HTTP listener: at most `--max-connections` at once, a
/// share of them per client network, and a connection with no request in flight is
/// closed after the header timeout (never used) or the idle timeout.
pub async fn serve<T, R>(
    listener: TcpListener,
    state: Arc<State<T, R>>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) where
    T: TokenBackend + Send + Sync + 'static,
    R: RecordBackend + Send + Sync + 'static,
{
    use crate::http::conns::{ConnLimits, Conns};
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::graceful::GracefulShutdown;

    let http = state.http.clone();
    let v6_prefix = state.engine.rules.limits.ipv6_prefix;
    let slots = Arc::new(tokio::sync::Semaphore::new(http.max_connections.max(1)));
    let conns = Conns::new(ConnLimits {
        header_timeout: http.header_timeout,
        idle_timeout: http.idle_timeout,
        body_timeout: http.body_timeout,
        per_ip: http.max_connections_per_ip,
    });
    let sweeper = conns.start_sweeper();
    let graceful = GracefulShutdown::new();
    let builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            () = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors and the like: wait a little, never spin.
                    tracing::warn!(error = %e, "gRPC accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(admitted) = conns.admit(crate::domain::limits::network(peer.ip(), v6_prefix))
        else {
            telemetry::connections_closed("ip_share", 1);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let tracked = admitted.conn.clone();
        let state = state.clone();
        let calls =
            hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                tracked.begin();
                let done = tracked.clone();
                let state = state.clone();
                async move {
                    let answer = call(state, req).await;
                    done.end();
                    Ok::<_, Infallible>(answer)
                }
            });
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), calls));
        tokio::spawn(async move {
            tokio::select! {
                result = conn => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "gRPC connection ended with an error");
                    }
                }
                // Idle or never used past its deadline: dropping it closes it.
                () = admitted.conn.close.notified() => {}
            }
            drop(admitted);
            drop(slot);
        });
    }
    sweeper.abort();
    if tokio::time::timeout(http.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("gRPC connections still open after the grace period");
    }
}
