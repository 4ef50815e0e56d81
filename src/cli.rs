//! The command line: `serve`, `migrate`, `client …`, `user …`. Every flag can also come
//! from the environment (`DATABASE_URL`, `REDIS_URL`, `TOKENCACHE_<FLAG>`).
use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::app::{self, Settings};
use crate::delivery::DeliverySettings;
use crate::domain::admin::ClientSpec;
use crate::domain::import::{import_legacy_tokens, Progress, TableSummary};
use crate::domain::limits::Limits;
use crate::domain::password::Argon2Settings;
use crate::domain::{DomainError, Rules};
use crate::http::{HttpSettings, Lang};
use crate::secret::Secret;
use crate::store::import::LegacyTable;
use crate::store::records::zone::DbZone;
use crate::store::tokens::Tokens;
use crate::store::StoreError;

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
        default_value = "text",
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
    /// Token store: redis://host:6379/0. Unset: an in-process store (one instance only).
    #[arg(long, env = "REDIS_URL", global = true, hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Prefix of every Redis key.
    #[arg(
        long,
        env = "TOKENCACHE_REDIS_PREFIX",
        default_value = "tc:",
        global = true
    )]
    pub redis_prefix: String,
    /// Bound on one Redis operation (connect included), in milliseconds.
    #[arg(
        long,
        env = "TOKENCACHE_REDIS_TIMEOUT_MS",
        default_value_t = 1000,
        global = true
    )]
    pub redis_timeout_ms: u64,
    /// Bound on one database operation (pool wait included), in milliseconds.
    #[arg(
        long,
        env = "TOKENCACHE_DATABASE_TIMEOUT_MS",
        default_value_t = 3000,
        global = true
    )]
    pub database_timeout_ms: u64,
    /// The time zone of the database's DATETIME columns (client expire_time, reg_time,
    /// the legacy token tables' expires): UTC, an offset (+08:00) or an IANA name
    /// (Asia/Shanghai). xxjwxc/oauth2 wrote its server's local time: give that zone.
    #[arg(
        long,
        env = "TOKENCACHE_DB_TIME_ZONE",
        default_value = "UTC",
        global = true
    )]
    pub db_time_zone: DbZone,
    /// argon2id memory cost in KiB for new password hashes.
    #[arg(
        long,
        env = "TOKENCACHE_ARGON2_MEMORY_KIB",
        default_value_t = 19456,
        global = true
    )]
    pub argon2_memory_kib: u32,
    /// argon2id iterations for new password hashes.
    #[arg(
        long,
        env = "TOKENCACHE_ARGON2_ITERATIONS",
        default_value_t = 2,
        global = true
    )]
    pub argon2_iterations: u32,
    /// argon2id lanes for new password hashes.
    #[arg(
        long,
        env = "TOKENCACHE_ARGON2_PARALLELISM",
        default_value_t = 1,
        global = true
    )]
    pub argon2_parallelism: u32,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server.
    Serve(ServeArgs),
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
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The database holding the original's token tables, when it is not DATABASE_URL
    /// (mysql://…; prefer the variable: a URL on the command line shows in `ps`). Only
    /// read, never written or migrated.
    #[arg(long, env = "TOKENCACHE_LEGACY_DATABASE_URL", hide_env_values = true)]
    pub from: Option<String>,
    /// Rows read and written per batch.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub batch_size: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LangArg {
    En,
    Zh,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "TOKENCACHE_LISTEN", default_value = "127.0.0.1:9094")]
    pub listen: SocketAddr,
    /// Do not run pending migrations at start.
    #[arg(long, env = "TOKENCACHE_NO_MIGRATE")]
    pub no_migrate: bool,
    /// Answer HTTP 200 to every request (legacy clients); the body still has the code.
    #[arg(long, env = "TOKENCACHE_COMPAT_HTTP_200")]
    pub compat_http_200: bool,
    /// Accepted distance in seconds between a request's `time` and now; a signature is
    /// also refused when seen twice within it. 0 turns both checks off (old clients).
    #[arg(long, env = "TOKENCACHE_FRESHNESS_WINDOW", default_value_t = 300)]
    pub freshness_window: u64,
    /// Request body cap in bytes (HTTP 413 past it).
    #[arg(long, env = "TOKENCACHE_MAX_BODY_BYTES", default_value_t = 16384)]
    pub max_body_bytes: usize,
    /// Language of the `error` texts when the request has no Accept-Language: zh|en.
    #[arg(long, env = "TOKENCACHE_LANG", value_enum, default_value = "en")]
    pub lang: LangArg,
    /// Seconds in-flight requests get to finish on shutdown.
    #[arg(long, env = "TOKENCACHE_SHUTDOWN_GRACE", default_value_t = 10)]
    pub shutdown_grace: u64,
    /// Seconds a gateway may cache a positive /api/v1/auth answer (never past the
    /// token's expiry); 0 sends Cache-Control: no-store.
    #[arg(long, env = "TOKENCACHE_FORWARD_AUTH_CACHE_SECS", default_value_t = 0)]
    pub forward_auth_cache_secs: u64,
    /// Threads serving requests; default: one per core but one, at least one (the kernel's
    /// network stack needs the rest; see loadtest/README.md).
    #[arg(long, env = "TOKENCACHE_WORKER_THREADS")]
    pub worker_threads: Option<usize>,
    /// Open connections served at once; more wait in the listen backlog.
    #[arg(long, env = "TOKENCACHE_MAX_CONNECTIONS", default_value_t = 10000)]
    pub max_connections: usize,
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
        default_value = "log"
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
        default_value_t = 5000
    )]
    pub code_webhook_timeout_ms: u64,
    /// Secret that signs every webhook call (HMAC-SHA256 in X-Tokencache-Signature);
    /// unset: calls are not signed.
    #[arg(long, env = "TOKENCACHE_CODE_WEBHOOK_SECRET", hide_env_values = true)]
    pub code_webhook_secret: Option<String>,
    /// Seconds a verification code lives.
    #[arg(long, env = "TOKENCACHE_CODE_TTL", default_value_t = 600)]
    pub code_ttl: u64,
    /// Seconds before another code may be sent to the same username.
    #[arg(long, env = "TOKENCACHE_CODE_RESEND", default_value_t = 60)]
    pub code_resend: u64,
    /// Wrong guesses after which a code is void.
    #[arg(long, env = "TOKENCACHE_CODE_ATTEMPTS", default_value_t = 5)]
    pub code_attempts: u64,
    /// Failed password checks per username within --login-window after which authorize
    /// refuses that username (405, HTTP 429) for the rest of the window; 0: off.
    #[arg(long, env = "TOKENCACHE_LOGIN_FAILURES", default_value_t = 5)]
    pub login_failures: u64,
    /// Seconds of the failed-login window.
    #[arg(long, env = "TOKENCACHE_LOGIN_WINDOW", default_value_t = 900)]
    pub login_window: u64,
    /// Seconds of the per-IP windows.
    #[arg(long, env = "TOKENCACHE_IP_WINDOW", default_value_t = 60)]
    pub ip_window: u64,
    /// authorize requests per client IP per window; 0: no limit.
    #[arg(long, env = "TOKENCACHE_IP_LIMIT_AUTHORIZE", default_value_t = 1200)]
    pub ip_limit_authorize: u64,
    /// get_verify requests per client IP per window; 0: no limit.
    #[arg(long, env = "TOKENCACHE_IP_LIMIT_GET_VERIFY", default_value_t = 120)]
    pub ip_limit_get_verify: u64,
    /// check_user requests per client IP per window; 0: no limit.
    #[arg(long, env = "TOKENCACHE_IP_LIMIT_CHECK_USER", default_value_t = 600)]
    pub ip_limit_check_user: u64,
    /// doaction requests (sign-ups, password changes) per client IP per window; 0: no
    /// limit.
    #[arg(long, env = "TOKENCACHE_IP_LIMIT_DOACTION", default_value_t = 120)]
    pub ip_limit_doaction: u64,
    /// Take the client IP from the first X-Forwarded-For hop (only behind a proxy that
    /// sets that header itself).
    #[arg(long, env = "TOKENCACHE_TRUST_FORWARDED_FOR")]
    pub trust_forwarded_for: bool,
}

impl AccountArgs {
    fn limits(&self) -> Limits {
        Limits {
            code_ttl: self.code_ttl,
            code_resend: self.code_resend,
            code_attempts: self.code_attempts,
            login_failures: self.login_failures,
            login_window: self.login_window,
            ip_window: self.ip_window,
            ip_authorize: self.ip_limit_authorize,
            ip_get_verify: self.ip_limit_get_verify,
            ip_check_user: self.ip_limit_check_user,
            ip_doaction: self.ip_limit_doaction,
        }
    }

    fn delivery(&self) -> DeliverySettings {
        match (self.code_delivery, &self.code_webhook) {
            (DeliveryArg::Webhook, Some(url)) => DeliverySettings::Webhook {
                url: Secret::new(url.clone()),
                timeout: Duration::from_millis(self.code_webhook_timeout_ms),
                secret: self
                    .code_webhook_secret
                    .clone()
                    .filter(|s| !s.is_empty())
                    .map(Secret::new),
            },
            // clap requires --code-webhook with `webhook`.
            _ => DeliverySettings::Log,
        }
    }
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
    #[arg(long)]
    pub token_ttl: i32,
    /// The app_secret; a random 32-character one when not given.
    #[arg(long, env = "TOKENCACHE_CLIENT_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// 1: verification codes forced, 2: ignored.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..=2))]
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
    /// Create a user.
    Create {
        #[arg(long)]
        username: String,
        #[arg(long, env = "TOKENCACHE_USER_PASSWORD", hide_env_values = true)]
        password: String,
        /// The app the user registered through.
        #[arg(long, default_value = "")]
        app_key: String,
        #[arg(long)]
        json: bool,
    },
    /// Disable a user and revoke all of their tokens.
    Disable { username: String },
    /// Set a user's password and revoke all of their tokens.
    SetPassword { username: String, password: String },
    /// Revoke every live token of a user (log them out everywhere).
    Logout { username: String },
}

impl StoreArgs {
    fn rules(&self, freshness_window: u64) -> Rules {
        Rules {
            freshness_window,
            argon2: Argon2Settings {
                memory_kib: self.argon2_memory_kib,
                iterations: self.argon2_iterations,
                parallelism: self.argon2_parallelism,
            },
            limits: Limits::default(),
        }
    }

    /// Settings for a command other than `serve`.
    fn settings(&self, migrate: bool) -> Settings {
        Settings {
            database_url: self.database_url.clone(),
            redis_url: self.redis_url.clone(),
            redis_prefix: self.redis_prefix.clone(),
            redis_timeout: Duration::from_millis(self.redis_timeout_ms),
            database_timeout: Duration::from_millis(self.database_timeout_ms),
            db_zone: self.db_time_zone,
            migrate,
            rules: self.rules(Rules::default().freshness_window),
            http: HttpSettings::default(),
            delivery: DeliverySettings::default(),
        }
    }
}

impl ServeArgs {
    pub fn settings(&self, stores: &StoreArgs) -> Settings {
        Settings {
            migrate: !self.no_migrate,
            rules: Rules {
                limits: self.accounts.limits(),
                ..stores.rules(self.freshness_window)
            },
            delivery: self.accounts.delivery(),
            http: HttpSettings {
                compat_http_200: self.compat_http_200,
                max_body_bytes: self.max_body_bytes,
                lang: match self.lang {
                    LangArg::En => Lang::En,
                    LangArg::Zh => Lang::Zh,
                },
                shutdown_grace: Duration::from_secs(self.shutdown_grace),
                forward_auth_cache_secs: self.forward_auth_cache_secs,
                max_connections: self.max_connections,
                trust_forwarded_for: self.accounts.trust_forwarded_for,
            },
            ..stores.settings(true)
        }
    }
}

/// The bound on one Redis exchange of the import (a batch of 20,000 tokens is ~80,000
/// commands).
const IMPORT_REDIS_TIMEOUT: Duration = Duration::from_secs(30);

/// A command's failure, printed on stderr.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Start(#[from] app::StartError),
    #[error("{0}")]
    Domain(#[from] DomainError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("--expires: {0}")]
    Expires(String),
    #[error(
        "import-legacy-tokens writes to Redis: set REDIS_URL (the in-process token store \
         lives inside one server process and cannot be filled from here)"
    )]
    ImportNeedsRedis,
    #[error("import-legacy-tokens reads the original's database: set DATABASE_URL or --from")]
    ImportNeedsSource,
    #[error("import stopped (run it again to go on where it stopped): {0}")]
    Import(#[source] StoreError),
}

/// Runs an administrative command (everything but `serve`).
pub async fn admin(stores: &StoreArgs, command: Command) -> Result<(), CliError> {
    let settings = match command {
        // The import only reads the database (no migration: it may not be adopted yet),
        // and writes batches of tens of thousands of commands to Redis at once.
        Command::ImportLegacyTokens(ref args) => Settings {
            database_url: Some(
                args.from
                    .clone()
                    .or_else(|| stores.database_url.clone())
                    .ok_or(CliError::ImportNeedsSource)?,
            ),
            migrate: false,
            redis_timeout: Duration::from_millis(stores.redis_timeout_ms).max(IMPORT_REDIS_TIMEOUT),
            ..stores.settings(false)
        },
        _ => stores.settings(true),
    };
    let engine = app::engine(&settings).await?;
    match command {
        Command::Serve(_) => unreachable!("serve is handled by main"),
        Command::Migrate => println!("migrations applied"),
        Command::ImportLegacyTokens(args) => import_legacy(stores, &engine, &args).await?,
        Command::Client(ClientCommand::Create(a)) => {
            let expires = a
                .expires
                .as_deref()
                .map(|t| {
                    chrono::DateTime::parse_from_rfc3339(t)
                        .map(|d| d.naive_utc())
                        .map_err(|e| CliError::Expires(e.to_string()))
                })
                .transpose()?;
            let secret = engine
                .create_client(ClientSpec {
                    app_key: a.app_key.clone(),
                    secret: a.secret.map(Secret::new),
                    token_ttl: a.token_ttl,
                    strict_verify: a.strict_verify,
                    expires,
                    allow_nopwd: a.allow_nopwd,
                })
                .await?;
            if a.json {
                println!(
                    "{}",
                    serde_json::json!({"app_key": a.app_key, "app_secret": secret.expose()})
                );
            } else {
                println!("app_key: {}\napp_secret: {}", a.app_key, secret.expose());
            }
        }
        Command::Client(ClientCommand::List) => {
            println!("app_key\ttoken_ttl\tstrict_verify\texpires\tallow_nopwd\tdisabled");
            for c in engine.list_clients().await? {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    c.app_key,
                    c.token_expire_time,
                    c.strict_verify,
                    c.expire_time
                        .map(|t| t.and_utc().to_rfc3339())
                        .unwrap_or_else(|| "never".into()),
                    c.allow_nopwd,
                    c.disabled
                );
            }
        }
        Command::Client(ClientCommand::Show {
            app_key,
            reveal_secret,
        }) => {
            let c = engine.show_client(&app_key).await?;
            println!("app_key: {}", c.app_key);
            if reveal_secret {
                println!("app_secret: {}", c.app_secret.expose());
            }
            println!("token_ttl: {}", c.token_expire_time);
            println!("strict_verify: {}", c.strict_verify);
            println!(
                "expires: {}",
                c.expire_time
                    .map(|t| t.and_utc().to_rfc3339())
                    .unwrap_or_else(|| "never".into())
            );
            println!("allow_nopwd: {}", c.allow_nopwd);
            println!("disabled: {}", c.disabled);
        }
        Command::Client(ClientCommand::Disable { app_key }) => {
            engine.disable_client(&app_key).await?;
            println!("client {app_key} disabled");
        }
        Command::User(UserCommand::Create {
            username,
            password,
            app_key,
            json,
        }) => {
            engine.create_user(&username, &password, &app_key).await?;
            if json {
                println!("{}", serde_json::json!({"username": username}));
            } else {
                println!("user {username} created");
            }
        }
        Command::User(UserCommand::Disable { username }) => {
            let revoked = engine.disable_user(&username).await?;
            println!(
                "user {username} disabled; {revoked} live token(s) revoked{}",
                memory_note(stores)
            );
        }
        Command::User(UserCommand::Logout { username }) => {
            let revoked = engine.logout_user(&username).await?;
            println!(
                "{revoked} live token(s) of {username} revoked{}",
                memory_note(stores)
            );
        }
        Command::User(UserCommand::SetPassword { username, password }) => {
            let revoked = engine.set_password(&username, &password).await?;
            println!(
                "password of {username} set; {revoked} live token(s) revoked{}",
                memory_note(stores)
            );
        }
    }
    Ok(())
}

/// import-legacy-tokens: reads the source's token tables, writes Redis, prints a summary.
async fn import_legacy(
    stores: &StoreArgs,
    engine: &app::AppEngine,
    args: &ImportArgs,
) -> Result<(), CliError> {
    let Tokens::Redis(redis) = &engine.tokens else {
        return Err(CliError::ImportNeedsRedis);
    };
    let progress = Bar::default();
    let summary = import_legacy_tokens(&engine.records, redis, args.batch_size, &progress)
        .await
        .map_err(CliError::Import)?;
    println!(
        "source: {} (expires read as {} time)",
        summary.source, stores.db_time_zone
    );
    for (table, t) in [
        (LegacyTable::Access, &summary.access),
        (LegacyTable::Refresh, &summary.refresh),
    ] {
        println!(
            "{}: imported {}, already present {}, skipped {} (expired {}, invalid {}); \
             {} rows read, ids {}..{}",
            table.name(),
            t.imported,
            t.present,
            t.expired + t.invalid,
            t.expired,
            t.invalid,
            t.read,
            t.mark_before,
            t.mark_after
        );
    }
    let rows = summary.access.read + summary.refresh.read;
    let secs = summary.elapsed.as_secs_f64();
    println!(
        "{rows} rows in {secs:.1} s ({:.0} rows/s)",
        rows as f64 / secs.max(1e-9)
    );
    Ok(())
}

/// A progress bar on stderr, drawn only when stderr is a terminal.
#[derive(Default)]
struct Bar(std::sync::Mutex<Option<indicatif::ProgressBar>>);

impl Progress for Bar {
    fn start(&self, table: LegacyTable, rows: u64) {
        let bar = indicatif::ProgressBar::new(rows);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{msg:22} [{bar:30}] {pos}/{len} rows ({per_sec}, {eta} left)",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(table.name());
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(bar);
        }
    }

    fn advance(&self, rows: u64) {
        if let Ok(slot) = self.0.lock() {
            if let Some(bar) = slot.as_ref() {
                bar.inc(rows);
            }
        }
    }

    fn finish(&self, _table: LegacyTable, _summary: &TableSummary) {
        if let Ok(mut slot) = self.0.lock() {
            if let Some(bar) = slot.take() {
                bar.finish();
            }
        }
    }
}

/// The in-process token store lives inside the server: a CLI process cannot reach it.
fn memory_note(stores: &StoreArgs) -> &'static str {
    if stores.redis_url.is_none() {
        " (no REDIS_URL: a running server's in-process tokens are not reachable from here)"
    } else {
        ""
    }
}

/// Binds the listen address and serves until Ctrl-C or SIGTERM.
pub async fn serve(stores: &StoreArgs, args: &ServeArgs) -> Result<(), CliError> {
    let settings = args.settings(stores);
    let state = app::state(&settings).await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|source| CliError::Listen {
            addr: args.listen,
            source,
        })?;
    tracing::info!(listen = %args.listen, "tokencache serving");
    app::run(listener, state, shutdown_signal()).await;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
