//! Speaking to the server as its clients do: one helper per endpoint on `TestApp`,
//! signatures, times, and the assertion every failure test uses.
use std::sync::atomic::Ordering;

use base64::Engine as _;
use md5::{Digest, Md5};
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::app::{TestApp, APP_KEY, APP_SECRET, PASSWORD};

impl TestApp {
    /// POSTs a form to an OAuth endpoint with HTTP Basic client authentication.
    pub async fn oauth(
        &self,
        path: &str,
        form: &[(&str, &str)],
        secret: &str,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{APP_KEY}:{secret}"));
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("authorization", format!("Basic {basic}"))
            .form(form)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        (
            status,
            headers,
            serde_json::from_str(&text).unwrap_or(Value::Null),
        )
    }

    /// GET /api/v1/auth (forward-auth) with a bearer token, or none.
    pub async fn forward_auth(&self, token: Option<&str>) -> reqwest::Response {
        let mut request = self.http.get(format!("{}/api/v1/auth", self.base));
        if let Some(t) = token {
            request = request.header("authorization", format!("Bearer {t}"));
        }
        request.send().await.unwrap()
    }

    /// POSTs a JSON body; returns the status and the parsed envelope.
    pub async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .expect("request sent");
        let status = response.status();
        let text = response.text().await.unwrap();
        let value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {text}"));
        (status, value)
    }

    /// POSTs a form body.
    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .form(form)
            .send()
            .await
            .expect("request sent");
        let status = response.status();
        (status, response.json().await.expect("JSON body"))
    }

    /// A correctly signed authorize body for `username`/`password` at `time`.
    pub fn authorize_body(&self, username: &str, password: &str, time: &str) -> Value {
        json!({
            "appid": APP_KEY,
            "token_type": "web",
            "username": username,
            "password": password,
            "time": time,
            "token": sign(&[APP_KEY, username, password, time], APP_SECRET),
        })
    }

    pub async fn authorize(&self, username: &str, password: &str) -> (StatusCode, Value) {
        let body = self.authorize_body(username, password, &now_ms().to_string());
        self.post("/api/v1/authorize", &body).await
    }

    /// Logs `alice` in; returns (access token, refresh token).
    pub async fn login(&self) -> (String, String) {
        let (status, v) = self.authorize("alice", PASSWORD).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        (
            v["data"]["access_token"].as_str().unwrap().to_owned(),
            v["data"]["refresh_token"].as_str().unwrap().to_owned(),
        )
    }

    pub async fn check_token(&self, token: &str) -> (StatusCode, Value) {
        self.post("/api/v1/check_token", &json!({ "token": token }))
            .await
    }

    pub async fn refresh(&self, refresh_token: &str) -> (StatusCode, Value) {
        self.post(
            "/api/v1/refresh_token",
            &json!({ "refresh_token": refresh_token }),
        )
        .await
    }

    /// GET /readyz: the status and the parsed answer.
    pub async fn readyz(&self) -> (StatusCode, Value) {
        let r = self
            .http
            .get(format!("{}/readyz", self.base))
            .send()
            .await
            .expect("request sent");
        (r.status(), r.json().await.expect("JSON body"))
    }
}

pub fn sign(parts: &[&str], secret: &str) -> String {
    let mut md5 = Md5::new();
    for p in parts {
        md5.update(p.as_bytes());
    }
    md5.update(secret.as_bytes());
    hex::encode(md5.finalize())
}

pub fn now_s() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Milliseconds: unique per login, so two quick logins never look like a replay.
pub fn now_ms() -> i64 {
    static LAST: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
    let now = chrono::Utc::now().timestamp_millis();
    // Strictly increasing within the process.
    let prev = LAST.fetch_max(now, Ordering::SeqCst);
    if prev >= now {
        LAST.fetch_add(1, Ordering::SeqCst) + 1
    } else {
        now
    }
}
/// Asserts the envelope of a failure: HTTP status, `state: false`, the code, no data.
#[track_caller]
pub fn assert_fails(got: &(StatusCode, Value), status: u16, code: i64) {
    let (s, v) = got;
    assert_eq!(s.as_u16(), status, "HTTP status of {v}");
    assert_eq!(v["state"], json!(false), "{v}");
    assert_eq!(v["code"], json!(code), "{v}");
    assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
    assert!(v.get("data").is_none(), "{v}");
}
/// The text of `tokencache serve --help`.
pub fn serve_help() -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tokencache"))
        .args(["serve", "--help"])
        .output()
        .expect("tokencache runs");
    String::from_utf8(out.stdout).expect("UTF-8 help")
}

/// Runs the tokencache binary on a database (and, with a prefix, on the shared Redis),
/// with cheap password hashes and no setting from the machine's environment that would
/// change what it does.
pub fn tokencache_cli(
    database_url: &str,
    redis_prefix: Option<&str>,
    args: &[&str],
) -> std::process::Output {
    tokencache_cli_input(database_url, redis_prefix, args, "")
}

/// The same with `stdin` as its standard input (a password, a secret).
pub fn tokencache_cli_input(
    database_url: &str,
    redis_prefix: Option<&str>,
    args: &[&str],
    stdin: &str,
) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_tokencache"));
    command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("TOKENCACHE_USER_PASSWORD")
        .env_remove("TOKENCACHE_CLIENT_SECRET")
        .env("DATABASE_URL", database_url)
        .env("TOKENCACHE_ARGON2_MEMORY_KIB", "256")
        .env("TOKENCACHE_ARGON2_ITERATIONS", "1")
        .env("RUST_LOG", "warn")
        .env_remove("TOKENCACHE_DB_TIME_ZONE");
    match redis_prefix {
        Some(prefix) => command
            .env("REDIS_URL", super::services::REDIS_URL)
            .env("TOKENCACHE_REDIS_PREFIX", prefix),
        None => command.env_remove("REDIS_URL"),
    };
    let mut child = command.spawn().expect("tokencache runs");
    if let Some(mut input) = child.stdin.take() {
        let _ = input.write_all(stdin.as_bytes());
    }
    child.wait_with_output().expect("tokencache runs")
}

/// The standard output of a command that must have succeeded (its output otherwise).
#[track_caller]
pub fn succeeded(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("UTF-8 output")
}

/// The test client and `alice` in the database at `database_url`, through the CLI (for a
/// `tokencache serve` process of a test's own).
pub fn cli_client_and_alice(database_url: &str) {
    succeeded(&tokencache_cli_input(
        database_url,
        None,
        &[
            "client",
            "create",
            "--app-key",
            APP_KEY,
            "--token-ttl",
            "3600",
            "--secret-stdin",
        ],
        &format!("{APP_SECRET}\n"),
    ));
    succeeded(&tokencache_cli_input(
        database_url,
        None,
        &[
            "user",
            "create",
            "--username",
            "alice",
            "--app-key",
            APP_KEY,
        ],
        &format!("{PASSWORD}\n"),
    ));
}

/// A signed authorize of `alice` at the server `base` (a process of a test's own): its
/// status and answer.
pub async fn login_at(base: &str) -> (StatusCode, Value) {
    let t = now_ms().to_string();
    let body = json!({
        "appid": APP_KEY, "token_type": "web", "username": "alice", "password": PASSWORD,
        "time": t, "token": sign(&[APP_KEY, "alice", PASSWORD, &t], APP_SECRET),
    });
    let r = reqwest::Client::new()
        .post(format!("{base}/api/v1/authorize"))
        .json(&body)
        .send()
        .await
        .expect("request sent");
    (r.status(), r.json().await.expect("JSON body"))
}
