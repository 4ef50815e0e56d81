//! Request bodies: capped before reading, parsed from JSON or a form into the same
//! structs, with scalars accepted as strings or integers.
use std::fmt;

use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE};
use hyper::http::request::Parts;
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde::Deserialize;

use super::error::ApiError;

/// A scalar field: old clients send `time`, `flag`… as JSON numbers, new ones as strings.
/// Either way the field is kept as its decimal text (what the signature is computed on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scalar(pub String);

impl Scalar {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl Visitor<'_> for ScalarVisitor {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or an integer")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
                Ok(Scalar(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            /// Integers are those of i64, as openapi.yaml says (and as `whole` reads a
            /// float): a larger one is refused.
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                i64::try_from(v)
                    .map(|n| Scalar(n.to_string()))
                    .map_err(|_| E::custom("integer out of range"))
            }
            /// A number written with a fraction of zero (`5.0`) is an integer to JSON
            /// Schema, so to the server too; any other float is refused.
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                whole(v)
                    .map(|n| Scalar(n.to_string()))
                    .ok_or_else(|| E::custom("not an integer"))
            }
        }
        d.deserialize_any(ScalarVisitor)
    }
}

/// The integer a float holds when it has no fraction and fits i64 (as JSON Schema reads
/// `5.0`: the integer 5).
pub(crate) fn whole(v: f64) -> Option<i64> {
    // Strict bounds: both ends round to ±2^63 as floats, which i64 cannot hold (or, for
    // the lower one, a value below i64::MIN written in JSON rounds onto it).
    (v.fract() == 0.0 && v > i64::MIN as f64 && v < i64::MAX as f64).then_some(v as i64)
}

/// `Option<Scalar>` as `Option<&str>`, for the domain's inputs.
pub fn text(field: &Option<Scalar>) -> Option<&str> {
    field.as_ref().map(Scalar::as_str)
}

/// The field as text, `None` when absent or empty.
pub fn non_empty(field: &Option<Scalar>) -> Option<&str> {
    text(field).filter(|t| !t.is_empty())
}

/// Reads the whole body, refusing one over `limit` bytes (413) before it is read.
pub async fn read(body: Incoming, parts: &Parts, limit: usize) -> Result<Bytes, ApiError> {
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::TooLarge);
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(ApiError::TooLarge),
        Err(_) => Err(ApiError::BadBody("unreadable body")),
    }
}

/// Parses a form body when the request says so, JSON otherwise. A body that starts with
/// `{` is JSON whatever the header says (`curl -d '{…}'` labels JSON as a form).
pub fn parse<T: DeserializeOwned>(parts: &Parts, body: &[u8]) -> Result<T, ApiError> {
    let looks_like_json = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    let is_form = !looks_like_json
        && parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| {
                ct.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("application/x-www-form-urlencoded")
            });
    if is_form {
        serde_urlencoded::from_bytes(body).map_err(|_| ApiError::BadBody("malformed form body"))
    } else {
        serde_json::from_slice(body).map_err(|_| ApiError::BadBody("malformed JSON body"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct T {
        time: Option<Scalar>,
    }

    #[test]
    fn a_scalar_is_a_string_or_an_integer() {
        let s: T = serde_json::from_str(r#"{"time":"17"}"#).unwrap();
        assert_eq!(s.time.unwrap().0, "17");
        let n: T = serde_json::from_str(r#"{"time":1700000000}"#).unwrap();
        assert_eq!(n.time.unwrap().0, "1700000000");
        let f: T = serde_urlencoded::from_str("time=42&other=x").unwrap();
        assert_eq!(f.time.unwrap().0, "42");
        assert!(serde_json::from_str::<T>(r#"{"time":{"a":1}}"#).is_err());
        assert!(serde_json::from_str::<T>(r#"{"time":1.5}"#).is_err());
        let null: T = serde_json::from_str(r#"{"time":null}"#).unwrap();
        assert!(null.time.is_none());
    }

    /// What JSON Schema calls an integer (openapi.yaml: i64), no more and no less.
    #[test]
    fn a_scalar_integer_is_an_i64_written_with_or_without_a_zero_fraction() {
        let parse = |json: &str| serde_json::from_str::<T>(json).map(|t| t.time.unwrap().0);
        assert_eq!(parse(r#"{"time":378888.0}"#).unwrap(), "378888");
        assert_eq!(parse(r#"{"time":-5.0}"#).unwrap(), "-5");
        assert_eq!(
            parse(r#"{"time":9223372036854775807}"#).unwrap(),
            "9223372036854775807"
        );
        assert_eq!(
            parse(r#"{"time":-9223372036854775808}"#).unwrap(),
            "-9223372036854775808"
        );
        assert!(parse(r#"{"time":9223372036854775808}"#).is_err());
        assert!(parse(r#"{"time":-9223372036854775809}"#).is_err());
        assert!(parse(r#"{"time":1e19}"#).is_err());
    }
}
