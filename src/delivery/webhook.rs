//! The `webhook` delivery: each code is POSTed as JSON to an operator's URL, which sends
//! it by mail, SMS or voice:
//!
//! ```json
//! {"channel": "mail", "to": "a@example.com", "code": "042137",
//!  "purpose": "register", "lang": "en", "app_key": "demo"}
//! ```
//!
//! A 2xx answer within the timeout is a delivery; anything else (another status, a
//! redirect, a refused connection, the timeout) is a failure the client sees as 1014
//! (mail) or 1015 (SMS, voice). reqwest with rustls: https endpoints work without
//! system OpenSSL.
use std::time::Duration;

use serde::Serialize;

use crate::domain::delivery::{
    BoxFuture, Channel, CodeDelivery, CodeMessage, DeliveryError, Purpose,
};

/// POSTs codes to one URL.
pub struct WebhookDelivery {
    client: reqwest::Client,
    url: reqwest::Url,
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("--code-webhook must be an http:// or https:// URL")]
    Url,
    #[error("cannot build the webhook client: {0}")]
    Client(String),
}

/// The JSON body of a webhook call.
#[derive(Serialize)]
struct Payload<'a> {
    channel: Channel,
    to: &'a str,
    code: &'a str,
    purpose: Purpose,
    lang: &'a str,
    app_key: &'a str,
}

impl WebhookDelivery {
    pub fn new(url: &str, timeout: Duration) -> Result<Self, WebhookError> {
        let url = reqwest::Url::parse(url).map_err(|_| WebhookError::Url)?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(WebhookError::Url);
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // A redirect is not a delivery, and the code must not follow it elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("tokencache/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| WebhookError::Client(e.to_string()))?;
        Ok(Self { client, url })
    }
}

/// A reqwest error and its sources as one line, without the URL.
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

impl CodeDelivery for WebhookDelivery {
    fn deliver<'a>(
        &'a self,
        message: &'a CodeMessage<'a>,
    ) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            let payload = Payload {
                channel: message.channel,
                to: message.to,
                code: message.code.expose(),
                purpose: message.purpose,
                lang: message.lang,
                app_key: message.app_key,
            };
            let response = self
                .client
                .post(self.url.clone())
                .json(&payload)
                .send()
                .await
                .map_err(|e| {
                    if e.is_timeout() {
                        DeliveryError::Timeout
                    } else {
                        DeliveryError::Transport(describe(e))
                    }
                })?;
            let status = response.status();
            if !status.is_success() {
                return Err(DeliveryError::Status(status.as_u16()));
            }
            Ok(())
        })
    }
}
