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
//!
//! With a secret (`--code-webhook-secret`), every call is signed so the receiver can tell
//! it came from this server and is recent: `X-Tokencache-Timestamp` (Unix seconds) and
//! `X-Tokencache-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>`.
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

use crate::domain::delivery::{
    BoxFuture, Channel, CodeDelivery, CodeMessage, DeliveryError, Purpose,
};
use crate::secret::Secret;

/// POSTs codes to one URL.
pub struct WebhookDelivery {
    client: reqwest::Client,
    url: reqwest::Url,
    /// Signs every call when set.
    secret: Option<Secret>,
}

/// The header with the Unix time a call was signed at.
pub const TIMESTAMP_HEADER: &str = "x-tokencache-timestamp";
/// The header with the call's signature, `sha256=<hex>`.
pub const SIGNATURE_HEADER: &str = "x-tokencache-signature";

/// `sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>` (`None` never happens:
/// HMAC takes a key of any length).
pub fn signature(secret: &[u8], timestamp: u64, body: &[u8]) -> Option<String> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).ok()?;
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(format!(
        "sha256={}",
        hex::encode(mac.finalize().into_bytes())
    ))
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
    pub fn new(url: &str, timeout: Duration, secret: Option<Secret>) -> Result<Self, WebhookError> {
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
        Ok(Self {
            client,
            url,
            secret,
        })
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
            let body = serde_json::to_vec(&payload)
                .map_err(|e| DeliveryError::Transport(e.to_string()))?;
            let mut request = self
                .client
                .post(self.url.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json");
            if let Some(secret) = &self.secret {
                let now = crate::clock::unix_now().max(0).unsigned_abs();
                let signed = signature(secret.expose().as_bytes(), now, &body)
                    .ok_or_else(|| DeliveryError::Transport("cannot sign the call".into()))?;
                request = request
                    .header(TIMESTAMP_HEADER, now)
                    .header(SIGNATURE_HEADER, signed);
            }
            let response = request.body(body).send().await.map_err(|e| {
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
