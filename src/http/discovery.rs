//! `GET /.well-known/jwks.json` (the upstream JWTs' public keys) and the RFC 8414
//! authorization server metadata, also served at OpenID Connect's discovery path for the
//! libraries that look there first. The metadata names only what works: no
//! `authorization_endpoint` (there is no browser flow), no `userinfo_endpoint`, no
//! `id_token` (this is not an OpenID Provider).
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderMap, HeaderValue, CACHE_CONTROL, CONTENT_TYPE, HOST};
use hyper::{Response, StatusCode};
use serde::Serialize;

use super::error::ApiError;
use super::{Body, State};
use crate::store::{RecordBackend, TokenBackend};
use crate::upstream::ALGORITHM;

/// The JWKS: 404 when `--upstream-jwt` is off. Cached as long as `keys rotate` publishes
/// a key before it signs, so a verifier that honours the header has every key in time.
pub fn jwks<T: TokenBackend, R: RecordBackend>(
    state: &State<T, R>,
) -> Result<Response<Body>, ApiError> {
    let Some(up) = &state.engine.upstream else {
        return Err(ApiError::NoRoute);
    };
    let mut r = Response::new(Full::new(up.jwks()));
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/jwk-set+json"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!(
        "public, max-age={}",
        up.settings.jwks_max_age_secs
    )) {
        h.insert(CACHE_CONTROL, v);
    }
    Ok(r)
}

#[derive(Serialize)]
struct Metadata<'a> {
    issuer: &'a str,
    token_endpoint: String,
    introspection_endpoint: String,
    revocation_endpoint: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    jwks_uri: Option<String>,
    grant_types_supported: [&'static str; 3],
    response_types_supported: [&'static str; 0],
    token_endpoint_auth_methods_supported: [&'static str; 2],
    introspection_endpoint_auth_methods_supported: [&'static str; 2],
    revocation_endpoint_auth_methods_supported: [&'static str; 2],
    #[serde(skip_serializing_if = "Option::is_none")]
    introspection_signing_alg_values_supported: Option<[&'static str; 1]>,
}

/// The issuer: `--issuer`, else `http://` and the request's Host (a development setup),
/// and whether it was configured.
fn issuer(configured: &str, headers: &HeaderMap) -> (String, bool) {
    if !configured.is_empty() {
        return (configured.trim_end_matches('/').to_owned(), true);
    }
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("localhost");
    (format!("http://{host}"), false)
}

/// RFC 8414 metadata.
pub fn metadata<T: TokenBackend, R: RecordBackend>(
    state: &State<T, R>,
    headers: &HeaderMap,
) -> Response<Body> {
    let (issuer, configured) = issuer(
        state
            .engine
            .upstream
            .as_ref()
            .map_or(state.http.issuer.as_str(), |u| u.settings.issuer.as_str()),
        headers,
    );
    let signed = state.engine.upstream.is_some();
    let both = ["client_secret_basic", "client_secret_post"];
    let body = Metadata {
        token_endpoint: format!("{issuer}/oauth2/token"),
        introspection_endpoint: format!("{issuer}/oauth2/introspect"),
        revocation_endpoint: format!("{issuer}/oauth2/revoke"),
        jwks_uri: signed.then(|| format!("{issuer}/.well-known/jwks.json")),
        issuer: &issuer,
        grant_types_supported: ["password", "refresh_token", "client_credentials"],
        response_types_supported: [],
        token_endpoint_auth_methods_supported: both,
        introspection_endpoint_auth_methods_supported: both,
        revocation_endpoint_auth_methods_supported: both,
        introspection_signing_alg_values_supported: signed.then_some([ALGORITHM]),
    };
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let mut r = Response::new(Full::new(Bytes::from(bytes)));
    *r.status_mut() = StatusCode::OK;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    // An issuer taken from the request's Host is the client's word: a shared cache must
    // not hand it to others (a forged Host would name another server's endpoints).
    r.headers_mut().insert(
        CACHE_CONTROL,
        HeaderValue::from_static(if configured {
            "public, max-age=300"
        } else {
            "no-store"
        }),
    );
    r
}
