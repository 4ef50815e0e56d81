//! Moving from xxjwxc/oauth2, on a MariaDB database made with the original's schema and
//! rows like its own (`tests/fixtures/xxjwxc_oauth2_*.sql`; `LegacyDb` here): `adopt`,
//! `tokencache migrate` adopting it in place or refusing it with nothing changed, and every
//! endpoint and the CLI on it; `import`, `import-legacy-tokens` carrying its live tokens
//! over.
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};

use crate::common::*;

mod adopt;
mod import;

const SCHEMA: &str = include_str!("../../fixtures/xxjwxc_oauth2_schema.sql");
const ROWS: &str = include_str!("../../fixtures/xxjwxc_oauth2_rows.sql");

/// A database of the test's own holding the original's schema (and its rows when
/// `rows`); dropped when the guard goes, even when the test fails.
struct LegacyDb {
    name: String,
    url: String,
    db: DatabaseConnection,
}

impl LegacyDb {
    async fn create(rows: bool) -> LegacyDb {
        let name = create_database("tc_test_legacy").await;
        let url = format!("{MYSQL_BASE}/{name}");
        let db = Database::connect(&url).await.expect("connect");
        let legacy = LegacyDb { name, url, db };
        legacy.run_sql(SCHEMA).await;
        if rows {
            legacy.run_sql(ROWS).await;
        }
        legacy
    }

    /// Runs a file of statements, each ending with `;` at the end of a line.
    async fn run_sql(&self, text: &str) {
        let text: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n");
        for statement in text.split(";\n").map(str::trim).filter(|s| !s.is_empty()) {
            let statement = statement.trim_end_matches(';');
            self.db
                .execute_unprepared(statement)
                .await
                .unwrap_or_else(|e| panic!("{e}: {statement}"));
        }
    }

    async fn exec(&self, sql: &str) {
        self.db.execute_unprepared(sql).await.expect(sql);
    }

    /// The first column of every row of a query, as text.
    async fn strings(&self, sql: &str) -> Vec<String> {
        self.db
            .query_all(Statement::from_string(DbBackend::MySql, sql))
            .await
            .expect(sql)
            .iter()
            .map(|r| {
                r.try_get_by_index::<Option<String>>(0)
                    .expect(sql)
                    .unwrap_or_else(|| "NULL".into())
            })
            .collect()
    }

    /// Column `index` of the one row a statement answers, as text: SHOW and CHECKSUM
    /// answer rows that cannot be cast in SQL.
    async fn cell(&self, sql: &str, index: usize) -> String {
        let row = self
            .db
            .query_one(Statement::from_string(DbBackend::MySql, sql))
            .await
            .expect(sql)
            .expect(sql);
        row.try_get_by_index::<String>(index)
            .or_else(|_| {
                row.try_get_by_index::<Option<i64>>(index)
                    .map(|n| format!("{n:?}"))
            })
            .expect(sql)
    }

    async fn string(&self, sql: &str) -> String {
        self.strings(sql).await.pop().unwrap_or_default()
    }

    /// Every seed column of every seed row, as text: what adoption must not change.
    async fn seed_rows(&self) -> Vec<String> {
        let mut rows = Vec::new();
        for sql in [
            "SELECT CONCAT_WS('|', id, app_key, app_secret, expire_time, strict_verify, token_expire_time) FROM oauth2_client_tbl ORDER BY id",
            "SELECT CONCAT_WS('|', id, account, password, account_type, IFNULL(app_key, 'NULL'), user_info_id, IFNULL(reg_time, 'NULL'), IFNULL(reg_ip, 'NULL'), IFNULL(bundle_id, 'NULL')) FROM user_account_tbl ORDER BY id",
            "SELECT CONCAT_WS('|', id, nickname, IFNULL(headurl, 'NULL')) FROM user_info_tbl ORDER BY id",
            "SELECT CONCAT_WS('|', id, access_token, token_type, app_key, username, expires) FROM oauth2_access_token ORDER BY id",
            "SELECT CONCAT_WS('|', id, refresh_token, token_type, app_key, username, expires, token_expire_time) FROM oauth2_refresh_token ORDER BY id",
        ] {
            rows.extend(self.strings(sql).await);
        }
        rows
    }

    /// Everything about the database that a change would show: its tables, views and
    /// routines with their definitions, and a checksum of every table's rows.
    async fn snapshot(&self) -> Vec<String> {
        let mut out = Vec::new();
        let objects = self
            .db
            .query_all(Statement::from_string(
                DbBackend::MySql,
                "SELECT CAST(TABLE_NAME AS CHAR), CAST(TABLE_TYPE AS CHAR) FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME",
            ))
            .await
            .unwrap();
        for o in objects {
            let name: String = o.try_get_by_index(0).unwrap();
            let kind: String = o.try_get_by_index(1).unwrap();
            let view = kind == "VIEW";
            let show = if view { "VIEW" } else { "TABLE" };
            out.push(self.cell(&format!("SHOW CREATE {show} `{name}`"), 1).await);
            if !view {
                out.extend(
                    self.strings(&format!("SELECT CAST(COUNT(*) AS CHAR) FROM `{name}`"))
                        .await,
                );
                let checksum = self
                    .cell(&format!("CHECKSUM TABLE `{name}` EXTENDED"), 1)
                    .await;
                out.push(format!("{name}: {checksum}"));
            }
        }
        out.extend(
            self.strings(
                "SELECT CONCAT(ROUTINE_NAME, ':', ROUTINE_DEFINITION) FROM information_schema.ROUTINES \
                 WHERE ROUTINE_SCHEMA = DATABASE() ORDER BY ROUTINE_NAME",
            )
            .await,
        );
        out
    }
}

impl Drop for LegacyDb {
    /// A failed test must not leave its database behind either.
    fn drop(&mut self) {
        drop_database(&self.name);
    }
}

/// Drops a database when the test ends, also when it fails.
struct DropDatabase(String);

impl Drop for DropDatabase {
    fn drop(&mut self) {
        drop_database(&self.0);
    }
}
