//! A code-delivery webhook receiver inside the test process (hyper on port 0) and the
//! account endpoints as `TestApp` helpers.
use std::convert::Infallible;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokencache::app::Settings;
use tokencache::delivery::DeliverySettings;
use tokencache::domain::admin::ClientSpec;
use tokencache::secret::Secret;

use super::app::*;
use super::clients::*;
use super::services::*;

/// What the receiver answers and what it was sent.
#[derive(Default)]
struct Shared {
    calls: Mutex<Vec<Value>>,
    raw: Mutex<Vec<RawCall>>,
    status: AtomicU16,
    delay_ms: AtomicU64,
}

/// A call as it arrived: its signature headers and its body bytes.
#[derive(Clone, Debug)]
pub struct RawCall {
    pub timestamp: Option<String>,
    pub signature: Option<String>,
    pub body: Bytes,
}

/// A webhook receiver: records every JSON body, answers `status` after `delay`.
pub struct Webhook {
    pub url: String,
    shared: Arc<Shared>,
}

impl Webhook {
    pub async fn start() -> Webhook {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        shared.status.store(200, Ordering::SeqCst);
        let state = shared.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = state.clone();
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let state = state.clone();
                    async move {
                        let header = |name: &str| {
                            req.headers()
                                .get(name)
                                .map(|v| v.to_str().unwrap_or_default().to_owned())
                        };
                        let (timestamp, signature) = (
                            header("x-tokencache-timestamp"),
                            header("x-tokencache-signature"),
                        );
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        state.raw.lock().unwrap().push(RawCall {
                            timestamp,
                            signature,
                            body: body.clone(),
                        });
                        let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        state.calls.lock().unwrap().push(value);
                        let delay = state.delay_ms.load(Ordering::SeqCst);
                        if delay > 0 {
                            tokio::time::sleep(Duration::from_millis(delay)).await;
                        }
                        let mut response = hyper::Response::new(Full::new(Bytes::from("{}")));
                        *response.status_mut() =
                            hyper::StatusCode::from_u16(state.status.load(Ordering::SeqCst))
                                .unwrap();
                        Ok::<_, Infallible>(response)
                    }
                });
                tokio::spawn(async move {
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Webhook {
            url: format!("http://{addr}/codes?key=hook-credential"),
            shared,
        }
    }

    /// The status of the next answers.
    pub fn answer(&self, status: u16) {
        self.shared.status.store(status, Ordering::SeqCst);
    }

    /// How long the next answers take.
    pub fn delay(&self, delay: Duration) {
        self.shared
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// Every body received so far.
    pub fn calls(&self) -> Vec<Value> {
        self.shared.calls.lock().unwrap().clone()
    }

    /// Every call received so far, as it arrived.
    pub fn raw_calls(&self) -> Vec<RawCall> {
        self.shared.raw.lock().unwrap().clone()
    }

    /// The code of the last call for `to`.
    #[track_caller]
    pub fn code_for(&self, to: &str) -> String {
        let calls = self.calls();
        let last = calls
            .iter()
            .rev()
            .find(|c| c["to"] == json!(to))
            .unwrap_or_else(|| panic!("no code delivered to {to}: {calls:?}"));
        last["code"].as_str().unwrap().to_owned()
    }
}

/// The webhook delivery settings for a receiver (a short timeout keeps timeout tests quick).
pub fn webhook_settings(hook: &Webhook) -> DeliverySettings {
    DeliverySettings::Webhook {
        url: Secret::new(hook.url.clone()),
        timeout: Duration::from_millis(800),
        secret: None,
    }
}

/// A server on fresh stores delivering codes to a new receiver, with settings adjusted.
pub async fn spawn_with_webhook(
    backend: Backend,
    adjust: impl FnOnce(&mut Settings),
) -> (TestApp, Webhook) {
    let hook = Webhook::start().await;
    let delivery = webhook_settings(&hook);
    let app = TestApp::spawn_with(backend, |s| {
        s.delivery = delivery;
        adjust(s);
    })
    .await;
    (app, hook)
}

/// The response of a raw POST: status, headers and envelope.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Answer {
    pub fn pair(&self) -> (StatusCode, Value) {
        (self.status, self.body.clone())
    }

    /// The `Retry-After` header in seconds.
    #[track_caller]
    pub fn retry_after(&self) -> u64 {
        self.headers
            .get("retry-after")
            .unwrap_or_else(|| panic!("no Retry-After on {}", self.text))
            .to_str()
            .unwrap()
            .parse()
            .unwrap()
    }
}

impl TestApp {
    /// POSTs JSON with extra headers; returns everything a client sees.
    pub async fn post_raw(&self, path: &str, body: &Value, headers: &[(&str, &str)]) -> Answer {
        let mut request = self.http.post(format!("{}{path}", self.base)).json(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {text}"));
        Answer {
            status,
            headers,
            body,
            text,
        }
    }

    /// A signed get_verify body of the test client (lg "en").
    pub fn get_verify_body(&self, username: &str, flag: &str, smsflag: &str) -> Value {
        json!({
            "lg": "en", "username": username, "flag": flag, "smsflag": smsflag, "appid": APP_KEY,
            "signature": sign(&["en", username, flag, smsflag, APP_KEY], APP_SECRET),
        })
    }

    pub async fn get_verify(&self, username: &str, flag: &str, smsflag: &str) -> Answer {
        let body = self.get_verify_body(username, flag, smsflag);
        self.post_raw("/api/v1/get_verify", &body, &[]).await
    }

    /// A signed doaction body of the test client (bundleid "com.example.app").
    pub fn doaction_body(&self, username: &str, password: &str, verify: &str, flag: &str) -> Value {
        let bundle = "com.example.app";
        json!({
            "username": username, "password": password, "verify": verify, "flag": flag,
            "bundleid": bundle, "appid": APP_KEY,
            "signature": sign(&[username, password, verify, flag, bundle, APP_KEY], APP_SECRET),
        })
    }

    pub async fn doaction(
        &self,
        username: &str,
        password: &str,
        verify: &str,
        flag: &str,
    ) -> (StatusCode, Value) {
        let body = self.doaction_body(username, password, verify, flag);
        self.post("/api/v1/doaction", &body).await
    }

    pub async fn check_user(&self, username: &str) -> Answer {
        self.post_raw("/api/v1/check_user", &json!({ "username": username }), &[])
            .await
    }

    pub async fn get_userinfo(&self, account: &str) -> (StatusCode, Value) {
        let body = json!({
            "account": account, "appid": APP_KEY,
            "signature": sign(&[account, APP_KEY], APP_SECRET),
        });
        self.post("/api/v1/get_userinfo", &body).await
    }

    pub async fn update_userinfo(
        &self,
        account: &str,
        nickname: &str,
        headurl: &str,
    ) -> (StatusCode, Value) {
        let body = json!({
            "account": account, "nickname": nickname, "headurl": headurl, "appid": APP_KEY,
            "signature": sign(&[account, nickname, headurl, APP_KEY], APP_SECRET),
        });
        self.post("/api/v1/update_userinfo", &body).await
    }

    /// Logs `username` in through the test client; returns (access, refresh).
    pub async fn login_as(&self, username: &str, password: &str) -> (String, String) {
        let (status, v) = self.authorize(username, password).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        (
            v["data"]["access_token"].as_str().unwrap().to_owned(),
            v["data"]["refresh_token"].as_str().unwrap().to_owned(),
        )
    }

    /// A client with `strict_verify` 2 (codes ignored).
    pub async fn create_loose_client(&self, app_key: &str, secret: &str) {
        self.state
            .engine
            .create_client(ClientSpec {
                app_key: app_key.into(),
                secret: Some(Secret::new(secret)),
                token_ttl: 3600,
                strict_verify: 2,
                expires: None,
                allow_nopwd: false,
            })
            .await
            .expect("create client");
    }

    /// TTL of a Redis key of this test (Redis-backed only).
    pub async fn redis_ttl(&self, suffix: &str) -> i64 {
        let mut conn = self.redis().await;
        redis::cmd("TTL")
            .arg(format!("{}{suffix}", self.settings.redis_prefix))
            .query_async(&mut conn)
            .await
            .unwrap()
    }

    /// GET of a Redis key of this test (Redis-backed only).
    pub async fn redis_get(&self, suffix: &str) -> Option<String> {
        let mut conn = self.redis().await;
        redis::cmd("GET")
            .arg(format!("{}{suffix}", self.settings.redis_prefix))
            .query_async(&mut conn)
            .await
            .unwrap()
    }
}

/// Asserts a success envelope without data (the "state only" endpoints).
#[track_caller]
pub fn assert_done(got: &(StatusCode, Value)) {
    let (s, v) = got;
    assert_eq!(*s, StatusCode::OK, "{v}");
    assert_eq!(v["state"], json!(true), "{v}");
    assert_eq!(v["code"], json!(0), "{v}");
    assert!(v.get("data").is_none(), "{v}");
}
