//! get_userinfo and update_userinfo: the profile, its validation, message ids.
use reqwest::StatusCode;
use serde_json::json;

use crate::common::*;
use crate::on_both_stores;

on_both_stores! {
    async fn update_userinfo_changes_what_get_userinfo_shows(app) {
        let (status, v) = app.get_userinfo("alice").await;
        assert_eq!(status, StatusCode::OK, "{v}");
        assert_eq!(v["data"]["userInfo"], json!({"nickname": "alice", "headurl": ""}));
        assert_eq!(v["data"]["accountType"], json!(3));
        // A user made by the administrator has no registration address or bundle.
        assert_eq!(v["data"]["regIp"], json!(""));
        assert_eq!(v["data"]["bundle_id"], json!(""));

        assert_done(&app.update_userinfo("alice", "Alice 🐇", "https://cdn.example.com/a.png").await);
        let (_, v) = app.get_userinfo("alice").await;
        assert_eq!(
            v["data"]["userInfo"],
            json!({"nickname": "Alice 🐇", "headurl": "https://cdn.example.com/a.png"})
        );
        // Unchanged values are not a "missing user".
        assert_done(&app.update_userinfo("alice", "Alice 🐇", "https://cdn.example.com/a.png").await);
        // headurl may be emptied, or left out (the same as empty).
        assert_done(&app.update_userinfo("alice", "A", "").await);
        let body = json!({
            "account": "alice", "nickname": "B", "appid": APP_KEY,
            "signature": sign(&["alice", "B", "", APP_KEY], APP_SECRET),
        });
        assert_done(&app.post("/api/v1/update_userinfo", &body).await);
        let (_, v) = app.get_userinfo("alice").await;
        assert_eq!(v["data"]["userInfo"], json!({"nickname": "B", "headurl": ""}));
    }

    async fn update_userinfo_validates_nickname_and_headurl_with_1001(app) {
        let long_url = format!("https://example.com/{}", "a".repeat(236));
        for (nickname, headurl) in [
            ("", ""),
            (&"n".repeat(33)[..], ""),
            ("line\nbreak", ""),
            ("ok", "ftp://example.com/a.png"),
            ("ok", "javascript:alert(1)"),
            ("ok", "not a url"),
            ("ok", &long_url[..]),
        ] {
            assert_fails(&app.update_userinfo("alice", nickname, headurl).await, 400, 1001);
        }
        assert_done(&app.update_userinfo("alice", &"字".repeat(32), &long_url[..255]).await);
    }

    async fn profile_endpoints_refuse_bad_requests_with_their_message_ids(app) {
        assert_fails(&app.get_userinfo("ghost").await, 404, 1006);
        assert_fails(&app.update_userinfo("ghost", "nick", "").await, 404, 1006);
        let forged = json!({"account": "alice", "appid": APP_KEY, "signature": sign(&["bob", APP_KEY], APP_SECRET)});
        assert_fails(&app.post("/api/v1/get_userinfo", &forged).await, 401, 1003);
        let unknown = json!({"account": "alice", "appid": "nope", "signature": sign(&["alice", "nope"], APP_SECRET)});
        assert_fails(&app.post("/api/v1/get_userinfo", &unknown).await, 401, 1002);
        assert_fails(&app.post("/api/v1/get_userinfo", &json!({"account": "alice"})).await, 400, 1001);
        let forged = json!({
            "account": "alice", "nickname": "x", "headurl": "", "appid": APP_KEY,
            "signature": sign(&["alice", "y", "", APP_KEY], APP_SECRET),
        });
        assert_fails(&app.post("/api/v1/update_userinfo", &forged).await, 401, 1003);
        let (_, v) = app.get_userinfo("alice").await;
        assert_eq!(v["data"]["userInfo"]["nickname"], json!("alice"));
        // Under the legacy prefix too.
        let body = json!({"account": "alice", "appid": APP_KEY, "signature": sign(&["alice", APP_KEY], APP_SECRET)});
        assert_eq!(app.post("/oauth2/api/v1/get_userinfo", &body).await.0, StatusCode::OK);
    }
}

/// An account imported from the Go system's database may have no user_info_tbl row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and Redis: cargo test -- --include-ignored"]
async fn a_legacy_account_without_a_profile_row_gets_one_on_update() {
    use sea_orm::{ConnectionTrait, Database};
    let app = TestApp::spawn(Backend::Real).await;
    let db = Database::connect(app.settings.database_url.clone().unwrap())
        .await
        .unwrap();
    db.execute_unprepared(
        "INSERT INTO user_account_tbl (account, password, account_type, app_key, user_info_id, reg_time, reg_ip, bundle_id) \
         VALUES ('legacy', 'old-plain-pw', 3, 'testapp', NULL, '2019-05-01 08:30:00', '10.1.2.3', 'old.bundle')",
    )
    .await
    .unwrap();
    let (status, v) = app.get_userinfo("legacy").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        v["data"]["userInfo"],
        json!({"nickname": "", "headurl": ""})
    );
    assert_eq!(v["data"]["regTime"], json!("2019-05-01T08:30:00Z"));
    assert_eq!(v["data"]["regIp"], json!("10.1.2.3"));
    assert_eq!(v["data"]["bundle_id"], json!("old.bundle"));
    assert_done(
        &app.update_userinfo("legacy", "Old Timer", "http://x.example/p.jpg")
            .await,
    );
    let (_, v) = app.get_userinfo("legacy").await;
    assert_eq!(
        v["data"]["userInfo"],
        json!({"nickname": "Old Timer", "headurl": "http://x.example/p.jpg"})
    );
    app.cleanup().await;
}
