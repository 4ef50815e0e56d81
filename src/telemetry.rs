//! Metrics: every metric name in one place, the Prometheus recorder (rendered by the
//! server's own `/metrics` route), the process collector and the build-info gauge.
//! Labels are low-cardinality by construction: routes are templates, never raw paths,
//! and no username, token or address is ever a label value.
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use metrics::{counter, gauge, histogram, Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Request duration by `http_route`, `http_request_method`, `http_response_status_code`.
pub const HTTP_DURATION: &str = "http_server_request_duration_seconds";
/// check_token outcomes by `result` (valid, invalid, store_error).
pub const TOKEN_CHECKS: &str = "tokencache_token_checks_total";
pub const UPSTREAM_JWTS: &str = "tokencache_upstream_jwts_minted_total";
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
/// Connections the server closed by `reason`: `idle` (no request head in time) or
/// `ip_share` (their address held its share of the slots already).
pub const CONNECTIONS_CLOSED: &str = "tokencache_connections_closed_total";
/// Near-cache lookups by `result` (hit, miss).
pub const NEAR_CACHE_LOOKUPS: &str = "tokencache_near_cache_lookups_total";
/// Invalidation pushes the near cache received from Redis.
pub const NEAR_CACHE_INVALIDATIONS: &str = "tokencache_near_cache_invalidations_total";
/// Times the near cache emptied itself (a flush push, a lost or new tracking connection).
pub const NEAR_CACHE_FLUSHES: &str = "tokencache_near_cache_flushes_total";
/// Entries in the near cache (sampled twice a second).
pub const NEAR_CACHE_ENTRIES: &str = "tokencache_near_cache_entries";
/// Misses read through the store's connection because their master's tracking connection
/// could not serve them (its slot moved, or the read failed): not kept.
pub const NEAR_CACHE_MISREADS: &str = "tokencache_near_cache_misreads_total";
/// gRPC ext_authz checks by `result` (ok, denied, unavailable, error).
pub const GRPC_CHECKS: &str = "tokencache_grpc_checks_total";
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
            // Upkeep drains histogram buffers; every second, so a drain is small (a large one
            // every few seconds showed as latency spikes). A thread, so it outlives any one
            // runtime.
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(Duration::from_secs(1));
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
    if REDIS_OPENED.load(Ordering::Relaxed) {
        gauge!(STORE_POOL_IN_USE, "store" => "redis")
            .set(REDIS_IN_FLIGHT.load(Ordering::Relaxed) as f64);
    }
    Some(t.handle.render())
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_histogram!(HTTP_DURATION, Unit::Seconds, "Duration of HTTP requests.");
    describe_counter!(TOKEN_CHECKS, "check_token outcomes by result.");
    describe_counter!(
        UPSTREAM_JWTS,
        "Upstream JWTs signed (--upstream-jwt), by kind: identity, introspection; reused ones are not counted."
    );
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
    describe_counter!(
        CONNECTIONS_CLOSED,
        "Connections closed by the server: idle past their deadline, or over their address's share."
    );
    describe_gauge!(STORE_POOL_SIZE, "Connections a store keeps open.");
    describe_gauge!(
        STORE_POOL_IN_USE,
        "Store connections (SQL) or operations (Redis) in use."
    );
    describe_counter!(GRPC_CHECKS, "gRPC ext_authz checks, by result.");
    describe_counter!(NEAR_CACHE_LOOKUPS, "Near-cache lookups, by result.");
    describe_counter!(
        NEAR_CACHE_INVALIDATIONS,
        "Invalidation pushes received from Redis."
    );
    describe_counter!(NEAR_CACHE_FLUSHES, "Times the near cache emptied itself.");
    describe_gauge!(NEAR_CACHE_ENTRIES, "Entries in the near cache.");
    describe_counter!(
        NEAR_CACHE_MISREADS,
        "Near-cache misses that their master's tracking connection could not read (a moved slot, an error).",
    );
    describe_gauge!(BUILD_INFO, "Build information; always 1.");
}

/// Metric handles already looked up, per worker thread: a handle looked up once per
/// thread and label set is an atomic add after, where the recorder's registry lookup
/// hashes the name and labels under a lock on every call. Keys are the addresses of the
/// `&'static str` labels (a label spelled at two call sites may take two entries, which
/// still resolve to the same metric).
type Handles<K, V> = RefCell<HashMap<K, V>>;

thread_local! {
    static HISTOGRAMS: Handles<(usize, usize, usize, u16), Histogram> = RefCell::default();
    static COUNTERS: Handles<(usize, usize), Counter> = RefCell::default();
}

fn addr(s: &'static str) -> usize {
    s.as_ptr() as usize
}

fn with_histogram(
    key: (usize, usize, usize, u16),
    make: impl FnOnce() -> Histogram,
    f: impl FnOnce(&Histogram),
) {
    HISTOGRAMS.with(|cell| match cell.try_borrow_mut() {
        Ok(mut map) => f(map.entry(key).or_insert_with(make)),
        // Re-entered from inside a recorder call: use the registry directly.
        Err(_) => f(&make()),
    });
}

fn with_counter(key: (usize, usize), make: impl FnOnce() -> Counter, f: impl FnOnce(&Counter)) {
    COUNTERS.with(|cell| match cell.try_borrow_mut() {
        Ok(mut map) => f(map.entry(key).or_insert_with(make)),
        Err(_) => f(&make()),
    });
}

/// Increments a counter with one label, through the per-thread handle cache.
fn count(name: &'static str, label: &'static str, value: &'static str) {
    with_counter(
        (addr(name), addr(value)),
        || counter!(name, label => value),
        |c| c.increment(1),
    );
}

/// Records one HTTP request.
pub fn http_request(route: &'static str, method: &'static str, status: u16, started: Instant) {
    let seconds = started.elapsed().as_secs_f64();
    with_histogram(
        (addr(HTTP_DURATION), addr(route), addr(method), status),
        || {
            histogram!(
                HTTP_DURATION,
                "http_route" => route,
                "http_request_method" => method,
                "http_response_status_code" => status_label(status),
            )
        },
        |h| h.record(seconds),
    );
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
    count(TOKEN_CHECKS, "result", result);
}

pub fn upstream_jwt_minted(kind: &'static str) {
    count(UPSTREAM_JWTS, "kind", kind);
}

pub fn tokens_issued(route: &'static str) {
    count(TOKENS_ISSUED, "route", route);
}

pub fn refresh(result: &'static str) {
    count(REFRESHES, "result", result);
}

pub fn refresh_reuse() {
    counter!(REFRESH_REUSE).increment(1);
}

pub fn revocation(route: &'static str) {
    count(REVOCATIONS, "route", route);
}

pub fn near_cache(result: &'static str) {
    count(NEAR_CACHE_LOOKUPS, "result", result);
}

pub fn near_cache_misread() {
    counter!(NEAR_CACHE_MISREADS).increment(1);
}

pub fn near_cache_invalidations() {
    counter!(NEAR_CACHE_INVALIDATIONS).increment(1);
}

pub fn near_cache_flush() {
    counter!(NEAR_CACHE_FLUSHES).increment(1);
}

pub fn near_cache_entries(n: usize) {
    gauge!(NEAR_CACHE_ENTRIES).set(n as f64);
}

pub fn grpc_check(result: &'static str) {
    count(GRPC_CHECKS, "result", result);
}

pub fn connections_closed(reason: &'static str, n: u64) {
    counter!(CONNECTIONS_CLOSED, "reason" => reason).increment(n);
}

pub fn login_failure(reason: &'static str) {
    count(LOGIN_FAILURES, "reason", reason);
}

/// Operations in flight on the Redis connection, published as its "in use" at scrape
/// time (an atomic here rather than a gauge update per operation).
static REDIS_IN_FLIGHT: AtomicI64 = AtomicI64::new(0);
/// Whether this process uses Redis (so its gauges mean something).
static REDIS_OPENED: AtomicBool = AtomicBool::new(false);

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
            REDIS_IN_FLIGHT.fetch_add(1, Ordering::Relaxed);
        }
        Self {
            store,
            operation,
            started: Instant::now(),
        }
    }

    /// Ends the operation, counting an error when it failed.
    pub fn finish(self, ok: bool) {
        let (store, operation) = (self.store, self.operation);
        if store == "redis" {
            REDIS_IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
        }
        with_histogram(
            (addr(STORE_DURATION), addr(store), addr(operation), 0),
            || histogram!(STORE_DURATION, "store" => store, "operation" => operation),
            |h| h.record(self.started.elapsed().as_secs_f64()),
        );
        if !ok {
            counter!(STORE_ERRORS, "store" => store, "operation" => operation).increment(1);
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
    if store == "redis" {
        REDIS_OPENED.store(true, Ordering::Relaxed);
    }
    gauge!(STORE_POOL_SIZE, "store" => store).set(f64::from(size));
}
