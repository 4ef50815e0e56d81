//! Verification-code delivery, pluggable: the trait the domain calls and the message it
//! hands over. Implementations live in `crate::delivery` (the server log, a webhook).
use std::fmt;
use std::future::Future;
use std::pin::Pin;

use serde::Serialize;

use crate::secret::Secret;

/// A boxed future, so that `CodeDelivery` can be a trait object (delivery is a cold
/// path: one allocation per code sent does not matter).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How a code reaches the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Mail,
    Sms,
    Voice,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Mail => "mail",
            Channel::Sms => "sms",
            Channel::Voice => "voice",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a code is for (`flag` 1 or 2 of get_verify and doaction). A code is kept per
/// username and purpose: a sign-up code cannot change a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    Register,
    ResetPassword,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Register => "register",
            Purpose::ResetPassword => "reset_password",
        }
    }
}

/// One code to deliver.
#[derive(Debug)]
pub struct CodeMessage<'a> {
    pub channel: Channel,
    /// The username: a mail address or a phone number.
    pub to: &'a str,
    /// Six digits; `Secret` so that no `Debug` output shows it.
    pub code: &'a Secret,
    pub purpose: Purpose,
    /// The request's `lg` (language of the message), as sent.
    pub lang: &'a str,
    /// The client the request came through.
    pub app_key: &'a str,
}

/// Why a code could not be handed over. The texts never hold the code or the target URL.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("no answer within the timeout")]
    Timeout,
    #[error("answered HTTP {0}")]
    Status(u16),
    #[error("{0}")]
    Transport(String),
}

/// Hands a verification code to whatever sends it (mail, SMS, voice).
pub trait CodeDelivery: Send + Sync + 'static {
    /// Delivers one code; an error means the user will not get it (1014 / 1015).
    fn deliver<'a>(
        &'a self,
        message: &'a CodeMessage<'a>,
    ) -> BoxFuture<'a, Result<(), DeliveryError>>;
}
