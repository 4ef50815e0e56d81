//! Metrics: every metric name in one place, the Prometheus recorder (rendered by the
//! server's own `/metrics` route), the process collector and the build-info gauge.
//! Labels are low-cardinality by construction: routes are templates, never raw paths,
//! and no username, token or address is ever a label value.
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Request duration by `http_route`, `http_request_method`, `http_response_status_code`.
pub const HTTP_DURATION: &str = "http_server_request_duration_seconds";
/// check_token outcomes by `result` (valid, invalid, store_error).
pub const TOKEN_CHECKS: &str = "tokencache_token_checks_total";
/// Token pairs issued by `route` (authorize, authorize_nopwd, refresh_token).
pub const TOKENS_ISSUED: &str = "tokencache_tokens_issued_total";
/// refresh_token outcomes by `result` (ok, invalid, store_error).
pub const REFRESHES: &str = "tokencache_token_refreshes_total";
/// Refresh tokens presented again after use (each revokes its login's tokens).
pub const REFRESH_REUSE: &str = "tokencache_refresh_token_reuse_total";
/// Tokens revoked through logout or RFC 7009 revocation, by `route`.
pub const REVOCATIONS: &str = "tokencache_revocations_total";
/// Refused logins by `reason`.
pub const LOGIN_FAILURES: &str = "tokencache_login_failures_total";
/// Store operation duration by `store` (redis, sql) and `operation`.
pub const STORE_DURATION: &str = "tokencache_store_operation_duration_seconds";
/// Failed store operations by `store` and `operation`.
pub const STORE_ERRORS: &str = "tokencache_store_errors_total";
/// Connections a store keeps open, by `store` (Redis: its one multiplexed connection).
pub const STORE_POOL_SIZE: &str = "tokencache_store_pool_connections";
/// Connections in use by `store` (Redis: operations in flight on its connection).
pub const STORE_POOL_IN_USE: &str = "tokencache_store_pool_in_use";
/// Always 1, labelled with the `version`.
pub const BUILD_INFO: &str = "tokencache_build_info";

/// Bucket bounds (seconds) for sub-millisecond endpoints: 100 µs up to 1 s.
pub const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25,
    1.0,
];

struct Telemetry {
    handle: PrometheusHandle,
    process: metrics_process::Collector,
}

static TELEMETRY: OnceLock<Option<Telemetry>> = OnceLock::new();

/// Installs the global recorder once per process. `None` when another recorder was
/// installed first (metrics then go there, and `/metrics` answers 404).
fn telemetry() -> Option<&'static Telemetry> {
    TELEMETRY
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &BUCKETS)
                .ok()?;
            let handle = match builder.install_recorder() {
                Ok(h) => h,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed");
                    return None;
                }
            };
            let process = metrics_process::Collector::default();
            process.describe();
            describe();
            gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            // Upkeep drains histogram buffers; a thread so it outlives any one runtime.
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(Duration::from_secs(5));
                    upkeep.run_upkeep();
                })
                .ok()?;
            Some(Telemetry { handle, process })
        })
        .as_ref()
}

/// Installs the recorder (idempotent); call once at start.
pub fn install() -> bool {
    telemetry().is_some()
}

/// The Prometheus text exposition of every metric, process metrics refreshed.
pub fn render() -> Option<String> {
    let t = telemetry()?;
    t.process.collect();
    Some(t.handle.render())
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_histogram!(HTTP_DURATION, Unit::Seconds, "Duration of HTTP requests.");
    describe_counter!(TOKEN_CHECKS, "check_token outcomes by result.");
    describe_counter!(TOKENS_ISSUED, "Token pairs issued, by route.");
    describe_counter!(REFRESHES, "refresh_token outcomes by result.");
    describe_counter!(LOGIN_FAILURES, "Refused logins, by reason.");
    describe_counter!(REFRESH_REUSE, "Refresh tokens replayed after use.");
    describe_counter!(
        REVOCATIONS,
        "Revocation requests that revoked tokens, by route."
    );
    describe_histogram!(
        STORE_DURATION,
        Unit::Seconds,
        "Duration of store operations."
    );
    describe_counter!(STORE_ERRORS, "Failed store operations.");
    describe_gauge!(STORE_POOL_SIZE, "Connections a store keeps open.");
    describe_gauge!(
        STORE_POOL_IN_USE,
        "Store connections (SQL) or operations (Redis) in use."
    );
    describe_gauge!(BUILD_INFO, "Build information; always 1.");
}

/// Records one HTTP request.
pub fn http_request(route: &'static str, method: &'static str, status: u16, started: Instant) {
    histogram!(
        HTTP_DURATION,
        "http_route" => route,
        "http_request_method" => method,
        "http_response_status_code" => status_label(status),
    )
    .record(started.elapsed().as_secs_f64());
}

/// Status codes as static labels (no allocation per request).
fn status_label(status: u16) -> &'static str {
    match status {
        200 => "200",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        409 => "409",
        413 => "413",
        429 => "429",
        500 => "500",
        502 => "502",
        503 => "503",
        s if s < 300 => "2xx",
        s if s < 500 => "4xx",
        _ => "5xx",
    }
}

pub fn token_check(result: &'static str) {
    counter!(TOKEN_CHECKS, "result" => result).increment(1);
}

pub fn tokens_issued(route: &'static str) {
    counter!(TOKENS_ISSUED, "route" => route).increment(1);
}

pub fn refresh(result: &'static str) {
    counter!(REFRESHES, "result" => result).increment(1);
}

pub fn refresh_reuse() {
    counter!(REFRESH_REUSE).increment(1);
}

pub fn revocation(route: &'static str) {
    counter!(REVOCATIONS, "route" => route).increment(1);
}

pub fn login_failure(reason: &'static str) {
    counter!(LOGIN_FAILURES, "reason" => reason).increment(1);
}

/// Times one store operation; counts it as in use while it runs.
pub struct StoreOp {
    store: &'static str,
    operation: &'static str,
    started: Instant,
}

impl StoreOp {
    pub fn start(store: &'static str, operation: &'static str) -> Self {
        // Redis has one multiplexed connection: "in use" is the operations in flight on
        // it. SQL pool usage is sampled from the pool itself at scrape time instead.
        if store == "redis" {
            gauge!(STORE_POOL_IN_USE, "store" => store).increment(1.0);
        }
        Self {
            store,
            operation,
            started: Instant::now(),
        }
    }

    /// Ends the operation, counting an error when it failed.
    pub fn finish(self, ok: bool) {
        if self.store == "redis" {
            gauge!(STORE_POOL_IN_USE, "store" => self.store).decrement(1.0);
        }
        histogram!(STORE_DURATION, "store" => self.store, "operation" => self.operation)
            .record(self.started.elapsed().as_secs_f64());
        if !ok {
            counter!(STORE_ERRORS, "store" => self.store, "operation" => self.operation)
                .increment(1);
        }
    }
}

/// Sets a store's pool gauges (SQL: sampled at scrape time).
pub fn store_pool(store: &'static str, size: u32, in_use: u32) {
    gauge!(STORE_POOL_SIZE, "store" => store).set(f64::from(size));
    gauge!(STORE_POOL_IN_USE, "store" => store).set(f64::from(in_use));
}

/// Sets the number of connections a store keeps (Redis: 1).
pub fn store_connections(store: &'static str, size: u32) {
    gauge!(STORE_POOL_SIZE, "store" => store).set(f64::from(size));
}
