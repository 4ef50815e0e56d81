//! The command line's arguments: every setting, its flag, its environment variable and
//! its default, which is the value the setting's own `DEFAULT` holds (one source).
use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::app;
use crate::delivery::DeliverySettings;
use crate::domain::admin::{ClientSpec, NO_APP_KEY};
use crate::domain::import::ImportOptions;
use crate::domain::limits::Limits;
use crate::domain::password::Argon2Settings;
use crate::domain::Rules;
use crate::http::{HttpSettings, Lang};
use crate::store::records::zone::DbZone;
use crate::store::tokens::redis::RedisMode;
use crate::upstream;

const HTTP: HttpSettings = HttpSettings::DEFAULT;
/// The longest window, lifetime or wait a setting may name: a year. Larger values are
/// refused when the command line is read, not wrapped or overflowed later.
const MAX_SECONDS: u64 = 365 * 24 * 3600;
/// The largest request body cap: 16 MiB.
const MAX_BODY_BYTES: u64 = 16 * 1024 * 1024;
/// The longest access-token lifetime a client may get: a year (refresh tokens twice).
const MAX_TOKEN_TTL: i64 = 365 * 24 * 3600;
const LIMITS: Limits = Limits::DEFAULT;

/// A duration as the whole milliseconds a flag takes.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[derive(Debug, Parser)]
#[command(
    name = "tokencache",
    version,
    about = "A fast, stateless token server for API gateways (drop-in for xxjwxc/oauth2)"
)]
pub struct Cli {
    /// Log line format on stderr; RUST_LOG filters the lines (default: info).
    #[arg(
        long,
        env = "TOKENCACHE_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::DEFAULT,
        global = true
    )]
    pub log_format: LogFormat,
    #[command(flatten)]
    pub stores: StoreArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Where the records and tokens live; shared by every command.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// Record store: mysql://user:pass@host:3306/db or sqlite://path?mode=rwc.
    /// Unset: the embedded SQLite file ./tokencache.db.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,
    /// Token store: redis://host:6379/0 (rediss:// for TLS). Cluster mode: seed nodes,
    /// sentinel mode: the sentinels, comma-separated. Unset: an in-process store (one
    /// instance only).
    #[arg(long, env = "REDIS_URL", global = true, hide_env_values = true)]
    pub redis_url: Option<String>,
    /// What --redis-url names: one server, a Redis Cluster, or Redis Sentinels.
    #[arg(
        long,
        env = "TOKENCACHE_REDIS_MODE",
        value_enum,
        default_value_t = RedisMode::Standalone,
        global = true
    )]
    pub redis_mode: RedisMode,
    /// Sentinel mode: the name of the master the sentinels monitor.
    #[arg(long, env = "TOKENCACHE_REDIS_SENTINEL_MASTER", global = true)]
    pub redis_sentinel_master: Option<String>,
    /// Prefix of every Redis key.
    #[arg(
        long,
        env = "TOKENCACHE_REDIS_PREFIX",
        default_value = app::DEFAULT_REDIS_PREFIX,
        global = true
    )]
    pub redis_prefix: String,
    /// Bound on one Redis operation (connect included), in milliseconds.
    #[arg(
        long,
        env = "TOKENCACHE_REDIS_TIMEOUT_MS",
        default_value_t = millis(app::DEFAULT_REDIS_TIMEOUT),
        global = true
    )]
    pub redis_timeout_ms: u64,
    /// Replicas a revocation (logout, logout-all, a new password, a disabled user, a
    /// replayed refresh token) and, on a cluster, a new pair's entry in its user's index
    /// must reach before they answer (WAIT); fewer within --redis-wait-timeout-ms and it
    /// answers 503, to be retried. Unset: 1 with --redis-mode cluster or sentinel, 0 (no wait)
    /// with one server.
    #[arg(long, env = "TOKENCACHE_REDIS_WAIT_REPLICAS", global = true)]
    pub redis_wait_replicas: Option<u32>,
    /// How long a write waits for its replicas, in milliseconds.
    #[arg(
        long,
        env = "TOKENCACHE_REDIS_WAIT_TIMEOUT_MS",
        default_value_t = millis(app::DEFAULT_REDIS_WAIT_TIMEOUT),
        global = true
    )]
    pub redis_wait_timeout_ms: u64,
    /// A login's and a refresh's tokens wait for the replicas too, not only their index
    /// entry (an answered login then survives a failover), and so does a client's own
    /// token.
    #[arg(long, env = "TOKENCACHE_REDIS_WAIT_ON_ISSUE", global = true)]
    pub redis_wait_on_issue: bool,
    /// Bound on one database operation (pool wait included), in milliseconds.
    #[arg(
        long,
        env = "TOKENCACHE_DATABASE_TIMEOUT_MS",
        default_value_t = millis(app::DEFAULT_DATABASE_TIMEOUT),
        global = true
    )]
    pub database_timeout_ms: u64,
    /// The time zone of the database's DATETIME columns (client expire_time, reg_time,
    /// the legacy token tables' expires): UTC, an offset (+08:00) or an IANA name
    /// (Asia/Shanghai). xxjwxc/oauth2 wrote its server's local time: give that zone.
    #[arg(
        long,
        env = "TOKENCACHE_DB_TIME_ZONE",
        default_value_t = DbZone::Utc,
        global = true
    )]
    pub db_time_zone: DbZone,
    /// argon2id memory cost in KiB for new password hashes.
    #[arg(
        long,
        env = "TOKENCACHE_ARGON2_MEMORY_KIB",
        default_value_t = Argon2Settings::DEFAULT.memory_kib,
        global = true
    )]
    pub argon2_memory_kib: u32,
    /// argon2id iterations for new password hashes.
    #[arg(
        long,
        env = "TOKENCACHE_ARGON2_ITERATIONS",
        default_value_t = Argon2Settings::DEFAULT.iterations,
        global = true
    )]
    pub argon2_iterations: u32,
    /// argon2id lanes for new password hashes.
    #[arg(
        long,
        env = "TOKENCACHE_ARGON2_PARALLELISM",
        default_value_t = Argon2Settings::DEFAULT.parallelism,
        global = true
    )]
    pub argon2_parallelism: u32,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server.
    Serve(Box<ServeArgs>),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Carry xxjwxc/oauth2's live tokens (oauth2_access_token, oauth2_refresh_token)
    /// into the token store (Redis), so a cutover logs nobody out. Safe to run again.
    ImportLegacyTokens(ImportArgs),
    /// Manage clients (apps).
    #[command(subcommand)]
    Client(ClientCommand),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage the keys that sign the upstream JWTs (`--upstream-jwt`).
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Add a new signing key: published in the JWKS at once, signing `--lead-secs` later
    /// (by then every verifier that caches the JWKS for `--jwks-max-age-secs` has it);
    /// the key it replaces stays published until every JWT it signed has expired. Also
    /// deletes the keys retired long enough ago.
    Rotate {
        /// Seconds between publication and first signature; default: the JWKS cache
        /// lifetime and one reload of the instances (300 + 10).
        #[arg(long, default_value_t = upstream::DEFAULT_JWKS_MAX_AGE_SECS + upstream::DEFAULT_RELOAD_SECS, value_parser = clap::value_parser!(u64).range(0..=86_400))]
        lead_secs: u64,
    },
    /// The keys: kid, published, signs from, state (never the private part).
    List,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The database holding the original's token tables, when it is not DATABASE_URL
    /// (mysql://…; prefer the variable: a URL on the command line shows in `ps`). Only
    /// read, never written or migrated.
    #[arg(long, env = "TOKENCACHE_LEGACY_DATABASE_URL", hide_env_values = true)]
    pub from: Option<String>,
    /// Rows read and written per batch.
    #[arg(long, default_value_t = ImportOptions::DEFAULT.batch_size, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub batch_size: u64,
    /// Ids before the resume mark read again by each run: the original commits rows out of
    /// id order while it serves, and a mark would skip those (reading a row again is
    /// harmless).
    #[arg(long, default_value_t = ImportOptions::DEFAULT.overlap)]
    pub overlap_ids: u64,
    /// Read every row, whatever the mark: the final pass, once the original has stopped.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    /// Lines a person reads: the default.
    pub const DEFAULT: LogFormat = LogFormat::Text;
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LangArg {
    En,
    Zh,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "TOKENCACHE_LISTEN", default_value = app::DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Keep access records in process, kept exact by Redis's invalidation pushes (client
    /// tracking): check_token, forward-auth and introspection answer repeated tokens
    /// without a Redis round trip. On one Redis, a Cluster or Sentinel.
    #[arg(long, env = "TOKENCACHE_NEAR_CACHE")]
    pub near_cache: bool,
    /// The near cache's bound on entries (about 200 bytes each).
    #[arg(long, env = "TOKENCACHE_NEAR_CACHE_MAX_ENTRIES", default_value_t = app::DEFAULT_NEAR_CACHE_MAX_ENTRIES, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=100_000_000))]
    pub near_cache_max_entries: usize,
    /// Also serve Envoy's gRPC external authorization (envoy.service.auth.v3.Authorization)
    /// on this address. Unset: no gRPC listener.
    #[arg(long, env = "TOKENCACHE_GRPC_LISTEN")]
    pub grpc_listen: Option<SocketAddr>,
    /// Phantom tokens: forward-auth and gRPC Check answer a live token with a short-lived
    /// ES256 JWT for the upstream (`Authorization: Bearer …`), introspection too when
    /// asked for `application/token-introspection+jwt`; the public keys are served at
    /// /.well-known/jwks.json. Keys: `tokencache keys rotate` (one is made at start when
    /// there is none).
    #[arg(long, env = "TOKENCACHE_UPSTREAM_JWT")]
    pub upstream_jwt: bool,
    /// The URL clients reach tokencache at: `iss` of the upstream JWTs and the issuer of
    /// the discovery documents. Unset: the documents name `http://` and the request's
    /// Host, and the JWTs `http://localhost:` and the listening port; set it in
    /// production.
    #[arg(long, env = "TOKENCACHE_ISSUER")]
    pub issuer: Option<String>,
    /// `aud` of the upstream JWTs; unset: none.
    #[arg(long, env = "TOKENCACHE_UPSTREAM_JWT_AUDIENCE")]
    pub upstream_jwt_audience: Option<String>,
    /// Lifetime of an upstream JWT at most (never past its opaque token's expiry).
    #[arg(long, env = "TOKENCACHE_UPSTREAM_JWT_TTL_SECS", default_value_t = upstream::DEFAULT_TTL_SECS, value_parser = clap::value_parser!(u64).range(10..=upstream::MAX_TTL_SECS))]
    pub upstream_jwt_ttl_secs: u64,
    /// `Cache-Control: max-age` of the JWKS; `keys rotate` publishes a new key this long
    /// (and one reload) before it signs.
    #[arg(long, env = "TOKENCACHE_JWKS_MAX_AGE_SECS", default_value_t = upstream::DEFAULT_JWKS_MAX_AGE_SECS, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub jwks_max_age_secs: u64,
    /// How often each instance reads the signing keys: a rotation is in use within this
    /// bound.
    #[arg(long, env = "TOKENCACHE_UPSTREAM_JWT_RELOAD_SECS", default_value_t = upstream::DEFAULT_RELOAD_SECS, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub upstream_jwt_reload_secs: u64,
    /// Do not run pending migrations at start.
    #[arg(long, env = "TOKENCACHE_NO_MIGRATE")]
    pub no_migrate: bool,
    /// Answer HTTP 200 to every request (legacy clients); the body still has the code.
    #[arg(long, env = "TOKENCACHE_COMPAT_HTTP_200")]
    pub compat_http_200: bool,
    /// Accepted distance in seconds between a request's `time` and now; a signature is
    /// also refused when seen twice within it. 0 turns both checks off (old clients).
    #[arg(long, env = "TOKENCACHE_FRESHNESS_WINDOW", default_value_t = Rules::DEFAULT.freshness_window, value_parser = clap::value_parser!(u64).range(0..=MAX_SECONDS))]
    pub freshness_window: u64,
    /// Seconds the OAuth endpoints (token, introspect, revoke) use a client read from the
    /// database before reading it again: a client changed with the CLI is seen within
    /// it. 0: every call reads the database.
    #[arg(long, env = "TOKENCACHE_CLIENT_CACHE_SECS", default_value_t = Rules::DEFAULT.client_cache.as_secs(), value_parser = clap::value_parser!(u64).range(0..=MAX_SECONDS))]
    pub client_cache_secs: u64,
    /// Token pairs one user may hold (their logins, and the refreshes of them not yet
    /// expired); past it each new pair revokes the oldest. 0: no cap.
    #[arg(long, env = "TOKENCACHE_MAX_SESSIONS_PER_USER", default_value_t = Rules::DEFAULT.max_sessions_per_user, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=100_000))]
    pub max_sessions_per_user: usize,
    /// Request body cap in bytes (HTTP 413 past it).
    #[arg(long, env = "TOKENCACHE_MAX_BODY_BYTES", default_value_t = HTTP.max_body_bytes, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=MAX_BODY_BYTES))]
    pub max_body_bytes: usize,
    /// Language of the `error` texts when the request has no Accept-Language: zh|en.
    #[arg(long, env = "TOKENCACHE_LANG", value_enum, default_value_t = LangArg::from(HTTP.lang))]
    pub lang: LangArg,
    /// Seconds in-flight requests get to finish on shutdown.
    #[arg(long, env = "TOKENCACHE_SHUTDOWN_GRACE", default_value_t = HTTP.shutdown_grace.as_secs(), value_parser = clap::value_parser!(u64).range(0..=MAX_SECONDS))]
    pub shutdown_grace: u64,
    /// Seconds a gateway may cache a positive /api/v1/auth answer (never past the
    /// token's expiry); 0 sends Cache-Control: no-store.
    #[arg(long, env = "TOKENCACHE_FORWARD_AUTH_CACHE_SECS", default_value_t = HTTP.forward_auth_cache_secs, value_parser = clap::value_parser!(u64).range(0..=MAX_SECONDS))]
    pub forward_auth_cache_secs: u64,
    /// Threads serving requests; default: one per core but one, at least one (the kernel's
    /// network stack needs the rest; see docs/loadtest.md). One thread runs tokio's
    /// current-thread scheduler, which serves check_token faster than a one-worker
    /// multi-thread one.
    #[arg(long, env = "TOKENCACHE_WORKER_THREADS")]
    pub worker_threads: Option<usize>,
    /// Open connections served at once; more wait in the listen backlog.
    #[arg(long, env = "TOKENCACHE_MAX_CONNECTIONS", default_value_t = HTTP.max_connections)]
    pub max_connections: usize,
    /// Connections one client address may hold at once (past it a new one is closed);
    /// 0: no limit. Behind a proxy every connection has the proxy's address: raise it.
    #[arg(long, env = "TOKENCACHE_MAX_CONNECTIONS_PER_IP", default_value_t = HTTP.max_connections_per_ip)]
    pub max_connections_per_ip: usize,
    /// Seconds a new connection has to send a complete request head before it is closed.
    #[arg(long, env = "TOKENCACHE_HEADER_TIMEOUT", default_value_t = HTTP.header_timeout.as_secs(), value_parser = clap::value_parser!(u64).range(0..=MAX_SECONDS))]
    pub header_timeout: u64,
    /// Seconds a keep-alive connection may wait for its next request before it is closed.
    #[arg(long, env = "TOKENCACHE_IDLE_TIMEOUT", default_value_t = HTTP.idle_timeout.as_secs(), value_parser = clap::value_parser!(u64).range(0..=MAX_SECONDS))]
    pub idle_timeout: u64,
    /// Seconds a request's body may take to arrive once its head has, before the
    /// connection is closed (a body sent slowly is timed like a slow head).
    #[arg(long, env = "TOKENCACHE_BODY_TIMEOUT", default_value_t = HTTP.body_timeout.as_secs(), value_parser = clap::value_parser!(u64).range(0..=MAX_SECONDS))]
    pub body_timeout: u64,
    /// Answer forward-auth and gRPC checks that carry a header a framework could read as
    /// one of tokencache's identity headers (X-Auth-Username in any case, with `_` for
    /// `-`) like any other, instead of refusing them (403).
    #[arg(long, env = "TOKENCACHE_ALLOW_IDENTITY_HEADERS")]
    pub allow_identity_headers: bool,
    #[command(flatten)]
    pub accounts: AccountArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeliveryArg {
    /// Write codes to the server log (development only).
    Log,
    /// POST codes as JSON to --code-webhook.
    Webhook,
}

/// Settings of the account endpoints: code delivery, code limits, login lockout, per-IP
/// limits, the client address.
#[derive(Debug, Args)]
pub struct AccountArgs {
    /// How verification codes are delivered: `log` writes them to the server log (a
    /// development setting), `webhook` POSTs them to --code-webhook.
    #[arg(
        long,
        env = "TOKENCACHE_CODE_DELIVERY",
        value_enum,
        default_value_t = DeliveryArg::from(&DeliverySettings::DEFAULT)
    )]
    pub code_delivery: DeliveryArg,
    /// URL the webhook delivery POSTs each code to (required with --code-delivery webhook).
    #[arg(
        long,
        env = "TOKENCACHE_CODE_WEBHOOK",
        hide_env_values = true,
        required_if_eq("code_delivery", "webhook")
    )]
    pub code_webhook: Option<String>,
    /// Bound on one webhook call in milliseconds; past it the delivery failed.
    #[arg(
        long,
        env = "TOKENCACHE_CODE_WEBHOOK_TIMEOUT_MS",
        default_value_t = millis(app::DEFAULT_CODE_WEBHOOK_TIMEOUT)
    )]
    pub code_webhook_timeout_ms: u64,
    /// Secret that signs every webhook call (HMAC-SHA256 in X-Tokencache-Signature);
    /// unset: calls are not signed.
    #[arg(long, env = "TOKENCACHE_CODE_WEBHOOK_SECRET", hide_env_values = true)]
    pub code_webhook_secret: Option<String>,
    /// Seconds a verification code lives.
    #[arg(long, env = "TOKENCACHE_CODE_TTL", default_value_t = LIMITS.code_ttl, value_parser = clap::value_parser!(u64).range(0..=MAX_SECONDS))]
    pub code_ttl: u64,
    /// Seconds before another code may be sent to the same username.
    #[arg(long, env = "TOKENCACHE_CODE_RESEND", default_value_t = LIMITS.code_resend, value_parser = clap::value_parser!(u64).range(0..=MAX_SECONDS))]
    pub code_resend: u64,
    /// Wrong guesses after which a code is void.
    #[arg(long, env = "TOKENCACHE_CODE_ATTEMPTS", default_value_t = LIMITS.code_attempts)]
    pub code_attempts: u64,
    /// Guesses at one name's codes a client network may make in an hour, whatever the
    /// number of codes sent (a new code does not reset it); 0: no limit.
    #[arg(long, env = "TOKENCACHE_CODE_GUESSES_PER_HOUR", default_value_t = LIMITS.code_guesses_per_hour)]
    pub code_guesses_per_hour: u64,
    /// Codes sent to one name in an hour, whoever asks; 0: no limit.
    #[arg(long, env = "TOKENCACHE_CODE_SENDS_PER_HOUR", default_value_t = LIMITS.code_sends_per_hour)]
    pub code_sends_per_hour: u64,
    /// Codes sent to names without an account (sign-ups) per client network per hour; 0:
    /// no limit.
    #[arg(long, env = "TOKENCACHE_CODE_SENDS_NEW_PER_IP", default_value_t = LIMITS.code_sends_new_per_ip)]
    pub code_sends_new_per_ip: u64,
    /// Codes sent to names without an account per hour, all clients together; 0: no
    /// limit.
    #[arg(long, env = "TOKENCACHE_CODE_SENDS_NEW_TOTAL", default_value_t = LIMITS.code_sends_new_total)]
    pub code_sends_new_total: u64,
    /// Password checks per account within --login-window after which authorize refuses
    /// that account (405, HTTP 429) for the rest of the window, unchecked; a good login
    /// resets the count; 0: off.
    #[arg(long, env = "TOKENCACHE_LOGIN_FAILURES", default_value_t = LIMITS.login_failures)]
    pub login_failures: u64,
    /// Seconds of the failed-login window.
    #[arg(long, env = "TOKENCACHE_LOGIN_WINDOW", default_value_t = LIMITS.login_window, value_parser = clap::value_parser!(u64).range(0..=MAX_SECONDS))]
    pub login_window: u64,
    /// Seconds of the per-network windows.
    #[arg(long, env = "TOKENCACHE_IP_WINDOW", default_value_t = LIMITS.ip_window, value_parser = clap::value_parser!(u64).range(0..=MAX_SECONDS))]
    pub ip_window: u64,
    /// authorize requests per client IP per window; 0: no limit.
    #[arg(long, env = "TOKENCACHE_IP_LIMIT_AUTHORIZE", default_value_t = LIMITS.ip_authorize)]
    pub ip_limit_authorize: u64,
    /// get_verify requests per client IP per window; 0: no limit.
    #[arg(long, env = "TOKENCACHE_IP_LIMIT_GET_VERIFY", default_value_t = LIMITS.ip_get_verify)]
    pub ip_limit_get_verify: u64,
    /// check_user requests per client IP per window; 0: no limit.
    #[arg(long, env = "TOKENCACHE_IP_LIMIT_CHECK_USER", default_value_t = LIMITS.ip_check_user)]
    pub ip_limit_check_user: u64,
    /// doaction requests (sign-ups, password changes) per client IP per window; 0: no
    /// limit.
    #[arg(long, env = "TOKENCACHE_IP_LIMIT_DOACTION", default_value_t = LIMITS.ip_doaction)]
    pub ip_limit_doaction: u64,
    /// Lookups of app keys that do not exist per client network per window (each costs
    /// a database query); 0: no limit.
    #[arg(long, env = "TOKENCACHE_IP_LIMIT_UNKNOWN_CLIENTS", default_value_t = LIMITS.ip_unknown_clients)]
    pub ip_limit_unknown_clients: u64,
    /// The prefix length by which IPv6 clients are counted (per-network limits, the
    /// connection share, the network a verification code belongs to).
    #[arg(long, env = "TOKENCACHE_IPV6_PREFIX", default_value_t = LIMITS.ipv6_prefix, value_parser = clap::value_parser!(u8).range(1..=128))]
    pub ipv6_prefix: u8,
    /// The proxies in front of tokencache (addresses or CIDRs, comma-separated): from
    /// them, the client is the rightmost X-Forwarded-For hop that is not one of them.
    /// Unset: the TCP peer is the client.
    #[arg(long, env = "TOKENCACHE_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_proxy)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Replaced by --trusted-proxies (the leftmost hop it believed is the client's to
    /// write): refused at start.
    #[arg(long, env = "TOKENCACHE_TRUST_FORWARDED_FOR", hide = true)]
    pub trust_forwarded_for: bool,
}

/// A trusted proxy: a CIDR (`10.0.0.0/8`) or one address (`127.0.0.1`).
fn parse_proxy(text: &str) -> Result<ipnet::IpNet, String> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("`{text}` is not an address or a CIDR (10.0.0.0/8, ::1)"))
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Create a client and print its app_key and app_secret.
    Create(ClientCreateArgs),
    /// List every client (never the secrets).
    List,
    /// Show one client.
    Show {
        app_key: String,
        /// Also print the app_secret.
        #[arg(long)]
        reveal_secret: bool,
    },
    /// Refuse new logins for a client (tokens already issued live until they expire).
    Disable { app_key: String },
}

#[derive(Debug, Args)]
pub struct ClientCreateArgs {
    #[arg(long)]
    pub app_key: String,
    /// Access-token lifetime in seconds (refresh tokens live twice as long).
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..=MAX_TOKEN_TTL))]
    pub token_ttl: i32,
    /// Read the app_secret from standard input (one line). Without it: the
    /// TOKENCACHE_CLIENT_SECRET variable when set, else a random 32-character secret.
    /// Never on the command line, which `ps` and shell history show.
    #[arg(long)]
    pub secret_stdin: bool,
    /// 1: verification codes forced, 2: ignored.
    #[arg(long, default_value_t = ClientSpec::DEFAULT_STRICT_VERIFY, value_parser = clap::value_parser!(i32).range(1..=2))]
    pub strict_verify: i32,
    /// When the client expires (RFC 3339, e.g. 2030-01-01T00:00:00Z); never when unset.
    #[arg(long)]
    pub expires: Option<String>,
    /// Allow authorize_nopwd for this client (a trusted backend).
    #[arg(long)]
    pub allow_nopwd: bool,
    /// Print {"app_key": …, "app_secret": …}.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user. The password comes from the TOKENCACHE_USER_PASSWORD variable, else
    /// from standard input (one line; asked for without echo on a terminal), never from
    /// the command line.
    Create {
        #[arg(long)]
        username: String,
        /// The app the user registered through.
        #[arg(long, default_value = NO_APP_KEY)]
        app_key: String,
        #[arg(long)]
        json: bool,
    },
    /// Disable a user and revoke all of their tokens.
    Disable { username: String },
    /// Set a user's password and revoke all of their tokens. The password as for
    /// `user create`: TOKENCACHE_USER_PASSWORD, else standard input.
    SetPassword { username: String },
    /// Revoke every live token of a user (log them out everywhere).
    Logout { username: String },
}

impl From<&DeliverySettings> for DeliveryArg {
    fn from(delivery: &DeliverySettings) -> Self {
        match delivery {
            DeliverySettings::Log => DeliveryArg::Log,
            DeliverySettings::Webhook { .. } => DeliveryArg::Webhook,
        }
    }
}

impl From<Lang> for LangArg {
    fn from(lang: Lang) -> Self {
        match lang {
            Lang::En => LangArg::En,
            Lang::Zh => LangArg::Zh,
        }
    }
}
