//! The account endpoints of the original oauth2Register: get_verify, check_user,
//! doaction, get_userinfo, update_userinfo.
use serde::{Deserialize, Serialize};

use super::body::{non_empty, text, Scalar};
use super::error::ApiError;
use super::Request;
use crate::domain::limits::IpLimited;
use crate::domain::profile::ProfileUpdate;
use crate::domain::register::Action;
use crate::domain::verify::VerifyRequest;
use crate::store::{RecordBackend, TokenBackend};

type Reply = Result<hyper::Response<super::Body>, ApiError>;

#[derive(Deserialize)]
struct GetVerifyBody {
    lg: Option<Scalar>,
    username: Option<Scalar>,
    flag: Option<Scalar>,
    smsflag: Option<Scalar>,
    appid: Option<Scalar>,
    /// The original's name for the signature.
    signature: Option<Scalar>,
    /// Accepted too, as the token endpoints name their signature.
    token: Option<Scalar>,
}

#[derive(Deserialize)]
struct CheckUserBody {
    username: Option<Scalar>,
}

#[derive(Deserialize)]
struct DoactionBody {
    username: Option<Scalar>,
    password: Option<Scalar>,
    verify: Option<Scalar>,
    flag: Option<Scalar>,
    bundleid: Option<Scalar>,
    appid: Option<Scalar>,
    signature: Option<Scalar>,
}

#[derive(Deserialize)]
struct GetUserinfoBody {
    account: Option<Scalar>,
    appid: Option<Scalar>,
    signature: Option<Scalar>,
}

#[derive(Deserialize)]
struct UpdateUserinfoBody {
    account: Option<Scalar>,
    nickname: Option<Scalar>,
    headurl: Option<Scalar>,
    appid: Option<Scalar>,
    signature: Option<Scalar>,
}

#[derive(Serialize)]
struct IsFind {
    isfind: bool,
}

#[derive(Serialize)]
struct UserInfo<'a> {
    nickname: &'a str,
    headurl: &'a str,
}

/// get_userinfo's data, with the original's field names.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ProfileData<'a> {
    account: &'a str,
    account_type: i32,
    #[serde(rename = "app_key")]
    app_key: &'a str,
    user_info: UserInfo<'a>,
    reg_time: String,
    reg_ip: &'a str,
    #[serde(rename = "bundle_id")]
    bundle_id: &'a str,
}

pub async fn get_verify<T: TokenBackend, R: RecordBackend>(req: &Request<'_, T, R>) -> Reply {
    let ip = req.limit_ip(IpLimited::GetVerify).await?;
    let body: GetVerifyBody = req.parse()?;
    let request = VerifyRequest {
        client_ip: ip,
        lg: text(&body.lg),
        username: text(&body.username),
        flag: text(&body.flag),
        smsflag: text(&body.smsflag),
        appid: text(&body.appid),
        // An empty field is as good as an absent one (`signature: ""` falls back to `token`).
        signature: non_empty(&body.signature).or_else(|| non_empty(&body.token)),
    };
    req.engine().get_verify(&request).await?;
    Ok(req.reply.done())
}

pub async fn check_user<T: TokenBackend, R: RecordBackend>(req: &Request<'_, T, R>) -> Reply {
    req.limit_ip(IpLimited::CheckUser).await?;
    let body: CheckUserBody = req.parse()?;
    let isfind = req.engine().check_user(text(&body.username)).await?;
    Ok(req.reply.ok(IsFind { isfind }))
}

pub async fn doaction<T: TokenBackend, R: RecordBackend>(req: &Request<'_, T, R>) -> Reply {
    let ip = req.limit_ip(IpLimited::DoAction).await?;
    let body: DoactionBody = req.parse()?;
    let action = Action {
        username: text(&body.username),
        password: text(&body.password),
        verify: text(&body.verify),
        flag: text(&body.flag),
        bundleid: text(&body.bundleid),
        appid: text(&body.appid),
        signature: text(&body.signature),
        client_ip: ip,
    };
    req.engine().doaction(&action).await?;
    Ok(req.reply.done())
}

pub async fn get_userinfo<T: TokenBackend, R: RecordBackend>(req: &Request<'_, T, R>) -> Reply {
    let body: GetUserinfoBody = req.parse()?;
    let profile = req
        .engine()
        .user_info(
            text(&body.account),
            text(&body.appid),
            text(&body.signature),
            req.client_ip(),
        )
        .await?;
    Ok(req.reply.ok(ProfileData {
        account: &profile.account,
        account_type: profile.account_type,
        app_key: &profile.app_key,
        user_info: UserInfo {
            nickname: &profile.nickname,
            headurl: &profile.headurl,
        },
        // A legacy row without a registration time: Go's zero time, what the original
        // answered for it.
        reg_time: profile.reg_time.map_or_else(
            || "0001-01-01T00:00:00Z".to_owned(),
            |t| {
                t.and_utc()
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            },
        ),
        reg_ip: &profile.reg_ip,
        bundle_id: &profile.bundle_id,
    }))
}

pub async fn update_userinfo<T: TokenBackend, R: RecordBackend>(req: &Request<'_, T, R>) -> Reply {
    let body: UpdateUserinfoBody = req.parse()?;
    let update = ProfileUpdate {
        client_ip: req.client_ip(),
        account: text(&body.account),
        nickname: text(&body.nickname),
        headurl: text(&body.headurl),
        appid: text(&body.appid),
        signature: text(&body.signature),
    };
    req.engine().update_user_info(&update).await?;
    Ok(req.reply.done())
}
