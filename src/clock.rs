//! The one clock of the server: what "now" is for the domain (expiry, freshness, seconds
//! left) and for the stores (TTLs, index scores, registration times).
use chrono::{NaiveDateTime, Utc};

/// Unix time in whole seconds.
pub fn unix_now() -> i64 {
    Utc::now().timestamp()
}

/// The microsecond within the current second (orders what happens within one).
pub fn subsec_micros() -> u32 {
    Utc::now().timestamp_subsec_micros()
}

/// Now as a UTC date-time (client expiry, registration time).
pub fn utc_now() -> NaiveDateTime {
    Utc::now().naive_utc()
}
