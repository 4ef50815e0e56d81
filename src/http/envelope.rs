//! The `{state, code, error, data}` envelope, the message ids and their texts, and the
//! HTTP status that follows each id.
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde::Serialize;

/// The body type of every response.
pub type Body = Full<Bytes>;

/// The seed's message ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Ok = 0,
    Maintenance = 1,
    AccountDisabled = 2,
    AppidExpired = 3,
    Unknown = 101,
    TokenInvalid = 102,
    Forbidden = 405,
    ParamInvalid = 1001,
    AppidInvalid = 1002,
    SignatureFailed = 1003,
    BadCredentials = 1004,
    NotFound = 1006,
    UserExists = 1012,
    CodeTooSoon = 1013,
    MailFailed = 1014,
    SmsFailed = 1015,
    PhoneMalformed = 1016,
    CodeWrong = 1017,
    UserMissing = 1018,
}

/// Which texts the `error` field carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    En,
    Zh,
}

impl Code {
    pub const fn id(self) -> u32 {
        self as u32
    }

    /// The message text for the code in a language (Chinese: the seed's texts).
    pub fn text(self, lang: Lang) -> &'static str {
        use Code::*;
        match (self, lang) {
            (Ok, Lang::En) => "ok",
            (Ok, Lang::Zh) => "默认返回值",
            (Maintenance, Lang::En) => "server under maintenance, try again later",
            (Maintenance, Lang::Zh) => "服务器维护中 请稍后再试",
            (AccountDisabled, Lang::En) => "account disabled",
            (AccountDisabled, Lang::Zh) => "帐号被禁用",
            (AppidExpired, Lang::En) => "appid expired",
            (AppidExpired, Lang::Zh) => "appid过期",
            (Unknown, Lang::En) => "unknown error",
            (Unknown, Lang::Zh) => "未知错误",
            (TokenInvalid, Lang::En) => "token invalid or expired",
            (TokenInvalid, Lang::Zh) => "Token失效",
            (Forbidden, Lang::En) => "access blocked",
            (Forbidden, Lang::Zh) => "禁止访问",
            (ParamInvalid, Lang::En) => "parameter invalid",
            (ParamInvalid, Lang::Zh) => "参数无效",
            (AppidInvalid, Lang::En) => "appid invalid",
            (AppidInvalid, Lang::Zh) => "appid参数无效",
            (SignatureFailed, Lang::En) => "signature check failed",
            (SignatureFailed, Lang::Zh) => "密文校验失败",
            (BadCredentials, Lang::En) => "username does not exist or password wrong",
            (BadCredentials, Lang::Zh) => "用户名不存在或密码错误",
            (NotFound, Lang::En) => "not found",
            (NotFound, Lang::Zh) => "未找到",
            (UserExists, Lang::En) => "user already exists",
            (UserExists, Lang::Zh) => "用户已存在",
            (CodeTooSoon, Lang::En) => "verification code requested too often",
            // The seed's text, typo (平凡 for 频繁) included: old clients may match on it.
            (CodeTooSoon, Lang::Zh) => "验证码请求过于平凡",
            (MailFailed, Lang::En) => "mail sending failed",
            (MailFailed, Lang::Zh) => "邮箱发送失败",
            (SmsFailed, Lang::En) => "SMS sending failed",
            (SmsFailed, Lang::Zh) => "手机发送失败",
            (PhoneMalformed, Lang::En) => "phone number malformed",
            (PhoneMalformed, Lang::Zh) => "手机号格式有问题",
            (CodeWrong, Lang::En) => "verification code wrong",
            (CodeWrong, Lang::Zh) => "验证码错误",
            (UserMissing, Lang::En) => "user does not exist",
            (UserMissing, Lang::Zh) => "用户不存在",
        }
    }

    /// The HTTP status that goes with the code, so gateways and load testers see failures.
    pub const fn status(self) -> StatusCode {
        use Code::*;
        match self {
            Ok => StatusCode::OK,
            Maintenance => StatusCode::SERVICE_UNAVAILABLE,
            AccountDisabled | AppidExpired => StatusCode::FORBIDDEN,
            Unknown => StatusCode::INTERNAL_SERVER_ERROR,
            TokenInvalid | AppidInvalid | SignatureFailed | BadCredentials => {
                StatusCode::UNAUTHORIZED
            }
            Forbidden => StatusCode::TOO_MANY_REQUESTS,
            ParamInvalid => StatusCode::BAD_REQUEST,
            NotFound => StatusCode::NOT_FOUND,
            UserExists => StatusCode::CONFLICT,
            CodeTooSoon => StatusCode::TOO_MANY_REQUESTS,
            MailFailed | SmsFailed => StatusCode::BAD_GATEWAY,
            PhoneMalformed | CodeWrong => StatusCode::BAD_REQUEST,
            UserMissing => StatusCode::NOT_FOUND,
        }
    }
}

#[derive(Serialize)]
struct Envelope<'a, D> {
    state: bool,
    code: u32,
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<D>,
}

/// How replies are shaped for this request: its language and the compatibility setting.
#[derive(Debug, Clone, Copy)]
pub struct Replier {
    pub lang: Lang,
    /// Answer HTTP 200 whatever the code (legacy clients).
    pub compat_http_200: bool,
}

impl Replier {
    /// A success envelope with data.
    pub fn ok<D: Serialize>(&self, data: D) -> Response<Body> {
        self.envelope(Code::Ok, StatusCode::OK, Some(data))
    }

    /// A success envelope without data (`{"state": true, "code": 0, "error": "ok"}`).
    pub fn done(&self) -> Response<Body> {
        self.envelope::<()>(Code::Ok, StatusCode::OK, None)
    }

    /// A failure envelope with the code's own status, or `status` when given (413, 405).
    pub fn fail(&self, code: Code, status: Option<StatusCode>) -> Response<Body> {
        self.envelope::<()>(code, status.unwrap_or_else(|| code.status()), None)
    }

    fn envelope<D: Serialize>(
        &self,
        code: Code,
        status: StatusCode,
        data: Option<D>,
    ) -> Response<Body> {
        let body = Envelope {
            state: code == Code::Ok,
            code: code.id(),
            error: code.text(self.lang),
            data,
        };
        // Serialising plain structs of strings and numbers cannot fail.
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let mut response = Response::new(Full::new(Bytes::from(bytes)));
        *response.status_mut() = if self.compat_http_200 {
            StatusCode::OK
        } else {
            status
        };
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_status_that_follows_it() {
        assert_eq!(Code::TokenInvalid.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(Code::Maintenance.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(Code::ParamInvalid.status(), StatusCode::BAD_REQUEST);
        assert_eq!(Code::AppidExpired.status(), StatusCode::FORBIDDEN);
        assert_eq!(Code::Ok.text(Lang::Zh), "默认返回值");
        assert_eq!(Code::CodeTooSoon.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(Code::SmsFailed.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(Code::UserMissing.id(), 1018);
    }
}
