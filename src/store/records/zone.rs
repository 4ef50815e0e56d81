//! The time zone of the database's DATETIME columns. xxjwxc/oauth2 wrote them in its
//! server's local time (its DSN said `loc=Local`), so an adopted database's
//! `expire_time`, `reg_time` and token `expires` are local times of that zone; tokencache
//! reads and writes them in the same zone and works in UTC everywhere else.
use std::str::FromStr;

use chrono::{FixedOffset, LocalResult, NaiveDateTime, Offset, TimeZone, Utc};

/// A zone: `UTC`, a fixed offset (`+08:00`), or an IANA name (`Asia/Shanghai`), whose
/// daylight-saving rules are applied to each date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DbZone {
    #[default]
    Utc,
    Fixed(FixedOffset),
    Named(chrono_tz::Tz),
}

impl FromStr for DbZone {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("utc") || s == "Z" {
            return Ok(DbZone::Utc);
        }
        if let Some(offset) = parse_offset(s) {
            return Ok(DbZone::Fixed(offset));
        }
        s.parse::<chrono_tz::Tz>().map(DbZone::Named).map_err(|_| {
            format!("unknown time zone {s:?}: give UTC, an offset like +08:00, or an IANA name like Asia/Shanghai")
        })
    }
}

impl std::fmt::Display for DbZone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DbZone::Utc => f.write_str("UTC"),
            DbZone::Fixed(o) => write!(f, "{o}"),
            DbZone::Named(tz) => f.write_str(tz.name()),
        }
    }
}

/// `+08:00`, `-0530`, `+8`.
fn parse_offset(s: &str) -> Option<FixedOffset> {
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let (hours, minutes) = match rest.split_once(':') {
        Some((h, m)) => (h, m),
        None if rest.len() == 4 => rest.split_at(2),
        None => (rest, "0"),
    };
    let hours: i32 = hours.parse().ok()?;
    let minutes: i32 = minutes.parse().ok()?;
    if hours > 23 || minutes > 59 {
        return None;
    }
    FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))
}

impl DbZone {
    /// The UTC time of a local time read from the database. A local time that occurs
    /// twice (clocks set back) is taken at its first occurrence; one that never occurs
    /// (clocks set forward) at the offset in force just before the gap.
    pub fn to_utc(&self, local: NaiveDateTime) -> NaiveDateTime {
        match self {
            DbZone::Utc => local,
            DbZone::Fixed(offset) => local - offset.fix(),
            DbZone::Named(tz) => match tz.from_local_datetime(&local) {
                LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t.naive_utc(),
                LocalResult::None => {
                    let before =
                        tz.offset_from_utc_datetime(&(local - chrono::Duration::hours(12)));
                    local - before.fix()
                }
            },
        }
    }

    /// The local time to write for a UTC time.
    pub fn from_utc(&self, utc: NaiveDateTime) -> NaiveDateTime {
        match self {
            DbZone::Utc => utc,
            DbZone::Fixed(offset) => Utc
                .from_utc_datetime(&utc)
                .with_timezone(offset)
                .naive_local(),
            DbZone::Named(tz) => Utc.from_utc_datetime(&utc).with_timezone(tz).naive_local(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    #[test]
    fn zones_parse_from_the_three_spellings() {
        assert_eq!("UTC".parse::<DbZone>().unwrap(), DbZone::Utc);
        assert_eq!(
            "+08:00".parse::<DbZone>().unwrap(),
            DbZone::Fixed(FixedOffset::east_opt(8 * 3600).unwrap())
        );
        assert_eq!(
            "-0530".parse::<DbZone>().unwrap(),
            DbZone::Fixed(FixedOffset::west_opt(5 * 3600 + 1800).unwrap())
        );
        assert_eq!(
            "Asia/Shanghai".parse::<DbZone>().unwrap(),
            DbZone::Named(chrono_tz::Asia::Shanghai)
        );
        assert!("Mars/Olympus".parse::<DbZone>().is_err());
        assert!("+25:00".parse::<DbZone>().is_err());
    }

    #[test]
    fn local_times_convert_to_utc_and_back() {
        let shanghai: DbZone = "Asia/Shanghai".parse().unwrap();
        assert_eq!(
            shanghai.to_utc(at("2026-06-01 08:00:00")),
            at("2026-06-01 00:00:00")
        );
        assert_eq!(
            shanghai.from_utc(at("2026-06-01 00:00:00")),
            at("2026-06-01 08:00:00")
        );
        let plus8: DbZone = "+08:00".parse().unwrap();
        assert_eq!(
            plus8.to_utc(at("2026-06-01 08:00:00")),
            at("2026-06-01 00:00:00")
        );
        assert_eq!(
            plus8.from_utc(at("2026-06-01 00:00:00")),
            at("2026-06-01 08:00:00")
        );
        assert_eq!(
            DbZone::Utc.to_utc(at("2026-06-01 08:00:00")),
            at("2026-06-01 08:00:00")
        );
    }

    #[test]
    fn daylight_saving_is_applied_per_date() {
        let berlin: DbZone = "Europe/Berlin".parse().unwrap();
        // Winter +01:00, summer +02:00.
        assert_eq!(
            berlin.to_utc(at("2026-01-15 12:00:00")),
            at("2026-01-15 11:00:00")
        );
        assert_eq!(
            berlin.to_utc(at("2026-07-15 12:00:00")),
            at("2026-07-15 10:00:00")
        );
        // 02:30 on 2026-03-29 does not exist: read at the winter offset.
        assert_eq!(
            berlin.to_utc(at("2026-03-29 02:30:00")),
            at("2026-03-29 01:30:00")
        );
        // 02:30 on 2026-10-25 happens twice: the first one (summer time).
        assert_eq!(
            berlin.to_utc(at("2026-10-25 02:30:00")),
            at("2026-10-25 00:30:00")
        );
    }
}
