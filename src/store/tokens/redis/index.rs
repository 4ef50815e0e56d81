//! A user's index of live pairs, and every operation on it: filing a new pair (with the
//! session cap and a refreshed pair's parent check) and revoking pairs (a user's, one
//! pair, one login's family). Each is a Lua script on the index alone (`u:<name>`, one
//! key: atomic on one node and on a cluster, and served whole by a slot's old or new
//! owner while the slot is being moved); a pair's tokens are written before it is filed
//! and revoked after it is taken out:
//!
//! - **issue**: the pair's two keys are written (`SET … EX`), then the `ISSUE` script
//!   files its member, unless it is refreshed from a parent that is no longer live; past
//!   the cap it marks the oldest members as being revoked in the same step. On one node
//!   the keys and the filing are one `MULTI`/`EXEC` transaction, and the script revokes
//!   the trimmed pairs' tokens itself (a failover keeps the new pair and the trim
//!   together or neither: with the trim a separate step, a replica cut then a master
//!   kill once left a user over the cap, the history checker's rule 4); on a cluster
//!   the filing waits for replicas as revocations do (`WAIT`, 503 when too few confirm)
//!   and the trimmed pairs' tokens are revoked after it (waiting likewise). A refused
//!   pair's keys are deleted (nobody ever saw them); only then does `issue` answer.
//! - **revoke**: the `TAKE` script marks the chosen members (every one, for a user) as
//!   being revoked (score -1, out of the live scores, which are the pairs' ends) and
//!   answers every member so marked; each of their tokens is overwritten with the revoked
//!   value (`SET … XX KEEPTTL`, a tombstone until the token would have expired); then
//!   `ZREM` removes them, and the revocation answers.
//!
//! Why this is race-free, for any request between two steps:
//!
//! - A pair filed before a revocation's `TAKE` has its keys written already: `TAKE` takes
//!   its member and the revocation revokes its keys. A pair filed after `TAKE` is either
//!   a new login (which came after the revocation, and lives, as it should) or a refreshed
//!   one whose parent `TAKE` took: the `ISSUE` script refuses it, its keys are deleted and
//!   the refresh answers 102.
//! - Two trims never take the same members, or the newest: each `ISSUE` trims the index
//!   as it is at that moment, to exactly the cap.
//! - Between `TAKE` and the tombstones the revoked tokens still answer: the revocation has
//!   not answered yet. A check that starts after it answered finds the tombstone.
//! - A tombstone, not a deletion: `import-legacy-tokens` writes with `SET NX`, so a rerun
//!   cannot bring a revoked token back.
//! - Lost between the steps (a connection, a master): keys written but never filed, or
//!   filed then refused and not deleted, belong to a pair nobody received; members marked
//!   but not yet revoked stay marked, and every later revocation of the user (a retry of
//!   the one that answered 503, say) finishes them first.
//! - A master lost after the answer: on one node a replica has the pair's keys and its
//!   member together or neither (one transaction); on a cluster the member of every pair
//!   answered is on a replica (with `--redis-wait-replicas` above 0), so the promoted
//!   one lists it. Without that a pair's tokens could survive where its member did not,
//!   and a logout-all after the failover missed them: the history checker caught it
//!   under a replica cut then a master kill on a cluster (8 violations in one run).
//!
//! The members: `p` and the pair's access hash, refresh hash and family (39 bytes), or
//! `a` and an access hash (17 bytes) for an access token carried over alone from the
//! original's tables. A pair without a refresh token (a client's own) is filed nowhere.
use redis::Cmd;

use super::conn::RedisConn;
use super::ops::{Ops, Replication};
use super::RedisTokens;
use crate::store::tokens::keys::kind;
use crate::store::tokens::value;
use crate::store::{FamilyId, Issue, IssuedPair, ParentPair, StoreError, TokenHash};

/// Files a member (KEYS[1] the index; ARGV: the member, the seconds the pair lives, the
/// parent's member or '', the cap or 0, and on one node the access and refresh keys'
/// prefixes and the revoked value, else ''). Live members are scored with the pair's end
/// by Redis's own clock, so the lowest score is the oldest pair (of one lifetime)
/// whichever instance filed it; members being revoked are scored -1. Answers {'ok',
/// trimmed members…} (the caller revokes them), {'trimmed', members…} (revoked here, on
/// one node: their tokens overwritten with the revoked value and their members removed
/// in the same step as the filing, so no failover can keep the new pair without the
/// trim) or {'parent-revoked'}.
const ISSUE: &str = r"
local function b64(s)
  local abc = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = string.byte(s, i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local chars = 4
    if not b then chars = 2 elseif not c then chars = 3 end
    for j = 1, chars do
      local k = math.floor(n / 2 ^ (18 - 6 * (j - 1))) % 64
      out[#out + 1] = string.sub(abc, k + 1, k + 1)
    end
  end
  return table.concat(out)
end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], 0, now)
if ARGV[3] ~= '' then
  local parent = redis.call('ZSCORE', KEYS[1], ARGV[3])
  if not parent or tonumber(parent) <= 0 then
    return {'parent-revoked'}
  end
end
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
if redis.call('TTL', KEYS[1]) < ttl then
  redis.call('EXPIRE', KEYS[1], ttl)
end
local out = {'ok'}
local cap = tonumber(ARGV[4])
if cap > 0 then
  local n = redis.call('ZCOUNT', KEYS[1], '(0', '+inf')
  if n > cap then
    for _, m in ipairs(redis.call('ZRANGE', KEYS[1], '(0', '+inf', 'BYSCORE', 'LIMIT', 0, n - cap)) do
      out[#out + 1] = m
      if ARGV[5] ~= '' then
        redis.call('SET', ARGV[5] .. b64(string.sub(m, 2, 17)), ARGV[7], 'XX', 'KEEPTTL')
        if string.sub(m, 1, 1) == 'p' then
          redis.call('SET', ARGV[6] .. b64(string.sub(m, 18, 33)), ARGV[7], 'XX', 'KEEPTTL')
        end
        redis.call('ZREM', KEYS[1], m)
      else
        redis.call('ZADD', KEYS[1], -1, m)
      end
    end
    if ARGV[5] ~= '' then
      out[1] = 'trimmed'
    end
  end
end
return out
";

/// Marks members as being revoked (KEYS[1] the index; ARGV[1] 'all', 'pair' with ARGV[2]
/// an access hash, or 'family' with ARGV[2] a family id): their score becomes -1, out of
/// the live ones. Answers every member being revoked (earlier unfinished revocations'
/// too).
const TAKE: &str = r"
local out = {}
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], '(0', '+inf', 'BYSCORE')) do
  local kind = string.sub(m, 1, 1)
  local pick = ARGV[1] == 'all'
  if ARGV[1] == 'pair' and (kind == 'p' or kind == 'a') then
    pick = string.sub(m, 2, 17) == ARGV[2]
  elseif ARGV[1] == 'family' and kind == 'p' then
    pick = string.sub(m, 34, 39) == ARGV[2]
  end
  if pick then
    out[#out + 1] = -1
    out[#out + 1] = m
  end
end
for i = 1, #out, 1000 do
  redis.call('ZADD', KEYS[1], unpack(out, i, math.min(i + 999, #out)))
end
return redis.call('ZRANGE', KEYS[1], '-inf', '(0', 'BYSCORE')
";

/// A pair as its member names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Member {
    pub access: TokenHash,
    /// `None` for an access token carried over alone.
    pub refresh: Option<(TokenHash, FamilyId)>,
}

impl Member {
    pub fn bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(39);
        match &self.refresh {
            Some((refresh, family)) => {
                bytes.push(b'p');
                bytes.extend_from_slice(&self.access.0);
                bytes.extend_from_slice(&refresh.0);
                bytes.extend_from_slice(&family.0);
            }
            None => {
                bytes.push(b'a');
                bytes.extend_from_slice(&self.access.0);
            }
        }
        bytes
    }

    /// `None` for anything else (a member of an earlier layout).
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let (&tag, rest) = bytes.split_first()?;
        let access = TokenHash(rest.get(..16)?.try_into().ok()?);
        match (tag, rest.len()) {
            (b'p', 38) => Some(Member {
                access,
                refresh: Some((
                    TokenHash(rest[16..32].try_into().ok()?),
                    FamilyId(rest[32..38].try_into().ok()?),
                )),
            }),
            (b'a', 16) => Some(Member {
                access,
                refresh: None,
            }),
            _ => None,
        }
    }
}

impl From<&ParentPair> for Member {
    fn from(p: &ParentPair) -> Self {
        Member {
            access: p.access,
            refresh: Some((p.refresh, p.family)),
        }
    }
}

impl RedisTokens {
    /// `TokenStore::issue` (see the module's text).
    pub(super) async fn issue_pair(
        &self,
        pair: &IssuedPair,
        parent: Option<&ParentPair>,
        cap: usize,
    ) -> Result<Issue, StoreError> {
        let access_ttl = u64::from(pair.access.lifetime.max(1));
        let access_key = self.key(kind::ACCESS, &pair.access_hash.encode());
        let set_access = Cmd::set_ex(&access_key, value::encode_access(&pair.access), access_ttl);
        let Some((refresh_hash, record)) = &pair.refresh else {
            // A client's own token: no user's index, no cap.
            let mut ops = Ops::new();
            ops.replicated(self.durability.issue())
                .ignore(access_key.as_bytes(), set_access);
            let () = self.bounded("issue", ops.run(&self.conn)).await?;
            return Ok(Issue::Issued);
        };
        let refresh_ttl = access_ttl * 2;
        let refresh_key = self.key(kind::REFRESH, &refresh_hash.encode());
        let index = self.index_key(&pair.access.username);
        let member = Member {
            access: pair.access_hash,
            refresh: Some((*refresh_hash, pair.family)),
        };
        // A pair answered must be filed wherever a failover keeps its tokens, or they
        // could outlive their member, unlisted by a later logout-all. On one node the
        // keys and the member are one transaction, replicated together; on a cluster
        // they sit on different masters, and the member waits for replicas as a
        // revocation does.
        let cluster = matches!(self.conn, RedisConn::Cluster(..));
        let file_replicated = self.durability.revocations.filter(|_| cluster);
        // On one node the trim is in the filing's step (see `ISSUE`); on a cluster the
        // trimmed pairs' keys sit on other masters, and are revoked after it.
        let (access_prefix, refresh_prefix) = if cluster {
            (String::new(), String::new())
        } else {
            (self.key(kind::ACCESS, ""), self.key(kind::REFRESH, ""))
        };
        let mut ops = Ops::new();
        ops.atomic()
            .replicated(self.durability.issue())
            .ignore(access_key.as_bytes(), set_access)
            .ignore(
                refresh_key.as_bytes(),
                Cmd::set_ex(&refresh_key, value::encode_refresh(record), refresh_ttl),
            )
            .then()
            .replicated(file_replicated.or(self.durability.issue()))
            .keep(
                index.as_bytes(),
                redis::cmd("EVAL")
                    .arg(ISSUE)
                    .arg(1)
                    .arg(&index)
                    .arg(member.bytes())
                    .arg(refresh_ttl)
                    .arg(parent.map(|p| Member::from(p).bytes()).unwrap_or_default())
                    .arg(cap)
                    .arg(&access_prefix)
                    .arg(&refresh_prefix)
                    .arg(value::REVOKED)
                    .clone(),
            );
        let (answer,): (Vec<Vec<u8>>,) = self.bounded("issue", ops.run(&self.conn)).await?;
        let (status, trimmed) = answer
            .split_first()
            .ok_or_else(|| corrupt_answer("issue"))?;
        if status.as_slice() == b"trimmed" {
            // Revoked in the same step: only this instance's near cache is left.
            if let Some(near) = &self.near {
                trimmed
                    .iter()
                    .filter_map(|m| Member::parse(m))
                    .for_each(|m| near.forget(&m.access));
            }
            return Ok(Issue::Issued);
        }
        if status.as_slice() != b"ok" {
            // Its parent was revoked first: nobody ever saw these keys.
            let mut ops = Ops::new();
            ops.ignore(access_key.as_bytes(), Cmd::del(&access_key))
                .ignore(refresh_key.as_bytes(), Cmd::del(&refresh_key));
            let () = self.bounded("issue", ops.run(&self.conn)).await?;
            return Ok(Issue::ParentRevoked);
        }
        if !trimmed.is_empty() {
            // Out of the index already; the pair answers once their tokens are dead too,
            // on as many replicas as any revocation's.
            let replication = self.durability.revocations;
            self.revoke_members("trim", &index, trimmed, None, replication)
                .await?;
        }
        Ok(Issue::Issued)
    }

    /// A user's index.
    pub(super) fn index_key(&self, username: &str) -> String {
        self.key(kind::INDEX, username)
    }

    /// Takes the members `mode` picks out of `username`'s index (`TAKE`), then revokes
    /// their tokens, and `also`'s (an access token filed nowhere).
    pub(super) async fn revoke(
        &self,
        operation: &'static str,
        username: &str,
        mode: &str,
        selector: &[u8],
        also: Option<&TokenHash>,
    ) -> Result<u64, StoreError> {
        let index = self.index_key(username);
        let mut ops = Ops::new();
        ops.keep(
            index.as_bytes(),
            redis::cmd("EVAL")
                .arg(TAKE)
                .arg(1)
                .arg(&index)
                .arg(mode)
                .arg(selector)
                .clone(),
        );
        let (members,): (Vec<Vec<u8>>,) = self.bounded(operation, ops.run(&self.conn)).await?;
        let replication = self.durability.revocations;
        self.revoke_members(operation, &index, &members, also, replication)
            .await
    }

    /// A retry of a revocation whose first try answered 503 finds its token revoked on
    /// the master, perhaps on no replica yet: the revoked value is written again where
    /// it is found (the same value, `XX KEEPTTL`) and waited for like any revocation's,
    /// so that a failover after the answer cannot bring the token back. On one master,
    /// that `WAIT` also confirms every write the first try made before it (a master's
    /// replication stream is in order); on a cluster only those on this key's master.
    /// Unknown tokens cost one read (both keys at once) and no wait.
    pub(super) async fn confirm_revoked(&self, hash: &TokenHash) -> Result<bool, StoreError> {
        let encoded = hash.encode();
        let keys = [
            self.key(kind::ACCESS, &encoded),
            self.key(kind::REFRESH, &encoded),
        ];
        let mut ops = Ops::new();
        for key in &keys {
            ops.keep(key.as_bytes(), Cmd::get(key));
        }
        let values: Vec<Option<Vec<u8>>> =
            self.bounded("confirm_revoked", ops.run(&self.conn)).await?;
        let revoked: Vec<&String> = keys
            .iter()
            .zip(&values)
            .filter(|(_, v)| v.as_deref().is_some_and(value::is_revoked))
            .map(|(k, _)| k)
            .collect();
        if revoked.is_empty() {
            return Ok(false);
        }
        let Some(replication) = self.durability.revocations else {
            return Ok(true);
        };
        // Written again even if it changed meanwhile: a value a failover brought back
        // is the token this request asks to end.
        let mut ops = Ops::new();
        ops.replicated(Some(replication));
        for key in revoked {
            ops.ignore(
                key.as_bytes(),
                redis::cmd("SET")
                    .arg(key)
                    .arg(value::REVOKED)
                    .arg("XX")
                    .arg("KEEPTTL")
                    .clone(),
            );
        }
        let () = self.bounded("confirm_revoked", ops.run(&self.conn)).await?;
        self.replication_barrier(replication).await?;
        Ok(true)
    }

    /// On a cluster, a write and its `WAIT` on every master: everything written to any
    /// master before it is then on as many replicas as `replication` asks (a master's
    /// replicas apply its writes in order). What a retry confirms for the revocations its
    /// first try made on other masters than its token's (the pair's other token, a
    /// logout-all's other tokens). Nothing on one node, where the token's own `WAIT`
    /// confirmed all.
    async fn replication_barrier(&self, replication: Replication) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let slots = self
            .bounded("confirm_revoked", conn.a_slot_of_each_master())
            .await?;
        if slots.is_empty() {
            // One node (standalone, Sentinel): its own `WAIT` confirmed everything.
            return Ok(());
        }
        let mut ops = Ops::new();
        ops.replicated(Some(replication));
        for slot in slots {
            let Some(key) = self.key_in_slot(slot) else {
                continue;
            };
            ops.ignore(
                key.as_bytes(),
                redis::cmd("SET")
                    .arg(&key)
                    .arg(1)
                    .arg("PX")
                    .arg(60_000)
                    .clone(),
            );
        }
        self.bounded("confirm_revoked", ops.run(&self.conn)).await
    }

    /// A key of this store's own (kind `b`, a barrier) that falls in `slot`, by its hash
    /// tag (`None` if the prefix carries a hash tag of its own that pins every key
    /// elsewhere).
    fn key_in_slot(&self, slot: u16) -> Option<String> {
        let n = SLOT_TAGS.get(usize::from(slot))?;
        let key = self.key(kind::BARRIER, &format!("{{{n}}}"));
        (super::ops::slot_of(key.as_bytes()) == slot).then_some(key)
    }

    /// Overwrites the tokens of `members` (and `also`) with the revoked value, keeping
    /// their TTLs (and waits until `replication`'s replicas have it), then removes the
    /// members from the index; returns how many tokens were live.
    async fn revoke_members(
        &self,
        operation: &'static str,
        index: &str,
        members: &[Vec<u8>],
        also: Option<&TokenHash>,
        replication: Option<Replication>,
    ) -> Result<u64, StoreError> {
        let mut access: Vec<TokenHash> = Vec::new();
        let mut keys: Vec<String> = Vec::new();
        for member in members.iter().filter_map(|m| Member::parse(m)) {
            access.push(member.access);
            if let Some((refresh, _)) = member.refresh {
                keys.push(self.key(kind::REFRESH, &refresh.encode()));
            }
        }
        if let Some(a) = also {
            if !access.contains(a) {
                access.push(*a);
            }
        }
        keys.extend(access.iter().map(|a| self.key(kind::ACCESS, &a.encode())));
        if let Some(near) = &self.near {
            access.iter().for_each(|a| near.forget(a));
        }
        // One SET a key (each on its own on a cluster, one pipeline on one node); `GET`
        // says whether it held a live token. A failover right after the answer must not
        // bring a token back: the revoked values are on `replication`'s replicas first.
        let mut ops = Ops::new();
        ops.replicated(replication);
        for key in &keys {
            ops.keep(
                key.as_bytes(),
                redis::cmd("SET")
                    .arg(key)
                    .arg(value::REVOKED)
                    .arg("XX")
                    .arg("KEEPTTL")
                    .arg("GET")
                    .clone(),
            );
        }
        let before: Vec<Option<Vec<u8>>> = if keys.is_empty() {
            Vec::new()
        } else {
            self.bounded(operation, ops.run(&self.conn)).await?
        };
        if !members.is_empty() {
            let mut ops = Ops::new();
            ops.ignore(index.as_bytes(), Cmd::zrem(index, members));
            let () = self.bounded(operation, ops.run(&self.conn)).await?;
        }
        // Forgotten again now that the keys are dead: a miss that read one before may
        // have cached it meanwhile (its push removes it too, a moment later).
        if let Some(near) = &self.near {
            access.iter().for_each(|a| near.forget(a));
        }
        Ok(before
            .iter()
            .filter(|v| v.as_deref().is_some_and(|v| !value::is_revoked(v)))
            .count() as u64)
    }
}

/// For each slot, a number whose decimal text, as a hash tag, falls in it: found once
/// (about 180,000 CRC16s, a few milliseconds), so that a barrier, which any holder of a
/// revoked token can ask for, costs no search.
static SLOT_TAGS: std::sync::LazyLock<Vec<u32>> = std::sync::LazyLock::new(|| {
    let mut tags = vec![u32::MAX; 16384];
    let mut missing = tags.len();
    let mut n = 0u32;
    while missing > 0 {
        let slot = usize::from(super::ops::slot_of(n.to_string().as_bytes()));
        if tags[slot] == u32::MAX {
            tags[slot] = n;
            missing -= 1;
        }
        n += 1;
    }
    tags
});

fn corrupt_answer(operation: &'static str) -> StoreError {
    StoreError::Corrupt {
        store: "redis",
        what: operation,
        detail: "unexpected script answer".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_slot_has_a_barrier_tag_that_falls_in_it() {
        for (slot, n) in SLOT_TAGS.iter().enumerate() {
            let key = format!("tc:b:{{{n}}}");
            assert_eq!(
                usize::from(super::super::ops::slot_of(key.as_bytes())),
                slot
            );
        }
    }

    #[test]
    fn members_survive_the_round_trip_and_have_their_layout() {
        let pair = Member {
            access: TokenHash([1; 16]),
            refresh: Some((TokenHash([2; 16]), FamilyId([3; 6]))),
        };
        let bytes = pair.bytes();
        assert_eq!(bytes.len(), 39);
        assert_eq!(bytes[0], b'p');
        // Where the scripts read the access hash (2..17) and the family (34..39), 1-based.
        assert_eq!(bytes[1..17], [1; 16]);
        assert_eq!(bytes[33..39], [3; 6]);
        assert_eq!(Member::parse(&bytes), Some(pair));
        let alone = Member {
            access: TokenHash([4; 16]),
            refresh: None,
        };
        assert_eq!(alone.bytes().len(), 17);
        assert_eq!(Member::parse(&alone.bytes()), Some(alone));
        // An earlier layout's member (`r` and a refresh hash) is none of these.
        let mut old = vec![b'r'];
        old.extend_from_slice(&[5; 16]);
        assert_eq!(Member::parse(&old), None);
        assert_eq!(Member::parse(&bytes[..38]), None);
    }
}
