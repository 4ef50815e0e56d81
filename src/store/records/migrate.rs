//! Migrations of the sea-orm record store: the checks `tokencache migrate` makes before
//! anything is written (an xxjwxc/oauth2 database that cannot be adopted, DATETIME columns
//! in another zone than the TIMESTAMP ones), then the pending migrations of the
//! `migration` crate.
use migration::MigratorTrait;
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};

use super::sea::{db_error, SeaRecords};
use super::zone::DbZone;
use crate::store::{RecordStore, StoreError};

/// Why migrations did not run.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// An existing database that cannot be adopted; nothing was changed.
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Store(StoreError),
}

impl SeaRecords {
    /// Applies every pending migration. An xxjwxc/oauth2 database is checked first, so
    /// one that cannot be adopted is refused before anything (even the migrations table)
    /// is written.
    pub async fn migrate(&self) -> Result<(), MigrateError> {
        let store = |e: DbErr| MigrateError::Store(db_error(e));
        // Once the adoption is recorded there is nothing left for it to check.
        if !migration::adoption_recorded(self.connection())
            .await
            .map_err(store)?
        {
            match migration::adoption_plan(self.connection()).await {
                Err(DbErr::Migration(why)) => return Err(MigrateError::Refused(why)),
                Err(e) => return Err(store(e)),
                Ok(_) => {}
            }
        }
        self.check_zone().await?;
        migration::Migrator::up(self.connection(), None)
            .await
            .map_err(|e| match e {
                DbErr::Migration(why) => MigrateError::Refused(why),
                e => MigrateError::Store(db_error(e)),
            })
    }

    /// MySQL keeps TIMESTAMP columns in UTC (and sqlx reads them so), while the zone
    /// setting is for DATETIME columns written in local time: a TIMESTAMP column with
    /// another zone would be shifted twice.
    pub(crate) async fn check_zone(&self) -> Result<(), MigrateError> {
        if self.zone() == DbZone::Utc || self.name() != "mysql" {
            return Ok(());
        }
        let rows = self
            .connection()
            .query_all(Statement::from_string(
                DbBackend::MySql,
                "SELECT CONCAT(CAST(TABLE_NAME AS CHAR), '.', CAST(COLUMN_NAME AS CHAR)) AS c \
                 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() \
                 AND DATA_TYPE = 'timestamp' AND COLUMN_NAME IN ('expire_time', 'reg_time', 'expires') \
                 AND TABLE_NAME IN ('oauth2_client_tbl', 'user_account_tbl', 'oauth2_access_token', 'oauth2_refresh_token')",
            ))
            .await
            .map_err(|e| MigrateError::Store(db_error(e)))?;
        let columns: Vec<String> = rows
            .iter()
            .filter_map(|r| r.try_get::<String>("", "c").ok())
            .collect();
        if columns.is_empty() {
            return Ok(());
        }
        Err(MigrateError::Refused(format!(
            "{} {} TIMESTAMP, which MySQL keeps in UTC, but --db-time-zone is {}: \
             set it to UTC (or make the columns DATETIME)",
            columns.join(", "),
            if columns.len() == 1 { "is" } else { "are" },
            self.zone()
        )))
    }
}
