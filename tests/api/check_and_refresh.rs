//! check_token and refresh_token: message ids, single-use refresh under concurrency.
use reqwest::StatusCode;
use serde_json::json;

use crate::common::*;
use crate::on_both_stores;

on_both_stores! {
    async fn check_token_refuses_a_missing_token_with_1001_and_an_unknown_one_with_102(app) {
        assert_fails(&app.post("/api/v1/check_token", &json!({})).await, 400, 1001);
        assert_fails(&app.post("/api/v1/check_token", &json!({"token": ""})).await, 400, 1001);
        assert_fails(&app.check_token("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").await, 401, 102);
        // A refresh token is not an access token.
        let (_, refresh) = app.login().await;
        assert_fails(&app.check_token(&refresh).await, 401, 102);
    }

    async fn refresh_token_issues_a_new_pair_and_can_be_used_only_once(app) {
        let (access, refresh) = app.login().await;
        let (status, v) = app.refresh(&refresh).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        let data = &v["data"];
        assert_eq!(data["username"], json!("alice"));
        assert_eq!(data["expire_time"], json!("3600"));
        let new_access = data["access_token"].as_str().unwrap();
        let new_refresh = data["refresh_token"].as_str().unwrap();
        assert_eq!(new_access.len(), 32);
        assert_ne!(new_access, access);
        assert_ne!(new_refresh, refresh);
        let (status, c) = app.check_token(new_access).await;
        assert_eq!(status, StatusCode::OK, "{c}");
        // The pair keeps the client and token type of the login.
        assert_eq!(c["data"]["app_key"], json!(APP_KEY));
        assert_eq!(c["data"]["token_type"], json!("web"));

        // The new refresh token works once too, and the chain goes on.
        let (status, v) = app.refresh(new_refresh).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        assert_fails(&app.refresh(new_refresh).await, 401, 102);
    }

    async fn a_replayed_refresh_token_revokes_every_token_of_its_login(app) {
        let (first_access, first_refresh) = app.login().await;
        let (other_access, other_refresh) = app.login().await;
        let (_, v) = app.refresh(&first_refresh).await;
        let second_access = v["data"]["access_token"].as_str().unwrap().to_owned();
        let second_refresh = v["data"]["refresh_token"].as_str().unwrap().to_owned();
        let (_, v) = app.refresh(&second_refresh).await;
        let third_access = v["data"]["access_token"].as_str().unwrap().to_owned();
        let third_refresh = v["data"]["refresh_token"].as_str().unwrap().to_owned();
        assert_eq!(app.check_token(&third_access).await.0, StatusCode::OK);

        // The first refresh token, already rotated, comes back: a stolen copy.
        assert_fails(&app.refresh(&first_refresh).await, 401, 102);
        for dead in [&first_access, &second_access, &third_access] {
            assert_fails(&app.check_token(dead).await, 401, 102);
        }
        assert_fails(&app.refresh(&third_refresh).await, 401, 102);
        // Another login of the same user is another family: untouched.
        assert_eq!(app.check_token(&other_access).await.0, StatusCode::OK);
        assert_eq!(app.refresh(&other_refresh).await.0, StatusCode::OK);
    }

    async fn refresh_token_refuses_missing_and_unknown_tokens(app) {
        assert_fails(&app.post("/api/v1/refresh_token", &json!({})).await, 400, 1001);
        assert_fails(&app.refresh("BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB").await, 401, 102);
        // An access token is not a refresh token.
        let (access, _) = app.login().await;
        assert_fails(&app.refresh(&access).await, 401, 102);
    }

    async fn of_many_concurrent_refreshes_with_one_token_one_wins_at_most_and_the_replays_revoke_the_login(app) {
        // The first use wins the token; every other use is a replay, which revokes every
        // pair of the login, the winner's new one too (which may answer 102 itself, when
        // a replay's revocation ran before its pair was filed).
        let (access, refresh) = app.login().await;
        let attempts = (0..24).map(|_| app.refresh(&refresh));
        let results = futures::future::join_all(attempts).await;
        let wins: Vec<_> = results.iter().filter(|(s, _)| *s == StatusCode::OK).collect();
        assert!(wins.len() <= 1, "{results:?}");
        for (status, v) in results.iter().filter(|(s, _)| *s != StatusCode::OK) {
            assert_eq!(*status, StatusCode::UNAUTHORIZED);
            assert_eq!(v["code"], json!(102));
        }
        assert_fails(&app.check_token(&access).await, 401, 102);
        for (_, v) in wins {
            let new = v["data"]["access_token"].as_str().unwrap();
            assert_fails(&app.check_token(new).await, 401, 102);
        }
        // A single refresh of another login wins, as ever.
        let (_, other) = app.login().await;
        assert_eq!(app.refresh(&other).await.0, StatusCode::OK);
    }

    async fn disabling_a_user_revokes_every_live_token(app) {
        let (a1, r1) = app.login().await;
        let (a2, _) = app.login().await;
        assert_eq!(app.check_token(&a1).await.0, StatusCode::OK);
        let revoked = app.state.engine.disable_user("alice").await.unwrap();
        assert_eq!(revoked, 4, "two access and two refresh tokens");
        assert_fails(&app.check_token(&a1).await, 401, 102);
        assert_fails(&app.check_token(&a2).await, 401, 102);
        assert_fails(&app.refresh(&r1).await, 401, 102);
    }

    async fn a_new_password_revokes_every_live_token(app) {
        let (access, refresh) = app.login().await;
        app.state.engine.set_password("alice", "a new password").await.unwrap();
        assert_fails(&app.check_token(&access).await, 401, 102);
        assert_fails(&app.refresh(&refresh).await, 401, 102);
        assert_fails(&app.authorize("alice", PASSWORD).await, 401, 1004);
        assert_eq!(app.authorize("alice", "a new password").await.0, StatusCode::OK);
    }
}

// A token dies with its TTL: a client with a 1-second lifetime.
on_both_stores! {
    async fn an_access_token_dies_when_its_lifetime_is_over(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        app.create_client("short", "short-secret", 1, false, None)
            .await;
        let t = now_ms().to_string();
        let body = json!({
            "appid": "short", "username": "alice", "password": PASSWORD, "time": t,
            "token": sign(&["short", "alice", PASSWORD, &t], "short-secret"),
        });
        let (status, v) = app.post("/api/v1/authorize", &body).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        let access = v["data"]["access_token"].as_str().unwrap().to_owned();
        // Waiting out a 1 s lifetime is the behaviour under test, not a timing assertion.
        tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
        assert_fails(&app.check_token(&access).await, 401, 102);
        app.cleanup().await;
    }
}

on_both_stores! {
    async fn a_user_past_the_session_cap_loses_the_oldest_pairs(backend: Backend) {
        let app = TestApp::spawn_with(backend, |s| s.rules.max_sessions_per_user = 3).await;
        let mut logins = Vec::new();
        for _ in 0..5 {
            logins.push(app.login().await);
        }
        // In Redis their keys hold the revoked value (a tombstone, so that a rerun of
        // `import-legacy-tokens` cannot bring them back): on one node the filing script
        // writes it itself, naming the keys from the members' hashes.
        if backend.redis() {
            let mut conn = app.redis().await;
            for (access, refresh) in &logins[..2] {
                for (kind, token) in [("a", access), ("r", refresh)] {
                    let key = format!(
                        "{}{kind}:{}",
                        app.settings.redis_prefix,
                        tokencache::store::TokenHash::of(token).encode()
                    );
                    let value: Option<Vec<u8>> =
                        redis::cmd("GET").arg(&key).query_async(&mut conn).await.unwrap();
                    // `value::REVOKED`, private to the store: one byte 5.
                    assert_eq!(value.as_deref(), Some(&[5u8][..]), "{kind} key of a trimmed pair");
                }
            }
        }
        // The two oldest logins are revoked, access and refresh token alike.
        for (access, refresh) in &logins[..2] {
            assert_fails(&app.check_token(access).await, 401, 102);
            assert_fails(&app.refresh(refresh).await, 401, 102);
        }
        for (access, _) in &logins[2..] {
            assert_eq!(app.check_token(access).await.0, StatusCode::OK);
        }
        if backend.redis() {
            let mut conn = app.redis().await;
            let members: u64 = redis::cmd("ZCARD")
                .arg(format!("{}u:alice", app.settings.redis_prefix))
                .query_async(&mut conn)
                .await
                .unwrap();
            assert_eq!(members, 3, "the index holds the cap");
        }
    }
}
