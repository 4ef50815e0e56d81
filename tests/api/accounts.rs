//! The account endpoints (get_verify, check_user, doaction): sign-up and password change
//! with codes delivered to a webhook receiver in the test, every message id, both
//! `strict_verify` values, the resend lock, wrong guesses, expiry.
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::common::*;
use crate::on_both_stores;

on_both_stores! {
    async fn sign_up_with_a_mailed_code_creates_a_user_who_can_log_in(app, hook) {
        let user = "new.user@example.com";
        let got = app.check_user(user).await;
        assert_eq!(got.status, StatusCode::OK, "{}", got.text);
        assert_eq!(got.body["data"], json!({"isfind": false}));

        let sent = app.get_verify(user, "1", "1").await;
        assert_done(&sent.pair());
        let calls = hook.calls();
        assert_eq!(calls.len(), 1, "{calls:?}");
        let call = &calls[0];
        assert_eq!(call["channel"], json!("mail"));
        assert_eq!(call["to"], json!(user));
        assert_eq!(call["purpose"], json!("register"));
        assert_eq!(call["lang"], json!("en"));
        assert_eq!(call["app_key"], json!(APP_KEY));
        let code = call["code"].as_str().unwrap();
        assert_eq!(code.len(), 6, "{code}");
        assert!(code.bytes().all(|b| b.is_ascii_digit()), "{code}");
        // The code never travels back in a response.
        assert!(!sent.text.contains(code), "{}", sent.text);
        assert_eq!(call.as_object().unwrap().len(), 6, "exactly the documented fields: {call}");

        assert_done(&app.doaction(user, "s3cret-pw", code, "1").await);
        assert_eq!(app.check_user(user).await.body["data"], json!({"isfind": true}));
        let (access, _) = app.login_as(user, "s3cret-pw").await;
        let (_, c) = app.check_token(&access).await;
        assert_eq!(c["data"]["username"], json!(user));

        let (status, v) = app.get_userinfo(user).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        let data = &v["data"];
        assert_eq!(data["account"], json!(user));
        assert_eq!(data["accountType"], json!(2));
        assert_eq!(data["app_key"], json!(APP_KEY));
        assert_eq!(data["userInfo"], json!({"nickname": user, "headurl": ""}));
        assert_eq!(data["regIp"], json!("127.0.0.1"));
        assert_eq!(data["bundle_id"], json!("com.example.app"));
        let reg_time = chrono::DateTime::parse_from_rfc3339(data["regTime"].as_str().unwrap())
            .unwrap_or_else(|e| panic!("regTime {}: {e}", data["regTime"]));
        let age = chrono::Utc::now().signed_duration_since(reg_time);
        assert!(age.num_seconds().abs() < 60, "regTime {reg_time}");

        // The code was used up: signing up a second name with it fails.
        let (status, v) = app.doaction(user, "s3cret-pw", code, "1").await;
        assert_fails(&(status, v), 409, 1012);
    }

    async fn phone_numbers_get_sms_or_voice_and_other_names_1016(app, hook) {
        assert_done(&app.get_verify("13800138000", "1", "1").await.pair());
        assert_done(&app.get_verify("+8613900139000", "1", "2").await.pair());
        let calls = hook.calls();
        assert_eq!(calls[0]["channel"], json!("sms"));
        assert_eq!(calls[1]["channel"], json!("voice"));
        assert_eq!(calls[1]["to"], json!("+8613900139000"));

        // smsflag absent signs as "0" (the original's integer default) and means SMS.
        let body = json!({
            "lg": "cn", "username": "13700137000", "flag": 1, "appid": APP_KEY,
            "signature": sign(&["cn", "13700137000", "1", "0", APP_KEY], APP_SECRET),
        });
        assert_done(&app.post("/api/v1/get_verify", &body).await);
        assert_eq!(hook.calls()[2]["channel"], json!("sms"));
        assert_eq!(hook.calls()[2]["lang"], json!("cn"));

        let code = hook.code_for("13800138000");
        assert_done(&app.doaction("13800138000", "pw", &code, "1").await);
        let (_, v) = app.get_userinfo("13800138000").await;
        assert_eq!(v["data"]["accountType"], json!(1));

        // Neither a mail address nor a phone number: nowhere to send a code.
        assert_fails(&app.get_verify("bob", "1", "1").await.pair(), 400, 1016);
        assert_fails(&app.get_verify("alice", "2", "2").await.pair(), 400, 1016);
        assert_fails(&app.get_verify("12345", "1", "1").await.pair(), 400, 1016);
        assert_eq!(hook.calls().len(), 3, "nothing sent for a 1016");
    }

    async fn get_verify_refuses_bad_requests_with_their_message_ids(app, hook) {
        let good = app.get_verify_body("x@example.com", "1", "1");
        for field in ["lg", "username", "flag", "appid", "signature"] {
            let mut missing = good.clone();
            missing.as_object_mut().unwrap().remove(field);
            assert_fails(&app.post("/api/v1/get_verify", &missing).await, 400, 1001);
            let mut empty = good.clone();
            empty[field] = json!("");
            assert_fails(&app.post("/api/v1/get_verify", &empty).await, 400, 1001);
        }
        assert_fails(&app.get_verify("x@example.com", "3", "1").await.pair(), 400, 1001);
        assert_fails(&app.get_verify("x@example.com", "1", "7").await.pair(), 400, 1001);

        let mut unknown = good.clone();
        unknown["appid"] = json!("no-such-app");
        assert_fails(&app.post("/api/v1/get_verify", &unknown).await, 401, 1002);

        let past = (chrono::Utc::now() - chrono::Duration::days(1)).naive_utc();
        app.create_client("oldapp", "old-secret", 60, false, Some(past)).await;
        let old = json!({
            "lg": "en", "username": "x@example.com", "flag": "1", "smsflag": "1", "appid": "oldapp",
            "signature": sign(&["en", "x@example.com", "1", "1", "oldapp"], "old-secret"),
        });
        assert_fails(&app.post("/api/v1/get_verify", &old).await, 403, 3);

        let mut forged = good.clone();
        forged["signature"] = json!(sign(&["en", "x@example.com", "2", "1", APP_KEY], APP_SECRET));
        assert_fails(&app.post("/api/v1/get_verify", &forged).await, 401, 1003);

        // Sign-up of an existing user, password change of a missing one.
        assert_fails(&app.get_verify("alice", "1", "1").await.pair(), 409, 1012);
        assert_fails(&app.get_verify("ghost@example.com", "2", "1").await.pair(), 401, 1004);
        assert!(hook.calls().is_empty(), "{:?}", hook.calls());

        // `token` is accepted as the signature's name too, in either hex case.
        let mut as_token = good.clone();
        let sig = as_token.as_object_mut().unwrap().remove("signature").unwrap();
        as_token["token"] = json!(sig.as_str().unwrap().to_ascii_uppercase());
        assert_done(&app.post("/oauth2/api/v1/get_verify", &as_token).await);
        assert_eq!(hook.calls().len(), 1);
    }

    async fn a_new_code_is_refused_for_60_seconds_with_1013(app, hook) {
        let user = "resend@example.com";
        assert_done(&app.get_verify(user, "1", "1").await.pair());
        let again = app.get_verify(user, "1", "1").await;
        assert_fails(&again.pair(), 429, 1013);
        let wait = again.retry_after();
        assert!((1..=60).contains(&wait), "Retry-After {wait}");
        // The lock is per name and network, whatever the purpose or the ASCII case.
        assert_fails(&app.get_verify("RESEND@example.com", "1", "1").await.pair(), 429, 1013);
        assert_eq!(hook.calls().len(), 1);
        // Another username is not locked.
        assert_done(&app.get_verify("other@example.com", "1", "1").await.pair());

        if app.backend.redis() {
            let lock = app.redis_ttl(&format!("l:resend:127.0.0.1|{user}")).await;
            assert!((55..=60).contains(&lock), "resend lock TTL {lock}");
            let code = app.redis_ttl(&format!("v:register:127.0.0.1|{user}")).await;
            assert!((595..=600).contains(&code), "code TTL {code}");
            // The key names the user and purpose, never the code.
            let sent = hook.code_for(user);
            let mut conn = app.redis().await;
            for key in redis_keys(&mut conn, &app.settings.redis_prefix).await {
                assert!(!key.contains(&sent), "{key}");
            }
        }
    }

    async fn a_failed_delivery_answers_502_and_takes_no_resend_lock(app, hook) {
        hook.answer(500);
        assert_fails(&app.get_verify("down@example.com", "1", "1").await.pair(), 502, 1014);
        assert_fails(&app.get_verify("13800138001", "1", "1").await.pair(), 502, 1015);
        assert_fails(&app.get_verify("13800138001", "1", "2").await.pair(), 502, 1015);
        // A redirect is not a delivery either.
        hook.answer(302);
        assert_fails(&app.get_verify("down@example.com", "1", "1").await.pair(), 502, 1014);
        // Nor is an answer after the timeout (800 ms in these tests).
        hook.answer(200);
        hook.delay(Duration::from_millis(1500));
        assert_fails(&app.get_verify("down@example.com", "1", "1").await.pair(), 502, 1014);
        hook.delay(Duration::ZERO);
        // The code of a failed delivery was never stored.
        let failed = hook.code_for("down@example.com");
        assert_fails(&app.doaction("down@example.com", "pw", &failed, "1").await, 400, 1017);

        // No resend lock was taken: it works at once when the provider is back.
        assert_done(&app.get_verify("down@example.com", "1", "1").await.pair());
        assert_done(&app.get_verify("13800138001", "1", "1").await.pair());
        let code = hook.code_for("down@example.com");
        assert_done(&app.doaction("down@example.com", "pw", &code, "1").await);
    }

    async fn doaction_refuses_bad_requests_with_their_message_ids(app, hook) {
        let good = app.doaction_body("d@example.com", "pw", "123456", "1");
        for field in ["username", "password", "flag", "bundleid", "appid", "signature"] {
            let mut missing = good.clone();
            missing.as_object_mut().unwrap().remove(field);
            assert_fails(&app.post("/api/v1/doaction", &missing).await, 400, 1001);
        }
        assert_fails(&app.doaction("d@example.com", "pw", "1", "3").await, 400, 1001);
        let mut unknown = good.clone();
        unknown["appid"] = json!("no-such-app");
        assert_fails(&app.post("/api/v1/doaction", &unknown).await, 401, 1002);
        let mut forged = good.clone();
        forged["password"] = json!("other");
        assert_fails(&app.post("/api/v1/doaction", &forged).await, 401, 1003);

        assert_fails(&app.doaction("alice", "pw", "123456", "1").await, 409, 1012);
        assert_fails(&app.doaction("ghost@example.com", "pw", "123456", "2").await, 404, 1018);
        // The client forces codes: none, or a wrong one, is 1017.
        assert_fails(&app.doaction("d@example.com", "pw", "", "1").await, 400, 1017);
        let mut no_verify = good.clone();
        no_verify.as_object_mut().unwrap().remove("verify");
        no_verify["signature"] = json!(sign(
            &["d@example.com", "pw", "", "1", "com.example.app", APP_KEY],
            APP_SECRET
        ));
        assert_fails(&app.post("/api/v1/doaction", &no_verify).await, 400, 1017);
        assert_done(&app.get_verify("d@example.com", "1", "1").await.pair());
        let code = hook.code_for("d@example.com");
        let wrong = if code == "000000" { "000001" } else { "000000" };
        assert_fails(&app.doaction("d@example.com", "pw", wrong, "1").await, 400, 1017);
        assert_eq!(app.check_user("d@example.com").await.body["data"]["isfind"], json!(false));
        // flag as a JSON number works like the string.
        let mut numeric = app.doaction_body("d@example.com", "pw", &code, "1");
        numeric["flag"] = json!(1);
        assert_done(&app.post("/api/v1/doaction", &numeric).await);
    }

    async fn a_code_is_void_after_five_wrong_guesses(app, hook) {
        let user = "guess@example.com";
        assert_done(&app.get_verify(user, "1", "1").await.pair());
        let code = hook.code_for(user);
        let wrong = if code == "999999" { "999998" } else { "999999" };
        for n in 1..=5 {
            if app.backend.redis() {
                let stored = app.redis_get(&format!("v:register:127.0.0.1|{user}")).await;
                assert_eq!(stored.as_deref(), Some(&code[..]), "before wrong guess {n}");
            }
            assert_fails(&app.doaction(user, "pw", wrong, "1").await, 400, 1017);
        }
        if app.backend.redis() {
            // The fifth wrong guess voided it.
            assert_eq!(app.redis_get(&format!("v:register:127.0.0.1|{user}")).await, None);
            assert_eq!(app.redis_get(&format!("n:code:register:127.0.0.1|{user}")).await.as_deref(), Some("5"));
            let attempts = app.redis_ttl(&format!("n:code:register:127.0.0.1|{user}")).await;
            assert!((590..=600).contains(&attempts), "attempts TTL {attempts}");
        }
        assert_fails(&app.doaction(user, "pw", &code, "1").await, 400, 1017);

        // Four wrong guesses leave the code usable.
        let user = "careful@example.com";
        assert_done(&app.get_verify(user, "1", "1").await.pair());
        let code = hook.code_for(user);
        let wrong = if code == "999999" { "999998" } else { "999999" };
        for _ in 0..4 {
            assert_fails(&app.doaction(user, "pw", wrong, "1").await, 400, 1017);
        }
        assert_done(&app.doaction(user, "pw", &code, "1").await);
    }

    async fn a_sign_up_code_cannot_change_a_password(app, hook) {
        let user = "purpose@example.com";
        assert_done(&app.get_verify(user, "1", "1").await.pair());
        let code = hook.code_for(user);
        app.create_user(user, "first-pw").await;
        assert_fails(&app.doaction(user, "second-pw", &code, "2").await, 400, 1017);
        app.login_as(user, "first-pw").await;
    }

    async fn a_password_change_revokes_every_live_token(app, hook) {
        let user = "change@example.com";
        app.create_user(user, "old-pw").await;
        let (a1, r1) = app.login_as(user, "old-pw").await;
        let (a2, r2) = app.login_as(user, "old-pw").await;
        assert_eq!(app.check_token(&a1).await.0, StatusCode::OK);

        let sent = app.get_verify(user, "2", "1").await;
        assert_done(&sent.pair());
        let call = hook.calls().pop().unwrap();
        assert_eq!(call["purpose"], json!("reset_password"));
        let code = hook.code_for(user);
        assert_done(&app.doaction(user, "new-pw", &code, "2").await);

        for access in [&a1, &a2] {
            assert_fails(&app.check_token(access).await, 401, 102);
        }
        for refresh in [&r1, &r2] {
            assert_fails(&app.refresh(refresh).await, 401, 102);
        }
        assert_fails(&app.authorize(user, "old-pw").await, 401, 1004);
        app.login_as(user, "new-pw").await;
        // The code was used up.
        assert_fails(&app.doaction(user, "newer-pw", &code, "2").await, 400, 1017);
    }

    async fn a_client_with_strict_verify_2_ignores_codes(app, hook) {
        app.create_loose_client("loose", "loose-secret").await;
        let verify = |user: &str, flag: &str| json!({
            "lg": "en", "username": user, "flag": flag, "smsflag": "1", "appid": "loose",
            "signature": sign(&["en", user, flag, "1", "loose"], "loose-secret"),
        });
        let action = |user: &str, pw: &str, code: &str, flag: &str| json!({
            "username": user, "password": pw, "verify": code, "flag": flag, "bundleid": "b",
            "appid": "loose",
            "signature": sign(&[user, pw, code, flag, "b", "loose"], "loose-secret"),
        });
        // Sign-up: get_verify succeeds without sending, even for a name no code could reach.
        assert_done(&app.post("/api/v1/get_verify", &verify("carol", "1")).await);
        assert_done(&app.post("/api/v1/get_verify", &verify("c@example.com", "1")).await);
        assert!(hook.calls().is_empty(), "{:?}", hook.calls());
        assert_done(&app.post("/api/v1/doaction", &action("carol", "pw", "", "1")).await);
        assert_done(&app.post("/api/v1/doaction", &action("c@example.com", "pw", "000000", "1")).await);
        let (_, v) = app.get_userinfo("carol").await;
        assert_eq!(v["data"]["accountType"], json!(3));
        assert_eq!(v["data"]["app_key"], json!("loose"));
        // The rules on users still hold.
        assert_fails(&app.post("/api/v1/doaction", &action("carol", "pw", "", "1")).await, 409, 1012);
        assert_fails(&app.post("/api/v1/doaction", &action("nobody", "pw", "", "2")).await, 404, 1018);
        // Password change without a code.
        let (access, _) = app.login_as("carol", "pw").await;
        assert_done(&app.post("/api/v1/doaction", &action("carol", "pw2", "", "2")).await);
        assert_fails(&app.check_token(&access).await, 401, 102);
        app.login_as("carol", "pw2").await;
    }

    async fn zh_texts_for_the_account_message_ids(app, hook) {
        let _ = hook;
        let answer = app
            .post_raw("/api/v1/get_verify", &app.get_verify_body("bob", "1", "1"), &[("accept-language", "zh-CN")])
            .await;
        assert_eq!(answer.body["error"], json!("手机号格式有问题"));
        let body = app.doaction_body("ghost@example.com", "pw", "1", "2");
        let answer = app.post_raw("/api/v1/doaction", &body, &[("accept-language", "zh")]).await;
        assert_eq!(answer.body["code"], json!(1018));
        assert_eq!(answer.body["error"], json!("用户不存在"));
    }
}

// A code dies with its TTL (1 s here instead of 600 s).
on_both_stores! {
    async fn a_code_expires_with_its_ttl(backend: Backend) {
        let (app, hook) = spawn_with_webhook(backend, |s| {
            s.rules.limits.code_ttl = 1;
            s.rules.limits.code_resend = 1;
        })
        .await;
        let user = "late@example.com";
        assert_done(&app.get_verify(user, "1", "1").await.pair());
        let code = hook.code_for(user);
        if backend.redis() {
            let ttl = app.redis_ttl(&format!("v:register:127.0.0.1|{user}")).await;
            assert!((0..=1).contains(&ttl), "code TTL {ttl}");
        }
        // Waiting out a 1 s lifetime is the behaviour under test, not a timing assertion.
        tokio::time::sleep(Duration::from_millis(2100)).await;
        assert_fails(&app.doaction(user, "pw", &code, "1").await, 400, 1017);
        // A new code works (the resend lock is over too).
        assert_done(&app.get_verify(user, "1", "1").await.pair());
        let fresh = hook.code_for(user);
        assert_done(&app.doaction(user, "pw", &fresh, "1").await);
        app.cleanup().await;
    }
}

/// With --code-webhook-secret every call carries a timestamp and an HMAC-SHA256 of
/// "timestamp.body" that the receiver can check; without it, no signature at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_calls_are_signed_when_a_secret_is_set() {
    use hmac::{Hmac, Mac};

    let (app, hook) = spawn_with_webhook(Backend::Embedded, |s| {
        if let tokencache::delivery::DeliverySettings::Webhook { secret, .. } = &mut s.delivery {
            *secret = Some(tokencache::secret::Secret::new(String::from("hook-secret")));
        }
    })
    .await;
    assert_done(&app.get_verify("signed@example.com", "1", "1").await.pair());
    let calls = hook.raw_calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let call = &calls[0];
    let timestamp = call.timestamp.as_deref().expect("a timestamp header");
    let sent: i64 = timestamp.parse().unwrap();
    let now = chrono::Utc::now().timestamp();
    assert!(
        (now - 60..=now).contains(&sent),
        "timestamp {sent}, now {now}"
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"hook-secret").unwrap();
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(&call.body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(call.signature.as_deref(), Some(expected.as_str()));
    // The body signed is the body sent (the JSON the receiver parses).
    let body: serde_json::Value = serde_json::from_slice(&call.body).unwrap();
    assert_eq!(body["to"], json!("signed@example.com"));
    app.cleanup().await;

    let (app, hook) = spawn_with_webhook(Backend::Embedded, |_| {}).await;
    assert_done(&app.get_verify("plain@example.com", "1", "1").await.pair());
    let calls = hook.raw_calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].signature, None);
    assert_eq!(calls[0].timestamp, None);
    app.cleanup().await;
}

/// With the log delivery (the default) get_verify succeeds and the code is not in the answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_delivery_answers_ok_without_the_code() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let answer = app.get_verify("log@example.com", "1", "1").await;
    assert_done(&answer.pair());
    // No six-digit run anywhere in the answer: the code is not in it.
    let digits = answer.text.as_bytes().windows(6);
    assert!(
        !digits.into_iter().any(|w| w.iter().all(u8::is_ascii_digit)),
        "{}",
        answer.text
    );
    app.cleanup().await;
}

#[test]
fn webhook_delivery_needs_a_url() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tokencache"))
        .args(["serve", "--code-delivery", "webhook"])
        .env_remove("TOKENCACHE_CODE_WEBHOOK")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--code-webhook"), "{err}");
}

#[test]
fn help_documents_the_account_settings() {
    let help = serve_help();
    for env in [
        "TOKENCACHE_CODE_DELIVERY",
        "TOKENCACHE_CODE_WEBHOOK",
        "TOKENCACHE_CODE_WEBHOOK_TIMEOUT_MS",
        "TOKENCACHE_CODE_WEBHOOK_SECRET",
        "TOKENCACHE_CODE_TTL",
        "TOKENCACHE_CODE_RESEND",
        "TOKENCACHE_CODE_ATTEMPTS",
        "TOKENCACHE_LOGIN_FAILURES",
        "TOKENCACHE_LOGIN_WINDOW",
        "TOKENCACHE_IP_WINDOW",
        "TOKENCACHE_IP_LIMIT_AUTHORIZE",
        "TOKENCACHE_IP_LIMIT_GET_VERIFY",
        "TOKENCACHE_IP_LIMIT_CHECK_USER",
        "TOKENCACHE_IP_LIMIT_DOACTION",
        "TOKENCACHE_IP_LIMIT_UNKNOWN_CLIENTS",
        "TOKENCACHE_IPV6_PREFIX",
        "TOKENCACHE_TRUSTED_PROXIES",
        "TOKENCACHE_CODE_GUESSES_PER_HOUR",
        "TOKENCACHE_CODE_SENDS_PER_HOUR",
        "TOKENCACHE_CODE_SENDS_NEW_PER_IP",
        "TOKENCACHE_CODE_SENDS_NEW_TOTAL",
    ] {
        assert!(help.contains(env), "{env} missing from serve --help");
    }
}
