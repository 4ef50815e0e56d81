//! Reads xxjwxc/oauth2's token tables (`oauth2_access_token`, `oauth2_refresh_token`)
//! for `tokencache import-legacy-tokens`. Read only: the old rows are never changed.
use std::collections::HashMap;

use chrono::NaiveDateTime;
use sea_orm::{ConnectionTrait, DbBackend, Statement};

use super::sea::SeaRecords;
use crate::secret::Secret;
use crate::store::import::{LegacyRow, LegacySource, LegacyTable};
use crate::store::StoreError;

impl LegacySource for SeaRecords {
    async fn source_name(&self) -> Result<String, StoreError> {
        let row = self
            .bounded(
                "legacy_source",
                self.connection().query_one(Statement::from_string(
                    self.connection().get_database_backend(),
                    match self.connection().get_database_backend() {
                        DbBackend::MySql => {
                            "SELECT CONCAT(CAST(@@hostname AS CHAR), ':', CAST(@@port AS CHAR), '/', \
                             CAST(DATABASE() AS CHAR)) AS name"
                        }
                        _ => "SELECT 'sqlite' AS name",
                    },
                )),
            )
            .await?;
        Ok(row
            .and_then(|r| r.try_get::<String>("", "name").ok())
            .unwrap_or_else(|| "unknown".into()))
    }

    async fn legacy_count(&self, table: LegacyTable, after_id: i64) -> Result<u64, StoreError> {
        let row = self
            .bounded(
                "legacy_count",
                self.connection().query_one(Statement::from_sql_and_values(
                    self.connection().get_database_backend(),
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
            LegacyTable::Refresh => ("refresh_token", "token_expire_time"),
        };
        // `expires` as text: a zero date is not a date, and must not fail the batch.
        let sql = format!(
            "SELECT CAST(id AS SIGNED) AS id, {token} AS token, token_type, app_key, username, \
             CAST(expires AS CHAR) AS expires, CAST({lifetime} AS SIGNED) AS lifetime \
             FROM {} WHERE id > ? ORDER BY id LIMIT ?",
            table.name()
        );
        let rows = self
            .bounded(
                "legacy_rows",
                self.connection().query_all(Statement::from_sql_and_values(
                    self.connection().get_database_backend(),
                    sql,
                    [after_id.into(), (limit as i64).into()],
                )),
            )
            .await?;
        let zone = self.zone();
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
        let rows = self
            .bounded(
                "legacy_clients",
                self.connection().query_all(Statement::from_string(
                    self.connection().get_database_backend(),
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
