//! Reads xxjwxc/oauth2's token tables (`oauth2_access_token`, `oauth2_refresh_token`)
//! for `tokencache import-legacy-tokens`. Read only: the old rows are never changed.
use std::collections::HashMap;

use chrono::NaiveDateTime;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use sha2::Digest as _;

use super::sea::SeaRecords;
use crate::secret::Secret;
use crate::store::import::{LegacyRow, LegacySource, LegacyTable};
use crate::store::StoreError;

/// The original's token tables of one database, with the way their usernames are matched
/// to accounts worked out once (not once a batch).
pub struct LegacyTables<'a> {
    records: &'a SeaRecords,
    /// The select expression of the username a token is filed under.
    username: String,
    /// The join that finds its account (empty where there is none to join).
    join: String,
}

impl SeaRecords {
    /// The token tables of this database, ready to be read in batches.
    pub async fn legacy_tables(&self) -> Result<LegacyTables<'_>, StoreError> {
        // `username` is what the client typed at login; the account it names, found under
        // the column's collation as the original found it (`Alice` is `alice`), is what
        // tokencache files the token under, so that revoking the account's tokens finds
        // it. The comparison is made in the account column's collation (the token tables
        // may be in another), so that the account's unique key serves it.
        let (username, join) = match self.account_collation().await? {
            Some(collation) => {
                let charset = collation.split('_').next().unwrap_or("utf8mb4");
                (
                    "COALESCE(a.account, t.username)".to_owned(),
                    format!(
                        "LEFT JOIN user_account_tbl a ON a.account = \
                         CONVERT(t.username USING {charset}) COLLATE {collation}"
                    ),
                )
            }
            None => ("t.username".to_owned(), String::new()),
        };
        Ok(LegacyTables {
            records: self,
            username,
            join,
        })
    }
}

impl LegacySource for LegacyTables<'_> {
    async fn source_name(&self) -> Result<(String, String), StoreError> {
        let row = self
            .records
            .bounded(
                "legacy_source",
                self.records.connection().query_one(Statement::from_string(
                    self.records.connection().get_database_backend(),
                    match self.records.connection().get_database_backend() {
                        // The database's name and when its token tables were made: not the
                        // host (a failover or a new container changes it, and a run that
                        // found no mark would read every row again), but a copy restored
                        // under the same name is a source of its own.
                        DbBackend::MySql => {
                            "SELECT CAST(DATABASE() AS CHAR) AS name, \
                             CAST(COALESCE((SELECT GROUP_CONCAT(CONCAT(TABLE_NAME, '@', \
                             COALESCE(CREATE_TIME, '')) ORDER BY TABLE_NAME SEPARATOR ',') \
                             FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() \
                             AND TABLE_NAME IN ('oauth2_access_token', 'oauth2_refresh_token')), \
                             '') AS CHAR) AS made"
                        }
                        _ => "SELECT 'sqlite' AS name, '' AS made",
                    },
                )),
            )
            .await?;
        let name = row
            .as_ref()
            .and_then(|r| r.try_get::<String>("", "name").ok())
            .unwrap_or_else(|| "unknown".into());
        let made = row
            .and_then(|r| r.try_get::<String>("", "made").ok())
            .unwrap_or_default();
        let digest = sha2::Sha256::digest(made.as_bytes());
        let identity = format!("{name}@{}", hex::encode(&digest[..6]));
        Ok((name, identity))
    }

    async fn legacy_count(&self, table: LegacyTable, after_id: i64) -> Result<u64, StoreError> {
        let row = self
            .records
            .bounded(
                "legacy_count",
                self.records
                    .connection()
                    .query_one(Statement::from_sql_and_values(
                        self.records.connection().get_database_backend(),
                        format!(
                            "SELECT CAST(COUNT(*) AS SIGNED) AS n FROM {} WHERE id > ?",
                            table.name()
                        ),
                        [after_id.into()],
                    )),
            )
            .await?;
        let n: i64 = row
            .map(|r| r.try_get("", "n"))
            .transpose()
            .map_err(|e| corrupt(table, e))?
            .unwrap_or(0);
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn legacy_rows(
        &self,
        table: LegacyTable,
        after_id: i64,
        limit: u64,
    ) -> Result<Vec<LegacyRow>, StoreError> {
        let (token, lifetime) = match table {
            LegacyTable::Access => ("access_token", "NULL"),
            LegacyTable::Refresh => ("refresh_token", "t.token_expire_time"),
        };
        // `expires` as text: a zero date is not a date, and must not fail the batch.
        let (username, join) = (&self.username, &self.join);
        let sql = format!(
            "SELECT CAST(t.id AS SIGNED) AS id, t.{token} AS token, t.token_type, t.app_key, \
             {username} AS username, CAST(t.expires AS CHAR) AS expires, \
             CAST({lifetime} AS SIGNED) AS lifetime FROM {} t {join} \
             WHERE t.id > ? ORDER BY t.id LIMIT ?",
            table.name()
        );
        let rows = self
            .records
            .bounded(
                "legacy_rows",
                self.records
                    .connection()
                    .query_all(Statement::from_sql_and_values(
                        self.records.connection().get_database_backend(),
                        sql,
                        [after_id.into(), (limit as i64).into()],
                    )),
            )
            .await?;
        let zone = self.records.zone();
        rows.into_iter()
            .map(|r| {
                let expires: Option<String> = r.try_get("", "expires")?;
                Ok(LegacyRow {
                    id: r.try_get("", "id")?,
                    token: Secret::new(r.try_get::<String>("", "token")?),
                    token_type: r.try_get("", "token_type")?,
                    app_key: r.try_get("", "app_key")?,
                    username: r.try_get("", "username")?,
                    expires: expires
                        .as_deref()
                        .and_then(parse_datetime)
                        .map(|local| zone.to_utc(local)),
                    token_expire_time: r
                        .try_get::<Option<i64>>("", "lifetime")?
                        .and_then(|n| i32::try_from(n).ok()),
                })
            })
            .collect::<Result<_, sea_orm::DbErr>>()
            .map_err(|e| corrupt(table, e))
    }

    async fn client_lifetimes(&self) -> Result<HashMap<String, i32>, StoreError> {
        let rows = self.records
            .bounded(
                "legacy_clients",
                self.records.connection().query_all(Statement::from_string(
                    self.records.connection().get_database_backend(),
                    "SELECT app_key, CAST(token_expire_time AS SIGNED) AS ttl FROM oauth2_client_tbl",
                )),
            )
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let key: String = r.try_get("", "app_key").ok()?;
                let ttl: i64 = r.try_get("", "ttl").ok()?;
                Some((key, i32::try_from(ttl).ok()?))
            })
            .collect())
    }
}

impl SeaRecords {
    /// The collation of `user_account_tbl.account` (MySQL); `None` where there is no such
    /// column or no collation to name (SQLite).
    async fn account_collation(&self) -> Result<Option<String>, StoreError> {
        if self.connection().get_database_backend() != DbBackend::MySql {
            return Ok(None);
        }
        let row = self
            .bounded(
                "legacy_collation",
                self.connection().query_one(Statement::from_string(
                    DbBackend::MySql,
                    "SELECT CAST(COLLATION_NAME AS CHAR) AS c FROM information_schema.COLUMNS \
                     WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'user_account_tbl' \
                     AND COLUMN_NAME = 'account'",
                )),
            )
            .await?;
        // Only a plain name goes into the query text.
        Ok(row
            .and_then(|r| r.try_get::<Option<String>>("", "c").ok().flatten())
            .filter(|c| c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')))
    }
}

/// `2026-11-30 12:00:00` (MySQL's text of a DATETIME, fractions allowed); `None` for a
/// zero date or anything else that is not a date.
fn parse_datetime(text: &str) -> Option<NaiveDateTime> {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").ok()
}

fn corrupt(table: LegacyTable, e: sea_orm::DbErr) -> StoreError {
    StoreError::Corrupt {
        store: "sql",
        what: table.name(),
        detail: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_datetime;

    #[test]
    fn zero_dates_are_not_dates() {
        assert!(parse_datetime("0000-00-00 00:00:00").is_none());
        assert!(parse_datetime("").is_none());
        assert_eq!(
            parse_datetime("2026-11-30 12:34:56").unwrap().to_string(),
            "2026-11-30 12:34:56"
        );
        assert!(parse_datetime("2026-11-30 12:34:56.5").is_some());
    }
}
