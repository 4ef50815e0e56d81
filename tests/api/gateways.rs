//! Gateways and OAuth 2.0: forward-auth, introspection (RFC 7662), revocation (RFC 7009),
//! the token endpoint (RFC 6749), logout.
use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::*;
use crate::on_both_stores;

on_both_stores! {
    async fn forward_auth_answers_200_with_identity_headers_for_a_live_token(app) {
        let (access, _) = app.login().await;
        let r = app.forward_auth(Some(&access)).await;
        assert_eq!(r.status(), StatusCode::OK);
        // Envoy's ext_authz appends the original path: the same route.
        let below = app
            .http
            .get(format!("{}/api/v1/auth/orders/1?x=1", app.base))
            .header("authorization", format!("Bearer {access}"))
            .send()
            .await
            .unwrap();
        assert_eq!(below.status(), StatusCode::OK);
        assert_eq!(below.headers()["x-auth-username"], "alice");
        let h = r.headers();
        assert_eq!(h["x-auth-username"], "alice");
        assert_eq!(h["x-auth-app-key"], APP_KEY);
        assert_eq!(h["x-auth-token-type"], "web");
        let left: i64 = h["x-auth-expires-in"].to_str().unwrap().parse().unwrap();
        assert!((3590..=3600).contains(&left), "{left}");
        assert_eq!(h["cache-control"], "no-store");
        // HEAD works too, with the same headers.
        let r = app
            .http
            .head(format!("{}/api/v1/auth", app.base))
            .header("authorization", format!("Bearer {access}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["x-auth-username"], "alice");
    }

    async fn forward_auth_refuses_a_check_that_carries_an_identity_header_of_its_own(app) {
        let (access, _) = app.login().await;
        for name in ["X-Auth-Username", "X_Auth_Username", "x_auth_app_key", "X-AUTH-EXPIRES-IN"] {
            let r = app
                .http
                .get(format!("{}/api/v1/auth", app.base))
                .header("authorization", format!("Bearer {access}"))
                .header(name, "mallory")
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::FORBIDDEN, "{name}");
            assert!(r.headers().get("x-auth-username").is_none());
            assert_eq!(r.headers()["cache-control"], "no-store");
            let text = r.text().await.unwrap();
            assert!(text.contains(&name.to_ascii_lowercase()), "{text}");
        }
        // A header that merely starts alike is none of them.
        let r = app
            .http
            .get(format!("{}/api/v1/auth", app.base))
            .header("authorization", format!("Bearer {access}"))
            .header("x-auth-user", "x")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }

    async fn forward_auth_answers_401_for_a_missing_or_dead_token(app) {
        for token in [None, Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")] {
            let r = app.forward_auth(token).await;
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
            assert_eq!(r.headers()["www-authenticate"], "Bearer error=\"invalid_token\"");
            assert!(r.headers().get("x-auth-username").is_none());
        }
        let r = app
            .http
            .get(format!("{}/api/v1/auth", app.base))
            .header("authorization", "Basic YTpi")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }

    async fn introspection_describes_live_tokens_to_an_authenticated_client(app) {
        let (access, refresh) = app.login().await;
        let (status, headers, v) = app.oauth("/oauth2/introspect", &[("token", &access)], APP_SECRET).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        assert_eq!(headers["cache-control"], "no-store");
        assert_eq!(v["active"], json!(true));
        assert_eq!(v["username"], json!("alice"));
        assert_eq!(v["client_id"], json!(APP_KEY));
        assert_eq!(v["token_type"], json!("Bearer"));
        let (exp, iat) = (v["exp"].as_i64().unwrap(), v["iat"].as_i64().unwrap());
        assert_eq!(exp - iat, 3600);
        assert!((exp - now_s() - 3600).abs() <= 5);

        let (_, _, v) = app
            .oauth("/oauth2/introspect", &[("token", &refresh), ("token_type_hint", "refresh_token")], APP_SECRET)
            .await;
        assert_eq!(v["active"], json!(true), "{v}");
        assert_eq!(v["token_type"], json!("refresh_token"));
        assert_eq!(v["exp"].as_i64().unwrap() - v["iat"].as_i64().unwrap(), 7200);

        // Client credentials in the form work too.
        let r = app
            .http
            .post(format!("{}/oauth2/introspect", app.base))
            .form(&[("token", access.as_str()), ("client_id", APP_KEY), ("client_secret", APP_SECRET)])
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["active"], json!(true));

        // Unknown and used tokens are just inactive.
        let (status, _, v) = app.oauth("/oauth2/introspect", &[("token", "nope")], APP_SECRET).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v, json!({"active": false}));
        assert_eq!(app.refresh(&refresh).await.0, StatusCode::OK);
        let (_, _, v) = app.oauth("/oauth2/introspect", &[("token", &refresh)], APP_SECRET).await;
        assert_eq!(v, json!({"active": false}));
    }

    async fn oauth_endpoints_refuse_a_bad_client_with_401_invalid_client(app) {
        let (access, _) = app.login().await;
        for path in ["/oauth2/introspect", "/oauth2/revoke", "/oauth2/token"] {
            let (status, headers, v) = app.oauth(path, &[("token", &access), ("grant_type", "client_credentials")], "wrong").await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
            assert_eq!(v["error"], json!("invalid_client"), "{path}");
            assert_eq!(headers["www-authenticate"], "Basic realm=\"tokencache\"");
            // Without any credentials: 401 too, no Basic challenge.
            let r = app.http.post(format!("{}{path}", app.base)).form(&[("token", "x")]).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
            assert!(r.headers().get("www-authenticate").is_none());
        }
        // The token was not revoked by the refused call.
        assert_eq!(app.check_token(&access).await.0, StatusCode::OK);
    }

    async fn revocation_kills_the_pair_of_the_owning_client_only(app) {
        // A refresh token revoked: its access token dies with it.
        let (access, refresh) = app.login().await;
        let (status, _, _) = app.oauth("/oauth2/revoke", &[("token", &refresh)], APP_SECRET).await;
        assert_eq!(status, StatusCode::OK);
        assert_fails(&app.check_token(&access).await, 401, 102);
        assert_fails(&app.refresh(&refresh).await, 401, 102);

        // An access token revoked: its refresh token dies with it.
        let (access, refresh) = app.login().await;
        let (status, _, _) = app.oauth("/oauth2/revoke", &[("token", &access), ("token_type_hint", "access_token")], APP_SECRET).await;
        assert_eq!(status, StatusCode::OK);
        assert_fails(&app.check_token(&access).await, 401, 102);
        assert_fails(&app.refresh(&refresh).await, 401, 102);

        // Unknown tokens: 200 all the same.
        let (status, _, _) = app.oauth("/oauth2/revoke", &[("token", "nope")], APP_SECRET).await;
        assert_eq!(status, StatusCode::OK);

        // Another client cannot revoke this client's tokens.
        app.create_client("other", "other-secret", 60, false, None).await;
        let (access, _) = app.login().await;
        let basic = base64::engine::general_purpose::STANDARD.encode("other:other-secret");
        let r = app
            .http
            .post(format!("{}/oauth2/revoke", app.base))
            .header("authorization", format!("Basic {basic}"))
            .form(&[("token", access.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(app.check_token(&access).await.0, StatusCode::OK);
    }

    async fn the_token_endpoint_grants_password_refresh_and_client_credentials(app) {
        let (status, headers, v) = app
            .oauth("/oauth2/token", &[("grant_type", "password"), ("username", "alice"), ("password", PASSWORD)], APP_SECRET)
            .await;
        assert_eq!(status, StatusCode::OK, "{v}");
        assert_eq!(headers["cache-control"], "no-store");
        assert_eq!(v["token_type"], json!("Bearer"));
        assert_eq!(v["expires_in"], json!(3600));
        let access = v["access_token"].as_str().unwrap().to_owned();
        let refresh = v["refresh_token"].as_str().unwrap().to_owned();
        let (status, c) = app.check_token(&access).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(c["data"]["username"], json!("alice"));

        let (status, _, v) = app
            .oauth("/oauth2/token", &[("grant_type", "refresh_token"), ("refresh_token", &refresh)], APP_SECRET)
            .await;
        assert_eq!(status, StatusCode::OK, "{v}");
        assert_ne!(v["refresh_token"], json!(refresh));
        let (status, _, v) = app
            .oauth("/oauth2/token", &[("grant_type", "refresh_token"), ("refresh_token", &refresh)], APP_SECRET)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(v["error"], json!("invalid_grant"));

        let (status, _, v) = app.oauth("/oauth2/token", &[("grant_type", "client_credentials")], APP_SECRET).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        assert!(v.get("refresh_token").is_none(), "{v}");
        let machine = v["access_token"].as_str().unwrap().to_owned();
        let (_, c) = app.check_token(&machine).await;
        assert_eq!(c["data"]["username"], json!(format!("client:{APP_KEY}")));
        // A token without a refresh token is revocable too.
        let (status, _, _) = app.oauth("/oauth2/revoke", &[("token", &machine)], APP_SECRET).await;
        assert_eq!(status, StatusCode::OK);
        assert_fails(&app.check_token(&machine).await, 401, 102);

        let (status, _, v) = app
            .oauth("/oauth2/token", &[("grant_type", "password"), ("username", "alice"), ("password", "wrong")], APP_SECRET)
            .await;
        assert_eq!((status, v["error"].clone()), (StatusCode::BAD_REQUEST, json!("invalid_grant")));
        let (status, _, v) = app.oauth("/oauth2/token", &[("grant_type", "password"), ("username", "alice")], APP_SECRET).await;
        assert_eq!((status, v["error"].clone()), (StatusCode::BAD_REQUEST, json!("invalid_request")));
        let (status, _, v) = app.oauth("/oauth2/token", &[("grant_type", "authorization_code"), ("code", "x")], APP_SECRET).await;
        assert_eq!((status, v["error"].clone()), (StatusCode::BAD_REQUEST, json!("unsupported_grant_type")));
        let (status, _, v) = app.oauth("/oauth2/token", &[], APP_SECRET).await;
        assert_eq!((status, v["error"].clone()), (StatusCode::BAD_REQUEST, json!("invalid_request")));
        // Refused before the handler: still OAuth's error format.
        let r = app.http.get(format!("{}/oauth2/token", app.base)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(r.headers()["allow"], "POST");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v, json!({"error": "invalid_request"}));
        let big = "x".repeat(20 * 1024);
        let (status, _, v) = app.oauth("/oauth2/token", &[("grant_type", &big)], APP_SECRET).await;
        assert_eq!((status, v), (StatusCode::PAYLOAD_TOO_LARGE, json!({"error": "invalid_request"})));
    }

    async fn the_password_grant_shares_the_login_lockout(app) {
        let grant = |password: &'static str| {
            let app = &app;
            async move {
                app.oauth("/oauth2/token", &[("grant_type", "password"), ("username", "alice"), ("password", password)], APP_SECRET)
                    .await
            }
        };
        for _ in 0..5 {
            let (status, _, v) = grant("wrong").await;
            assert_eq!((status, v["error"].clone()), (StatusCode::BAD_REQUEST, json!("invalid_grant")));
        }
        // Locked out, even with the right password; authorize says the same.
        let (status, headers, v) = grant(PASSWORD).await;
        assert_eq!((status, v), (StatusCode::TOO_MANY_REQUESTS, json!({"error": "access_denied"})));
        let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=900).contains(&retry), "{retry}");
        let body = app.authorize_body("alice", PASSWORD, &now_ms().to_string());
        assert_fails(&app.post("/api/v1/authorize", &body).await, 429, 405);
    }

    async fn logout_revokes_the_pair_or_every_token_of_the_user(app) {
        let (a1, r1) = app.login().await;
        let (a2, r2) = app.login().await;
        let (status, v) = app.post("/api/v1/logout", &json!({"token": a1})).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        assert_eq!(v["data"]["revoked"], json!(2));
        assert_fails(&app.check_token(&a1).await, 401, 102);
        assert_fails(&app.refresh(&r1).await, 401, 102);
        assert_eq!(app.check_token(&a2).await.0, StatusCode::OK);

        let (a3, _) = app.login().await;
        let (status, _) = app.post("/api/v1/logout", &json!({"token": a3, "all": true})).await;
        assert_eq!(status, StatusCode::OK);
        assert_fails(&app.check_token(&a2).await, 401, 102);
        assert_fails(&app.check_token(&a3).await, 401, 102);
        assert_fails(&app.refresh(&r2).await, 401, 102);

        assert_fails(&app.post("/api/v1/logout", &json!({"token": a1})).await, 401, 102);
        assert_fails(&app.post("/api/v1/logout", &json!({})).await, 400, 1001);
        assert_fails(&app.post("/oauth2/api/v1/logout", &json!({"token": "x", "all": "maybe"})).await, 400, 1001);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_auth_lets_gateways_cache_but_never_past_the_token_expiry() {
    let app = TestApp::spawn_with(Backend::Embedded, |s| s.http.forward_auth_cache_secs = 60).await;
    let (access, _) = app.login().await;
    let r = app.forward_auth(Some(&access)).await;
    assert_eq!(r.headers()["cache-control"], "max-age=60");
    assert_eq!(r.headers()["vary"], "Authorization");
    app.create_client("brief", "brief-secret", 20, false, None)
        .await;
    let t = now_ms().to_string();
    let body = json!({
        "appid": "brief", "username": "alice", "password": PASSWORD, "time": t,
        "token": sign(&["brief", "alice", PASSWORD, &t], "brief-secret"),
    });
    let (_, v) = app.post("/api/v1/authorize", &body).await;
    let r = app.forward_auth(v["data"]["access_token"].as_str()).await;
    let cc = r.headers()["cache-control"].to_str().unwrap().to_owned();
    let max_age: i64 = cc.strip_prefix("max-age=").unwrap().parse().unwrap();
    assert!((1..=20).contains(&max_age), "{cc}");
    // A refusal is never cacheable.
    assert_eq!(
        app.forward_auth(Some("nope")).await.headers()["cache-control"],
        "no-store"
    );
    app.cleanup().await;
}

/// The oauth2 crate, as an application would use it, against /oauth2/*.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and Redis: cargo test -- --include-ignored"]
async fn an_off_the_shelf_oauth2_client_library_works_against_the_server() {
    use oauth2::basic::BasicClient;
    use oauth2::{
        ClientId, ClientSecret, IntrospectionUrl, ResourceOwnerPassword, ResourceOwnerUsername,
        RevocationUrl, StandardRevocableToken, TokenIntrospectionResponse, TokenResponse, TokenUrl,
    };
    let app = TestApp::spawn(Backend::Real).await;
    let client = BasicClient::new(ClientId::new(APP_KEY.into()))
        .set_client_secret(ClientSecret::new(APP_SECRET.into()))
        .set_token_uri(TokenUrl::new(format!("{}/oauth2/token", app.base)).unwrap())
        .set_introspection_url(
            IntrospectionUrl::new(format!("{}/oauth2/introspect", app.base)).unwrap(),
        )
        .set_revocation_url(RevocationUrl::new(format!("{}/oauth2/revoke", app.base)).unwrap());
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    let token = client
        .exchange_password(
            &ResourceOwnerUsername::new("alice".into()),
            &ResourceOwnerPassword::new(PASSWORD.into()),
        )
        .request_async(&http)
        .await
        .expect("password grant");
    assert_eq!(
        token.expires_in(),
        Some(std::time::Duration::from_secs(3600))
    );
    let refresh = token.refresh_token().expect("a refresh token").clone();

    let refreshed = client
        .exchange_refresh_token(&refresh)
        .request_async(&http)
        .await
        .expect("refresh grant");
    let access = refreshed.access_token().clone();

    let about = client
        .introspect(&access)
        .request_async(&http)
        .await
        .expect("introspection");
    assert!(about.active());
    assert_eq!(about.username(), Some("alice"));
    assert_eq!(about.client_id().map(|c| c.as_str()), Some(APP_KEY));

    // The crate refuses to revoke over plain http (RFC 7009 asks for TLS), so the
    // revocation goes the way the crate would send it: Basic auth and a form.
    assert!(client
        .revoke_token(StandardRevocableToken::AccessToken(access.clone()))
        .is_err());
    let (status, _, _) = app
        .oauth("/oauth2/revoke", &[("token", access.secret())], APP_SECRET)
        .await;
    assert_eq!(status, StatusCode::OK);
    let about = client
        .introspect(&access)
        .request_async(&http)
        .await
        .unwrap();
    assert!(!about.active());

    let machine = client
        .exchange_client_credentials()
        .request_async(&http)
        .await
        .expect("client credentials grant");
    assert!(machine.refresh_token().is_none());
    app.cleanup().await;
}

/// A client cannot use (or burn) another client's refresh token at the token endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_endpoint_refuses_another_clients_refresh_token_without_using_it() {
    let app = TestApp::spawn(Backend::Embedded).await;
    app.create_client("other", "other-secret", 60, false, None)
        .await;
    let (_, refresh) = app.login().await;
    let basic = base64::engine::general_purpose::STANDARD.encode("other:other-secret");
    let r = app
        .http
        .post(format!("{}/oauth2/token", app.base))
        .header("authorization", format!("Basic {basic}"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], json!("invalid_grant"));
    // The owner can still use it: it was neither used nor marked as replayed.
    let (status, v) = app.refresh(&refresh).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    app.cleanup().await;
}

/// A stored value the server cannot read is its own fault, the same in every dialect:
/// 500 / code 101 for check_token, 500 for forward-auth (never a deny a gateway would
/// turn into a login page).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and Redis: cargo test -- --include-ignored"]
async fn a_stored_value_the_server_cannot_read_is_a_500_in_every_dialect() {
    let app = TestApp::spawn(Backend::Real).await;
    let token = "CorruptValueToken000000000000000";
    let key = format!(
        "{}a:{}",
        app.settings.redis_prefix,
        tokencache::store::TokenHash::of(token).encode()
    );
    let mut conn = redis_conn().await.unwrap();
    redis::cmd("SET")
        .arg(&key)
        .arg("not a record")
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    assert_fails(&app.check_token(token).await, 500, 101);
    let r = app.forward_auth(Some(token)).await;
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(r.headers().get("www-authenticate").is_none());
}

/// `--allow-identity-headers`: the operator takes the stripping on, and the check answers
/// as ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_identity_headers_turns_the_refusal_off() {
    let app = TestApp::spawn_with(Backend::Embedded, |s| {
        s.http.refuse_identity_headers = false
    })
    .await;
    let (access, _) = app.login().await;
    let r = app
        .http
        .get(format!("{}/api/v1/auth", app.base))
        .header("authorization", format!("Bearer {access}"))
        .header("X_Auth_Username", "mallory")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-auth-username"], "alice");
    app.cleanup().await;
}
