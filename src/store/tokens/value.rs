//! The compact text form of token records as Redis values: `|`-separated fields, the
//! username last and raw, every other field with `%` and `|` escaped. About half the
//! size of JSON, which is most of a token's memory in Redis.
//!
//! access:  `expires|lifetime|app_key|token_type|username`
//! refresh: `expires|lifetime|app_key|token_type|access_hash|family|username`
//! used refresh (a tombstone): `x|` followed by the refresh value it replaced
use std::borrow::Cow;

use crate::store::{AccessRecord, FamilyId, RefreshRecord, RefreshState, TokenHash};

/// What a used refresh token's value starts with.
pub const USED: &str = "x|";

fn escape(field: &str) -> Cow<'_, str> {
    if field.contains(['%', '|']) {
        Cow::Owned(field.replace('%', "%25").replace('|', "%7C"))
    } else {
        Cow::Borrowed(field)
    }
}

fn unescape(field: &str) -> String {
    if field.contains('%') {
        field.replace("%7C", "|").replace("%25", "%")
    } else {
        field.to_owned()
    }
}

fn head(r: &AccessRecord) -> String {
    format!(
        "{}|{}|{}|{}|",
        r.expires,
        r.lifetime,
        escape(&r.app_key),
        escape(&r.token_type)
    )
}

pub fn encode_access(r: &AccessRecord) -> String {
    let mut text = head(r);
    text.push_str(&r.username);
    text
}

pub fn encode_refresh(r: &RefreshRecord) -> String {
    let mut text = head(&r.grant);
    text.push_str(&r.access.encode());
    text.push('|');
    text.push_str(&r.family.encode());
    text.push('|');
    text.push_str(&r.grant.username);
    text
}

fn decode_head<'a>(
    parts: &mut impl Iterator<Item = &'a str>,
) -> Option<(i64, u32, String, String)> {
    let expires = parts.next()?.parse().ok()?;
    let lifetime = parts.next()?.parse().ok()?;
    let app_key = unescape(parts.next()?);
    let token_type = unescape(parts.next()?);
    Some((expires, lifetime, app_key, token_type))
}

pub fn decode_access(text: &str) -> Option<AccessRecord> {
    let mut parts = text.splitn(5, '|');
    let (expires, lifetime, app_key, token_type) = decode_head(&mut parts)?;
    Some(AccessRecord {
        username: parts.next()?.to_owned(),
        app_key,
        token_type,
        expires,
        lifetime,
    })
}

/// A refresh value, live or used.
pub fn decode_refresh_state(text: &str) -> Option<RefreshState> {
    match text.strip_prefix(USED) {
        Some(rest) => decode_refresh(rest).map(RefreshState::Used),
        None => decode_refresh(text).map(RefreshState::Live),
    }
}

fn decode_refresh(text: &str) -> Option<RefreshRecord> {
    let mut parts = text.splitn(7, '|');
    let (expires, lifetime, app_key, token_type) = decode_head(&mut parts)?;
    let access = TokenHash::decode(parts.next()?)?;
    let family = FamilyId::decode(parts.next()?)?;
    Some(RefreshRecord {
        grant: AccessRecord {
            username: parts.next()?.to_owned(),
            app_key,
            token_type,
            expires,
            lifetime,
        },
        access,
        family,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(app_key: &str, token_type: &str, username: &str) -> AccessRecord {
        AccessRecord {
            username: username.into(),
            app_key: app_key.into(),
            token_type: token_type.into(),
            expires: 1_800_000_000,
            lifetime: 3600,
        }
    }

    #[test]
    fn records_survive_the_round_trip_whatever_their_text() {
        for (a, t, u) in [
            ("app", "web", "alice"),
            ("a|b%7C", "|%|", "we|ird%25|user"),
            ("", "", ""),
            ("应用", "网页", "用户"),
        ] {
            let r = record(a, t, u);
            assert_eq!(decode_access(&encode_access(&r)), Some(r.clone()));
            let refresh = RefreshRecord {
                grant: r,
                access: TokenHash::of("x"),
                family: FamilyId([1, 2, 3, 4, 5, 6]),
            };
            let text = encode_refresh(&refresh);
            assert_eq!(
                decode_refresh_state(&text),
                Some(RefreshState::Live(refresh.clone()))
            );
            assert_eq!(
                decode_refresh_state(&format!("{USED}{text}")),
                Some(RefreshState::Used(refresh))
            );
        }
        assert_eq!(
            encode_access(&record("app", "web", "alice")),
            "1800000000|3600|app|web|alice"
        );
    }

    #[test]
    fn garbage_is_refused() {
        assert_eq!(decode_access("nope"), None);
        assert_eq!(decode_access("1|x|a|t|u"), None);
        assert_eq!(decode_refresh_state("1|2|a|t|not-a-hash|AQIDBAUG|u"), None);
        assert_eq!(decode_refresh_state("x|garbage"), None);
    }
}
