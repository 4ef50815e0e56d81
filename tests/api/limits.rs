//! Login abuse protection: the per-username lockout after failed passwords and the
//! per-IP limits of authorize, get_verify and check_user, all answering 405 / HTTP 429
//! with `Retry-After`; counters live in the token store with their window as TTL.
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::common::*;
use crate::on_both_stores;

on_both_stores! {
    async fn five_failed_logins_lock_the_username_even_for_the_right_password(app) {
        for _ in 0..5 {
            assert_fails(&app.authorize("alice", "wrong").await, 401, 1004);
        }
        let body = app.authorize_body("alice", PASSWORD, &now_ms().to_string());
        let locked = app.post_raw("/api/v1/authorize", &body, &[]).await;
        assert_fails(&locked.pair(), 429, 405);
        let wait = locked.retry_after();
        assert!((890..=900).contains(&wait), "Retry-After {wait}");
        // Wrong passwords keep getting 405, without a password check.
        assert_fails(&app.authorize("alice", "wrong").await, 429, 405);
        // The name's case does not open a second counter.
        assert_fails(&app.authorize("ALICE", PASSWORD).await, 429, 405);
        // Other users are not affected.
        app.create_user("bob", "bob-pw").await;
        app.login_as("bob", "bob-pw").await;

        if app.backend.redis() {
            // Every attempt counts, the refused ones too: 5 checked, 3 refused.
            assert_eq!(app.redis_get("n:login:alice").await.as_deref(), Some("8"));
            let ttl = app.redis_ttl("n:login:alice").await;
            assert!((890..=900).contains(&ttl), "lockout TTL {ttl}");
        }

        // A new password (here by the administrator) lifts the lock.
        app.state.engine.set_password("alice", "fresh-pw").await.unwrap();
        app.login_as("alice", "fresh-pw").await;
    }

    async fn a_good_login_forgets_earlier_failures(app) {
        for _ in 0..4 {
            assert_fails(&app.authorize("alice", "wrong").await, 401, 1004);
        }
        app.login().await;
        for _ in 0..4 {
            assert_fails(&app.authorize("alice", "wrong").await, 401, 1004);
        }
        app.login().await;
    }

    async fn failures_for_an_unknown_username_lock_it_too(app) {
        // Locking only existing names would tell a guesser which names exist.
        for _ in 0..5 {
            assert_fails(&app.authorize("nobody", "pw").await, 401, 1004);
        }
        assert_fails(&app.authorize("nobody", "pw").await, 429, 405);
    }
}

// The lockout ends with its window (1 s here instead of 900 s).
on_both_stores! {
    async fn the_lockout_ends_with_its_window(backend: Backend) {
        let app = TestApp::spawn_with(backend, |s| s.rules.limits.login_window = 1).await;
        for _ in 0..5 {
            assert_fails(&app.authorize("alice", "wrong").await, 401, 1004);
        }
        assert_fails(&app.authorize("alice", PASSWORD).await, 429, 405);
        tokio::time::sleep(Duration::from_millis(2100)).await;
        app.login().await;
        app.cleanup().await;
    }
}

// Tight per-IP limits: the request past the limit gets 405 / 429 with Retry-After.
on_both_stores! {
    async fn per_ip_limits_answer_429_with_retry_after(backend: Backend) {
        let (app, _hook) = spawn_with_webhook(backend, |s| {
            s.rules.limits.ip_authorize = 3;
            s.rules.limits.ip_get_verify = 2;
            s.rules.limits.ip_check_user = 2;
            s.rules.limits.ip_doaction = 2;
            s.rules.limits.ip_window = 30;
        })
        .await;
        for _ in 0..3 {
            app.login().await;
        }
        let body = app.authorize_body("alice", PASSWORD, &now_ms().to_string());
        let limited = app.post_raw("/api/v1/authorize", &body, &[]).await;
        assert_fails(&limited.pair(), 429, 405);
        assert!(
            (1..=30).contains(&limited.retry_after()),
            "{}",
            limited.retry_after()
        );

        // authorize_nopwd (a trusted backend's) is not limited.
        app.create_client("trusted", "trusted-secret", 120, true, None)
            .await;
        for _ in 0..5 {
            let t = now_ms().to_string();
            let nopwd = json!({
                "appid": "trusted", "username": "alice", "time": t,
                "token": sign(&["trusted", "alice", &t], "trusted-secret"),
            });
            let (status, v) = app.post("/api/v1/authorize_nopwd", &nopwd).await;
            assert_eq!(status, StatusCode::OK, "{v}");
        }

        for n in 0..2 {
            let user = format!("ip{n}@example.com");
            assert_done(&app.get_verify(&user, "1", "1").await.pair());
        }
        let limited = app.get_verify("ip9@example.com", "1", "1").await;
        assert_fails(&limited.pair(), 429, 405);
        assert!((1..=30).contains(&limited.retry_after()));

        for _ in 0..2 {
            assert_eq!(app.check_user("alice").await.status, StatusCode::OK);
        }
        let limited = app.check_user("alice").await;
        assert_fails(&limited.pair(), 429, 405);
        assert!((1..=30).contains(&limited.retry_after()));
        // X-Forwarded-For is not trusted by default: the same address.
        let spoofed = app
            .post_raw(
                "/api/v1/check_user",
                &json!({"username": "alice"}),
                &[("x-forwarded-for", "203.0.113.9")],
            )
            .await;
        assert_fails(&spoofed.pair(), 429, 405);

        // doaction (sign-ups, password changes) counts every request, refused or not.
        for _ in 0..2 {
            let (status, v) = app.post("/api/v1/doaction", &json!({})).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
        }
        let limited = app.post_raw("/api/v1/doaction", &json!({}), &[]).await;
        assert_fails(&limited.pair(), 429, 405);
        assert!((1..=30).contains(&limited.retry_after()));

        if backend.redis() {
            let ttl = app.redis_ttl("n:ip:check_user:127.0.0.1").await;
            assert!((25..=30).contains(&ttl), "per-IP TTL {ttl}");
            assert_eq!(
                app.redis_get("n:ip:authorize:127.0.0.1").await.as_deref(),
                Some("4")
            );
        }
        app.cleanup().await;
    }
}

// Behind trusted proxies the rightmost X-Forwarded-For hop that is no trusted proxy is
// the client: for the limits, for `reg_ip` and for the network a code belongs to.
on_both_stores! {
    async fn the_rightmost_untrusted_forwarded_for_hop_names_the_client(backend: Backend) {
        let (app, hook) = spawn_with_webhook(backend, |s| {
            s.http.trusted_proxies =
                vec!["127.0.0.1/32".parse().unwrap(), "10.0.0.0/8".parse().unwrap()];
            s.rules.limits.ip_check_user = 1;
        })
        .await;
        let from = |ip: &'static str| [("x-forwarded-for", ip)];
        let first = &from("203.0.113.1, 10.0.0.1");
        let path = "/api/v1/check_user";
        let body = json!({"username": "alice"});
        assert_eq!(
            app.post_raw(path, &body, first).await.status,
            StatusCode::OK
        );
        assert_fails(&app.post_raw(path, &body, first).await.pair(), 429, 405);
        let other = app.post_raw(path, &body, &from("203.0.113.2")).await;
        assert_eq!(other.status, StatusCode::OK, "{}", other.text);

        // A forged leftmost hop changes nothing: the hop nginx appended counts.
        let forged = app
            .post_raw(path, &body, &from("198.51.100.99, 203.0.113.1"))
            .await;
        assert_fails(&forged.pair(), 429, 405);

        let user = "proxied@example.com";
        let ask = app.get_verify_body(user, "1", "1");
        assert_done(
            &app.post_raw("/api/v1/get_verify", &ask, &from("198.51.100.4"))
                .await
                .pair(),
        );
        let code = hook.code_for(user);
        let action = app.doaction_body(user, "pw", &code, "1");
        assert_done(
            &app.post_raw("/api/v1/doaction", &action, &from("198.51.100.4"))
                .await
                .pair(),
        );
        let (_, v) = app.get_userinfo(user).await;
        assert_eq!(v["data"]["regIp"], json!("198.51.100.4"));
        app.cleanup().await;
    }
}

/// A limit of 0 is no limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_limit_turns_the_check_off() {
    let app = TestApp::spawn_with(Backend::Embedded, |s| {
        s.rules.limits.ip_check_user = 0;
        s.rules.limits.login_failures = 0;
    })
    .await;
    for _ in 0..30 {
        assert_eq!(app.check_user("alice").await.status, StatusCode::OK);
    }
    for _ in 0..8 {
        assert_fails(&app.authorize("alice", "wrong").await, 401, 1004);
    }
    app.login().await;
    app.cleanup().await;
}
