//! The gateway scenarios, written once for every `Front`. `on_every_front!` (macros.rs)
//! runs each one as a test through a gateway, `<scenario>::through_<gateway>`: a new
//! scenario is a function here and its name in that macro.
use bytes::Bytes;
use http_body_util::Full;

use super::super::{free_port, Backend, OwnRedis, APP_KEY};
use super::*;

/// An access token tokencache never issued.
const UNKNOWN: &str = "0123456789abcdefghijABCDEFGHIJ01";

/// Asserts the application got the identity of `access` (alice, the test client,
/// `token_type`, the time it has left) and the client's `Authorization`, each once.
fn assert_identity(seen: &Received, access: &str, token_type: &[&str]) {
    assert_eq!(seen.all("x-auth-username"), ["alice"]);
    assert_eq!(seen.all("x-auth-app-key"), [APP_KEY]);
    assert_eq!(seen.all("x-auth-token-type"), token_type);
    let expires_in = seen.all("x-auth-expires-in");
    assert_eq!(expires_in.len(), 1, "{expires_in:?}");
    let expires_in: i64 = expires_in[0].parse().unwrap();
    assert!((1..=3600).contains(&expires_in), "{expires_in}");
    let bearer = format!("Bearer {access}");
    assert_eq!(seen.all("authorization"), [bearer.as_str()]);
}

/// docs/gateways.md shows each file the gateway runs exactly as it is, and its `sed`
/// commands fill exactly the placeholders the file has.
pub fn the_gateway_doc_shows_whole_the_files_run<F: Front>() {
    let doc = gateways_doc();
    for file in F::FILES {
        assert!(
            doc.contains(&format!("```{}\n{}```\n", file.block, file.text)),
            "docs/gateways.md must show {} exactly as it is, in a {} code block: copy the \
             file into it",
            file.path,
            file.block
        );
        assert_eq!(
            distinct_placeholders(file.text),
            file.placeholders,
            "{}",
            file.path
        );
        for placeholder in file.placeholders {
            assert!(
                doc_fills(&doc, placeholder),
                "the doc's sed command fills {placeholder} of {}",
                file.path
            );
        }
    }
}

/// A live token passes with its identity, and so does the whole request: method, path
/// and query, and the body (which the check goes without).
pub async fn a_live_token_passes_with_its_identity_and_its_whole_request<F: Front>() {
    let scene = Scene::<F>::start(TestApp::spawn(Backend::Real).await).await;
    let (access, _) = scene.app.login().await;

    let response = scene
        .get("/orders/42?page=1")
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    scene.front.assert_status(&response, StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "user=alice");
    let seen = scene.upstream.last();
    assert_eq!(seen.method, "GET");
    assert_eq!(seen.path, "/orders/42?page=1");
    assert_identity(&seen, &access, &["web"]);

    let response = scene
        .http
        .post(scene.front.url("/orders"))
        .bearer_auth(&access)
        .body(vec![b'x'; 64 * 1024])
        .send()
        .await
        .unwrap();
    scene.front.assert_status(&response, StatusCode::OK);
    let seen = scene.upstream.last();
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.body_len, 64 * 1024);
    assert_identity(&seen, &access, &["web"]);
    assert_eq!(scene.upstream.requests(), 2);
    scene.stop().await;
}

/// The identity headers a client may forge, in the spellings an application's framework
/// reads as tokencache's: as they are, with `_` for `-`, in another case.
pub const FORGED: [(&str, &str); 4] = [
    ("X-Auth-Username", "mallory"),
    ("X_Auth_Username", "mallory"),
    ("x_auth_app_key", "forged"),
    ("X-Auth-Token-Type", "admin"),
];

/// Whether a header name reads as one of the identity headers (any case, `_` for `-`).
fn reads_as_identity(name: &str) -> bool {
    let normal = name.to_ascii_lowercase().replace('_', "-");
    [
        "x-auth-username",
        "x-auth-app-key",
        "x-auth-token-type",
        "x-auth-expires-in",
    ]
    .contains(&normal.as_str())
}

/// A client's own identity header, in any spelling, never reaches the application: the
/// gateway deletes it (and the request passes with tokencache's identity), or tokencache
/// sees it in the check and refuses the request (403), as `F::FORGED_REFUSED` says.
pub async fn a_forged_identity_header_never_reaches_the_application<F: Front>() {
    let scene = Scene::<F>::start(TestApp::spawn(Backend::Real).await).await;
    let (access, _) = scene.app.login().await;
    let mut passed = scene.pass(&access).await;
    for (name, value) in FORGED {
        let response = scene
            .get("/orders/42")
            .bearer_auth(&access)
            .header(name, value)
            .send()
            .await
            .unwrap();
        if F::FORGED_REFUSED.contains(&name) {
            scene.front.assert_status(&response, StatusCode::FORBIDDEN);
            scene.assert_nothing_more_reached(passed);
            continue;
        }
        scene.front.assert_status(&response, StatusCode::OK);
        assert_eq!(response.text().await.unwrap(), "user=alice", "{name}");
        passed += 1;
        let seen = scene.upstream.last();
        assert_identity(&seen, &access, &["web"]);
        // Nothing else that reads as an identity header: the forged one is gone.
        for header in seen.headers.keys() {
            assert!(
                !reads_as_identity(header.as_str())
                    || header.as_str() == header.as_str().to_ascii_lowercase().replace('_', "-"),
                "{name} reached the application as {header} through {}",
                F::NAME
            );
        }
    }

    let untyped = login_with_token_type(&scene.app, "").await;
    let response = scene
        .get("/orders/42")
        .bearer_auth(&untyped)
        .send()
        .await
        .unwrap();
    scene.front.assert_status(&response, StatusCode::OK);
    assert_identity(
        &scene.upstream.last(),
        &untyped,
        F::EMPTY_TOKEN_TYPE_REACHES_THE_APP_AS,
    );
    scene.stop().await;
}

/// tokencache's own endpoints through the gateway, with tokencache trusting it: a client
/// at 127.0.0.2 that writes its own X-Forwarded-For hop, a new one each time, is counted
/// under 127.0.0.2 alone (the hop the gateway added), whatever it wrote.
pub async fn a_forged_forwarded_for_hop_never_changes_the_counted_address<F: Front>() {
    let app = TestApp::spawn_with(Backend::Real, |s| {
        s.http.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        s.rules.limits.ip_authorize = 5;
    })
    .await;
    let scene = Scene::<F>::start(app).await;
    let client = reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<std::net::IpAddr>().ok())
        .no_proxy()
        .timeout(WAIT)
        .build()
        .unwrap();
    let mut statuses = Vec::new();
    for n in 0..12 {
        let body = scene
            .app
            .authorize_body("alice", PASSWORD, &now_ms().to_string());
        // Both prefixes reach tokencache.
        let path = if n % 2 == 0 {
            "/api/v1/authorize"
        } else {
            "/oauth2/api/v1/authorize"
        };
        let response = client
            .post(scene.front.url(path))
            .header("x-forwarded-for", format!("10.66.0.{n}"))
            .json(&body)
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(
        (ok, limited),
        (5, 7),
        "{statuses:?} through {}:\n{}",
        F::NAME,
        scene.front.log()
    );
    assert_eq!(
        scene
            .app
            .redis_get("n:ip:authorize:127.0.0.2")
            .await
            .as_deref(),
        Some("12"),
        "the counted address"
    );
    assert_eq!(scene.upstream.requests(), 0, "the application got a login");
    scene.stop().await;
}

/// A dead token, unknown or logged out, gets tokencache's 401 and `WWW-Authenticate`, also
/// with an identity of the client's own; nothing reaches the application.
pub async fn a_dead_token_is_refused_and_reaches_nothing<F: Front>() {
    let scene = Scene::<F>::start(TestApp::spawn(Backend::Real).await).await;
    let (access, _) = scene.app.login().await;
    let passed = scene.pass(&access).await;
    let (status, v) = scene
        .app
        .post("/api/v1/logout", &json!({ "token": access }))
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");

    for token in [UNKNOWN, access.as_str()] {
        let response = scene
            .get("/orders/42")
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        scene
            .front
            .assert_status(&response, StatusCode::UNAUTHORIZED);
        assert_eq!(
            header(&response, "www-authenticate"),
            Some("Bearer error=\"invalid_token\"")
        );
        assert_eq!(header(&response, "cache-control"), F::REFUSAL_CACHE_CONTROL);
        assert_eq!(header(&response, "location"), None, "not a login redirect");
        // With an identity of the client's own as well: refused too (401, or 403 where
        // the check sees the forged header).
        let response = scene
            .get("/orders/42")
            .bearer_auth(token)
            .header("X-Auth-Username", "alice")
            .send()
            .await
            .unwrap();
        let refused = if F::FORGED_REFUSED.contains(&"X-Auth-Username") {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::UNAUTHORIZED
        };
        scene.front.assert_status(&response, refused);
    }
    scene.assert_nothing_more_reached(passed);
    scene.stop().await;
}

/// No bearer token (none, another scheme, an identity of the client's own alone) gets
/// 401; nothing reaches the application.
pub async fn a_missing_token_is_refused_and_reaches_nothing<F: Front>() {
    let scene = Scene::<F>::start(TestApp::spawn(Backend::Real).await).await;
    let (access, _) = scene.app.login().await;
    let passed = scene.pass(&access).await;

    let forged = if F::FORGED_REFUSED.contains(&"X-Auth-Username") {
        StatusCode::FORBIDDEN
    } else {
        StatusCode::UNAUTHORIZED
    };
    for (request, refused) in [
        (scene.get("/orders/42"), StatusCode::UNAUTHORIZED),
        (
            scene.get("/orders/42").header("X-Auth-Username", "alice"),
            forged,
        ),
        (
            scene.get("/orders/42").basic_auth("alice", Some(PASSWORD)),
            StatusCode::UNAUTHORIZED,
        ),
    ] {
        let response = request.send().await.unwrap();
        scene.front.assert_status(&response, refused);
        assert_eq!(header(&response, "location"), None, "not a login redirect");
    }
    scene.assert_nothing_more_reached(passed);
    scene.stop().await;
}

/// tokencache itself unreachable (stopped): the gateway answers "cannot tell" with its
/// page and its own status; never a pass, never a 401.
pub async fn a_stopped_tokencache_gets_the_unavailable_page_never_a_pass<F: Front>() {
    let scene = Scene::<F>::start(TestApp::spawn(Backend::Real).await).await;
    let (live, _) = scene.app.login().await;
    let passed = scene.pass(&live).await;
    let Scene {
        app,
        upstream,
        front,
        http,
    } = scene;

    app.cleanup().await;
    let response = first_refusal(|| http.get(front.url("/orders/42")).bearer_auth(&live)).await;
    assert_unavailable_page(response, F::WHEN_TOKENCACHE_IS_UNREACHABLE, &front).await;
    assert_eq!(upstream.requests(), passed, "a request passed unchecked");
    front.assert_logged(F::LOGS_WHEN_TOKENCACHE_IS_UNREACHABLE);
    front.stop().await;
}

/// tokencache's Redis down: tokencache answers 503 (not 401: it cannot tell whether the
/// token is live) and the gateway the 503 page, request after request; a request without
/// a token needs no lookup and still gets 401. Redis back on the same port (empty: the old
/// token is gone), the check recovers by itself and a new login passes.
pub async fn a_redis_outage_gets_the_unavailable_page_and_the_check_recovers_after<F: Front>() {
    let (app, redis, port) = TestApp::spawn_on_own_redis().await;
    let scene = Scene::<F>::start(app).await;
    let (access, _) = scene.app.login().await;
    let passed = scene.pass(&access).await;

    redis.kill().await;
    let direct = scene.app.forward_auth(Some(&access)).await;
    assert_eq!(direct.status(), StatusCode::SERVICE_UNAVAILABLE);
    for _ in 0..2 {
        let response = scene
            .get("/orders/42")
            .bearer_auth(&access)
            .send()
            .await
            .unwrap();
        assert_unavailable_page(response, StatusCode::SERVICE_UNAVAILABLE, &scene.front).await;
    }
    let response = scene.get("/orders/42").send().await.unwrap();
    scene
        .front
        .assert_status(&response, StatusCode::UNAUTHORIZED);
    assert_eq!(
        scene.upstream.requests(),
        passed,
        "a request passed unchecked"
    );
    scene
        .front
        .assert_logged(F::LOGS_WHEN_TOKENCACHE_ANSWERS_503);

    let _redis = OwnRedis::start(port).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let response = loop {
        let response = scene
            .get("/orders/42")
            .bearer_auth(&access)
            .send()
            .await
            .unwrap();
        if response.status() != StatusCode::SERVICE_UNAVAILABLE
            || tokio::time::Instant::now() >= deadline
        {
            break response;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    scene
        .front
        .assert_status(&response, StatusCode::UNAUTHORIZED);
    let (access, _) = scene.app.login().await;
    scene.pass(&access).await;
    scene.stop().await;
}

/// The application's own errors keep their status: passed as the application sent them,
/// or answered with the page where the gateway's page sits on the whole route (the
/// gateway's data says which). The application unreachable gets the gateway's own 502,
/// not the "cannot tell" page: the check did not fail.
pub async fn the_applications_own_errors_keep_their_status<F: Front>() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let upstream = Upstream::start_with(|parts| {
        let status: u16 = parts.uri.path()[1..].parse().unwrap_or(200);
        hyper::Response::builder()
            .status(status)
            .body(Full::new(Bytes::from(format!("the app says {status}"))))
            .unwrap()
    })
    .await;
    let scene = Scene::<F>::start_before(app, upstream).await;
    let (access, _) = scene.app.login().await;

    for code in [500, 502, 503] {
        let response = scene
            .get(&format!("/{code}"))
            .bearer_auth(&access)
            .send()
            .await
            .unwrap();
        let status = StatusCode::from_u16(code).unwrap();
        if F::PAGES_THE_APPLICATIONS_OWN.contains(&code) {
            assert_unavailable_page(response, status, &scene.front).await;
        } else {
            scene.front.assert_status(&response, status);
            assert_eq!(header(&response, "retry-after"), None);
            assert_eq!(
                response.text().await.unwrap(),
                format!("the app says {code}")
            );
        }
    }
    assert_eq!(scene.upstream.requests(), 3);

    let nobody = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let front = F::start(&address(&scene.app), nobody).await;
    let response = scene
        .http
        .get(front.url("/orders/42"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    front.assert_status(&response, StatusCode::BAD_GATEWAY);
    let body = response.text().await.unwrap();
    assert!(!body.contains(UNAVAILABLE_PAGE), "{body}");
    front.stop().await;
    scene.stop().await;
}
