//! Clients and their tokens: an OAuth refresh token needs its client's secret, unknown
//! app keys cost the database a bounded number of queries, a login signature cannot be
//! replayed in its window's last second.
use reqwest::StatusCode;
use serde_json::json;

use crate::common::*;
use crate::on_both_stores;

on_both_stores! {
    async fn an_oauth_refresh_token_is_never_redeemed_without_its_clients_secret(app) {
        let (status, _, v) = app
            .oauth("/oauth2/token", &[("grant_type", "password"), ("username", "alice"), ("password", PASSWORD)], APP_SECRET)
            .await;
        assert_eq!(status, StatusCode::OK, "{v}");
        let refresh = v["refresh_token"].as_str().unwrap().to_owned();
        // The legacy endpoint takes no client credentials: refused, and not spent.
        assert_fails(&app.refresh(&refresh).await, 401, 102);
        let (status, _, v) = app
            .oauth("/oauth2/token", &[("grant_type", "refresh_token"), ("refresh_token", &refresh)], APP_SECRET)
            .await;
        assert_eq!(status, StatusCode::OK, "{v}");
        // Its successor is the client's too.
        let next = v["refresh_token"].as_str().unwrap().to_owned();
        assert_fails(&app.refresh(&next).await, 401, 102);
        // A pair from the legacy authorize still refreshes there.
        let (_, legacy) = app.login().await;
        assert_eq!(app.refresh(&legacy).await.0, StatusCode::OK);
    }
}

on_both_stores! {
    async fn unknown_app_keys_cost_a_bounded_number_of_queries(backend: Backend) {
        let app = TestApp::spawn_with(backend, |s| s.rules.limits.ip_unknown_clients = 20).await;
        let (access, _) = app.login().await;
        let mut refused = 0;
        for n in 0..60 {
            let r = app
                .http
                .post(format!("{}/oauth2/introspect", app.base))
                .basic_auth(format!("probe-{n}"), Some("x"))
                .form(&[("token", access.as_str())])
                .send()
                .await
                .unwrap();
            match r.status() {
                StatusCode::UNAUTHORIZED => {}
                StatusCode::TOO_MANY_REQUESTS => refused += 1,
                other => panic!("probe {n}: {other}"),
            }
        }
        // Twenty looked up, the rest refused before any query.
        assert_eq!(refused, 40);
        // The legacy endpoints share the budget: an unknown appid is refused too.
        let t = now_ms().to_string();
        let body = json!({
            "appid": "probe-x", "username": "alice", "password": PASSWORD, "time": t,
            "token": sign(&["probe-x", "alice", PASSWORD, &t], "x"),
        });
        assert_fails(&app.post("/api/v1/authorize", &body).await, 429, 405);
        // The real client is not affected.
        let (status, _, v) = app.oauth("/oauth2/introspect", &[("token", &access)], APP_SECRET).await;
        assert_eq!((status, &v["active"]), (StatusCode::OK, &json!(true)), "{v}");
        app.login().await;
        app.cleanup().await;
    }
}

on_both_stores! {
    async fn a_login_signature_is_remembered_past_its_windows_last_second(app) {
        // Dated as far ahead as the window allows: acceptable until now + 600 s.
        let window = app.settings.rules.freshness_window as i64;
        let time = (now_s() + window).to_string();
        let body = app.authorize_body("alice", PASSWORD, &time);
        assert_eq!(app.post("/api/v1/authorize", &body).await.0, StatusCode::OK);
        assert_fails(&app.post("/api/v1/authorize", &body).await, 401, 1003);
        if app.backend.redis() {
            let signature = body["token"].as_str().unwrap().to_ascii_lowercase();
            let ttl = app.redis_ttl(&format!("s:{APP_KEY}:{signature}")).await;
            // Accepted while now <= time + window (whole seconds): remembered at least
            // until time + window + 1.
            assert!(ttl > 2 * window, "signature TTL {ttl}, window {window}");
        }
    }
}

// The same, waited out (a window of 2 s): a signature dated at the window's far edge is
// replayed in the window's last second, after twice the window from its first use.
on_both_stores! {
    async fn a_login_signature_cannot_be_replayed_in_its_windows_last_second(backend: Backend) {
        let app = TestApp::spawn_with(backend, |s| s.rules.freshness_window = 2).await;
        // Just after a second begins: first use at S + ~0.05 s.
        let clock = || chrono::Utc::now().timestamp_millis();
        let ms = clock();
        tokio::time::sleep(std::time::Duration::from_millis((1050 - ms % 1000) as u64)).await;
        let second = now_s();
        // Acceptable while the time in whole seconds is at most S + 4.
        let body = app.authorize_body("alice", PASSWORD, &(second + 2).to_string());
        assert_eq!(app.post("/api/v1/authorize", &body).await.0, StatusCode::OK);
        // At S + 4.3: four seconds (twice the window) after the first use, still inside
        // the window's last second.
        let wait = (second + 4) * 1000 + 300 - clock();
        tokio::time::sleep(std::time::Duration::from_millis(wait as u64)).await;
        assert_eq!(now_s(), second + 4, "the replay falls in the last second");
        assert_fails(&app.post("/api/v1/authorize", &body).await, 401, 1003);
        app.cleanup().await;
    }
}
