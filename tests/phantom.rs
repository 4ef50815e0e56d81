//! Phantom tokens (`--upstream-jwt`), checked by the verifiers an application behind the
//! gateway would use: PyJWT (`tests/phantom/verify.py`) and the npm `jose` library
//! (`tests/phantom/verify.mjs`), each fetching the keys from `/.well-known/jwks.json`. A
//! live token's forward-auth answer carries a JWT they accept; a forged one (payload
//! changed, `alg: none`, signed by another key under the same kid), one for another
//! audience or issuer, an expired one and one signed by a retired key no longer published
//! are refused, and so is one whose opaque token expired; a revoked opaque token gets no
//! JWT, also from another instance (its near cache on or off); through the real nginx
//! (deploy/nginx/tokencache.conf plus the two lines docs/phantom-tokens.md gives), the
//! real Traefik (deploy/traefik/ with `Authorization` added to `authResponseHeaders`) and
//! the real Caddy (deploy/caddy/Caddyfile with `Authorization` added to `copy_headers`)
//! the application receives the JWT, never the opaque token, and a revoked token never
//! reaches it.
//! Its own test binary: it needs python3 with PyJWT, node with `jose`, nginx, traefik and
//! caddy (installed with pip, npm and apt-get when missing; a failure to install fails
//! the tests).
mod common;

use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use common::caddy::Caddy;
use common::gateway::{self as gw, find_or_install, run_step, temp_dir, Gateway};
use common::installs::{require, require_pyjwt};
use common::traefik::Traefik;
use common::*;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokencache::app::Settings;
use tokencache::store::KeyRecords;
use tokencache::upstream::UpstreamSettings;

const ISSUER: &str = "https://auth.test.example";
const AUDIENCE: &str = "orders-api";

/// The verifier scripts and where `jose` is installed, beside this file.
const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/phantom");
const PYJWT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/phantom/verify.py");
const JOSE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/phantom/verify.mjs");

#[derive(Debug, Clone, Copy)]
enum Verifier {
    PyJwt,
    Jose,
}

impl Verifier {
    /// The library, installed when missing: PyJWT with pip, `jose` with npm into
    /// tests/phantom/node_modules (ignored by git).
    fn require(self) {
        match self {
            Verifier::PyJwt => require_pyjwt(),
            Verifier::Jose => {
                static FOUND: OnceLock<Result<(), String>> = OnceLock::new();
                require(
                    &FOUND,
                    "node with the npm package jose (npm install --prefix tests/phantom jose)",
                    || {
                        std::process::Command::new("node")
                            .current_dir(DIR)
                            .args(["--input-type=module", "-e", "await import('jose')"])
                            .stderr(Stdio::null())
                            .status()
                            .is_ok_and(|s| s.success())
                    },
                    || {
                        std::process::Command::new("npm")
                            .args([
                                "install",
                                "--no-save",
                                "--no-package-lock",
                                "--no-audit",
                                "--no-fund",
                                "--silent",
                                "--prefix",
                                DIR,
                                "jose@6",
                            ])
                            .output()
                    },
                );
            }
        }
    }

    /// Verifies `jwt` against the JWKS of `app` for `issuer` and `audience`: the claims,
    /// or the verifier's error (PyJWT's exception class, jose's error code).
    async fn verify(
        self,
        app: &TestApp,
        issuer: &str,
        audience: &str,
        jwt: &str,
    ) -> Result<Value, String> {
        self.require();
        let jwks = format!("{}/.well-known/jwks.json", app.base);
        let mut command = match self {
            Verifier::PyJwt => {
                let mut c = tokio::process::Command::new("python3");
                c.arg(PYJWT);
                c
            }
            Verifier::Jose => {
                let mut c = tokio::process::Command::new("node");
                c.arg(JOSE);
                c
            }
        };
        let child = command
            .args([&jwks, issuer, audience, jwt])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the verifier runs");
        let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .expect("the verifier answered in time")
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{self:?} failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let answer: Value = serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("{self:?} printed no JSON ({e}): {stdout}"));
        match answer.get("claims") {
            Some(claims) => Ok(claims.clone()),
            None => Err(format!(
                "{}: {}",
                answer["error"].as_str().unwrap_or("?"),
                answer["message"]
            )),
        }
    }

    /// Verifies with the app's issuer and audience.
    async fn check(self, app: &TestApp, jwt: &str) -> Result<Value, String> {
        self.verify(app, ISSUER, AUDIENCE, jwt).await
    }

    /// The verifier's name for `why` (PyJWT's exception class, jose's error code).
    fn says(self, why: Refusal) -> &'static str {
        use Refusal::*;
        match (self, why) {
            (Verifier::PyJwt, Signature) => "InvalidSignatureError",
            (Verifier::PyJwt, Algorithm) => "InvalidAlgorithmError",
            (Verifier::PyJwt, Audience) => "InvalidAudienceError",
            (Verifier::PyJwt, Issuer) => "InvalidIssuerError",
            (Verifier::PyJwt, Expired) => "ExpiredSignatureError",
            (Verifier::PyJwt, UnknownKid) => "PyJWKClientError",
            (Verifier::Jose, Signature) => "ERR_JWS_SIGNATURE_VERIFICATION_FAILED",
            (Verifier::Jose, Algorithm) => "ERR_JOSE_ALG_NOT_ALLOWED",
            (Verifier::Jose, Audience | Issuer) => "ERR_JWT_CLAIM_VALIDATION_FAILED",
            (Verifier::Jose, Expired) => "ERR_JWT_EXPIRED",
            (Verifier::Jose, UnknownKid) => "ERR_JWKS_NO_MATCHING_KEY",
        }
    }

    /// Asserts the verifier refused a JWT, for `why`.
    fn refused(self, answer: Result<Value, String>, why: Refusal) {
        match answer {
            Ok(claims) => panic!("{self:?} accepted a JWT to refuse ({why:?}): {claims}"),
            Err(e) => assert!(
                e.starts_with(&format!("{}:", self.says(why))),
                "{self:?} refused for another reason than {why:?}: {e}"
            ),
        }
    }
}

/// Why a verifier refuses a JWT.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    Signature,
    Algorithm,
    Audience,
    Issuer,
    Expired,
    UnknownKid,
}

/// Upstream JWTs on, with this JWT lifetime and key reload period.
fn phantom(ttl_secs: u64, reload: Duration) -> impl FnOnce(&mut Settings) {
    move |s| {
        s.upstream = Some(UpstreamSettings {
            issuer: ISSUER.into(),
            audience: Some(AUDIENCE.into()),
            ttl_secs,
            jwks_max_age_secs: 60,
            reload,
            cache_entries: 1000,
        })
    }
}

/// The JWT of forward-auth's answer for a live `token`.
async fn jwt_of(app: &TestApp, token: &str) -> String {
    let r = app.forward_auth(Some(token)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let value = r
        .headers()
        .get("authorization")
        .expect("forward-auth answers the upstream JWT")
        .to_str()
        .unwrap();
    value
        .strip_prefix("Bearer ")
        .unwrap_or_else(|| panic!("not a Bearer value: {value}"))
        .to_owned()
}

/// A JWT's header and claims, undecoded, and its three parts.
fn parts(jwt: &str) -> (Value, Value, [String; 3]) {
    let p: Vec<&str> = jwt.split('.').collect();
    assert_eq!(p.len(), 3, "{jwt}");
    let json = |s: &str| -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(s).expect("base64url")).expect("JSON")
    };
    (
        json(p[0]),
        json(p[1]),
        [p[0].to_owned(), p[1].to_owned(), p[2].to_owned()],
    )
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// The kids the app publishes, and the answer's headers checked.
async fn published(app: &TestApp) -> Vec<String> {
    let r = app
        .http
        .get(format!("{}/.well-known/jwks.json", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let jwks: Value = r.json().await.unwrap();
    jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

/// Waits (up to 10 s) until the JWKS is `want`.
async fn wait_for_published(app: &TestApp, want: &[&str]) {
    let mut now = Vec::new();
    for _ in 0..100 {
        now = published(app).await;
        now.sort();
        let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
        want.sort();
        if now == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the JWKS never became {want:?}: still {now:?}");
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The JWKS: a key set of EC P-256 keys for ES256, cacheable by everyone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jwks_is_a_public_cacheable_key_set() {
    let app = TestApp::spawn_with(Backend::Embedded, phantom(300, Duration::from_secs(10))).await;
    let r = app
        .http
        .get(format!("{}/.well-known/jwks.json", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/jwk-set+json");
    let control = r.headers()["cache-control"].to_str().unwrap().to_owned();
    assert!(control.contains("public"), "{control}");
    assert!(control.contains("max-age=60"), "{control}");
    let jwks: Value = r.json().await.unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{jwks}");
    let k = &keys[0];
    assert_eq!(
        (&k["kty"], &k["crv"], &k["alg"], &k["use"]),
        (
            &json!("EC"),
            &json!("P-256"),
            &json!("ES256"),
            &json!("sig")
        )
    );
    assert!(k.get("d").is_none(), "the private key is published: {k}");
    // The key the server signs with is the one published.
    let (access, _) = app.login().await;
    let (header, _, _) = parts(&jwt_of(&app, &access).await);
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["kid"], k["kid"]);
}

/// A live token's JWT verifies, with its identity; a forged one, or one for another
/// audience or issuer, is refused.
async fn a_phantom_jwt_verifies_and_forgeries_do_not(v: Verifier) {
    let app = TestApp::spawn_with(Backend::Embedded, phantom(300, Duration::from_secs(10))).await;
    let (access, _) = app.login().await;
    let jwt = jwt_of(&app, &access).await;
    let (header, claims, [h, p, s]) = parts(&jwt);
    assert_eq!(header["alg"], "ES256", "{header}");
    assert!(header["kid"].is_string(), "{header}");

    let verified = v.check(&app, &jwt).await.expect("the JWT verifies");
    assert_eq!(verified["sub"], "alice", "{verified}");
    assert_eq!(verified["client_id"], APP_KEY, "{verified}");
    assert_eq!(verified["iss"], ISSUER, "{verified}");
    assert_eq!(verified["aud"], AUDIENCE, "{verified}");
    assert_eq!(verified["token_type"], "web", "{verified}");
    assert!(verified["jti"].is_string(), "{verified}");
    let (iat, exp) = (
        verified["iat"].as_i64().unwrap(),
        verified["exp"].as_i64().unwrap(),
    );
    assert!((iat - unix_now()).abs() <= 5, "{verified}");
    assert_eq!(exp - iat, 300, "{verified}");

    // The payload changed, the signature kept.
    let mut other = claims.clone();
    other["sub"] = json!("mallory");
    let changed = format!("{h}.{}.{s}", b64(&other));
    v.refused(v.check(&app, &changed).await, Refusal::Signature);
    // No signature at all.
    let mut none = header.clone();
    none["alg"] = json!("none");
    let unsigned = format!("{}.{p}.", b64(&none));
    v.refused(v.check(&app, &unsigned).await, Refusal::Algorithm);
    // Signed by a key of the forger's own under the published kid.
    let stranger = tokencache::upstream::new_key(0, 0);
    let scalar: [u8; 32] = STANDARD
        .decode(stranger.private_key.expose())
        .unwrap()
        .try_into()
        .unwrap();
    let stranger = SigningKey::from_bytes(&scalar.into()).unwrap();
    let input = format!("{h}.{}", b64(&other));
    let signature: Signature = stranger.sign(input.as_bytes());
    let forged = format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()));
    v.refused(v.check(&app, &forged).await, Refusal::Signature);
    // Another audience, another issuer.
    let other_audience = v.verify(&app, ISSUER, "billing-api", &jwt).await;
    v.refused(other_audience, Refusal::Audience);
    let other_issuer = v.verify(&app, "https://evil.example", AUDIENCE, &jwt).await;
    v.refused(other_issuer, Refusal::Issuer);
    // The genuine one still verifies (nothing above was a fluke of the verifier).
    v.check(&app, &jwt).await.expect("the JWT still verifies");
}

/// A JWT past its `exp` is refused (no leeway): the lifetime is `ttl_secs`.
async fn an_expired_phantom_jwt_is_refused(v: Verifier) {
    let app = TestApp::spawn_with(Backend::Embedded, phantom(1, Duration::from_secs(10))).await;
    let (access, _) = app.login().await;
    let jwt = jwt_of(&app, &access).await;
    let (_, claims, _) = parts(&jwt);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        1,
        "{claims}"
    );
    v.require();
    tokio::time::sleep(Duration::from_millis(2200)).await;
    v.refused(v.check(&app, &jwt).await, Refusal::Expired);
    // The opaque token is still live: a fresh JWT, not the expired one again.
    let fresh = jwt_of(&app, &access).await;
    assert_ne!(fresh, jwt);
    let (_, fresh_claims, _) = parts(&fresh);
    assert!(
        fresh_claims["exp"].as_i64().unwrap() >= unix_now(),
        "{fresh_claims}"
    );
}

/// After `rotate_keys` the new key signs and the old one stays published, so the JWTs it
/// signed still verify; once the old key is deleted and the instance has reread the keys,
/// a JWT it signed is refused and one of the new key verifies.
async fn a_jwt_of_a_retired_unpublished_key_is_refused(v: Verifier) {
    let app = TestApp::spawn_with(Backend::Embedded, phantom(300, Duration::from_secs(1))).await;
    let records = &app.state.engine.records;
    let keys = records.signing_keys().await.unwrap();
    assert_eq!(keys.len(), 1);
    let old = keys[0].kid.clone();
    let (access, _) = app.login().await;
    let old_jwt = jwt_of(&app, &access).await;
    assert_eq!(parts(&old_jwt).0["kid"], old.as_str());
    v.check(&app, &old_jwt)
        .await
        .expect("the JWT of the first key");

    // Rotate once the first key's second is over (see the report: a key signing from the
    // same second as the one before it is ordered by kid, not by age).
    while unix_now() <= keys[0].signs_from {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (new, deleted) = tokencache::app::rotate_keys(records, 0).await.unwrap();
    assert!(deleted.is_empty(), "{deleted:?}");
    wait_for_published(&app, &[&old, &new.kid]).await;
    // The new key signs (the minted JWT is not reused across keys) ...
    let mut new_jwt = String::new();
    for _ in 0..50 {
        new_jwt = jwt_of(&app, &access).await;
        if parts(&new_jwt).0["kid"] == new.kid.as_str() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        parts(&new_jwt).0["kid"],
        new.kid.as_str(),
        "the new key never signed"
    );
    v.check(&app, &new_jwt)
        .await
        .expect("the JWT of the new key");
    // ... and the retired one is still published: its JWTs verify.
    v.check(&app, &old_jwt)
        .await
        .expect("the JWT of the retired key, still published");

    // The retired key deleted: gone from the JWKS at the next reload.
    assert_eq!(
        records
            .delete_signing_keys(std::slice::from_ref(&old))
            .await
            .unwrap(),
        1
    );
    wait_for_published(&app, &[&new.kid]).await;
    v.refused(v.check(&app, &old_jwt).await, Refusal::UnknownKid);
    v.check(&app, &new_jwt)
        .await
        .expect("the JWT of the new key");
}

/// A JWT never outlives its opaque token: with tokens of 3 s and JWTs of 300 s, the JWT
/// expires with the token, and the verifier refuses it then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs python3 (PyJWT): cargo test -- --include-ignored"]
async fn pyjwt_refuses_a_jwt_once_its_opaque_token_expired() {
    let v = Verifier::PyJwt;
    let app = TestApp::spawn_with(Backend::Embedded, phantom(300, Duration::from_secs(10))).await;
    let (key, secret) = ("shortapp", "short-secret-0123");
    app.create_client(key, secret, 3, false, None).await;
    app.state
        .engine
        .create_user("bob", PASSWORD, key)
        .await
        .expect("create user");
    let time = now_ms().to_string();
    let body = json!({
        "appid": key, "token_type": "web", "username": "bob", "password": PASSWORD,
        "time": time, "token": sign(&[key, "bob", PASSWORD, &time], secret),
    });
    let (status, answer) = app.post("/api/v1/authorize", &body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let access = answer["data"]["access_token"].as_str().unwrap().to_owned();
    let jwt = jwt_of(&app, &access).await;
    let (_, claims, _) = parts(&jwt);
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert!(
        (1..=3).contains(&lifetime),
        "past the token's expiry: {claims}"
    );
    let verified = v.check(&app, &jwt).await.expect("the JWT verifies");
    assert_eq!(
        (&verified["sub"], &verified["client_id"]),
        (&json!("bob"), &json!(key))
    );
    tokio::time::sleep(Duration::from_millis(4200)).await;
    assert_no_jwt(&app, &access).await;
    v.refused(v.check(&app, &jwt).await, Refusal::Expired);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs python3 (PyJWT): cargo test -- --include-ignored"]
async fn pyjwt_verifies_a_phantom_jwt_and_refuses_forgeries() {
    a_phantom_jwt_verifies_and_forgeries_do_not(Verifier::PyJwt).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node (jose): cargo test -- --include-ignored"]
async fn jose_verifies_a_phantom_jwt_and_refuses_forgeries() {
    a_phantom_jwt_verifies_and_forgeries_do_not(Verifier::Jose).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs python3 (PyJWT): cargo test -- --include-ignored"]
async fn pyjwt_refuses_an_expired_phantom_jwt() {
    an_expired_phantom_jwt_is_refused(Verifier::PyJwt).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node (jose): cargo test -- --include-ignored"]
async fn jose_refuses_an_expired_phantom_jwt() {
    an_expired_phantom_jwt_is_refused(Verifier::Jose).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs python3 (PyJWT): cargo test -- --include-ignored"]
async fn pyjwt_refuses_a_jwt_of_a_retired_unpublished_key() {
    a_jwt_of_a_retired_unpublished_key_is_refused(Verifier::PyJwt).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node (jose): cargo test -- --include-ignored"]
async fn jose_refuses_a_jwt_of_a_retired_unpublished_key() {
    a_jwt_of_a_retired_unpublished_key_is_refused(Verifier::Jose).await;
}

/// Asserts forward-auth refuses `token` with no JWT.
async fn assert_no_jwt(app: &TestApp, token: &str) {
    let r = app.forward_auth(Some(token)).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(
        r.headers().get("authorization").is_none(),
        "a JWT for a dead token: {:?}",
        r.headers().get("authorization")
    );
}

/// A token that is not live gets a 401 and no JWT, also right after a JWT was minted for
/// it (the reuse cache never answers for a revoked token).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_or_unknown_token_gets_no_jwt() {
    let app = TestApp::spawn_with(Backend::Embedded, phantom(300, Duration::from_secs(10))).await;
    assert_no_jwt(&app, "not-a-token").await;
    let r = app.forward_auth(None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().get("authorization").is_none());

    let (access, _) = app.login().await;
    let first = jwt_of(&app, &access).await;
    // Reused while fresh.
    assert_eq!(jwt_of(&app, &access).await, first);
    let (status, v) = app
        .post("/api/v1/logout", &json!({ "token": access }))
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_no_jwt(&app, &access).await;
}

/// On the real stores, a token revoked at one instance gets no JWT from another that
/// minted one for it before (with B's near cache on or off); both sign with the same
/// key, read from the database.
async fn a_token_revoked_at_one_instance_gets_no_jwt_from_another(near_cache: bool) {
    require_services();
    let a = TestApp::spawn_with(Backend::Real, phantom(300, Duration::from_secs(10))).await;
    // The same database and key prefix; the database is `a`'s to drop.
    let mut settings = a.settings.clone();
    settings.near_cache = near_cache.then_some(1000);
    let b = TestApp::start(Backend::Real, settings, None, None).await;
    assert_eq!(published(&a).await, published(&b).await);
    assert_eq!(published(&a).await.len(), 1, "one key for the fleet");

    let (access, _) = a.login().await;
    let at_a = jwt_of(&a, &access).await;
    let at_b = jwt_of(&b, &access).await;
    assert_eq!(parts(&at_a).0["kid"], parts(&at_b).0["kid"]);
    assert_eq!(parts(&at_b).1["sub"], "alice");
    // Checked again on B: from its near cache when on, its JWT reused.
    assert_eq!(jwt_of(&b, &access).await, at_b);

    let (status, v) = a.post("/api/v1/logout", &json!({ "token": access })).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_no_jwt(&b, &access).await;
    assert_no_jwt(&a, &access).await;
    drop(b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and redis-server: cargo test -- --include-ignored"]
async fn a_token_revoked_at_one_instance_gets_no_jwt_from_another_one() {
    a_token_revoked_at_one_instance_gets_no_jwt_from_another(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and redis-server: cargo test -- --include-ignored"]
async fn a_token_revoked_at_one_instance_gets_no_jwt_from_another_with_a_near_cache() {
    a_token_revoked_at_one_instance_gets_no_jwt_from_another(true).await;
}

/// The documented nginx configuration, and the two lines that make it pass the upstream
/// JWT on in place of the opaque token (what docs/gateways.md would add for phantom
/// tokens), put after the identity headers.
const NGINX_CONF: &str = include_str!("../deploy/nginx/tokencache.conf");
const NGINX_ANCHOR: &str = "        proxy_set_header X-Auth-Expires-In $tc_expires_in;\n";
const NGINX_PHANTOM: &str = "\
        # Phantom token: the application gets tokencache's signed JWT, never the opaque
        # token (the client's Authorization header is replaced).
        auth_request_set $upstream_jwt $upstream_http_authorization;
        proxy_set_header Authorization $upstream_jwt;
";

/// nginx (installed with apt-get when missing, as tests/nginx.rs does) with the
/// documented configuration and the phantom-token lines, in front of `upstream`.
async fn nginx_with_phantom_tokens(tokencache: &str, upstream: std::net::SocketAddr) -> Gateway {
    let program = find_or_install(
        "nginx",
        || vec![std::path::PathBuf::from("/usr/sbin")],
        || {
            let install = |package| run_step("apt-get", &["install", "-y", "-qq", package]);
            install("nginx-light")
                .or_else(|_| install("nginx"))
                .or_else(|_| {
                    run_step("apt-get", &["update", "-qq"])?;
                    install("nginx-light").or_else(|_| install("nginx"))
                })
        },
        "apt-get install nginx-light (or nginx)",
    );
    assert!(
        NGINX_CONF.contains(NGINX_ANCHOR),
        "the documented file changed"
    );
    let conf = NGINX_CONF.replacen(NGINX_ANCHOR, &format!("{NGINX_ANCHOR}{NGINX_PHANTOM}"), 1);
    let port = free_port();
    let dir = temp_dir("tc_phantom_nginx");
    let rendered = gw::fill(
        &conf,
        "deploy/nginx/tokencache.conf",
        &[
            ("@LISTEN@", &format!("127.0.0.1:{port}")),
            ("@TOKENCACHE@", tokencache),
            ("@UPSTREAM@", &upstream.to_string()),
        ],
    );
    let include = dir.join("tokencache.conf");
    std::fs::write(&include, rendered).unwrap();
    let d = dir.display();
    let main = format!(
        "daemon off;\nmaster_process off;\nerror_log stderr notice;\npid \"{d}/nginx.pid\";\n\
         events {{ worker_connections 256; }}\nhttp {{\n\
         client_body_temp_path \"{d}/client_body\";\nproxy_temp_path \"{d}/proxy\";\n\
         fastcgi_temp_path \"{d}/fastcgi\";\nuwsgi_temp_path \"{d}/uwsgi\";\n\
         scgi_temp_path \"{d}/scgi\";\naccess_log \"{d}/access.log\";\n\
         include \"{}\";\n}}\n",
        include.display()
    );
    let main_conf = dir.join("nginx.conf");
    std::fs::write(&main_conf, main).unwrap();
    let args = |extra: &[&str]| {
        let mut a: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        a.extend([
            "-e".into(),
            "stderr".into(),
            "-p".into(),
            format!("{d}/"),
            "-c".into(),
            main_conf.display().to_string(),
        ]);
        a
    };
    let check = tokio::process::Command::new(&program)
        .args(args(&["-t", "-q"]))
        .kill_on_drop(true)
        .output()
        .await
        .expect("nginx -t ran");
    assert!(
        check.status.success(),
        "nginx -t refused the configuration:\n{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let mut command = tokio::process::Command::new(&program);
    command.args(args(&[]));
    Gateway::spawn("nginx", command, dir, port).await
}

/// Through the gateway at `base` (whose log is `log()`), in front of `upstream`: a live
/// token's request reaches the application with exactly one `Authorization: Bearer <JWT>`
/// (never the opaque token) that PyJWT verifies against tokencache's JWKS, as alice; once
/// the token is revoked (through the gateway's own route to tokencache), the request gets
/// 401 and never reaches the application.
async fn the_application_gets_a_verifiable_jwt_not_the_token(
    app: &TestApp,
    upstream: &gw::Upstream,
    base: &str,
    log: impl Fn() -> String,
) {
    let (access, _) = app.login().await;
    let client = gw::client();
    let r = client
        .get(format!("{base}/orders/1"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", log());
    assert_eq!(upstream.requests(), 1, "{}", log());
    let seen = upstream.last();
    let values = seen.all("authorization");
    assert_eq!(values.len(), 1, "{values:?}");
    let jwt = values[0]
        .strip_prefix("Bearer ")
        .unwrap_or_else(|| panic!("not a Bearer value: {}", values[0]));
    assert!(
        !jwt.contains(&access),
        "the opaque token reached the application"
    );
    assert_eq!(jwt.split('.').count(), 3, "not a JWS: {jwt}");
    assert_eq!(seen.all("x-auth-username"), ["alice"]);
    let claims = Verifier::PyJwt
        .check(app, jwt)
        .await
        .expect("the JWT verifies");
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["client_id"], APP_KEY);

    // Revoked (through the gateway's own route to tokencache): refused at the gateway.
    let before = upstream.requests();
    let logout = client
        .post(format!("{base}/api/v1/logout"))
        .json(&json!({ "token": access }))
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::OK, "{}", log());
    let r = client
        .get(format!("{base}/orders/1"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{}", log());
    assert_eq!(
        upstream.requests(),
        before,
        "a revoked token reached the application"
    );
}

/// Through the real nginx: the application receives `Authorization: Bearer <JWT>` (never
/// the opaque token) that PyJWT verifies against tokencache's JWKS, as alice; a revoked
/// token never reaches it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nginx and python3 (PyJWT): cargo test -- --include-ignored"]
async fn through_nginx_the_application_gets_a_verifiable_jwt_not_the_token() {
    let app = TestApp::spawn_with(Backend::Embedded, phantom(300, Duration::from_secs(10))).await;
    let upstream = gw::Upstream::start().await;
    let nginx =
        nginx_with_phantom_tokens(app.base.trim_start_matches("http://"), upstream.addr).await;
    the_application_gets_a_verifiable_jwt_not_the_token(&app, &upstream, &nginx.base, || {
        nginx.log()
    })
    .await;
    nginx.stop().await;
}

/// The documented Traefik dynamic configuration, with `Authorization` added to the
/// ForwardAuth middleware's `authResponseHeaders` (Traefik deletes the client's header,
/// then copies tokencache's): what docs/gateways.md would add for phantom tokens.
const TRAEFIK_ANCHOR: &str = "          - X-Auth-Expires-In\n";
const TRAEFIK_PHANTOM: &str = "          - Authorization\n";

/// Through the real Traefik (tests/traefik.rs's, with the documented configuration and
/// `Authorization` in `authResponseHeaders`): the application receives one
/// `Authorization: Bearer <JWT>` (never the opaque token) that PyJWT verifies, as alice; a
/// revoked token never reaches it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs traefik and python3 (PyJWT): cargo test -- --include-ignored"]
async fn through_traefik_the_application_gets_a_verifiable_jwt_not_the_token() {
    let dynamic = common::traefik::DYNAMIC;
    assert!(
        dynamic.contains(TRAEFIK_ANCHOR),
        "the documented file changed"
    );
    let dynamic = dynamic.replacen(
        TRAEFIK_ANCHOR,
        &format!("{TRAEFIK_ANCHOR}{TRAEFIK_PHANTOM}"),
        1,
    );
    let app = TestApp::spawn_with(Backend::Embedded, phantom(300, Duration::from_secs(10))).await;
    let upstream = gw::Upstream::start().await;
    let traefik = Traefik::start_with(
        app.base.trim_start_matches("http://"),
        upstream.addr,
        &dynamic,
    )
    .await;
    the_application_gets_a_verifiable_jwt_not_the_token(
        &app,
        &upstream,
        &traefik.gateway.base,
        || traefik.gateway.log(),
    )
    .await;
    assert_eq!(traefik.pages.requests(), 0, "a 401 is not an error page");
    traefik.gateway.stop().await;
}

/// The documented Caddyfile, with `Authorization` added to `forward_auth`'s
/// `copy_headers`: what docs/gateways.md would add for phantom tokens.
const CADDY_ANCHOR: &str =
    "copy_headers X-Auth-Username X-Auth-App-Key X-Auth-Token-Type X-Auth-Expires-In\n";
const CADDY_PHANTOM: &str =
    "copy_headers X-Auth-Username X-Auth-App-Key X-Auth-Token-Type X-Auth-Expires-In Authorization\n";

/// Through the real Caddy (tests/caddy.rs's, with the documented Caddyfile and
/// `Authorization` in `copy_headers`): the application receives one
/// `Authorization: Bearer <JWT>` (never the opaque token) that PyJWT verifies, as alice; a
/// revoked token never reaches it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs caddy and python3 (PyJWT): cargo test -- --include-ignored"]
async fn through_caddy_the_application_gets_a_verifiable_jwt_not_the_token() {
    let caddyfile = common::caddy::CADDYFILE;
    assert!(
        caddyfile.contains(CADDY_ANCHOR),
        "the documented file changed"
    );
    let caddyfile = caddyfile.replacen(CADDY_ANCHOR, CADDY_PHANTOM, 1);
    let app = TestApp::spawn_with(Backend::Embedded, phantom(300, Duration::from_secs(10))).await;
    let upstream = gw::Upstream::start().await;
    let caddy = Caddy::start_with(
        app.base.trim_start_matches("http://"),
        upstream.addr,
        &caddyfile,
    )
    .await;
    the_application_gets_a_verifiable_jwt_not_the_token(
        &app,
        &upstream,
        &caddy.gateway.base,
        || caddy.gateway.log(),
    )
    .await;
    caddy.gateway.stop().await;
}
