//! The token endpoints of the original oauth2Server (authorize, authorize_nopwd,
//! check_token, refresh_token) and logout, all in the seed's envelope.
use serde::{Deserialize, Serialize};

use super::body::{text, Scalar};
use super::error::ApiError;
use super::Request;
use crate::domain::authorize::Login;
use crate::domain::limits::IpLimited;
use crate::domain::Issued;
use crate::store::{RecordBackend, TokenBackend};

#[derive(Deserialize)]
struct AuthorizeBody {
    appid: Option<Scalar>,
    token_type: Option<Scalar>,
    username: Option<Scalar>,
    password: Option<Scalar>,
    time: Option<Scalar>,
    token: Option<Scalar>,
}

#[derive(Deserialize)]
struct CheckTokenBody {
    token: Option<Scalar>,
}

#[derive(Deserialize)]
struct RefreshBody {
    refresh_token: Option<Scalar>,
}

#[derive(Deserialize)]
struct LogoutBody {
    token: Option<Scalar>,
    /// `true` (or "true", 1, "1"): every token of the user, not just this pair.
    all: Option<Flag>,
}

/// A boolean that old-style clients may send as a string or a number.
#[derive(Debug)]
struct Flag(bool);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Num(i64),
            Float(f64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bool(b) => Ok(Flag(b)),
            Raw::Num(n) => Ok(Flag(n != 0)),
            Raw::Float(v) => super::body::whole(v)
                .map(|n| Flag(n != 0))
                .ok_or_else(|| serde::de::Error::custom("not a boolean")),
            Raw::Text(t) => match t.as_str() {
                "true" | "1" => Ok(Flag(true)),
                "false" | "0" | "" => Ok(Flag(false)),
                _ => Err(serde::de::Error::custom("not a boolean")),
            },
        }
    }
}

#[derive(Serialize)]
struct LogoutData {
    revoked: u64,
}

#[derive(Serialize)]
struct IssuedData<'a> {
    access_token: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<&'a str>,
    expire_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<&'a str>,
}

impl Issued {
    fn data(&self, with_username: bool) -> IssuedData<'_> {
        IssuedData {
            access_token: self.access_token.expose(),
            refresh_token: self.refresh_token.as_ref().map(|t| t.expose()),
            expire_time: self.expire_time.to_string(),
            username: with_username.then_some(self.username.as_str()),
        }
    }
}

#[derive(Serialize)]
struct CheckedData<'a> {
    username: &'a str,
    expire_time: String,
    app_key: &'a str,
    token_type: &'a str,
}

pub async fn authorize<T: TokenBackend, R: RecordBackend>(
    req: &Request<'_, T, R>,
    with_password: bool,
) -> Result<hyper::Response<super::Body>, ApiError> {
    let body: AuthorizeBody = req.parse()?;
    let ip = req.client_ip();
    let login = Login {
        client_ip: ip,
        appid: text(&body.appid),
        token_type: text(&body.token_type),
        username: text(&body.username),
        password: if with_password {
            text(&body.password)
        } else {
            None
        },
        time: text(&body.time),
        signature: text(&body.token),
    };
    let result = async {
        // The per-IP limit guards password guessing; authorize_nopwd is a trusted
        // backend's.
        if with_password {
            req.limit_ip(IpLimited::Authorize).await?;
        }
        req.engine().authorize(&login, with_password).await
    }
    .await;
    match result {
        Ok(issued) => Ok(req.reply.ok(issued.data(false))),
        Err(e) => {
            // Failed logins leave a trace with who and from where, never the password.
            tracing::info!(
                username = login.username.unwrap_or(""),
                appid = login.appid.unwrap_or(""),
                peer = %ip,
                request_id = req.request_id,
                reason = %e,
                "login refused"
            );
            Err(e.into())
        }
    }
}

pub async fn check_token<T: TokenBackend, R: RecordBackend>(
    req: &Request<'_, T, R>,
) -> Result<hyper::Response<super::Body>, ApiError> {
    let body: CheckTokenBody = req.parse()?;
    let info = req.engine().check_token(text(&body.token)).await?;
    Ok(req.reply.ok(CheckedData {
        username: &info.username,
        expire_time: info.seconds_left.to_string(),
        app_key: &info.app_key,
        token_type: &info.token_type,
    }))
}

pub async fn refresh_token<T: TokenBackend, R: RecordBackend>(
    req: &Request<'_, T, R>,
) -> Result<hyper::Response<super::Body>, ApiError> {
    let body: RefreshBody = req.parse()?;
    let issued = req.engine().refresh(text(&body.refresh_token)).await?;
    Ok(req.reply.ok(issued.data(true)))
}

pub async fn logout<T: TokenBackend, R: RecordBackend>(
    req: &Request<'_, T, R>,
) -> Result<hyper::Response<super::Body>, ApiError> {
    let body: LogoutBody = req.parse()?;
    let all = body.all.is_some_and(|f| f.0);
    let revoked = req.engine().logout(text(&body.token), all).await?;
    Ok(req.reply.ok(LogoutData { revoked }))
}
