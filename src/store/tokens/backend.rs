//! `Tokens`: the token store the server picked at start, Redis or in-process, behind the
//! token traits by a static dispatch.
use super::memory::MemoryTokens;
use super::redis::RedisTokens;
use super::{
    AccessRecord, Codes, Counter, Counters, FamilyId, Issue, IssuedPair, ParentPair, RefreshState,
    Revocation, TokenHash, TokenStore,
};
use crate::secret::Secret;
use crate::store::StoreError;

/// The token store chosen from the configuration: Redis when `REDIS_URL` is set, the
/// in-process store otherwise. An enum rather than `dyn`: a static dispatch per call.
pub enum Tokens {
    Redis(RedisTokens),
    Memory(MemoryTokens),
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            Tokens::Redis($s) => $call.await,
            Tokens::Memory($s) => $call.await,
        }
    };
}

impl TokenStore for Tokens {
    fn name(&self) -> &'static str {
        match self {
            Tokens::Redis(s) => s.name(),
            Tokens::Memory(s) => s.name(),
        }
    }
    async fn ping(&self) -> Result<(), StoreError> {
        dispatch!(self, s => s.ping())
    }
    async fn access(&self, hash: &TokenHash) -> Result<Option<AccessRecord>, StoreError> {
        dispatch!(self, s => s.access(hash))
    }
    async fn issue(
        &self,
        pair: &IssuedPair,
        parent: Option<&ParentPair>,
        cap: usize,
    ) -> Result<Issue, StoreError> {
        dispatch!(self, s => s.issue(pair, parent, cap))
    }
    async fn refresh(&self, hash: &TokenHash) -> Result<Option<RefreshState>, StoreError> {
        dispatch!(self, s => s.refresh(hash))
    }
    async fn take_refresh(
        &self,
        hash: &TokenHash,
        by_client: bool,
    ) -> Result<Option<RefreshState>, StoreError> {
        dispatch!(self, s => s.take_refresh(hash, by_client))
    }
}

impl Revocation for Tokens {
    async fn revoke_user(&self, username: &str) -> Result<u64, StoreError> {
        dispatch!(self, s => s.revoke_user(username))
    }
    async fn revoke_pair(&self, username: &str, access: &TokenHash) -> Result<u64, StoreError> {
        dispatch!(self, s => s.revoke_pair(username, access))
    }
    async fn revoke_family(&self, username: &str, family: &FamilyId) -> Result<u64, StoreError> {
        dispatch!(self, s => s.revoke_family(username, family))
    }
    async fn confirm_revoked(&self, hash: &TokenHash) -> Result<bool, StoreError> {
        dispatch!(self, s => s.confirm_revoked(hash))
    }
}

impl Counters for Tokens {
    async fn claim_once(&self, value: &str, ttl_secs: u64) -> Result<bool, StoreError> {
        dispatch!(self, s => s.claim_once(value, ttl_secs))
    }
    async fn hit(&self, counter: &str, window_secs: u64) -> Result<Counter, StoreError> {
        dispatch!(self, s => s.hit(counter, window_secs))
    }
    async fn peek(&self, counter: &str) -> Result<Counter, StoreError> {
        dispatch!(self, s => s.peek(counter))
    }
    async fn clear(&self, counter: &str) -> Result<(), StoreError> {
        dispatch!(self, s => s.clear(counter))
    }
    async fn lock(&self, name: &str, ttl_secs: u64) -> Result<Option<u64>, StoreError> {
        dispatch!(self, s => s.lock(name, ttl_secs))
    }
    async fn unlock(&self, name: &str) -> Result<(), StoreError> {
        dispatch!(self, s => s.unlock(name))
    }
}

impl Codes for Tokens {
    async fn put_code(&self, name: &str, code: &Secret, ttl_secs: u64) -> Result<(), StoreError> {
        dispatch!(self, s => s.put_code(name, code, ttl_secs))
    }
    async fn code(&self, name: &str) -> Result<Option<Secret>, StoreError> {
        dispatch!(self, s => s.code(name))
    }
    async fn take_code(&self, name: &str) -> Result<bool, StoreError> {
        dispatch!(self, s => s.take_code(name))
    }
}
