//! import-legacy-tokens: carries xxjwxc/oauth2's live tokens over, so that a cutover logs
//! nobody out. Every row of its two token tables whose `expires` is still ahead becomes
//! a token of tokencache's own (hashed key, the user's index, TTL = the time it has
//! left); the rest are counted and skipped. Batches by id, each followed by a resume
//! mark in the token store, kept per source (the database's name and its token tables'
//! creation times: a copy of the database under the same name is another source).
//!
//! A run goes on from `overlap` ids before its mark: while the original still serves,
//! its rows become visible out of id order (id 100 can commit after 101 was read), and a
//! mark taken then would skip them for good. `--all` reads every row: the final pass,
//! once the original has stopped. Reading a row again is always safe: a token is written
//! only where its key is free (`SET NX`), and a token revoked since its import keeps the
//! revoked value in its key until it would have expired, so nothing is brought back.
//! The old rows are never changed.
use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::store::import::{ImportedToken, LegacyRow, LegacySource, LegacyTable, TokenImport};
use crate::store::{AccessRecord, FamilyId, RefreshRecord, StoreError, TokenHash};

/// What one table's import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableSummary {
    /// Rows read in this run (those above the resume mark).
    pub read: u64,
    /// Live tokens written now.
    pub imported: u64,
    /// Live tokens whose key was there already (an interrupted run wrote them).
    pub present: u64,
    /// Rows whose `expires` has passed (or is a zero date, which the original treated
    /// as expired): the original would refuse them, so does tokencache.
    pub expired: u64,
    /// Rows with an empty token or username: no client can hold such a token.
    pub invalid: u64,
    /// The resume mark before and after this run (the last row id carried over), and the
    /// id after which this run read.
    pub mark_before: i64,
    pub read_from: i64,
    pub mark_after: i64,
}

/// What a run did, for the summary.
#[derive(Debug, Clone)]
pub struct ImportSummary {
    /// Host and database the rows came from.
    pub source: String,
    pub access: TableSummary,
    pub refresh: TableSummary,
    pub elapsed: Duration,
}

/// Reports progress (a progress bar on a terminal).
pub trait Progress {
    fn start(&self, table: LegacyTable, rows: u64);
    fn advance(&self, rows: u64);
    fn finish(&self);
}

/// How a run reads.
#[derive(Debug, Clone, Copy)]
pub struct ImportOptions {
    /// Rows read and written per batch.
    pub batch_size: u64,
    /// Ids before the resume mark read again (rows committed out of id order).
    pub overlap: u64,
    /// Every row, whatever the mark (the final pass after the original stopped).
    pub all: bool,
}

impl ImportOptions {
    /// The defaults: the command line's read these.
    pub const DEFAULT: ImportOptions = ImportOptions {
        batch_size: 20_000,
        overlap: 10_000,
        all: false,
    };
}

/// Imports both tables, access tokens first, as `options` say.
pub async fn import_legacy_tokens<S: LegacySource, T: TokenImport>(
    source: &S,
    tokens: &T,
    options: ImportOptions,
    progress: &dyn Progress,
) -> Result<ImportSummary, StoreError> {
    let started = Instant::now();
    let (name, identity) = source.source_name().await?;
    let lifetimes = source.client_lifetimes().await?;
    let mut tables = [TableSummary::default(), TableSummary::default()];
    for (table, summary) in [LegacyTable::Access, LegacyTable::Refresh]
        .into_iter()
        .zip(tables.iter_mut())
    {
        import_table(
            source, tokens, &identity, table, &lifetimes, options, progress, summary,
        )
        .await?;
        progress.finish();
    }
    let [access, refresh] = tables;
    Ok(ImportSummary {
        source: name,
        access,
        refresh,
        elapsed: started.elapsed(),
    })
}

#[allow(clippy::too_many_arguments)]
async fn import_table<S: LegacySource, T: TokenImport>(
    source: &S,
    tokens: &T,
    name: &str,
    table: LegacyTable,
    lifetimes: &HashMap<String, i32>,
    options: ImportOptions,
    progress: &dyn Progress,
    summary: &mut TableSummary,
) -> Result<(), StoreError> {
    let batch_size = options.batch_size.max(1);
    let mut mark = tokens.import_mark(name, table).await?;
    summary.mark_before = mark;
    let from = if options.all {
        0
    } else {
        mark.saturating_sub(i64::try_from(options.overlap).unwrap_or(i64::MAX))
            .max(0)
    };
    summary.read_from = from;
    progress.start(table, source.legacy_count(table, from).await?);
    let mut rows = source.legacy_rows(table, from, batch_size).await?;
    while let Some(last) = rows.last().map(|r| r.id) {
        // One clock reading a batch: a row is live when it still is at this instant.
        let now = crate::clock::unix_now();
        let mut batch = Vec::with_capacity(rows.len());
        for row in &rows {
            match convert(table, row, lifetimes, now) {
                Converted::Live(token) => batch.push(token),
                Converted::Expired => summary.expired += 1,
                Converted::Invalid => summary.invalid += 1,
            }
        }
        // The batch, then its mark (an interruption repeats at most the batch it cut,
        // whose tokens SET NX then finds present), while the next batch is read: the
        // database and Redis work at the same time.
        // The mark never goes back (a batch of the overlap ends below it).
        let (stored, next) = tokio::join!(
            tokens.import_batch(name, table, last.max(mark), &batch),
            source.legacy_rows(table, last, batch_size)
        );
        for stored in stored? {
            if stored {
                summary.imported += 1;
            } else {
                summary.present += 1;
            }
        }
        mark = last.max(mark);
        summary.read += rows.len() as u64;
        progress.advance(rows.len() as u64);
        rows = next?;
    }
    summary.mark_after = mark;
    Ok(())
}

enum Converted {
    Live(ImportedToken),
    Expired,
    Invalid,
}

fn convert(
    table: LegacyTable,
    row: &LegacyRow,
    lifetimes: &HashMap<String, i32>,
    now: i64,
) -> Converted {
    if row.token.expose().is_empty() || row.username.is_empty() {
        return Converted::Invalid;
    }
    let Some(expires) = row.expires.map(|t| t.and_utc().timestamp()) else {
        return Converted::Expired;
    };
    // The original: a token is good while `expires` is after now.
    if expires <= now {
        return Converted::Expired;
    }
    let left = expires - now;
    let positive = |n: i32| u32::try_from(n).ok().filter(|n| *n > 0);
    let client_lifetime = lifetimes.get(&row.app_key).copied().and_then(positive);
    let hash = TokenHash::of(row.token.expose());
    match table {
        LegacyTable::Access => {
            let lifetime = client_lifetime.unwrap_or_else(|| clamp(left));
            Converted::Live(ImportedToken::Access {
                hash,
                record: record(row, expires, lifetime),
            })
        }
        LegacyTable::Refresh => {
            // New pairs get the lifetime the refresh row was issued with, as the
            // original's refresh did.
            let lifetime = row
                .token_expire_time
                .and_then(positive)
                .or(client_lifetime)
                .unwrap_or_else(|| clamp(left / 2));
            Converted::Live(ImportedToken::Refresh {
                hash,
                record: RefreshRecord {
                    grant: record(row, expires, lifetime),
                    // The original kept no link between the two tokens of a pair, and
                    // its refresh left the old access token valid: the pair's access hash
                    // names no token (revoking the pair revokes the refresh token alone).
                    access: TokenHash::of(&format!("legacy-refresh:{}", hash.encode())),
                    family: FamilyId::random(),
                    client_only: false,
                },
            })
        }
    }
}

fn record(row: &LegacyRow, expires: i64, lifetime: u32) -> AccessRecord {
    AccessRecord {
        username: row.username.clone(),
        app_key: row.app_key.clone(),
        token_type: row.token_type.clone(),
        expires,
        lifetime,
    }
}

fn clamp(seconds: i64) -> u32 {
    u32::try_from(seconds.max(1)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn row(token: &str, expires: Option<i64>, token_expire_time: Option<i32>) -> LegacyRow {
        LegacyRow {
            id: 1,
            token: Secret::new(token),
            token_type: "nomal".into(),
            app_key: "app".into(),
            username: "18020119796".into(),
            expires: expires
                .and_then(|t| chrono::DateTime::from_timestamp(t, 0).map(|d| d.naive_utc())),
            token_expire_time,
        }
    }

    #[test]
    fn rows_become_tokens_only_while_the_original_would_accept_them() {
        let now = 1_800_000_000;
        let lifetimes = HashMap::from([("app".to_owned(), 7200)]);
        let live = row("2DNweL5l6MOm1ftxzP8UreP6xKd2BBme", Some(now + 60), None);
        match convert(LegacyTable::Access, &live, &lifetimes, now) {
            Converted::Live(ImportedToken::Access { hash, record }) => {
                assert_eq!(hash, TokenHash::of("2DNweL5l6MOm1ftxzP8UreP6xKd2BBme"));
                assert_eq!(record.expires, now + 60);
                assert_eq!(record.lifetime, 7200);
                assert_eq!(record.username, "18020119796");
                assert_eq!(record.token_type, "nomal");
            }
            _ => panic!("a live access row is imported"),
        }
        // `expires` equal to now is dead already, as in the original (After(now)).
        let at_now = row("x", Some(now), None);
        assert!(matches!(
            convert(LegacyTable::Access, &at_now, &lifetimes, now),
            Converted::Expired
        ));
        // A zero date (no readable date) was expired for the original.
        assert!(matches!(
            convert(LegacyTable::Access, &row("x", None, None), &lifetimes, now),
            Converted::Expired
        ));
        assert!(matches!(
            convert(
                LegacyTable::Access,
                &row("", Some(now + 60), None),
                &lifetimes,
                now
            ),
            Converted::Invalid
        ));
        // A refresh row keeps the lifetime it was issued with.
        match convert(
            LegacyTable::Refresh,
            &row("r", Some(now + 100), Some(600)),
            &lifetimes,
            now,
        ) {
            Converted::Live(ImportedToken::Refresh { hash, record }) => {
                assert_eq!(hash, TokenHash::of("r"));
                assert_eq!(record.grant.expires, now + 100);
                assert_eq!(record.grant.lifetime, 600);
                assert_ne!(record.access, TokenHash::of("r"));
            }
            _ => panic!("a live refresh row is imported"),
        }
    }
}
