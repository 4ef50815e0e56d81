//! Adopts a database made by xxjwxc/oauth2 in place: its `oauth2_client_tbl`,
//! `user_account_tbl` and `user_info_tbl` already exist (so the first migration, which
//! creates tables only if they are missing, left them as they were) but lack what
//! tokencache needs. This migration checks every table first and refuses, changing
//! nothing, what it cannot adopt safely; then it adds and widens, never narrows or drops.
//! On tokencache's own schema (a fresh database) it finds nothing to do. MySQL/MariaDB
//! only: the original never ran on SQLite.
//!
//! Its files: `schema.rs` what tokencache needs of each table; `inspect.rs` the queries
//! that read the tables as they are; `table.rs` a table and its columns as found, and
//! the `MODIFY COLUMN` of one; `checks.rs` the refusals, one function each; `changes.rs`
//! the changes, gathered into one `ALTER TABLE` a table. This file runs them in order.
//! Frozen like any landed migration: what it reads and runs, and every refusal's text,
//! stay as they are.
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, Statement};

mod changes;
mod checks;
mod inspect;
mod schema;
mod table;

use inspect::Found;
use schema::{FLAGS, NOT_NULL, SEED, UNIQUE};
use table::Table;

pub struct Migration;

/// This migration's name, as `seaql_migrations` records it.
const NAME: &str = "m20261130_000001_adopt_xxjwxc_oauth2";

impl MigrationName for Migration {
    fn name(&self) -> &str {
        NAME
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for statement in plan(db).await? {
            db.execute_unprepared(&statement).await?;
        }
        Ok(())
    }

    /// Nothing: what `up` did only widened and added, and undoing it could lose values
    /// written since (a long password hash, an IPv6 address, a 4-byte character).
    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Ok(())
    }
}

fn refused(problems: &[String]) -> DbErr {
    DbErr::Migration(format!(
        "the existing tables cannot be adopted as they are; nothing was changed:\n  - {}",
        problems.join("\n  - ")
    ))
}

/// The statements that bring the three record tables to what tokencache needs, or a
/// refusal naming every problem found (then nothing has been changed). Empty on a
/// database that needs nothing: tokencache's own schema, or one adopted already.
/// `tokencache migrate` calls this before anything else touches the database.
pub async fn plan<C: ConnectionTrait>(db: &C) -> Result<Vec<String>, DbErr> {
    if db.get_database_backend() != DbBackend::MySql {
        return Ok(Vec::new());
    }
    let mut problems = Vec::new();
    let mut statements = Vec::new();
    for &(name, seed) in SEED {
        let columns = match inspect::columns(db, name).await? {
            Found::Absent => continue,
            Found::NotATable(kind) => {
                problems.push(checks::not_a_table(name, &kind));
                continue;
            }
            Found::Columns(columns) => columns,
        };
        let table = Table {
            name,
            seed,
            columns,
        };
        // Every check, in the order the refusal lists their problems (and the queries
        // in the order they run).
        for &(column, kind) in seed {
            problems.extend(checks::missing_column(&table, column));
            problems.extend(checks::wrong_kind(&table, column, kind));
        }
        for c in &table.columns {
            problems.extend(checks::unsigned_integer(&table, c));
            problems.extend(checks::zero_date_default(&table, c));
        }
        for &(_, column) in NOT_NULL.iter().filter(|(t, _)| *t == table.name) {
            problems.extend(checks::nulls(db, &table, column).await?);
        }
        for &(_, column, _) in UNIQUE.iter().filter(|(t, _, _)| *t == table.name) {
            problems.extend(checks::unique_not_varchar(&table, column));
        }
        for &(_, flag) in FLAGS.iter().filter(|(t, _)| *t == table.name) {
            problems.extend(checks::flag_not_integer(&table, flag));
        }
        let keys = inspect::missing_unique_keys(db, &table).await?;
        for key in &keys {
            problems.extend(checks::duplicated_values(&table, key));
        }
        for &(column, kind) in seed {
            problems.extend(checks::zero_dates(db, &table, column, kind).await?);
        }
        // The changes, kept only if no table has a problem.
        statements.extend(changes::alter(&table, &keys));
    }
    if problems.is_empty() {
        Ok(statements)
    } else {
        Err(refused(&problems))
    }
}

/// Whether this migration is recorded as applied (then `plan` need not run before the
/// others): read without creating the migrations table.
pub async fn recorded<C: ConnectionTrait>(db: &C) -> Result<bool, DbErr> {
    if db.get_database_backend() != DbBackend::MySql {
        return Ok(false);
    }
    let table = inspect::number(
        db,
        Statement::from_string(
            DbBackend::MySql,
            "SELECT COUNT(*) AS n FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'seaql_migrations'",
        ),
    )
    .await?;
    if table == 0 {
        return Ok(false);
    }
    let applied = inspect::number(
        db,
        Statement::from_sql_and_values(
            DbBackend::MySql,
            "SELECT COUNT(*) AS n FROM seaql_migrations WHERE version = ?",
            [NAME.into()],
        ),
    )
    .await?;
    Ok(applied > 0)
}
