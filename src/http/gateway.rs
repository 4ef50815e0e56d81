//! Forward-auth for gateways that send a bodiless request with a bearer token and read
//! the status and headers (nginx `auth_request`, Traefik ForwardAuth, Envoy `ext_authz`).
//! Same engine as check_token: one token-store read.
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{
    HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CACHE_CONTROL, VARY, WWW_AUTHENTICATE,
};
use hyper::{Response, StatusCode};

use super::error::{chain, domain_answer};
use super::{Body, State};
use crate::store::{RecordBackend, TokenBackend};

/// The identity headers a live token's answer sets, for the gateway to pass upstream.
pub const IDENTITY_HEADERS: [&str; 4] = [
    "x-auth-username",
    "x-auth-app-key",
    "x-auth-token-type",
    "x-auth-expires-in",
];

/// Whether a request header's name could be read as one of the identity headers by the
/// application behind the gateway: any case, and `_` for `-` (CGI, PHP, WSGI and Rack
/// turn both into `HTTP_X_AUTH_USERNAME`). A check request that carries one was sent by
/// a client trying to pass an identity of its own, or by a gateway that does not strip
/// them: refused, so that it never reaches the application (`--allow-identity-headers`
/// turns this off).
pub fn spoofed<'a>(names: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    names.into_iter().find(|name| {
        IDENTITY_HEADERS.iter().any(|id| {
            id.len() == name.len()
                && id.bytes().zip(name.bytes()).all(|(i, n)| {
                    i == if n == b'_' {
                        b'-'
                    } else {
                        n.to_ascii_lowercase()
                    }
                })
        })
    })
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    bearer_value(headers.get(AUTHORIZATION)?.to_str().ok()?)
}

/// The token of an `Authorization` header's value `Bearer <token>`.
pub fn bearer_value(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// A header value for free text (usernames): as it is when it is a valid header value,
/// else percent-encoded rather than dropped.
pub fn header_text(value: &str) -> String {
    if HeaderValue::from_str(value).is_ok() {
        return value.to_owned();
    }
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_graphic() || b == b' ' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn header(value: &str) -> HeaderValue {
    HeaderValue::from_str(value)
        .or_else(|_| HeaderValue::from_str(&header_text(value)))
        .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// 403 for a check that carries an identity header of its own (see `spoofed`).
fn refused_spoof(name: &str) -> Response<Body> {
    tracing::info!(
        header = name,
        "forward-auth refused: the request carries an identity header"
    );
    crate::telemetry::token_check("spoofed");
    let mut r = Response::new(Full::new(Bytes::from(format!(
        "refused: the request carries the header {name}, which only tokencache may set\n"
    ))));
    *r.status_mut() = StatusCode::FORBIDDEN;
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn empty(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

/// 503 for a live token when `--upstream-jwt` is on and no key signs yet (the database
/// unreadable since start): the upstream would refuse the request without its JWT.
fn no_signing_key() -> Response<Body> {
    tracing::warn!("forward-auth: no signing key for the upstream JWT");
    crate::telemetry::token_check("no_signing_key");
    let mut r = empty(StatusCode::SERVICE_UNAVAILABLE);
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// 200 with the identity headers for a live token, 401 for a missing or dead one, 503
/// when the token store is unreachable and 500 for a value it cannot read (the gateway
/// must not read those as "deny"): the forward-auth column of `error::Answer`.
pub async fn auth<T: TokenBackend, R: RecordBackend>(
    state: &State<T, R>,
    headers: &HeaderMap,
) -> Response<Body> {
    if state.http.refuse_identity_headers {
        if let Some(name) = spoofed(headers.keys().map(HeaderName::as_str)) {
            return refused_spoof(name);
        }
    }
    let token = bearer(headers);
    let result = state.engine.check_token(token).await;
    let mut response = match &result {
        Ok(info) => {
            // Phantom token: the upstream gets a signed JWT in place of the opaque token.
            let Ok(jwt) = crate::upstream::for_check(state.engine.upstream.as_deref(), token, info)
            else {
                return no_signing_key();
            };
            let mut r = empty(StatusCode::OK);
            let h = r.headers_mut();
            if let Some(jwt) = &jwt {
                h.insert(AUTHORIZATION, jwt.bearer.clone());
            }
            h.insert(
                HeaderName::from_static("x-auth-username"),
                header(&info.username),
            );
            h.insert(
                HeaderName::from_static("x-auth-app-key"),
                header(&info.app_key),
            );
            h.insert(
                HeaderName::from_static("x-auth-token-type"),
                header(&info.token_type),
            );
            h.insert(
                HeaderName::from_static("x-auth-expires-in"),
                HeaderValue::from(info.seconds_left),
            );
            let cache = state.http.forward_auth_cache_secs;
            let max_age = i64::try_from(cache)
                .unwrap_or(i64::MAX)
                .min(info.seconds_left)
                .min(
                    jwt.as_ref()
                        .map_or(i64::MAX, |j| j.exp - crate::clock::unix_now()),
                );
            // Gateway caches are shared caches (nginx never stores `private` answers):
            // the answer varies with the token, which the cache must key on.
            let control = if max_age > 0 {
                h.insert(VARY, HeaderValue::from_static("Authorization"));
                HeaderValue::from_str(&format!("max-age={max_age}"))
                    .unwrap_or(HeaderValue::from_static("no-store"))
            } else {
                HeaderValue::from_static("no-store")
            };
            h.insert(CACHE_CONTROL, control);
            return r;
        }
        Err(e) => {
            let status = domain_answer(e).forward_auth;
            let mut r = empty(status);
            if status.is_server_error() {
                tracing::warn!(error = %chain(e), "forward-auth failed");
            } else {
                r.headers_mut().insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"invalid_token\""),
                );
            }
            r
        }
    };
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bearer_token_is_read_from_the_authorization_header() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer abc"));
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(AUTHORIZATION, HeaderValue::from_static("bearer   abc "));
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h), None);
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(bearer(&h), None);
    }

    #[test]
    fn any_spelling_a_framework_reads_as_an_identity_header_is_spoofed() {
        for name in [
            "x-auth-username",
            "X_Auth_Username",
            "x_auth_app_key",
            "X-AUTH-TOKEN-TYPE",
            "x-auth_expires-in",
        ] {
            assert_eq!(spoofed([name]), Some(name), "{name}");
        }
        for name in [
            "x-auth-user",
            "authorization",
            "x-auth-usernames",
            "x-forwarded-for",
        ] {
            assert_eq!(spoofed([name]), None, "{name}");
        }
    }
}
