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
//! The service types are generated from Envoy's own protos (the `envoy-types` crate) and
//! served by tonic's server, itself hyper's HTTP/2.
use std::sync::Arc;

use envoy_types::ext_authz::v3::pb::{
    Authorization, AuthorizationServer, CheckRequest, CheckResponse, HeaderAppendAction,
    HttpStatusCode,
};
use envoy_types::ext_authz::v3::{
    CheckRequestExt, CheckResponseExt, DeniedHttpResponseBuilder, OkHttpResponseBuilder,
};
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};

use crate::http::error::{chain, domain_answer};
use crate::http::gateway::{bearer_value, header_text, spoofed};
use crate::http::State;
use crate::store::{RecordBackend, TokenBackend};
use crate::telemetry;

/// The `Authorization` service on the shared state.
pub struct ExtAuthz<T: TokenBackend, R: RecordBackend> {
    state: Arc<State<T, R>>,
}

/// The `authorization` header of the checked request: from the header map Envoy sends
/// (lower-case names), or from its raw header list when it sends that instead.
fn authorization(request: &CheckRequest) -> Option<String> {
    if let Some(value) = request
        .get_client_headers()
        .and_then(|headers| headers.get("authorization"))
    {
        return Some(value.clone());
    }
    let raw = request
        .attributes
        .as_ref()?
        .request
        .as_ref()?
        .http
        .as_ref()?
        .header_map
        .as_ref()?;
    raw.headers
        .iter()
        .find(|h| h.key.eq_ignore_ascii_case("authorization"))
        .map(|h| {
            if h.value.is_empty() {
                String::from_utf8_lossy(&h.raw_value).into_owned()
            } else {
                h.value.clone()
            }
        })
}

/// Every header name of the checked request (the map, or the raw list).
fn header_names(request: &CheckRequest) -> Vec<&str> {
    let Some(http) = request
        .attributes
        .as_ref()
        .and_then(|a| a.request.as_ref())
        .and_then(|r| r.http.as_ref())
    else {
        return Vec::new();
    };
    let mut names: Vec<&str> = http.headers.keys().map(String::as_str).collect();
    if let Some(raw) = &http.header_map {
        names.extend(raw.headers.iter().map(|h| h.key.as_str()));
    }
    names
}

#[tonic::async_trait]
impl<T, R> Authorization for ExtAuthz<T, R>
where
    T: TokenBackend + Send + Sync + 'static,
    R: RecordBackend + Send + Sync + 'static,
{
    async fn check(
        &self,
        request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        if self.state.http.refuse_identity_headers {
            if let Some(name) = spoofed(header_names(request.get_ref())) {
                tracing::info!(
                    header = name,
                    "gRPC check refused: the request carries an identity header"
                );
                telemetry::grpc_check("spoofed");
                let mut denied = DeniedHttpResponseBuilder::new();
                denied.set_http_status(HttpStatusCode::Forbidden).set_body(format!(
                    "refused: the request carries the header {name}, which only tokencache may set\n"
                ));
                let mut response = CheckResponse::with_status(Status::permission_denied(
                    "the request carries an identity header",
                ));
                response.set_http_response(denied);
                return Ok(Response::new(response));
            }
        }
        let header = authorization(request.get_ref());
        let token = header.as_deref().and_then(bearer_value);
        match self.state.engine.check_token(token).await {
            Ok(info) => {
                telemetry::grpc_check("ok");
                let mut ok = OkHttpResponseBuilder::new();
                // Overwritten, never appended: a client cannot send its own identity.
                let set = Some(HeaderAppendAction::OverwriteIfExistsOrAdd);
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
                Ok(Response::new(response))
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
                let mut response =
                    CheckResponse::with_status(Status::unauthenticated("invalid token"));
                response.set_http_response(denied);
                Ok(Response::new(response))
            }
        }
    }
}

/// Serves the service on an already-bound listener until `shutdown` resolves: HTTP/2
/// connections served by hyper, each request handed to tonic's generated service (no
/// router: this listener serves one service). Connections still open at `shutdown` get
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
    use tonic::codegen::Service as _;

    let http = state.http.clone();
    let v6_prefix = state.engine.rules.limits.ipv6_prefix;
    // A CheckRequest is a request's attributes: a few KiB; 64 KiB bounds each one.
    let service = AuthorizationServer::new(ExtAuthz { state }).max_decoding_message_size(64 * 1024);
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
        let service = service.clone();
        let calls =
            hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                tracked.begin();
                let done = tracked.clone();
                let mut service = service.clone();
                async move {
                    let answer = service.call(req).await;
                    done.end();
                    answer
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
