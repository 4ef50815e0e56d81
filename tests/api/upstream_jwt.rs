//! Phantom tokens (`--upstream-jwt`): forward-auth answers a live token with a signed
//! JWT for the upstream, never a dead one; the JWKS publishes the keys (never a private
//! part); a rotation is published before it signs and in use within the reload bound;
//! RFC 9701 introspection answers. The real verifiers (PyJWT, jose) are in
//! tests/phantom.rs.
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokencache::store::KeyRecords;
use tokencache::upstream::UpstreamSettings;

use crate::common::*;
use crate::on_both_stores;

fn upstream(reload: Duration) -> UpstreamSettings {
    UpstreamSettings {
        issuer: "https://auth.test".into(),
        audience: Some("orders".into()),
        ttl_secs: 120,
        jwks_max_age_secs: 60,
        reload,
        cache_entries: 1000,
    }
}

/// The header and claims of a JWT (not verified: tests/phantom.rs verifies).
fn decoded(jwt: &str) -> (Value, Value) {
    let mut parts = jwt.split('.');
    let mut next = || -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap()).unwrap()
    };
    (next(), next())
}

/// The JWT forward-auth handed out for `token`, if any, and the status.
async fn jwt_of(app: &TestApp, token: &str) -> (StatusCode, Option<String>) {
    let r = app.forward_auth(Some(token)).await;
    let jwt = r.headers().get("authorization").map(|v| {
        v.to_str()
            .unwrap()
            .strip_prefix("Bearer ")
            .unwrap()
            .to_owned()
    });
    (r.status(), jwt)
}

async fn jwks(app: &TestApp) -> (reqwest::header::HeaderMap, Value) {
    let r = app
        .http
        .get(format!("{}/.well-known/jwks.json", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    (r.headers().clone(), r.json().await.unwrap())
}

fn kids(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

on_both_stores! {
    async fn forward_auth_hands_a_live_token_s_identity_to_the_upstream_as_a_jwt(backend: Backend) {
        let app = TestApp::spawn_with(backend, |s| {
            s.upstream = Some(upstream(Duration::from_secs(10)))
        })
        .await;
        let (access, _) = app.login().await;
        let (status, jwt) = jwt_of(&app, &access).await;
        assert_eq!(status, StatusCode::OK);
        let jwt = jwt.expect("a JWT in Authorization");
        let (header, claims) = decoded(&jwt);
        assert_eq!(header["alg"], "ES256");
        assert_eq!(claims["sub"], "alice");
        assert_eq!(claims["client_id"], APP_KEY);
        assert_eq!(claims["iss"], "https://auth.test");
        assert_eq!(claims["aud"], "orders");
        assert_eq!(claims["token_type"], "web");
        let (iat, exp) = (claims["iat"].as_i64().unwrap(), claims["exp"].as_i64().unwrap());
        assert_eq!(exp - iat, 120);
        assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 16));
        // Its key is published, with no private part, cached as configured.
        let (headers, keys) = jwks(&app).await;
        assert_eq!(kids(&keys), [header["kid"].as_str().unwrap()]);
        for key in keys["keys"].as_array().unwrap() {
            assert_eq!(key["kty"], "EC");
            assert_eq!(key["crv"], "P-256");
            assert!(key.get("d").is_none(), "{key}");
        }
        assert_eq!(headers["cache-control"], "public, max-age=60");
        assert_eq!(headers["content-type"], "application/jwk-set+json");
        // Reused while it has time left: one signature for many checks.
        let (_, again) = jwt_of(&app, &access).await;
        assert_eq!(again.as_deref(), Some(jwt.as_str()));
        // Dead tokens get none, ever: the cached JWT of a revoked token included.
        let (status, v) = app.post("/api/v1/logout", &json!({ "token": access })).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        assert_eq!(jwt_of(&app, &access).await, (StatusCode::UNAUTHORIZED, None));
        assert_eq!(jwt_of(&app, "no-such-token").await, (StatusCode::UNAUTHORIZED, None));
        app.cleanup().await;
    }

    async fn without_upstream_jwt_there_is_no_jwt_and_no_jwks(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let (access, _) = app.login().await;
        assert_eq!(jwt_of(&app, &access).await, (StatusCode::OK, None));
        let r = app
            .http
            .get(format!("{}/.well-known/jwks.json", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        app.cleanup().await;
    }
}

/// A revoked token gets no JWT from a second instance either, which had minted and kept
/// one for it: the cache saves the signature, never the check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and Redis: cargo test -- --include-ignored"]
async fn a_token_revoked_on_one_instance_gets_no_jwt_from_another() {
    let a = TestApp::spawn_with(Backend::Real, |s| {
        s.upstream = Some(upstream(Duration::from_secs(10)))
    })
    .await;
    let b = TestApp::start(Backend::Real, a.settings.clone(), None, None).await;
    let (access, _) = a.login().await;
    let (status, from_b) = jwt_of(&b, &access).await;
    assert_eq!(status, StatusCode::OK);
    let (_, from_a) = jwt_of(&a, &access).await;
    // One key for the fleet: both sign with it.
    assert_eq!(
        decoded(&from_a.unwrap()).0["kid"],
        decoded(&from_b.unwrap()).0["kid"]
    );
    let (status, v) = a.post("/api/v1/logout", &json!({ "token": access })).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(jwt_of(&b, &access).await, (StatusCode::UNAUTHORIZED, None));
    b.cleanup().await;
    a.cleanup().await;
}

/// `keys rotate`: the new key is in the JWKS at once and signs only after its lead; the
/// old one stays published; every instance switches within the reload bound (1 s here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_is_published_before_it_signs_and_in_use_within_the_reload_bound() {
    let app = TestApp::spawn_with(Backend::Embedded, |s| {
        s.upstream = Some(upstream(Duration::from_secs(1)))
    })
    .await;
    let (access, _) = app.login().await;
    let (_, first) = jwt_of(&app, &access).await;
    let old = decoded(&first.unwrap()).0["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    let records = &app.state.engine.records;
    let (next, _) = tokencache::app::rotate_keys(records, 4).await.unwrap();
    let rotated = Instant::now();
    // Published within the reload bound, not yet signing.
    let deadline = rotated + Duration::from_millis(2500);
    loop {
        if kids(&jwks(&app).await.1).contains(&next.kid) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new key not published in time"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(rotated.elapsed() < Duration::from_secs(3));
    let (_, during) = jwt_of(&app, &access).await;
    assert_eq!(
        decoded(&during.unwrap()).0["kid"],
        old.as_str(),
        "signed before its lead"
    );
    // Signing from its lead on (4 s), within one reload (1 s) and a second of clock
    // granularity.
    let deadline = rotated + Duration::from_secs(4 + 1 + 2);
    loop {
        let (_, now) = jwt_of(&app, &access).await;
        if decoded(&now.unwrap()).0["kid"] == next.kid.as_str() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new key does not sign in time"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        rotated.elapsed() >= Duration::from_secs(3),
        "signed before its lead"
    );
    // The old key stays published (JWTs it signed are still live).
    assert_eq!(kids(&jwks(&app).await.1), [old.clone(), next.kid.clone()]);
    // And no private key anywhere an operator reads.
    let stored = records.signing_keys().await.unwrap();
    let metrics = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let jwks_text = jwks(&app).await.1.to_string();
    for key in &stored {
        let secret = key.private_key.expose();
        assert!(!metrics.contains(secret) && !jwks_text.contains(secret));
        assert!(!format!("{key:?}").contains(secret));
    }
    assert!(metrics.contains("tokencache_upstream_jwts_minted_total"));
    app.cleanup().await;
}

/// RFC 9701: introspection asked for `application/token-introspection+jwt` answers a JWT
/// for the asking client; an inactive token's holds `active: false` and no identity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_answers_a_signed_jwt_when_asked() {
    let app = TestApp::spawn_with(Backend::Embedded, |s| {
        s.upstream = Some(upstream(Duration::from_secs(10)))
    })
    .await;
    let (access, _) = app.login().await;
    let ask = |token: String| {
        let app = &app;
        async move {
            let r = app
                .http
                .post(format!("{}/oauth2/introspect", app.base))
                .basic_auth(APP_KEY, Some(APP_SECRET))
                .header("accept", "application/token-introspection+jwt")
                .form(&[("token", token.as_str())])
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            assert_eq!(
                r.headers()["content-type"],
                "application/token-introspection+jwt"
            );
            decoded(&r.text().await.unwrap())
        }
    };
    let (header, claims) = ask(access.clone()).await;
    assert_eq!(header["typ"], "token-introspection+jwt");
    assert_eq!(claims["aud"], APP_KEY);
    assert_eq!(claims["iss"], "https://auth.test");
    assert_eq!(claims["token_introspection"]["active"], true);
    assert_eq!(claims["token_introspection"]["sub"], "alice");
    let (_, claims) = ask("no-such-token".into()).await;
    assert_eq!(claims["token_introspection"], json!({ "active": false }));
    // Plain JSON without the Accept header, as before.
    let (status, _, v) = app
        .oauth(
            "/oauth2/introspect",
            &[("token", access.as_str())],
            APP_SECRET,
        )
        .await;
    assert_eq!((status, &v["active"]), (StatusCode::OK, &json!(true)));
    app.cleanup().await;
}

/// Two rotations in one second (or one with no lead in the second the current key began
/// signing): each new key begins after the one before, so the newest always takes over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotated_within_one_second_each_take_over() {
    let app = TestApp::spawn_with(Backend::Embedded, |s| {
        s.upstream = Some(upstream(Duration::from_secs(1)))
    })
    .await;
    let records = &app.state.engine.records;
    let mut last = None;
    for _ in 0..3 {
        let (key, _) = tokencache::app::rotate_keys(records, 0).await.unwrap();
        if let Some(before) = last {
            assert!(key.signs_from > before, "{} after {before}", key.signs_from);
        }
        last = Some(key.signs_from);
    }
    let stored = records.signing_keys().await.unwrap();
    let newest = stored.iter().max_by_key(|k| k.signs_from).unwrap();
    let at = tokencache::upstream::KeySet::at(&stored, newest.signs_from).0;
    assert_eq!(at.signer(), Some(newest.kid.as_str()));
    app.cleanup().await;
}

/// `tokencache keys rotate` and `keys list`, the commands an operator runs, against a
/// running server's database: the new key signs within the reload bound, `list` names
/// each key's state, and neither prints a private key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_from_the_command_line_is_in_use_within_the_reload_bound() {
    let app = TestApp::spawn_with(Backend::Embedded, |s| {
        s.upstream = Some(upstream(Duration::from_secs(1)))
    })
    .await;
    let url = app.settings.database_url.clone().unwrap();
    let (access, _) = app.login().await;
    let (_, first) = jwt_of(&app, &access).await;
    let old = decoded(&first.unwrap()).0["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    let rotated = succeeded(&tokencache_cli(
        &url,
        None,
        &["keys", "rotate", "--lead-secs", "0"],
    ));
    let stored = app.state.engine.records.signing_keys().await.unwrap();
    let new = stored.iter().find(|k| k.kid != old).expect("a second key");
    assert!(rotated.contains(&new.kid), "{rotated}");
    let deadline = Instant::now() + Duration::from_secs(4);
    loop {
        let (_, jwt) = jwt_of(&app, &access).await;
        if decoded(&jwt.unwrap()).0["kid"] == new.kid.as_str() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the rotated key does not sign in time"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let listed = succeeded(&tokencache_cli(&url, None, &["keys", "list"]));
    let state = |kid: &str| {
        listed
            .lines()
            .find(|l| l.starts_with(kid))
            .and_then(|l| l.rsplit('\t').next())
            .map(str::to_owned)
    };
    assert_eq!(state(&new.kid).as_deref(), Some("signing"), "{listed}");
    assert_eq!(
        state(&old).as_deref(),
        Some("retired, published"),
        "{listed}"
    );
    for key in &stored {
        let secret = key.private_key.expose();
        assert!(!rotated.contains(secret) && !listed.contains(secret));
    }
    app.cleanup().await;
}
