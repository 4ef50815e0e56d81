//! The binary form of token records as Redis values: postcard (varint numbers,
//! length-prefixed strings, fixed-size hashes) of the enum `Stored`, so the first byte
//! is the kind of value:
//!
//! | first byte | value |
//! |---|---|
//! | 0 | access: `expires`, `lifetime`, `app_key`, `token_type`, `username` |
//! | 1 | refresh: the same, then the access hash (16 bytes) and the family (6 bytes) |
//! | 2 | used refresh (a tombstone): a refresh value with its first byte set to 2 |
//! | 3 | refresh of a client (`/oauth2/token`): redeemed only with the client's credentials |
//! | 4 | used refresh of a client: a value of kind 3 with its first byte set to 4 |
//! | 5 | revoked (one byte): what a revocation leaves in place of a token until its TTL |
//!
//! Short values are most of what a token costs Redis: an access value of at most 28
//! bytes (short names: 24 to 28) fits Redis's smallest string object, 104 bytes of
//! `MEMORY USAGE` with its key, where the earlier `|`-separated text took 120.
//!
//! The order of the variants and of the fields is the format: change it only by adding
//! a variant. The unit tests pin the bytes.
use serde::{Deserialize, Serialize};

use crate::store::{AccessRecord, FamilyId, RefreshRecord, RefreshState, TokenHash};

/// The first byte of a live refresh value.
pub const LIVE_REFRESH: u8 = 1;
/// The first byte of a used refresh value.
pub const USED_REFRESH: u8 = 2;
/// The first byte of a live refresh value that only its client may redeem.
pub const LIVE_CLIENT_REFRESH: u8 = 3;
/// The first byte of such a value, used.
pub const USED_CLIENT_REFRESH: u8 = 4;
/// A revoked token's whole value: kept until the token would have expired, so that
/// nothing that writes only where no value is (the legacy import's `SET NX`) can bring
/// it back.
pub const REVOKED: &[u8] = &[5];

/// Whether a value is a revoked token's.
pub fn is_revoked(bytes: &[u8]) -> bool {
    bytes == REVOKED
}

#[derive(Serialize, Deserialize)]
struct Grant<'a> {
    expires: i64,
    lifetime: u32,
    app_key: &'a str,
    token_type: &'a str,
    username: &'a str,
}

#[derive(Serialize, Deserialize)]
struct Pair<'a> {
    #[serde(borrow)]
    grant: Grant<'a>,
    access: [u8; 16],
    family: [u8; 6],
}

#[derive(Serialize, Deserialize)]
enum Stored<'a> {
    #[serde(borrow)]
    Access(Grant<'a>),
    #[serde(borrow)]
    Refresh(Pair<'a>),
    #[serde(borrow)]
    UsedRefresh(Pair<'a>),
    #[serde(borrow)]
    ClientRefresh(Pair<'a>),
    #[serde(borrow)]
    UsedClientRefresh(Pair<'a>),
    /// `REVOKED`: never decoded as a record.
    Revoked,
}

impl<'a> Grant<'a> {
    fn of(r: &'a AccessRecord) -> Self {
        Self {
            expires: r.expires,
            lifetime: r.lifetime,
            app_key: &r.app_key,
            token_type: &r.token_type,
            username: &r.username,
        }
    }

    fn record(&self) -> AccessRecord {
        AccessRecord {
            username: self.username.to_owned(),
            app_key: self.app_key.to_owned(),
            token_type: self.token_type.to_owned(),
            expires: self.expires,
            lifetime: self.lifetime,
        }
    }
}

impl Pair<'_> {
    fn record(&self, client_only: bool) -> RefreshRecord {
        RefreshRecord {
            grant: self.grant.record(),
            access: TokenHash(self.access),
            family: FamilyId(self.family),
            client_only,
        }
    }
}

fn encode(value: &Stored) -> Vec<u8> {
    // Serialising borrowed strings and integers into a Vec cannot fail.
    postcard::to_allocvec(value).unwrap_or_default()
}

/// The value, or `None` when the bytes are not exactly one value of this format.
fn decode(bytes: &[u8]) -> Option<Stored<'_>> {
    match postcard::take_from_bytes(bytes) {
        Ok((value, [])) => Some(value),
        _ => None,
    }
}

pub fn encode_access(r: &AccessRecord) -> Vec<u8> {
    encode(&Stored::Access(Grant::of(r)))
}

pub fn encode_refresh(r: &RefreshRecord) -> Vec<u8> {
    let pair = Pair {
        grant: Grant::of(&r.grant),
        access: r.access.0,
        family: r.family.0,
    };
    encode(&if r.client_only {
        Stored::ClientRefresh(pair)
    } else {
        Stored::Refresh(pair)
    })
}

pub fn decode_access(bytes: &[u8]) -> Option<AccessRecord> {
    match decode(bytes)? {
        Stored::Access(g) => Some(g.record()),
        _ => None,
    }
}

/// A refresh value, live or used.
pub fn decode_refresh_state(bytes: &[u8]) -> Option<RefreshState> {
    match decode(bytes)? {
        Stored::Refresh(p) => Some(RefreshState::Live(p.record(false))),
        Stored::UsedRefresh(p) => Some(RefreshState::Used(p.record(false))),
        Stored::ClientRefresh(p) => Some(RefreshState::Live(p.record(true))),
        Stored::UsedClientRefresh(p) => Some(RefreshState::Used(p.record(true))),
        Stored::Access(_) | Stored::Revoked => None,
    }
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

    fn refresh(r: AccessRecord) -> RefreshRecord {
        RefreshRecord {
            grant: r,
            access: TokenHash([7; 16]),
            family: FamilyId([1, 2, 3, 4, 5, 6]),
            client_only: false,
        }
    }

    /// What the Lua script does to a refresh value it spends.
    fn spent(mut bytes: Vec<u8>) -> Vec<u8> {
        bytes[0] = match bytes[0] {
            LIVE_REFRESH => USED_REFRESH,
            LIVE_CLIENT_REFRESH => USED_CLIENT_REFRESH,
            other => panic!("not a live refresh value: {other}"),
        };
        bytes
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
            for client_only in [false, true] {
                let refresh = RefreshRecord {
                    client_only,
                    ..refresh(r.clone())
                };
                let bytes = encode_refresh(&refresh);
                assert_eq!(
                    decode_refresh_state(&bytes),
                    Some(RefreshState::Live(refresh.clone()))
                );
                assert_eq!(
                    decode_refresh_state(&spent(bytes)),
                    Some(RefreshState::Used(refresh))
                );
            }
        }
    }

    #[test]
    fn the_bytes_are_pinned() {
        // kind 0, expires 1_800_000_000 (zigzag varint), lifetime 3600 (varint), then
        // three length-prefixed strings.
        assert_eq!(
            encode_access(&record("app", "web", "alice")),
            b"\x00\x80\xc8\xce\xb4\x0d\x90\x1c\x03app\x03web\x05alice"
        );
        let bytes = encode_refresh(&refresh(record("a", "t", "u")));
        assert_eq!(&bytes[..1], [LIVE_REFRESH]);
        assert_eq!(&bytes[bytes.len() - 22..bytes.len() - 6], [7; 16]);
        assert_eq!(&bytes[bytes.len() - 6..], [1, 2, 3, 4, 5, 6]);
        let client = RefreshRecord {
            client_only: true,
            ..refresh(record("a", "t", "u"))
        };
        assert_eq!(encode_refresh(&client)[0], LIVE_CLIENT_REFRESH);
        assert_eq!(encode_refresh(&client)[1..], bytes[1..]);
        // A bench-sized access value stays under Redis's 28-byte step.
        assert!(encode_access(&record("bench", "bench", "bench99")).len() <= 28);
    }

    #[test]
    fn the_revoked_value_is_its_kind_alone() {
        assert_eq!(encode(&Stored::Revoked), REVOKED);
        assert!(is_revoked(REVOKED));
        assert_eq!(decode_access(REVOKED), None);
        assert_eq!(decode_refresh_state(REVOKED), None);
    }

    #[test]
    fn garbage_is_refused() {
        assert_eq!(decode_access(b"nope"), None);
        assert_eq!(decode_access(b""), None);
        // The old text form, a refresh value read as an access value, and the reverse.
        assert_eq!(decode_access(b"1800000000|3600|app|web|alice"), None);
        let r = refresh(record("a", "t", "u"));
        assert_eq!(decode_access(&encode_refresh(&r)), None);
        assert_eq!(decode_refresh_state(&encode_access(&r.grant)), None);
        // Truncated, or with bytes after the value.
        let bytes = encode_refresh(&r);
        assert_eq!(decode_refresh_state(&bytes[..bytes.len() - 1]), None);
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode_refresh_state(&longer), None);
        // Not UTF-8.
        assert_eq!(decode_access(b"\x00\x02\x02\x01\xff\x00\x00"), None);
    }
}
