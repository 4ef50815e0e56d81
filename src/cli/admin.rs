//! The administrative commands (everything but `serve`): migrations, clients, users, and
//! the import of the original's live tokens.
use std::time::Duration;

use super::args::{ClientCommand, Command, ImportArgs, KeysCommand, StoreArgs, UserCommand};
use super::CliError;
use crate::app::{self, Settings};
use crate::domain::admin::ClientSpec;
use crate::domain::import::{import_legacy_tokens, ImportOptions, Progress};
use crate::secret::Secret;
use crate::store::import::LegacyTable;
use crate::store::tokens::backend::Tokens;

/// The bound on one Redis exchange of the import (a batch of 20,000 tokens is ~80,000
/// commands).
const IMPORT_REDIS_TIMEOUT: Duration = Duration::from_secs(30);

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
                    secret: client_secret(a.secret_stdin)?,
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
            app_key,
            json,
        }) => {
            let password = user_password()?;
            engine
                .create_user(&username, password.expose(), &app_key)
                .await?;
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
        Command::Keys(KeysCommand::Rotate { lead_secs }) => {
            let lead = i64::try_from(lead_secs).unwrap_or(i64::MAX);
            let (added, deleted) = app::rotate_keys(&engine.records, lead).await?;
            println!(
                "key {} published; it signs from {} (in {lead_secs} s){}",
                added.kid,
                unix_rfc3339(added.signs_from),
                if deleted.is_empty() {
                    String::new()
                } else {
                    format!("; retired keys deleted: {}", deleted.join(", "))
                }
            );
        }
        Command::Keys(KeysCommand::List) => {
            use crate::store::KeyRecords;
            let keys = engine.records.signing_keys().await?;
            let now = crate::clock::unix_now();
            let set = crate::upstream::KeySet::at(&keys, now).0;
            println!("kid\talgorithm\tpublished\tsigns_from\tstate");
            for k in &keys {
                let state = if set.signer() == Some(k.kid.as_str()) {
                    "signing"
                } else if k.signs_from > now {
                    "next"
                } else if set.published().contains(&k.kid) {
                    "retired, published"
                } else {
                    "retired"
                };
                println!(
                    "{}\t{}\t{}\t{}\t{state}",
                    k.kid,
                    k.algorithm,
                    unix_rfc3339(k.published_at),
                    unix_rfc3339(k.signs_from)
                );
            }
        }
        Command::User(UserCommand::SetPassword { username }) => {
            let password = user_password()?;
            let revoked = engine.set_password(&username, password.expose()).await?;
            println!(
                "password of {username} set; {revoked} live token(s) revoked{}",
                memory_note(stores)
            );
        }
    }
    Ok(())
}

fn unix_rfc3339(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| t.to_rfc3339())
        .unwrap_or_else(|| secs.to_string())
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
    let source = engine
        .records
        .legacy_tables()
        .await
        .map_err(CliError::Import)?;
    let options = ImportOptions {
        batch_size: args.batch_size,
        overlap: args.overlap_ids,
        all: args.all,
    };
    let summary = import_legacy_tokens(&source, redis, options, &progress)
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
             {} rows read after id {}, mark {}..{}",
            table.name(),
            t.imported,
            t.present,
            t.expired + t.invalid,
            t.expired,
            t.invalid,
            t.read,
            t.read_from,
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

    fn finish(&self) {
        if let Ok(mut slot) = self.0.lock() {
            if let Some(bar) = slot.take() {
                bar.finish();
            }
        }
    }
}

/// The variable a user's password may come from.
const USER_PASSWORD_VAR: &str = "TOKENCACHE_USER_PASSWORD";
/// The variable a client's secret may come from.
const CLIENT_SECRET_VAR: &str = "TOKENCACHE_CLIENT_SECRET";

/// A user's password: the variable when set, else one line of standard input.
fn user_password() -> Result<Secret, CliError> {
    match std::env::var(USER_PASSWORD_VAR) {
        Ok(p) if !p.is_empty() => Ok(Secret::new(p)),
        _ => read_secret("password"),
    }
}

/// A client's secret: standard input when asked, else the variable, else none (random).
fn client_secret(from_stdin: bool) -> Result<Option<Secret>, CliError> {
    if from_stdin {
        return read_secret("app_secret").map(Some);
    }
    Ok(std::env::var(CLIENT_SECRET_VAR)
        .ok()
        .filter(|s| !s.is_empty())
        .map(Secret::new))
}

/// One line of standard input, without its line end; asked for without echo when
/// standard input is a terminal.
fn read_secret(what: &'static str) -> Result<Secret, CliError> {
    use std::io::IsTerminal;
    let line = if std::io::stdin().is_terminal() {
        rpassword::prompt_password(format!("{what}: "))
    } else {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| line)
    }
    .map_err(|e| CliError::Secret(what, e.to_string()))?;
    let line = line.trim_end_matches(['\n', '\r']).to_owned();
    if line.is_empty() {
        return Err(CliError::Secret(what, "empty".into()));
    }
    Ok(Secret::new(line))
}

/// The in-process token store lives inside the server: a CLI process cannot reach it.
fn memory_note(stores: &StoreArgs) -> &'static str {
    if stores.redis_url.is_none() {
        " (no REDIS_URL: a running server's in-process tokens are not reachable from here)"
    } else {
        ""
    }
}
