//! One spelling per account: a name that the database's collation matches to an account
//! but that is spelt otherwise (beyond ASCII case) is never that account. The matrix runs
//! on MariaDB with `utf8mb4_general_ci` (its default) and `utf8mb4_unicode_ci`, on
//! tokencache's own schema and on the original's schema adopted in place; for each
//! spelling it asks the database whether it matches an account, then checks what
//! tokencache does with it.
use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use serde_json::json;
use tokencache::domain::DomainError;

use crate::common::*;

const SCHEMA: &str = include_str!("../../fixtures/xxjwxc_oauth2_schema.sql");

/// The accounts every run starts with, and their passwords.
const ACCOUNTS: [(&str, &str); 3] = [
    ("alice@gmail.com", "alice-pw"),
    ("strasse@example.com", "strasse-pw"),
    ("strase@example.com", "strase-pw"),
];

/// The spellings tried, and what each is.
const SPELLINGS: [(&str, &str); 8] = [
    ("alice@gmäil.com", "accent"),
    ("alice@gmail.com ", "trailing space"),
    (" alice@gmail.com", "leading space"),
    ("ａｌｉｃｅ@gmail.com", "full-width letters"),
    ("straße@example.com", "ß for ss"),
    ("alıce@gmail.com", "dotless ı"),
    ("alice@gma\u{301}il.com", "combining mark"),
    ("ALICE@GMAIL.COM", "ASCII case"),
];

/// A server on a database of its own in `collation`, with tokencache's schema or the
/// original's adopted, codes delivered to a receiver, and the accounts above.
async fn spawn_on(collation: &str, adopted: bool) -> (TestApp, Webhook) {
    let name = create_database("tc_test_spelling").await;
    let url = format!("{MYSQL_BASE}/{name}");
    let db = Database::connect(&url).await.expect("connect");
    db.execute_unprepared(&format!(
        "ALTER DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE {collation}"
    ))
    .await
    .unwrap();
    if adopted {
        // The original's schema, its account column in the collation's utf8 twin (the
        // adoption turns it into this very collation).
        let old = collation.replace("utf8mb4", "utf8");
        let schema = SCHEMA.replace(
            "`account` varchar(64) CHARACTER SET utf8 NOT NULL",
            &format!("`account` varchar(64) CHARACTER SET utf8 COLLATE {old} NOT NULL"),
        );
        assert_ne!(schema, SCHEMA, "the fixture's account column changed");
        let text: String = schema
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n");
        for statement in text.split(";\n").map(str::trim).filter(|s| !s.is_empty()) {
            db.execute_unprepared(statement.trim_end_matches(';'))
                .await
                .unwrap_or_else(|e| panic!("{e}: {statement}"));
        }
    }
    let hook = Webhook::start().await;
    let mut settings = TestApp::real_settings(&url);
    settings.delivery = webhook_settings(&hook);
    let limits = &mut settings.rules.limits;
    // The matrix asks many codes for few names from one address.
    limits.code_resend = 0;
    limits.code_sends_per_hour = 0;
    limits.code_guesses_per_hour = 0;
    let app = TestApp::start(Backend::Real, settings, Some(name), None).await;
    app.create_client(APP_KEY, APP_SECRET, 3600, false, None)
        .await;
    for (account, password) in ACCOUNTS {
        app.create_user(account, password).await;
    }
    let collated: String = db
        .query_one(Statement::from_string(
            DbBackend::MySql,
            "SELECT CAST(COLLATION_NAME AS CHAR) AS c FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'user_account_tbl' \
             AND COLUMN_NAME = 'account'",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get("", "c")
        .unwrap();
    assert_eq!(collated, collation, "the account column's collation");
    (app, hook)
}

/// The account the database finds for `name`, as MariaDB itself says.
async fn db_match(app: &TestApp, name: &str) -> Option<String> {
    let db = Database::connect(app.settings.database_url.as_deref().unwrap())
        .await
        .unwrap();
    db.query_one(Statement::from_sql_and_values(
        DbBackend::MySql,
        "SELECT account FROM user_account_tbl WHERE account = ?",
        [name.into()],
    ))
    .await
    .unwrap()
    .map(|row| row.try_get::<String>("", "account").unwrap())
}

fn password_of(account: &str) -> &'static str {
    ACCOUNTS.iter().find(|(a, _)| *a == account).unwrap().1
}

/// Asserts that nothing was delivered since `before` calls, to anyone.
#[track_caller]
fn nothing_sent(hook: &Webhook, before: usize, what: &str) {
    let calls = hook.calls();
    assert_eq!(calls.len(), before, "{what}: a code went out: {calls:?}");
}

/// The matrix on one database; returns how many spellings were look-alikes.
async fn matrix(collation: &str, adopted: bool) -> usize {
    let (app, hook) = spawn_on(collation, adopted).await;
    let mut look_alikes = 0;
    let mut table = Vec::new();
    for (spelling, what) in SPELLINGS {
        let found = db_match(&app, spelling).await;
        let kind = match &found {
            None => "no account",
            Some(stored) if stored.eq_ignore_ascii_case(spelling) => "same account",
            Some(_) => "look-alike",
        };
        table.push(format!("{what:>20}: {kind}"));
        let ctx = format!("{collation}, adopted {adopted}, {what} ({spelling:?})");
        match (&found, kind) {
            (None, _) => {
                // Just another name, which has no account.
                let before = hook.calls().len();
                assert_fails(&app.get_verify(spelling, "2", "1").await.pair(), 401, 1004);
                nothing_sent(&hook, before, &ctx);
                assert_fails(&app.authorize(spelling, "alice-pw").await, 401, 1004);
            }
            (Some(stored), "same account") => {
                // ASCII case: the same account, and everything under its stored spelling.
                let before = hook.calls().len();
                assert_done(&app.get_verify(spelling, "2", "1").await.pair());
                let calls = hook.calls();
                assert_eq!(calls.len(), before + 1, "{ctx}");
                assert_eq!(calls[before]["to"], json!(stored), "{ctx}: delivered to");
                let code = calls[before]["code"].as_str().unwrap().to_owned();
                let (status, v) = app.doaction(spelling, "case-pw", &code, "2").await;
                assert_eq!(status, StatusCode::OK, "{ctx}: {v}");
                app.login_as(stored, "case-pw").await;
                app.login_as(spelling, "case-pw").await;
                // Failures under this spelling count against the account.
                for _ in 0..5 {
                    assert_fails(&app.authorize(spelling, "wrong").await, 401, 1004);
                }
                assert_fails(&app.authorize(stored, "case-pw").await, 429, 405);
                // The administrator's commands act on the account itself.
                let (access, _) = {
                    app.state
                        .engine
                        .set_password(spelling, password_of(stored))
                        .await
                        .unwrap();
                    app.login_as(stored, password_of(stored)).await
                };
                assert_eq!(app.check_token(&access).await.0, StatusCode::OK);
                let revoked = app.state.engine.logout_user(spelling).await.unwrap();
                assert!(revoked >= 1, "{ctx}: logout revoked {revoked}");
                assert_eq!(app.check_token(&access).await.0, StatusCode::UNAUTHORIZED);
                let (access, _) = app.login_as(stored, password_of(stored)).await;
                let revoked = app.state.engine.disable_user(spelling).await.unwrap();
                assert!(revoked >= 1, "{ctx}: disable revoked {revoked}");
                assert_eq!(app.check_token(&access).await.0, StatusCode::UNAUTHORIZED);
            }
            (Some(stored), _) => {
                look_alikes += 1;
                let password = password_of(stored);
                // No code for a password change, to anyone.
                let before = hook.calls().len();
                assert_fails(&app.get_verify(spelling, "2", "1").await.pair(), 401, 1004);
                nothing_sent(&hook, before, &ctx);
                // No sign-up of it, no code for one.
                assert_fails(&app.get_verify(spelling, "1", "1").await.pair(), 409, 1012);
                nothing_sent(&hook, before, &ctx);
                assert_fails(&app.doaction(spelling, "pw", "", "1").await, 409, 1012);
                // The account's own code, asked for by its owner, does not work under the
                // other spelling.
                assert_done(&app.get_verify(stored, "2", "1").await.pair());
                let code = hook.code_for(stored);
                assert_fails(
                    &app.doaction(spelling, "taken-over", &code, "2").await,
                    404,
                    1018,
                );
                assert_fails(&app.authorize(stored, "taken-over").await, 401, 1004);
                // No login under it; its failures are not the account's.
                assert_fails(&app.authorize(spelling, password).await, 401, 1004);
                for _ in 0..6 {
                    let got = app.authorize(spelling, "wrong").await;
                    assert!(
                        matches!(got.1["code"].as_i64(), Some(1004) | Some(405)),
                        "{ctx}: {got:?}"
                    );
                }
                let (access, _) = app.login_as(stored, password).await;
                // No profile under it.
                assert_fails(&app.get_userinfo(spelling).await, 404, 1006);
                // The administrator's commands refuse it, naming the account.
                for result in [
                    app.state.engine.disable_user(spelling).await,
                    app.state.engine.logout_user(spelling).await,
                    app.state.engine.set_password(spelling, "x").await,
                ] {
                    match result {
                        Err(DomainError::OtherSpelling { stored: named }) => {
                            assert_eq!(&named, stored, "{ctx}")
                        }
                        other => panic!("{ctx}: {other:?}"),
                    }
                }
                assert_eq!(app.check_token(&access).await.0, StatusCode::OK, "{ctx}");
                app.login_as(stored, password).await;
            }
        }
    }
    println!("{collation}, adopted {adopted}:\n{}", table.join("\n"));
    // No code ever went to a spelling that is not the account's.
    for call in hook.calls() {
        let to = call["to"].as_str().unwrap();
        assert!(
            ACCOUNTS.iter().any(|(a, _)| *a == to),
            "a code went to {to:?}"
        );
    }
    app.cleanup().await;
    look_alikes
}

// Accent and trailing spaces match in both collations; general_ci adds dotless ı and ß as
// s, unicode_ci full-width letters, ß as ss and combining marks: at least 3 look-alikes.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and Redis: cargo test -- --include-ignored"]
async fn look_alike_names_never_reach_an_account_on_general_ci() {
    assert!(matrix("utf8mb4_general_ci", false).await >= 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and Redis: cargo test -- --include-ignored"]
async fn look_alike_names_never_reach_an_account_on_unicode_ci() {
    assert!(matrix("utf8mb4_unicode_ci", false).await >= 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and Redis: cargo test -- --include-ignored"]
async fn look_alike_names_never_reach_an_account_on_the_originals_adopted_general_ci() {
    assert!(matrix("utf8mb4_general_ci", true).await >= 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and Redis: cargo test -- --include-ignored"]
async fn look_alike_names_never_reach_an_account_on_the_originals_adopted_unicode_ci() {
    assert!(matrix("utf8mb4_unicode_ci", true).await >= 5);
}

/// The takeover of the issue, step by step: a look-alike address gets no code, and with
/// the owner's code in hand the look-alike changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and Redis: cargo test -- --include-ignored"]
async fn a_code_for_a_look_alike_address_never_reaches_it() {
    let (app, hook) = spawn_on("utf8mb4_general_ci", false).await;
    let attacker = "alice@gmäil.com";
    assert_fails(&app.get_verify(attacker, "2", "1").await.pair(), 401, 1004);
    assert!(hook.calls().is_empty(), "{:?}", hook.calls());
    assert_fails(
        &app.doaction(attacker, "attacker-pw", "000000", "2").await,
        404,
        1018,
    );
    assert_fails(
        &app.authorize("alice@gmail.com", "attacker-pw").await,
        401,
        1004,
    );
    app.login_as("alice@gmail.com", "alice-pw").await;
    app.cleanup().await;
}

/// `tokencache user …` through the real binary: a name differing in ASCII case acts on
/// the account (its tokens revoked), a look-alike is refused naming the account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and Redis: cargo test -- --include-ignored"]
async fn the_cli_acts_on_the_stored_spelling_and_refuses_look_alikes() {
    let (app, _hook) = spawn_on("utf8mb4_general_ci", false).await;
    let url = app.settings.database_url.clone().unwrap();
    let prefix = Some(app.settings.redis_prefix.as_str());
    let (access, _) = app.login_as("alice@gmail.com", "alice-pw").await;

    let refused = tokencache_cli(&url, prefix, &["user", "disable", "alice@gmäil.com"]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("alice@gmail.com"), "{err}");
    assert_eq!(app.check_token(&access).await.0, StatusCode::OK);
    app.login_as("alice@gmail.com", "alice-pw").await;

    let out = succeeded(&tokencache_cli(
        &url,
        prefix,
        &["user", "disable", "Alice@Gmail.com"],
    ));
    assert!(
        out.contains("disabled;") && !out.contains("; 0 live token"),
        "{out}"
    );
    assert_eq!(app.check_token(&access).await.0, StatusCode::UNAUTHORIZED);
    assert_fails(&app.authorize("alice@gmail.com", "alice-pw").await, 403, 2);
    app.cleanup().await;
}
