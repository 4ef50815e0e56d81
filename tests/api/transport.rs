//! The transport rules: legacy prefix, form bodies, body cap, routes, methods, language,
//! compat_http_200.
use reqwest::StatusCode;
use serde_json::json;

use crate::common::*;
use crate::on_both_stores;

on_both_stores! {
    async fn every_route_answers_under_the_legacy_prefix_too(app) {
        let body = app.authorize_body("alice", PASSWORD, &now_ms().to_string());
        let (status, v) = app.post("/oauth2/api/v1/authorize", &body).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        let access = v["data"]["access_token"].as_str().unwrap();
        let refresh = v["data"]["refresh_token"].as_str().unwrap();
        let (status, c) = app.post("/oauth2/api/v1/check_token", &json!({"token": access})).await;
        assert_eq!(status, StatusCode::OK, "{c}");
        assert_eq!(c["data"]["username"], json!("alice"));
        let (status, r) = app
            .post("/oauth2/api/v1/refresh_token", &json!({"refresh_token": refresh}))
            .await;
        assert_eq!(status, StatusCode::OK, "{r}");
        assert_fails(&app.post("/oauth2/api/v1/authorize_nopwd", &json!({})).await, 400, 1001);
    }

    async fn form_bodies_work_like_json(app) {
        let t = now_ms().to_string();
        let sig = sign(&[APP_KEY, "alice", PASSWORD, &t], APP_SECRET);
        let (status, v) = app
            .post_form(
                "/api/v1/authorize",
                &[("appid", APP_KEY), ("username", "alice"), ("password", PASSWORD), ("time", &t), ("token", &sig)],
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{v}");
        let access = v["data"]["access_token"].as_str().unwrap();
        let (status, c) = app.post_form("/api/v1/check_token", &[("token", access)]).await;
        assert_eq!(status, StatusCode::OK, "{c}");
        assert_fails(&app.post_form("/api/v1/check_token", &[("other", "x")]).await, 400, 1001);
    }

    async fn bad_bodies_get_1001_and_oversized_ones_413(app) {
        let url = format!("{}/api/v1/check_token", app.base);
        let send = |body: Vec<u8>| {
            app.http
                .post(&url)
                .header("content-type", "application/json")
                .body(body)
                .send()
        };
        for bad in [&b"not json"[..], b"", b"[1,2]", b"{\"token\":"] {
            let r = send(bad.to_vec()).await.unwrap();
            assert_eq!(r.status(), StatusCode::BAD_REQUEST);
            let v: serde_json::Value = r.json().await.unwrap();
            assert_eq!(v["code"], json!(1001));
        }
        let mut big = b"{\"token\":\"".to_vec();
        big.extend(std::iter::repeat_n(b'a', 17 * 1024));
        big.extend(b"\"}");
        let r = send(big).await.unwrap();
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["code"], json!(1001));
        assert_eq!(v["state"], json!(false));
    }

    async fn unknown_routes_get_404_and_wrong_methods_405(app) {
        let r = app.http.get(format!("{}/api/v1/nothing", app.base)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["code"], json!(1006));
        assert_eq!(v["state"], json!(false));
        let r = app.http.get(format!("{}/api/v1/check_token", app.base)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(r.headers()["allow"], "POST");
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["code"], json!(405));
    }

    async fn every_post_route_reaches_its_handler(app) {
        for path in [
            "/api/v1/authorize", "/api/v1/authorize_nopwd", "/api/v1/check_token",
            "/api/v1/refresh_token", "/api/v1/logout", "/api/v1/get_verify",
            "/api/v1/check_user", "/api/v1/doaction", "/api/v1/get_userinfo",
            "/api/v1/update_userinfo", "/oauth2/token", "/oauth2/introspect", "/oauth2/revoke",
        ] {
            // An empty body: every handler refuses it (400 or 401), none answers 404.
            let (status, v) = app.post(path, &json!({})).await;
            assert!(
                status == StatusCode::BAD_REQUEST || status == StatusCode::UNAUTHORIZED,
                "{path}: {status} {v}"
            );
        }
    }

    async fn accept_language_zh_gives_the_seed_texts(app) {
        let r = app
            .http
            .post(format!("{}/api/v1/check_token", app.base))
            .header("accept-language", "zh-CN,zh;q=0.9")
            .json(&json!({"token": "nope"}))
            .send()
            .await
            .unwrap();
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["error"], json!("Token失效"));
        let (_, v) = app.check_token("nope").await;
        assert_eq!(v["error"], json!("token invalid or expired"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compat_http_200_answers_200_with_the_same_body() {
    let app = TestApp::spawn_with(Backend::Embedded, |s| s.http.compat_http_200 = true).await;
    let (status, v) = app.check_token("nope").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["code"], json!(102));
    assert_eq!(v["state"], json!(false));
    let (status, v) = app.authorize("alice", PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["state"], json!(true));
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_freshness_window_accepts_old_times_and_repeats() {
    let app = TestApp::spawn_with(Backend::Embedded, |s| s.rules.freshness_window = 0).await;
    let body = app.authorize_body("alice", PASSWORD, "1500000000");
    assert_eq!(app.post("/api/v1/authorize", &body).await.0, StatusCode::OK);
    assert_eq!(app.post("/api/v1/authorize", &body).await.0, StatusCode::OK);
    app.cleanup().await;
}

/// With --max-connections 1, a second connection waits until the first one closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_wait_for_a_free_slot() {
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    let app = TestApp::spawn_with(Backend::Embedded, |s| s.http.max_connections = 1).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let request = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
    async fn read_answer(stream: &mut TcpStream) -> String {
        let mut buf = vec![0u8; 1024];
        let n = stream.read(&mut buf).await.unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    // The first connection holds the only slot (keep-alive after its answer).
    let mut first = TcpStream::connect(&addr).await.unwrap();
    first.write_all(request).await.unwrap();
    assert!(read_answer(&mut first).await.starts_with("HTTP/1.1 200"));

    // The second one is not served while the first stays open...
    let mut second = TcpStream::connect(&addr).await.unwrap();
    second.write_all(request).await.unwrap();
    let mut byte = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_millis(300), second.peek(&mut byte)).await;
    assert!(
        early.is_err(),
        "the second connection was served past the cap"
    );

    // ...and is as soon as the first one closes.
    drop(first);
    let answer = tokio::time::timeout(Duration::from_secs(10), read_answer(&mut second))
        .await
        .expect("the second connection is served once a slot is free");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    app.cleanup().await;
}
