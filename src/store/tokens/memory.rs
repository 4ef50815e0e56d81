//! The in-process token store for the embedded default: the same semantics as Redis
//! (TTLs, single-use refresh, one-time values, the per-user index) in one process.
//! Single-instance only: two servers on it do not share tokens.
use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::super::{AccessRecord, IssuedPair, RefreshRecord, StoreError, TokenHash, TokenStore};

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
}

impl State {
    fn sweep(&mut self, now: Instant) {
        self.access.retain(|_, (_, until)| *until > now);
        self.refresh.retain(|_, (_, until)| *until > now);
        self.once.retain(|_, until| *until > now);
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
    state: Mutex<State>,
}

impl MemoryTokens {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // matters (every update is a single insert or remove), so a poisoned lock is reused.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn lifetime(seconds: u64) -> Duration {
    Duration::from_secs(seconds.max(1))
}

impl TokenStore for MemoryTokens {
    fn name(&self) -> &'static str {
        "in-process"
    }

    async fn access(&self, hash: &TokenHash) -> Result<Option<AccessRecord>, StoreError> {
        let now = Instant::now();
        let state = self.lock();
        Ok(state
            .access
            .get(hash)
            .filter(|(_, until)| *until > now)
            .map(|(record, _)| record.clone()))
    }

    async fn issue(&self, pair: &IssuedPair) -> Result<(), StoreError> {
        let now = Instant::now();
        let ttl = u64::from(pair.access.lifetime);
        let mut state = self.lock();
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
        let mut state = self.lock();
        Ok(state
            .refresh
            .remove(hash)
            .filter(|(_, until)| *until > now)
            .map(|(record, _)| record))
    }

    async fn claim_once(&self, value: &str, ttl_secs: u64) -> Result<bool, StoreError> {
        let now = Instant::now();
        let mut state = self.lock();
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
        let mut state = self.lock();
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
}
