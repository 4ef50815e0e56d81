//! `ApiError`: every way a request fails at the HTTP layer, and the one function that
//! turns an error into (HTTP status, message id).
use hyper::StatusCode;

use super::envelope::Code;
use crate::domain::delivery::Channel;
use crate::domain::DomainError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// The body could not be read or parsed.
    #[error("bad request body: {0}")]
    BadBody(&'static str),
    #[error("request body over the size cap")]
    TooLarge,
    #[error("no such route")]
    NoRoute,
    /// The route exists with another method (the one allowed).
    #[error("method not allowed")]
    WrongMethod(&'static str),
}

impl ApiError {
    /// The message id and, where it differs from the code's own, the HTTP status.
    pub fn classify(&self) -> (Code, Option<StatusCode>) {
        use DomainError as D;
        match self {
            ApiError::BadBody(_) => (Code::ParamInvalid, None),
            ApiError::TooLarge => (Code::ParamInvalid, Some(StatusCode::PAYLOAD_TOO_LARGE)),
            ApiError::NoRoute => (Code::NotFound, None),
            ApiError::WrongMethod(_) => (Code::Forbidden, Some(StatusCode::METHOD_NOT_ALLOWED)),
            ApiError::Domain(e) => match e {
                D::InvalidParam(_) => (Code::ParamInvalid, None),
                D::UnknownClient | D::NopwdNotAllowed | D::InvalidClient => {
                    (Code::AppidInvalid, None)
                }
                D::ClientExpired => (Code::AppidExpired, None),
                D::BadSignature | D::StaleTime | D::Replay => (Code::SignatureFailed, None),
                D::BadCredentials => (Code::BadCredentials, None),
                D::UserDisabled => (Code::AccountDisabled, None),
                D::InvalidToken => (Code::TokenInvalid, None),
                D::AlreadyExists => (Code::UserExists, None),
                D::NotFound => (Code::NotFound, None),
                D::Store(StoreError::Unavailable { .. }) => (Code::Maintenance, None),
                D::Store(StoreError::Conflict) => (Code::UserExists, None),
                D::Store(StoreError::Corrupt { .. }) | D::Password(_) => (Code::Unknown, None),
                D::CodeTooSoon { .. } => (Code::CodeTooSoon, None),
                D::Delivery {
                    channel: Channel::Mail,
                    ..
                } => (Code::MailFailed, None),
                D::Delivery { .. } => (Code::SmsFailed, None),
                D::PhoneMalformed => (Code::PhoneMalformed, None),
                D::WrongCode => (Code::CodeWrong, None),
                D::UserMissing => (Code::UserMissing, None),
                D::RateLimited { .. } | D::LockedOut { .. } => (Code::Forbidden, None),
            },
        }
    }

    /// Whether the failure is the server's (worth a warning in the log), not the client's.
    pub fn is_server_side(&self) -> bool {
        matches!(
            self,
            ApiError::Domain(DomainError::Store(_))
                | ApiError::Domain(DomainError::Password(_))
                | ApiError::Domain(DomainError::Delivery { .. })
        )
    }

    /// Seconds for a `Retry-After` header: rate limits, lockouts, the code resend lock.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::Domain(e) => e.retry_after(),
            _ => None,
        }
    }
}

/// The error and its sources, one line, for the log: each cause once. Many errors
/// (ours, sea-orm's, sqlx's) already print their source in their own text; a source
/// whose text is already in the line is not added again.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let cause = s.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::chain;

    /// An error whose text may repeat its source's, as sea-orm's and ours do.
    #[derive(Debug)]
    struct Layer {
        text: String,
        source: Option<Box<Layer>>,
    }

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.text)
        }
    }

    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.source
                .as_deref()
                .map(|s| s as &(dyn std::error::Error + 'static))
        }
    }

    fn layer(text: &str, source: Option<Layer>) -> Layer {
        Layer {
            text: text.into(),
            source: source.map(Box::new),
        }
    }

    #[test]
    fn each_cause_appears_once_in_the_chain() {
        let root = "Unknown column 'allow_nopwd' in 'field list'";
        let sqlx = layer(
            &format!("error returned from database: {root}"),
            Some(layer(root, None)),
        );
        let db = layer(&format!("Query Error: {sqlx}"), Some(sqlx));
        let store = layer(&format!("sql unavailable: {db}"), Some(db));
        let line = chain(&store);
        assert_eq!(line.matches(root).count(), 1, "{line}");
        assert_eq!(
            line,
            format!("sql unavailable: Query Error: error returned from database: {root}")
        );
        // Causes that are not in the text are still added.
        let quiet = layer("request failed", Some(layer("timed out", None)));
        assert_eq!(chain(&quiet), "request failed: timed out");
    }
}
