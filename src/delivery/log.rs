//! The `log` delivery: the code is written to the server log, marked as a development
//! setting. It never fails.
use crate::domain::delivery::{BoxFuture, CodeDelivery, CodeMessage, DeliveryError};

/// Writes each code to the log (the only place a code is ever logged).
#[derive(Debug, Clone, Copy, Default)]
pub struct LogDelivery;

impl CodeDelivery for LogDelivery {
    fn deliver<'a>(
        &'a self,
        message: &'a CodeMessage<'a>,
    ) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            tracing::warn!(
                channel = %message.channel,
                to = message.to,
                purpose = message.purpose.as_str(),
                app_key = message.app_key,
                lang = message.lang,
                code = message.code.expose(),
                "DEVELOPMENT SETTING (--code-delivery log): verification code logged, not sent"
            );
            Ok(())
        })
    }
}
