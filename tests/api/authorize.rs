//! authorize and authorize_nopwd: every message id, in the seed's order of checks.
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::*;
use crate::on_both_stores;

on_both_stores! {
    async fn authorize_returns_a_token_pair_that_check_token_accepts(app) {
        let (status, v) = app.authorize("alice", PASSWORD).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        assert_eq!(v["state"], json!(true));
        assert_eq!(v["code"], json!(0));
        let data = &v["data"];
        for field in ["access_token", "refresh_token"] {
            let token = data[field].as_str().unwrap();
            assert_eq!(token.len(), 32, "{field}");
            assert!(token.bytes().all(|b| b.is_ascii_alphanumeric()), "{field}: {token}");
        }
        assert_ne!(data["access_token"], data["refresh_token"]);
        assert_eq!(data["expire_time"], json!("3600"));

        let (status, c) = app.check_token(data["access_token"].as_str().unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{c}");
        assert_eq!(c["data"]["username"], json!("alice"));
        assert_eq!(c["data"]["app_key"], json!(APP_KEY));
        assert_eq!(c["data"]["token_type"], json!("web"));
        let left: i64 = c["data"]["expire_time"].as_str().unwrap().parse().unwrap();
        assert!((3590..=3600).contains(&left), "seconds left: {left}");
    }

    async fn authorize_refuses_missing_or_empty_fields_with_1001(app) {
        let good = app.authorize_body("alice", PASSWORD, &now_ms().to_string());
        for field in ["appid", "username", "password", "time", "token"] {
            let mut missing = good.clone();
            missing.as_object_mut().unwrap().remove(field);
            assert_fails(&app.post("/api/v1/authorize", &missing).await, 400, 1001);
            let mut empty = good.clone();
            empty[field] = json!("");
            assert_fails(&app.post("/api/v1/authorize", &empty).await, 400, 1001);
        }
        let mut bad_time = good.clone();
        bad_time["time"] = json!("yesterday");
        assert_fails(&app.post("/api/v1/authorize", &bad_time).await, 400, 1001);
        let mut object = good;
        object["username"] = json!({"nested": true});
        assert_fails(&app.post("/api/v1/authorize", &object).await, 400, 1001);
    }

    async fn authorize_refuses_an_unknown_appid_with_1002(app) {
        let mut body = app.authorize_body("alice", PASSWORD, &now_ms().to_string());
        body["appid"] = json!("no-such-app");
        assert_fails(&app.post("/api/v1/authorize", &body).await, 401, 1002);
    }

    async fn authorize_refuses_an_expired_client_with_3(app) {
        let past = (chrono::Utc::now() - chrono::Duration::days(1)).naive_utc();
        app.create_client("oldapp", "old-secret", 60, false, Some(past)).await;
        let t = now_ms().to_string();
        let body = json!({
            "appid": "oldapp", "username": "alice", "password": PASSWORD, "time": t,
            "token": sign(&["oldapp", "alice", PASSWORD, &t], "old-secret"),
        });
        assert_fails(&app.post("/api/v1/authorize", &body).await, 403, 3);
    }

    async fn authorize_refuses_a_disabled_client_with_1002(app) {
        app.state.engine.disable_client(APP_KEY).await.unwrap();
        assert_fails(&app.authorize("alice", PASSWORD).await, 401, 1002);
    }

    async fn authorize_refuses_a_wrong_signature_with_1003(app) {
        let mut body = app.authorize_body("alice", PASSWORD, &now_ms().to_string());
        body["token"] = json!(sign(&[APP_KEY, "alice", PASSWORD, "1"], APP_SECRET));
        assert_fails(&app.post("/api/v1/authorize", &body).await, 401, 1003);
        // Signed with another secret.
        let t = now_ms().to_string();
        body["time"] = json!(t);
        body["token"] = json!(sign(&[APP_KEY, "alice", PASSWORD, &t], "not-the-secret"));
        assert_fails(&app.post("/api/v1/authorize", &body).await, 401, 1003);
    }

    async fn authorize_accepts_an_uppercase_signature(app) {
        let mut body = app.authorize_body("alice", PASSWORD, &now_ms().to_string());
        body["token"] = json!(body["token"].as_str().unwrap().to_ascii_uppercase());
        let (status, v) = app.post("/api/v1/authorize", &body).await;
        assert_eq!(status, StatusCode::OK, "{v}");
    }

    async fn authorize_refuses_a_stale_time_with_1003(app) {
        for t in [now_s() - 301, now_s() + 301, 1] {
            let body = app.authorize_body("alice", PASSWORD, &t.to_string());
            assert_fails(&app.post("/api/v1/authorize", &body).await, 401, 1003);
        }
        // Just inside the window passes.
        let body = app.authorize_body("alice", PASSWORD, &(now_s() - 250).to_string());
        let (status, v) = app.post("/api/v1/authorize", &body).await;
        assert_eq!(status, StatusCode::OK, "{v}");
    }

    async fn authorize_refuses_a_replayed_signature_with_1003(app) {
        let body = app.authorize_body("alice", PASSWORD, &now_s().to_string());
        let (status, v) = app.post("/api/v1/authorize", &body).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        assert_fails(&app.post("/api/v1/authorize", &body).await, 401, 1003);
        // The same signature in upper case is the same signature.
        let mut upper = body.clone();
        upper["token"] = json!(body["token"].as_str().unwrap().to_ascii_uppercase());
        assert_fails(&app.post("/api/v1/authorize", &upper).await, 401, 1003);
    }

    async fn authorize_accepts_time_in_milliseconds_and_as_a_json_number(app) {
        let ms = now_ms();
        let mut body = app.authorize_body("alice", PASSWORD, &ms.to_string());
        body["time"] = json!(ms);
        let (status, v) = app.post("/api/v1/authorize", &body).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        let s = now_s();
        let mut body = app.authorize_body("alice", PASSWORD, &s.to_string());
        body["time"] = json!(s);
        let (status, v) = app.post("/api/v1/authorize", &body).await;
        assert_eq!(status, StatusCode::OK, "{v}");
    }

    async fn authorize_refuses_a_wrong_password_or_unknown_user_with_1004(app) {
        assert_fails(&app.authorize("alice", "wrong password").await, 401, 1004);
        assert_fails(&app.authorize("nobody", PASSWORD).await, 401, 1004);
    }

    async fn authorize_refuses_a_disabled_user_with_2_after_the_password_check(app) {
        app.state.engine.disable_user("alice").await.unwrap();
        assert_fails(&app.authorize("alice", PASSWORD).await, 403, 2);
        // A wrong password still says 1004: the disabled state is not revealed to guessers.
        assert_fails(&app.authorize("alice", "wrong").await, 401, 1004);
    }

    async fn authorize_nopwd_needs_a_trusted_client(app) {
        let t = now_ms().to_string();
        let body = json!({
            "appid": APP_KEY, "username": "alice", "time": t,
            "token": sign(&[APP_KEY, "alice", &t], APP_SECRET),
        });
        assert_fails(&app.post("/api/v1/authorize_nopwd", &body).await, 401, 1002);

        app.create_client("trusted", "trusted-secret", 120, true, None).await;
        let t = now_ms().to_string();
        let body = json!({
            "appid": "trusted", "username": "alice", "time": t, "token_type": "svc",
            "token": sign(&["trusted", "alice", &t], "trusted-secret"),
        });
        let (status, v) = app.post("/api/v1/authorize_nopwd", &body).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        assert_eq!(v["data"]["expire_time"], json!("120"));
        let (_, c) = app.check_token(v["data"]["access_token"].as_str().unwrap()).await;
        assert_eq!(c["data"]["app_key"], json!("trusted"));

        // Wrong signature, unknown user, missing time.
        let mut bad = body.clone();
        bad["time"] = json!(now_ms().to_string());
        assert_fails(&app.post("/api/v1/authorize_nopwd", &bad).await, 401, 1003);
        let t = now_ms().to_string();
        let nobody = json!({
            "appid": "trusted", "username": "nobody", "time": t,
            "token": sign(&["trusted", "nobody", &t], "trusted-secret"),
        });
        assert_fails(&app.post("/api/v1/authorize_nopwd", &nobody).await, 401, 1004);
        let mut no_time = body;
        no_time.as_object_mut().unwrap().remove("time");
        assert_fails(&app.post("/api/v1/authorize_nopwd", &no_time).await, 400, 1001);
    }
}

/// A legacy plain password (imported from the Go system's database) works once and is
/// replaced by an argon2id hash on that login.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and Redis: cargo test -- --include-ignored"]
async fn a_legacy_plain_password_is_accepted_once_and_rehashed() {
    use sea_orm::{ConnectionTrait, Database, Statement};
    let app = TestApp::spawn(Backend::Real).await;
    let db = Database::connect(app.settings.database_url.clone().unwrap())
        .await
        .unwrap();
    db.execute_unprepared(
        "INSERT INTO user_account_tbl (account, password, account_type, app_key, reg_time, reg_ip, bundle_id) \
         VALUES ('legacy', 'old-plain-pw', 3, 'testapp', NOW(), '', '')",
    )
    .await
    .unwrap();
    let (status, v) = app.authorize("legacy", "old-plain-pw").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let row = db
        .query_one(Statement::from_string(
            db.get_database_backend(),
            "SELECT password FROM user_account_tbl WHERE account = 'legacy'",
        ))
        .await
        .unwrap()
        .unwrap();
    let stored: String = row.try_get("", "password").unwrap();
    assert!(
        stored.starts_with("$argon2id$"),
        "stored: {}",
        &stored[..10]
    );
    // And the same password still logs in, now against the hash.
    let (status, v): (StatusCode, Value) = app.authorize("legacy", "old-plain-pw").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    app.cleanup().await;
}

on_both_stores! {
    async fn a_username_longer_than_the_column_is_refused_before_any_counter(app) {
        let long = "u".repeat(192);
        assert_fails(&app.authorize(&long, PASSWORD).await, 400, 1001);
        if app.backend.redis() {
            let mut conn = app.redis().await;
            let keys = redis_keys(&mut conn, &format!("{}n:login:", app.settings.redis_prefix)).await;
            assert!(keys.is_empty(), "{keys:?}");
        }
        // 191 characters is a name like any other: wrong password, 1004.
        assert_fails(&app.authorize(&"u".repeat(191), PASSWORD).await, 401, 1004);
    }
}
