//! Verification-code delivery implementations behind `domain::delivery::CodeDelivery`:
//! the server log (the development default) and a webhook (how an operator plugs in a
//! mail or SMS provider). `webhook` is the only module that makes outbound HTTP calls.
pub mod log;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use crate::domain::delivery::CodeDelivery;
use crate::secret::Secret;

/// How codes are delivered (settings).
#[derive(Debug, Clone)]
pub enum DeliverySettings {
    /// Codes go to the server log: a development setting.
    Log,
    /// Codes are POSTed as JSON to `url`.
    Webhook {
        /// May carry a credential in its query: never printed.
        url: Secret,
        /// Bound on one call, connection included.
        timeout: Duration,
        /// Signs every call (HMAC-SHA256) when set.
        secret: Option<Secret>,
    },
}

impl DeliverySettings {
    /// The default: the `Default` impl and the command line's default both read it.
    pub const DEFAULT: DeliverySettings = DeliverySettings::Log;
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The delivery the settings name.
pub fn build(settings: &DeliverySettings) -> Result<Arc<dyn CodeDelivery>, webhook::WebhookError> {
    Ok(match settings {
        DeliverySettings::Log => Arc::new(log::LogDelivery),
        DeliverySettings::Webhook {
            url,
            timeout,
            secret,
        } => Arc::new(webhook::WebhookDelivery::new(
            url.expose(),
            *timeout,
            secret.clone(),
        )?),
    })
}

/// Says at server start how codes are delivered (the log one as a warning).
pub fn announce(settings: &DeliverySettings) {
    match settings {
        DeliverySettings::Log => tracing::warn!(
            "code delivery: log (development setting: verification codes are written to this log, never sent; use --code-delivery webhook in production)"
        ),
        DeliverySettings::Webhook {
            url,
            timeout,
            secret,
        } => {
            // The host only: the path or query may hold a credential.
            let host = url::Url::parse(url.expose())
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_default();
            let signed = secret.is_some();
            tracing::info!(host, ?timeout, signed, "code delivery: webhook");
        }
    }
}
