//! The in-process token store for the embedded default: the same semantics as Redis
//! (TTLs, single-use refresh with replay marks, one-time values, the per-user index of
//! pairs) in one process. Single-instance only: two servers on it do not share tokens.
use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::super::{
    AccessRecord, Codes, Counter, Counters, FamilyId, Issue, IssuedPair, ParentPair, RefreshState,
    Revocation, StoreError, TokenHash, TokenStore,
};
use crate::secret::Secret;

/// How many writes between two sweeps of expired entries.
const SWEEP_EVERY: u32 = 1024;

/// A pair's entry in the user's index.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Member {
    access: TokenHash,
    refresh: Option<TokenHash>,
    family: FamilyId,
    /// When the pair ends, and the order it was filed in: the cap drops the pairs that
    /// end first (the oldest, for pairs of one lifetime), as Redis's index scores them.
    end: Instant,
    filed: u64,
}

#[derive(Default)]
struct State {
    access: HashMap<TokenHash, (AccessRecord, Instant)>,
    refresh: HashMap<TokenHash, (RefreshState, Instant)>,
    once: HashMap<String, Instant>,
    by_user: HashMap<String, HashSet<Member>>,
    writes: u32,
    /// Pairs filed so far (their order).
    filed: u64,
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
            set.retain(|m| {
                access.contains_key(&m.access)
                    || m.refresh.is_some_and(|r| refresh.contains_key(&r))
            });
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

    /// Removes the members `select` picks and their tokens; counts live tokens removed.
    fn revoke(&mut self, username: &str, select: impl Fn(&Member) -> bool) -> u64 {
        let now = Instant::now();
        let Some(set) = self.by_user.get_mut(username) else {
            return 0;
        };
        let chosen: Vec<Member> = set.iter().filter(|m| select(m)).copied().collect();
        for m in &chosen {
            set.remove(m);
        }
        if set.is_empty() {
            self.by_user.remove(username);
        }
        let mut removed = 0;
        for m in chosen {
            if self.access.remove(&m.access).is_some_and(|(_, u)| u > now) {
                removed += 1;
            }
            if let Some(r) = m.refresh {
                if self.refresh.remove(&r).is_some_and(|(_, u)| u > now) {
                    removed += 1;
                }
            }
        }
        removed
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
        // Every update is a single insert or remove, so a lock poisoned by a panic
        // elsewhere holds consistent maps and is reused.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn lifetime(seconds: u64) -> Duration {
    Duration::from_secs(seconds.max(1))
}

/// A copy of the entry under `key` if it has not expired.
fn live<K, Q, V>(map: &HashMap<K, (V, Instant)>, key: &Q, now: Instant) -> Option<V>
where
    K: std::borrow::Borrow<Q> + std::hash::Hash + Eq,
    Q: std::hash::Hash + Eq + ?Sized,
    V: Clone,
{
    map.get(key)
        .filter(|(_, until)| *until > now)
        .map(|(value, _)| value.clone())
}

/// Whole seconds from `now` to `until`, rounded up as Redis rounds a TTL.
fn seconds_until(until: Instant, now: Instant) -> u64 {
    let left = until.saturating_duration_since(now);
    left.as_secs() + u64::from(left.subsec_nanos() > 0)
}

impl TokenStore for MemoryTokens {
    fn name(&self) -> &'static str {
        "in-process"
    }

    async fn access(&self, hash: &TokenHash) -> Result<Option<AccessRecord>, StoreError> {
        Ok(live(&self.guard().access, hash, Instant::now()))
    }

    async fn issue(
        &self,
        pair: &IssuedPair,
        parent: Option<&ParentPair>,
        cap: usize,
    ) -> Result<Issue, StoreError> {
        // Everything under one lock: the parent check, the filing, the cap.
        let now = Instant::now();
        let ttl = u64::from(pair.access.lifetime);
        let mut state = self.guard();
        let Some((refresh_hash, record)) = &pair.refresh else {
            // A client's own token: no user's index, no cap.
            state
                .access
                .insert(pair.access_hash, (pair.access.clone(), now + lifetime(ttl)));
            state.wrote(now);
            return Ok(Issue::Issued);
        };
        let username = &pair.access.username;
        if let Some(parent) = parent {
            let filed = state.by_user.get(username).is_some_and(|set| {
                set.iter().any(|m| {
                    m.access == parent.access
                        && m.refresh == Some(parent.refresh)
                        && m.family == parent.family
                        && m.end > now
                })
            });
            if !filed {
                return Ok(Issue::ParentRevoked);
            }
        }
        state.filed += 1;
        let member = Member {
            access: pair.access_hash,
            refresh: Some(*refresh_hash),
            family: pair.family,
            end: now + lifetime(ttl * 2),
            filed: state.filed,
        };
        state
            .by_user
            .entry(username.clone())
            .or_default()
            .insert(member);
        state
            .access
            .insert(pair.access_hash, (pair.access.clone(), now + lifetime(ttl)));
        state.refresh.insert(
            *refresh_hash,
            (RefreshState::Live(record.clone()), now + lifetime(ttl * 2)),
        );
        if cap > 0 {
            let set = &state.by_user[username];
            if set.len() > cap {
                let mut members: Vec<Member> = set.iter().copied().collect();
                members.sort_by_key(|m| (m.end, m.filed));
                let oldest: HashSet<Member> =
                    members[..members.len() - cap].iter().copied().collect();
                state.revoke(username, |m| oldest.contains(m));
            }
        }
        state.wrote(now);
        Ok(Issue::Issued)
    }

    async fn refresh(&self, hash: &TokenHash) -> Result<Option<RefreshState>, StoreError> {
        Ok(live(&self.guard().refresh, hash, Instant::now()))
    }

    async fn take_refresh(
        &self,
        hash: &TokenHash,
        by_client: bool,
    ) -> Result<Option<RefreshState>, StoreError> {
        let now = Instant::now();
        let mut state = self.guard();
        let Some((entry, _)) = state.refresh.get_mut(hash).filter(|(_, u)| *u > now) else {
            return Ok(None);
        };
        let seen = entry.clone();
        match &seen {
            RefreshState::Live(record) if !record.client_only || by_client => {}
            _ => return Ok(Some(seen)),
        }
        if let RefreshState::Live(record) = &seen {
            // Kept, marked used, until it would have expired: a replay is recognised.
            *entry = RefreshState::Used(record.clone());
        }
        Ok(Some(seen))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

impl Revocation for MemoryTokens {
    async fn revoke_user(&self, username: &str) -> Result<u64, StoreError> {
        Ok(self.guard().revoke(username, |_| true))
    }

    async fn revoke_pair(&self, username: &str, access: &TokenHash) -> Result<u64, StoreError> {
        let mut state = self.guard();
        let mut revoked = state.revoke(username, |m| m.access == *access);
        // A token filed nowhere (a client's own) is revoked alone.
        if state
            .access
            .remove(access)
            .is_some_and(|(_, u)| u > Instant::now())
        {
            revoked += 1;
        }
        Ok(revoked)
    }

    async fn revoke_family(&self, username: &str, family: &FamilyId) -> Result<u64, StoreError> {
        Ok(self.guard().revoke(username, |m| m.family == *family))
    }

    /// Revoked tokens are removed here, and there is no replica to confirm.
    async fn confirm_revoked(&self, _hash: &TokenHash) -> Result<bool, StoreError> {
        Ok(false)
    }
}

impl Counters for MemoryTokens {
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
}

impl Codes for MemoryTokens {
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
        Ok(live(&self.guard().codes, name, Instant::now()))
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
