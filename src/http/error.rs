//! `ApiError`: every way a request fails at the HTTP layer, and the one mapping of every
//! failure to its answer in each dialect: the envelope (message id and status), OAuth's
//! error format, forward-auth's status.
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

/// How one failure reads in each dialect the server speaks. Every dialect follows from
/// the same kind of failure: a store that is down is 503 everywhere, a corrupt stored
/// value (a server fault that retrying does not mend) 500 everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// The envelope's message id.
    pub code: Code,
    /// The envelope's HTTP status (the code's own, or 413 / 405 for the transport).
    pub status: StatusCode,
    /// The OAuth endpoints' error (RFC 6749 section 5.2) and status.
    pub oauth: &'static str,
    pub oauth_status: StatusCode,
    /// Forward-auth's status (a gateway reads the status alone): 401 denies, 5xx is an
    /// error the gateway must not read as a pass.
    pub forward_auth: StatusCode,
}

impl Answer {
    /// A failure with the code's own status in the envelope.
    const fn of(code: Code, oauth: &'static str, oauth_status: u16, forward_auth: u16) -> Answer {
        Answer {
            code,
            status: code.status(),
            oauth,
            oauth_status: status(oauth_status),
            forward_auth: status(forward_auth),
        }
    }

    /// The same with another envelope status than the code's own.
    const fn with_status(self, envelope_status: u16) -> Answer {
        Answer {
            status: status(envelope_status),
            ..self
        }
    }
}

/// A status from its number, for the table below (every number there is a valid status).
const fn status(n: u16) -> StatusCode {
    match StatusCode::from_u16(n) {
        Ok(s) => s,
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl ApiError {
    /// The one mapping of every failure to every dialect: one arm per kind, no
    /// catch-all, so a new kind cannot compile without its answers.
    pub fn answer(&self) -> Answer {
        use Code as C;
        match self {
            ApiError::BadBody(_) => Answer::of(C::ParamInvalid, "invalid_request", 400, 401),
            ApiError::TooLarge => {
                Answer::of(C::ParamInvalid, "invalid_request", 413, 401).with_status(413)
            }
            ApiError::NoRoute => Answer::of(C::NotFound, "invalid_request", 404, 401),
            ApiError::WrongMethod(_) => {
                Answer::of(C::Forbidden, "invalid_request", 405, 401).with_status(405)
            }
            ApiError::Domain(e) => domain_answer(e),
        }
    }

    /// Whether the failure is the server's (worth a warning in the log), not the client's:
    /// every store failure (a unique-key conflict the domain did not expect included),
    /// and whatever answers 5xx in any dialect.
    pub fn is_server_side(&self) -> bool {
        let a = self.answer();
        matches!(self, ApiError::Domain(DomainError::Store(_)))
            || a.status.is_server_error()
            || a.oauth_status.is_server_error()
    }

    /// Seconds for a `Retry-After` header: rate limits, lockouts, the code resend lock.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::Domain(e) => e.retry_after(),
            _ => None,
        }
    }
}

/// The answers to a failure of the domain (see `ApiError::answer`).
pub fn domain_answer(e: &DomainError) -> Answer {
    use Code as C;
    use DomainError as D;
    match e {
        D::InvalidParam(_) => Answer::of(C::ParamInvalid, "invalid_request", 400, 401),
        D::UnknownClient | D::InvalidClient => {
            Answer::of(C::AppidInvalid, "invalid_client", 401, 401)
        }
        D::NopwdNotAllowed => Answer::of(C::AppidInvalid, "unauthorized_client", 400, 401),
        D::ClientExpired => Answer::of(C::AppidExpired, "invalid_client", 401, 401),
        D::BadSignature | D::StaleTime | D::Replay => {
            Answer::of(C::SignatureFailed, "invalid_request", 400, 401)
        }
        D::BadCredentials | D::UserDisabled => Answer::of(
            if matches!(e, D::UserDisabled) {
                C::AccountDisabled
            } else {
                C::BadCredentials
            },
            "invalid_grant",
            400,
            401,
        ),
        D::InvalidToken => Answer::of(C::TokenInvalid, "invalid_grant", 400, 401),
        D::AlreadyExists | D::Store(StoreError::Conflict) => {
            Answer::of(C::UserExists, "invalid_request", 400, 401)
        }
        D::NotFound | D::OtherSpelling { .. } => {
            Answer::of(C::NotFound, "invalid_request", 400, 401)
        }
        D::Store(StoreError::Unavailable { .. }) => {
            Answer::of(C::Maintenance, "temporarily_unavailable", 503, 503)
        }
        D::Store(StoreError::Corrupt { .. }) | D::Password(_) => {
            Answer::of(C::Unknown, "server_error", 500, 500)
        }
        D::CodeTooSoon { .. } => Answer::of(C::CodeTooSoon, "access_denied", 429, 401),
        D::Delivery {
            channel: Channel::Mail,
            ..
        } => Answer::of(C::MailFailed, "temporarily_unavailable", 503, 502),
        D::Delivery {
            channel: Channel::Sms | Channel::Voice,
            ..
        } => Answer::of(C::SmsFailed, "temporarily_unavailable", 503, 502),
        D::PhoneMalformed => Answer::of(C::PhoneMalformed, "invalid_request", 400, 401),
        D::WrongCode => Answer::of(C::CodeWrong, "invalid_request", 400, 401),
        D::UserMissing => Answer::of(C::UserMissing, "invalid_request", 400, 401),
        // The same lockout and per-IP limit as authorize.
        D::RateLimited { .. } | D::LockedOut { .. } => {
            Answer::of(C::Forbidden, "access_denied", 429, 401)
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
    use super::*;
    use crate::domain::delivery::DeliveryError;
    use crate::domain::password::PasswordError;

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

    /// Every kind of failure in every dialect: (envelope code, envelope status, OAuth
    /// error, OAuth status, forward-auth status).
    #[test]
    fn every_failure_has_one_answer_in_every_dialect() {
        let unavailable = || StoreError::Unavailable {
            store: "redis",
            source: "down".into(),
        };
        let corrupt = || StoreError::Corrupt {
            store: "redis",
            what: "access token",
            detail: "x".into(),
        };
        let delivery = |channel| DomainError::Delivery {
            channel,
            source: DeliveryError::Timeout,
        };
        type Expected = (u32, u16, &'static str, u16, u16);
        let table: Vec<(ApiError, Expected)> = vec![
            (
                ApiError::BadBody("x"),
                (1001, 400, "invalid_request", 400, 401),
            ),
            (ApiError::TooLarge, (1001, 413, "invalid_request", 413, 401)),
            (ApiError::NoRoute, (1006, 404, "invalid_request", 404, 401)),
            (
                ApiError::WrongMethod("POST"),
                (405, 405, "invalid_request", 405, 401),
            ),
            (
                DomainError::InvalidParam("x").into(),
                (1001, 400, "invalid_request", 400, 401),
            ),
            (
                DomainError::UnknownClient.into(),
                (1002, 401, "invalid_client", 401, 401),
            ),
            (
                DomainError::InvalidClient.into(),
                (1002, 401, "invalid_client", 401, 401),
            ),
            (
                DomainError::NopwdNotAllowed.into(),
                (1002, 401, "unauthorized_client", 400, 401),
            ),
            (
                DomainError::ClientExpired.into(),
                (3, 403, "invalid_client", 401, 401),
            ),
            (
                DomainError::BadSignature.into(),
                (1003, 401, "invalid_request", 400, 401),
            ),
            (
                DomainError::StaleTime.into(),
                (1003, 401, "invalid_request", 400, 401),
            ),
            (
                DomainError::Replay.into(),
                (1003, 401, "invalid_request", 400, 401),
            ),
            (
                DomainError::BadCredentials.into(),
                (1004, 401, "invalid_grant", 400, 401),
            ),
            (
                DomainError::UserDisabled.into(),
                (2, 403, "invalid_grant", 400, 401),
            ),
            (
                DomainError::InvalidToken.into(),
                (102, 401, "invalid_grant", 400, 401),
            ),
            (
                DomainError::AlreadyExists.into(),
                (1012, 409, "invalid_request", 400, 401),
            ),
            (
                DomainError::NotFound.into(),
                (1006, 404, "invalid_request", 400, 401),
            ),
            (
                DomainError::Store(unavailable()).into(),
                (1, 503, "temporarily_unavailable", 503, 503),
            ),
            (
                DomainError::Store(StoreError::Conflict).into(),
                (1012, 409, "invalid_request", 400, 401),
            ),
            (
                DomainError::Store(corrupt()).into(),
                (101, 500, "server_error", 500, 500),
            ),
            (
                DomainError::Password(PasswordError::Hash("x".into())).into(),
                (101, 500, "server_error", 500, 500),
            ),
            (
                DomainError::CodeTooSoon { retry_after: 5 }.into(),
                (1013, 429, "access_denied", 429, 401),
            ),
            (
                delivery(Channel::Mail).into(),
                (1014, 502, "temporarily_unavailable", 503, 502),
            ),
            (
                delivery(Channel::Sms).into(),
                (1015, 502, "temporarily_unavailable", 503, 502),
            ),
            (
                delivery(Channel::Voice).into(),
                (1015, 502, "temporarily_unavailable", 503, 502),
            ),
            (
                DomainError::PhoneMalformed.into(),
                (1016, 400, "invalid_request", 400, 401),
            ),
            (
                DomainError::WrongCode.into(),
                (1017, 400, "invalid_request", 400, 401),
            ),
            (
                DomainError::UserMissing.into(),
                (1018, 404, "invalid_request", 400, 401),
            ),
            (
                DomainError::RateLimited { retry_after: 5 }.into(),
                (405, 429, "access_denied", 429, 401),
            ),
            (
                DomainError::LockedOut { retry_after: 5 }.into(),
                (405, 429, "access_denied", 429, 401),
            ),
        ];
        for (e, (code, status, oauth, oauth_status, forward)) in table {
            let a = e.answer();
            assert_eq!(
                (
                    a.code.id(),
                    a.status.as_u16(),
                    a.oauth,
                    a.oauth_status.as_u16(),
                    a.forward_auth.as_u16()
                ),
                (code, status, oauth, oauth_status, forward),
                "{e:?}"
            );
        }
    }
}
