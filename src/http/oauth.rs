//! The standard OAuth 2.0 endpoints: token (RFC 6749), introspection (RFC 7662) and
//! revocation (RFC 7009). They speak OAuth's JSON, not the seed's envelope: their errors
//! take the OAuth column of `error::Answer`.
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{
    HeaderValue, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, PRAGMA, RETRY_AFTER, WWW_AUTHENTICATE,
};
use hyper::{Response, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::body::{non_empty, text, Scalar};
use super::error::{domain_answer, Answer, ApiError};
use super::{Body, Request};
use crate::domain::limits::IpLimited;
use crate::domain::revoke::TokenKind;
use crate::domain::{DomainError, Issued};
use crate::store::{Client, RecordBackend, TokenBackend};

#[derive(Deserialize, Default)]
struct OAuthBody {
    grant_type: Option<Scalar>,
    username: Option<Scalar>,
    password: Option<Scalar>,
    refresh_token: Option<Scalar>,
    token: Option<Scalar>,
    token_type_hint: Option<Scalar>,
    client_id: Option<Scalar>,
    client_secret: Option<Scalar>,
}

fn json_response(status: StatusCode, body: impl serde::Serialize) -> Response<Body> {
    // Serializing a value of these types cannot fail (string keys, no maps of others).
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let mut r = Response::new(Full::new(Bytes::from(bytes)));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

/// The OAuth error answer (RFC 6749 section 5.2) of a failure, also of one refused
/// before its handler (wrong method, body over the cap, unreadable body).
pub fn error_answer(answer: &Answer) -> Response<Body> {
    json_response(answer.oauth_status, json!({ "error": answer.oauth }))
}

/// A handler's failure as an OAuth error answer, with Retry-After and, for a client that
/// authenticated with HTTP Basic and failed, `WWW-Authenticate`.
fn oauth_error(e: &DomainError, basic: bool) -> Response<Body> {
    let answer = domain_answer(e);
    if answer.oauth_status.is_server_error() {
        tracing::warn!(error = %super::error::chain(e), "oauth request failed");
    }
    let mut r = error_answer(&answer);
    if let Some(seconds) = e.retry_after() {
        r.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(seconds));
    }
    if basic && answer.oauth == "invalid_client" {
        r.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"tokencache\""),
        );
    }
    r
}

fn form_decode(text: &str) -> Option<String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("v={text}"))
        .ok()?
        .pop()
        .map(|(_, v)| v)
}

/// The client's credentials: HTTP Basic (each part form-encoded, RFC 6749 2.3.1), or
/// `client_id` / `client_secret` in the body. The flag says whether Basic was used.
fn credentials<T, R>(
    req: &Request<'_, T, R>,
    body: &OAuthBody,
) -> (Option<(String, String)>, bool) {
    if let Some(value) = req
        .parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        if let Some((scheme, encoded)) = value.trim().split_once(' ') {
            if scheme.eq_ignore_ascii_case("basic") {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(encoded.trim())
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok());
                let pair = decoded.and_then(|d| {
                    let (id, secret) = d.split_once(':')?;
                    Some((form_decode(id)?, form_decode(secret)?))
                });
                return (pair, true);
            }
        }
    }
    match (text(&body.client_id), text(&body.client_secret)) {
        (Some(id), Some(secret)) => (Some((id.to_owned(), secret.to_owned())), false),
        _ => (None, false),
    }
}

/// A failure of an OAuth request, and whether the client used HTTP Basic.
struct Failure(DomainError, bool);

impl From<DomainError> for Failure {
    fn from(e: DomainError) -> Self {
        Failure(e, false)
    }
}

/// Turns a handler's failure into an OAuth error answer.
fn answer(result: Result<Response<Body>, Failure>) -> Result<Response<Body>, ApiError> {
    Ok(result.unwrap_or_else(|Failure(e, basic)| oauth_error(&e, basic)))
}

async fn client<T: TokenBackend, R: RecordBackend>(
    req: &Request<'_, T, R>,
    body: &OAuthBody,
) -> Result<std::sync::Arc<Client>, Failure> {
    let (creds, basic) = credentials(req, body);
    let Some((id, secret)) = creds else {
        return Err(Failure(DomainError::InvalidClient, basic));
    };
    req.engine()
        .authenticate_client(&id, &secret, req.client_ip())
        .await
        .map_err(|e| Failure(e, basic))
}

fn parse(req: &Request<'_, impl TokenBackend, impl RecordBackend>) -> Result<OAuthBody, Failure> {
    req.parse::<OAuthBody>()
        .map_err(|_| Failure(DomainError::InvalidParam("body"), false))
}

fn required<'a>(field: &'a Option<Scalar>, name: &'static str) -> Result<&'a str, Failure> {
    non_empty(field).ok_or(Failure(DomainError::InvalidParam(name), false))
}

fn token_answer(issued: &Issued) -> Response<Body> {
    let mut body = json!({
        "access_token": issued.access_token.expose(),
        "token_type": "Bearer",
        "expires_in": issued.expire_time,
    });
    if let Some(refresh) = &issued.refresh_token {
        body["refresh_token"] = json!(refresh.expose());
    }
    json_response(StatusCode::OK, body)
}

/// POST /oauth2/token
pub async fn token<T: TokenBackend, R: RecordBackend>(
    req: &Request<'_, T, R>,
) -> Result<Response<Body>, ApiError> {
    answer(grant(req).await)
}

async fn grant<T: TokenBackend, R: RecordBackend>(
    req: &Request<'_, T, R>,
) -> Result<Response<Body>, Failure> {
    let body = parse(req)?;
    let client = client(req, &body).await?;
    let engine = req.engine();
    let issued = match text(&body.grant_type) {
        Some("password") => {
            let username = required(&body.username, "username")?;
            let password = required(&body.password, "password")?;
            let ip = req.limit_ip(IpLimited::Authorize).await?;
            engine
                .password_grant(&client, username, password)
                .await
                .inspect_err(|e| {
                    tracing::info!(username, client = client.app_key, peer = %ip,
                        request_id = req.request_id, reason = %e, "oauth2 password grant refused");
                })?
        }
        Some("refresh_token") => {
            let token = required(&body.refresh_token, "refresh_token")?;
            engine.refresh_grant(&client, token).await?
        }
        Some("client_credentials") => engine.client_credentials_grant(&client).await?,
        Some(_) => {
            return Ok(json_response(
                StatusCode::BAD_REQUEST,
                json!({"error": "unsupported_grant_type"}),
            ))
        }
        None => return Err(DomainError::InvalidParam("grant_type").into()),
    };
    Ok(token_answer(&issued))
}

/// POST /oauth2/introspect
pub async fn introspect<T: TokenBackend, R: RecordBackend>(
    req: &Request<'_, T, R>,
) -> Result<Response<Body>, ApiError> {
    answer(introspection(req).await)
}

async fn introspection<T: TokenBackend, R: RecordBackend>(
    req: &Request<'_, T, R>,
) -> Result<Response<Body>, Failure> {
    let body = parse(req)?;
    let client = client(req, &body).await?;
    let token = required(&body.token, "token")?;
    let found = req
        .engine()
        .introspect(token, text(&body.token_type_hint))
        .await?;
    if let Some(up) = req.engine().upstream.as_ref().filter(|_| wants_jwt(req)) {
        return signed_introspection(up, &client.app_key, found.as_ref());
    }
    Ok(match &found {
        // A struct, not a `json!` map: no allocation per field on this hot path.
        Some(i) => json_response(StatusCode::OK, Active::of(i)),
        None => json_response(StatusCode::OK, json!({"active": false})),
    })
}

/// Whether the client asked for RFC 9701's signed answer.
fn wants_jwt<T, R>(req: &Request<'_, T, R>) -> bool {
    req.parts
        .headers
        .get_all(hyper::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|m| {
            m.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case(TOKEN_INTROSPECTION_JWT))
        })
}

const TOKEN_INTROSPECTION_JWT: &str = "application/token-introspection+jwt";

/// RFC 9701: the introspection answer as a JWT signed with the upstream key in use,
/// for the client that asked (`aud`). An inactive token's answer holds only
/// `"active": false`: no identity is signed for it.
fn signed_introspection(
    up: &crate::upstream::Upstream,
    client: &str,
    found: Option<&crate::domain::revoke::Introspection>,
) -> Result<Response<Body>, Failure> {
    /// RFC 7662's answer: the active token's, or `{"active": false}`.
    #[derive(serde::Serialize)]
    #[serde(untagged)]
    enum Answer<'a> {
        Active(Active<'a>),
        Inactive { active: bool },
    }
    #[derive(serde::Serialize)]
    struct Claims<'a> {
        iss: &'a str,
        aud: &'a str,
        iat: i64,
        token_introspection: Answer<'a>,
    }
    let claims = Claims {
        iss: &up.settings.issuer,
        aud: client,
        iat: crate::clock::unix_now(),
        token_introspection: match found {
            Some(i) => Answer::Active(Active::of(i)),
            None => Answer::Inactive { active: false },
        },
    };
    let Some(jwt) = up.sign_claims("token-introspection+jwt", &claims) else {
        tracing::warn!("introspection: no signing key for the signed answer");
        return Err(Failure(
            DomainError::Store(crate::store::StoreError::Unavailable {
                store: "signing keys",
                source: "no signing key yet".into(),
            }),
            false,
        ));
    };
    let mut r = Response::new(Full::new(Bytes::from(jwt)));
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(TOKEN_INTROSPECTION_JWT),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

/// RFC 7662's answer for an active token, in this order.
#[derive(serde::Serialize)]
struct Active<'a> {
    active: bool,
    username: &'a str,
    sub: &'a str,
    client_id: &'a str,
    token_type: &'static str,
    exp: i64,
    iat: i64,
    app_token_type: &'a str,
}

impl<'a> Active<'a> {
    fn of(i: &'a crate::domain::revoke::Introspection) -> Self {
        Active {
            active: true,
            username: &i.record.username,
            sub: &i.record.username,
            client_id: &i.record.app_key,
            token_type: match i.kind {
                TokenKind::Access => "Bearer",
                TokenKind::Refresh => "refresh_token",
            },
            exp: i.record.expires,
            iat: i.issued_at,
            app_token_type: &i.record.token_type,
        }
    }
}

/// POST /oauth2/revoke
pub async fn revoke<T: TokenBackend, R: RecordBackend>(
    req: &Request<'_, T, R>,
) -> Result<Response<Body>, ApiError> {
    answer(revocation(req).await)
}

async fn revocation<T: TokenBackend, R: RecordBackend>(
    req: &Request<'_, T, R>,
) -> Result<Response<Body>, Failure> {
    let body = parse(req)?;
    let client = client(req, &body).await?;
    let token = required(&body.token, "token")?;
    req.engine()
        .revoke(&client.app_key, token, text(&body.token_type_hint))
        .await?;
    // RFC 7009: 200 with no content, also for unknown tokens.
    let mut r = Response::new(Full::new(Bytes::new()));
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}
