//! Operator routes: `/metrics` (Prometheus), `/healthz` (alive, no I/O) and `/readyz`
//! (both stores answer).
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde_json::json;

use super::{Body, State};
use crate::store::{RecordBackend, TokenBackend};
use crate::telemetry;

fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

pub fn healthz() -> Response<Body> {
    respond(StatusCode::OK, "application/json", r#"{"status":"ok"}"#)
}

pub async fn readyz<T: TokenBackend, R: RecordBackend>(state: &State<T, R>) -> Response<Body> {
    let engine = &state.engine;
    let (tokens, records) = tokio::join!(engine.tokens.ping(), engine.records.ping());
    let mut failed = Vec::new();
    if let Err(e) = &tokens {
        tracing::warn!(store = engine.tokens.name(), error = %e, "readiness check failed");
        failed.push(engine.tokens.name());
    }
    if let Err(e) = &records {
        tracing::warn!(store = engine.records.name(), error = %e, "readiness check failed");
        failed.push(engine.records.name());
    }
    let status = if failed.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if failed.is_empty() { "ready" } else { "unavailable" },
        "stores": {
            engine.tokens.name(): if tokens.is_ok() { "ok" } else { "unavailable" },
            engine.records.name(): if records.is_ok() { "ok" } else { "unavailable" },
        },
        "failed": failed,
    });
    respond(status, "application/json", body.to_string())
}

pub fn metrics<T: TokenBackend, R: RecordBackend>(state: &State<T, R>) -> Response<Body> {
    if let Some((size, in_use)) = state.engine.records.pool_usage() {
        telemetry::store_pool("sql", size, in_use);
    }
    match telemetry::render() {
        Some(text) => respond(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            text,
        ),
        None => respond(
            StatusCode::NOT_FOUND,
            "text/plain",
            "metrics recorder not installed\n",
        ),
    }
}
