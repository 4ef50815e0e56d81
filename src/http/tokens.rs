//! The token endpoints of the original oauth2Server: authorize, authorize_nopwd,
//! check_token, refresh_token.
use serde::{Deserialize, Serialize};

use super::body::{text, Scalar};
use super::error::ApiError;
use super::Request;
use crate::domain::authorize::Login;
use crate::domain::limits::IpLimited;
use crate::domain::Issued;
use crate::store::{RecordStore, TokenStore};

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

#[derive(Serialize)]
struct IssuedData<'a> {
    access_token: &'a str,
    refresh_token: &'a str,
    expire_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<&'a str>,
}

impl Issued {
    fn data(&self, with_username: bool) -> IssuedData<'_> {
        IssuedData {
            access_token: self.access_token.expose(),
            refresh_token: self.refresh_token.expose(),
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

pub async fn authorize<T: TokenStore, R: RecordStore>(
    req: &Request<'_, T, R>,
    with_password: bool,
) -> Result<hyper::Response<super::Body>, ApiError> {
    let body: AuthorizeBody = req.parse()?;
    let login = Login {
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
    let ip = req.client_ip();
    // The per-IP limit guards password guessing; authorize_nopwd is a trusted backend's.
    let limited = match with_password {
        true => req.engine().limit_ip(IpLimited::Authorize, ip).await,
        false => Ok(()),
    };
    let result = match limited {
        Ok(()) => req.engine().authorize(&login, with_password).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(issued) => Ok(req.reply.ok(issued.data(false))),
        Err(e) => {
            // Failed logins leave a trace with who and from where, never the password.
            tracing::info!(
                username = login.username.unwrap_or(""),
                appid = login.appid.unwrap_or(""),
                peer = %ip,
                reason = %e,
                "login refused"
            );
            Err(e.into())
        }
    }
}

pub async fn check_token<T: TokenStore, R: RecordStore>(
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

pub async fn refresh_token<T: TokenStore, R: RecordStore>(
    req: &Request<'_, T, R>,
) -> Result<hyper::Response<super::Body>, ApiError> {
    let body: RefreshBody = req.parse()?;
    let issued = req.engine().refresh(text(&body.refresh_token)).await?;
    Ok(req.reply.ok(issued.data(true)))
}
