//! The in-process token store for the embedded default: the same semantics as Redis
//! (TTLs, single-use refresh, one-time values, the per-user index) in one process.
//! Single-instance only: two servers on it do not share tokens.
use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::super::{
    AccessRecord, Counter, IssuedPair, RefreshRecord, StoreError, TokenHash, TokenStore,
};
use crate::secret::Secret;

/// How many writes between two sweeps of expired entries.
const SWEEP_EVERY: u32 = 1024;

#[derive(Default)]
struct State {
    access: HashMap<TokenHash, (AccessRecord, Instant)>,
    refresh: HashMap<TokenHash, (RefreshRecord, Instant)>,
    once: HashMap<String, Instant>,
    /// username → hashes of the user's tokens (access and refresh).
    by_user: HashMap<String, HashSet<TokenHash>>,
    writes: u32,
    counters: HashMap<String, (u64, Instant)>,
    locks: HashMap<String, Instant>,
    codes: HashMap<String, (Secret, Instant)>,
}

impl State {
    fn sweep(&mut self, now: Instant) {
        self.access.retain(|_, (_, until)| *until > now);
        self.refresh.retain(|_, (_, until)| *until > now);
        self.once.retain(|_, until| *until > now);
        self.counters.retain(|_, (_, until)| *until > now);
        self.locks.retain(|_, until| *until > now);
        self.codes.retain(|_, (_, until)| *until > now);
        let (access, refresh) = (&self.access, &self.refresh);
        self.by_user.retain(|_, set| {
            set.retain(|h| access.contains_key(h) || refresh.contains_key(h));
            !set.is_empty()
        });
    }

    fn wrote(&mut self, now: Instant) {
        self.writes += 1;
        if self.writes >= SWEEP_EVERY {
            self.writes = 0;
            self.sweep(now);
        }
    }
}

/// The in-process `TokenStore`.
#[derive(Default)]
pub struct MemoryTokens {
    /// Boxed: the maps would make `Tokens::Memory` far larger than `Tokens::Redis`.
    state: Mutex<Box<State>>,
}

impl MemoryTokens {
    pub fn new() -> Self {
        Self::default()
    }

    fn guard(&self) -> MutexGuard<'_, Box<State>> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // matters (every update is a single insert or remove), so a poisoned lock is reused.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn lifetime(seconds: u64) -> Duration {
    Duration::from_secs(seconds.max(1))
}

/// Whole seconds from `now` to `until`, rounded up as Redis rounds a TTL.
fn seconds_until(until: Instant, now: Instant) -> u64 {
    let left = until.saturating_duration_since(now);
    left.as_secs() + u64::from(left.subsec_nanos() > 0)
}

impl TokenStore for MemoryTokens {
    async fn access(&self, hash: &TokenHash) -> Result<Option<AccessRecord>, StoreError> {
        let now = Instant::now();
        let state = self.guard();
        Ok(state
            .access
            .get(hash)
            .filter(|(_, until)| *until > now)
            .map(|(record, _)| record.clone()))
    }

    async fn issue(&self, pair: &IssuedPair) -> Result<(), StoreError> {
        let now = Instant::now();
        let ttl = u64::from(pair.access.lifetime);
        let mut state = self.guard();
        let user = state
            .by_user
            .entry(pair.access.username.clone())
            .or_default();
        user.insert(pair.access_hash);
        user.insert(pair.refresh_hash);
        state
            .access
            .insert(pair.access_hash, (pair.access.clone(), now + lifetime(ttl)));
        state.refresh.insert(
            pair.refresh_hash,
            (pair.refresh.clone(), now + lifetime(ttl * 2)),
        );
        state.wrote(now);
        Ok(())
    }

    async fn take_refresh(&self, hash: &TokenHash) -> Result<Option<RefreshRecord>, StoreError> {
        let now = Instant::now();
        let mut state = self.guard();
        Ok(state
            .refresh
            .remove(hash)
            .filter(|(_, until)| *until > now)
            .map(|(record, _)| record))
    }

    async fn claim_once(&self, value: &str, ttl_secs: u64) -> Result<bool, StoreError> {
        let now = Instant::now();
        let mut state = self.guard();
        if state.once.get(value).is_some_and(|until| *until > now) {
            return Ok(false);
        }
        state
            .once
            .insert(value.to_owned(), now + lifetime(ttl_secs));
        state.wrote(now);
        Ok(true)
    }

    async fn revoke_user(&self, username: &str) -> Result<u64, StoreError> {
        let now = Instant::now();
        let mut state = self.guard();
        let Some(hashes) = state.by_user.remove(username) else {
            return Ok(0);
        };
        let mut removed = 0;
        for hash in hashes {
            if state.access.remove(&hash).is_some_and(|(_, u)| u > now) {
                removed += 1;
            }
            if state.refresh.remove(&hash).is_some_and(|(_, u)| u > now) {
                removed += 1;
            }
        }
        Ok(removed)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn hit(&self, counter: &str, window_secs: u64) -> Result<Counter, StoreError> {
        let now = Instant::now();
        let mut state = self.guard();
        let entry = state
            .counters
            .entry(counter.to_owned())
            .or_insert((0, now + lifetime(window_secs)));
        if entry.1 <= now {
            *entry = (0, now + lifetime(window_secs));
        }
        entry.0 += 1;
        let counted = Counter {
            count: entry.0,
            ttl: seconds_until(entry.1, now),
        };
        state.wrote(now);
        Ok(counted)
    }

    async fn peek(&self, counter: &str) -> Result<Counter, StoreError> {
        let now = Instant::now();
        let state = self.guard();
        Ok(state
            .counters
            .get(counter)
            .filter(|(_, until)| *until > now)
            .map(|(count, until)| Counter {
                count: *count,
                ttl: seconds_until(*until, now),
            })
            .unwrap_or_default())
    }

    async fn clear(&self, counter: &str) -> Result<(), StoreError> {
        self.guard().counters.remove(counter);
        Ok(())
    }

    async fn lock(&self, name: &str, ttl_secs: u64) -> Result<Option<u64>, StoreError> {
        let now = Instant::now();
        let mut state = self.guard();
        if let Some(until) = state.locks.get(name).filter(|until| **until > now) {
            return Ok(Some(seconds_until(*until, now).max(1)));
        }
        state
            .locks
            .insert(name.to_owned(), now + lifetime(ttl_secs));
        state.wrote(now);
        Ok(None)
    }

    async fn unlock(&self, name: &str) -> Result<(), StoreError> {
        self.guard().locks.remove(name);
        Ok(())
    }

    async fn put_code(&self, name: &str, code: &Secret, ttl_secs: u64) -> Result<(), StoreError> {
        let now = Instant::now();
        let mut state = self.guard();
        state
            .codes
            .insert(name.to_owned(), (code.clone(), now + lifetime(ttl_secs)));
        state.wrote(now);
        Ok(())
    }

    async fn code(&self, name: &str) -> Result<Option<Secret>, StoreError> {
        let now = Instant::now();
        let state = self.guard();
        Ok(state
            .codes
            .get(name)
            .filter(|(_, until)| *until > now)
            .map(|(code, _)| code.clone()))
    }

    async fn take_code(&self, name: &str) -> Result<bool, StoreError> {
        let now = Instant::now();
        let mut state = self.guard();
        Ok(state
            .codes
            .remove(name)
            .is_some_and(|(_, until)| until > now))
    }
}
