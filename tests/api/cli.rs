//! The `tokencache` command line against a real database: clients and users.
use std::process::Output;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::*;

fn run(database_url: &str, args: &[&str]) -> Output {
    tokencache_cli(database_url, None, args)
}

fn ok(out: &Output) -> String {
    succeeded(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and Redis: cargo test -- --include-ignored"]
async fn clients_and_users_made_with_the_cli_can_log_in() {
    let (mut settings, db, sqlite) = TestApp::fresh_settings(Backend::Real).await;
    // Every call reads the clients: a change made by another process (the CLI) is seen at
    // once, not within the cache's time (faults.rs tests that bound).
    settings.rules.client_cache = std::time::Duration::ZERO;
    let url = settings.database_url.clone().unwrap();
    ok(&run(&url, &["migrate"]));
    let created: Value = serde_json::from_str(&ok(&run(
        &url,
        &[
            "client",
            "create",
            "--app-key",
            "cliapp",
            "--token-ttl",
            "600",
            "--json",
        ],
    )))
    .unwrap();
    assert_eq!(created["app_key"], json!("cliapp"));
    let secret = created["app_secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 32);
    // The same app_key twice is refused.
    let again = run(
        &url,
        &[
            "client",
            "create",
            "--app-key",
            "cliapp",
            "--token-ttl",
            "600",
        ],
    );
    assert!(!again.status.success());
    // The password on standard input, never on the command line.
    ok(&tokencache_cli_input(
        &url,
        None,
        &["user", "create", "--username", "bob@example.com"],
        "pw-of-bob\n",
    ));
    // Without one, the command refuses rather than make a user with an empty password.
    let none = run(&url, &["user", "create", "--username", "eve@example.com"]);
    assert!(!none.status.success());
    assert!(String::from_utf8_lossy(&none.stderr).contains("no password"));
    // A client's secret on standard input.
    ok(&tokencache_cli_input(
        &url,
        None,
        &[
            "client",
            "create",
            "--app-key",
            "stdinapp",
            "--token-ttl",
            "60",
            "--secret-stdin",
        ],
        "secret-from-stdin\n",
    ));
    assert!(ok(&run(
        &url,
        &["client", "show", "stdinapp", "--reveal-secret"]
    ))
    .contains("app_secret: secret-from-stdin"));
    let list = ok(&run(&url, &["client", "list"]));
    assert!(
        list.contains("cliapp\t600\t1\tnever\tfalse\tfalse"),
        "{list}"
    );
    assert!(!list.contains(&secret), "list never shows secrets");
    let show = ok(&run(&url, &["client", "show", "cliapp"]));
    assert!(
        show.contains("token_ttl: 600") && !show.contains(&secret),
        "{show}"
    );
    assert!(ok(&run(&url, &["client", "show", "cliapp", "--reveal-secret"])).contains(&secret));
    assert!(!run(&url, &["client", "show", "nope"]).status.success());

    let app = TestApp::start(Backend::Real, settings, db, sqlite).await;
    let t = now_ms().to_string();
    let login = json!({
        "appid": "cliapp", "username": "bob@example.com", "password": "pw-of-bob", "time": t,
        "token": sign(&["cliapp", "bob@example.com", "pw-of-bob", &t], &secret),
    });
    let (status, v) = app.post("/api/v1/authorize", &login).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["expire_time"], json!("600"));

    ok(&tokencache_cli_input(
        &url,
        None,
        &["user", "set-password", "bob@example.com"],
        "new-pw\n",
    ));
    // A password on the command line is no longer taken.
    assert!(!run(
        &url,
        &["user", "set-password", "bob@example.com", "other-pw"]
    )
    .status
    .success());
    let t = now_ms().to_string();
    let login = json!({
        "appid": "cliapp", "username": "bob@example.com", "password": "new-pw", "time": t,
        "token": sign(&["cliapp", "bob@example.com", "new-pw", &t], &secret),
    });
    assert_eq!(
        app.post("/api/v1/authorize", &login).await.0,
        StatusCode::OK
    );

    ok(&run(&url, &["client", "disable", "cliapp"]));
    let t = now_ms().to_string();
    let login = json!({
        "appid": "cliapp", "username": "bob@example.com", "password": "new-pw", "time": t,
        "token": sign(&["cliapp", "bob@example.com", "new-pw", &t], &secret),
    });
    assert_fails(&app.post("/api/v1/authorize", &login).await, 401, 1002);
    assert!(!run(&url, &["user", "disable", "nobody"]).status.success());
    app.cleanup().await;
}

#[test]
fn help_documents_every_setting_with_its_environment_variable() {
    let help = serve_help();
    for env in [
        "DATABASE_URL",
        "REDIS_URL",
        "TOKENCACHE_LISTEN",
        "TOKENCACHE_FRESHNESS_WINDOW",
        "TOKENCACHE_COMPAT_HTTP_200",
        "TOKENCACHE_MAX_BODY_BYTES",
        "TOKENCACHE_NO_MIGRATE",
        "TOKENCACHE_REDIS_PREFIX",
    ] {
        assert!(help.contains(env), "{env} missing from serve --help");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and Redis: cargo test -- --include-ignored"]
async fn user_logout_from_the_cli_revokes_every_token_at_once() {
    let app = TestApp::spawn(Backend::Real).await;
    let (a1, r1) = app.login().await;
    let (a2, _) = app.login().await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tokencache"))
        .args(["user", "logout", "alice"])
        .env(
            "DATABASE_URL",
            app.settings.database_url.as_deref().unwrap(),
        )
        .env("REDIS_URL", REDIS_URL)
        .env("TOKENCACHE_REDIS_PREFIX", &app.settings.redis_prefix)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = ok(&out);
    assert!(
        stdout.contains("4 live token(s) of alice revoked"),
        "{stdout}"
    );
    assert_fails(&app.check_token(&a1).await, 401, 102);
    assert_fails(&app.check_token(&a2).await, 401, 102);
    assert_fails(&app.refresh(&r1).await, 401, 102);
    app.cleanup().await;
}

/// Settings past what the server can hold are refused when the command line is read,
/// with the flag and the range named: never wrapped or overflowed later.
#[test]
fn a_setting_past_its_range_is_refused_at_start() {
    for (args, flag) in [
        (
            vec!["serve", "--freshness-window", "99999999999999"],
            "--freshness-window",
        ),
        (
            vec!["serve", "--code-ttl", "18446744073709551615"],
            "--code-ttl",
        ),
        (vec!["serve", "--max-body-bytes", "0"], "--max-body-bytes"),
        (
            vec!["serve", "--idle-timeout", "31536001"],
            "--idle-timeout",
        ),
        (
            vec!["client", "create", "--app-key", "x", "--token-ttl", "0"],
            "--token-ttl",
        ),
        (
            vec!["client", "create", "--app-key", "x", "--token-ttl=-5"],
            "--token-ttl",
        ),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tokencache"))
            .args(&args)
            .env_remove("DATABASE_URL")
            .env_remove("REDIS_URL")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(flag) && stderr.contains("invalid value"),
            "{args:?}: {stderr}"
        );
    }
}
