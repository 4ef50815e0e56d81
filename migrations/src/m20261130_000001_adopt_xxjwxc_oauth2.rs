//! Adopts a database made by xxjwxc/oauth2 in place: its `oauth2_client_tbl`,
//! `user_account_tbl` and `user_info_tbl` already exist (so the first migration, which
//! creates tables only if they are missing, left them as they were) but lack what
//! tokencache needs. This migration checks every table first and refuses, changing
//! nothing, what it cannot adopt safely; then it adds and widens, never narrows or drops.
//! On tokencache's own schema (a fresh database) it finds nothing to do. MySQL/MariaDB
//! only: the original never ran on SQLite.
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, Statement};

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

/// What kind of values a seed column must hold for tokencache to read it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Integer,
    Text,
    DateTime,
}

impl Kind {
    fn accepts(self, data_type: &str) -> bool {
        let ok: &[&str] = match self {
            Kind::Integer => &["tinyint", "smallint", "mediumint", "int", "bigint"],
            Kind::Text => &[
                "char",
                "varchar",
                "tinytext",
                "text",
                "mediumtext",
                "longtext",
            ],
            Kind::DateTime => &["datetime", "timestamp"],
        };
        ok.contains(&data_type)
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Integer => "an integer type",
            Kind::Text => "a text type (varchar, char, text)",
            Kind::DateTime => "datetime or timestamp",
        }
    }
}

/// The seed's columns of the three record tables, with the kind each must have.
const SEED: &[(&str, &[(&str, Kind)])] = &[
    (
        "oauth2_client_tbl",
        &[
            ("id", Kind::Integer),
            ("app_key", Kind::Text),
            ("app_secret", Kind::Text),
            ("expire_time", Kind::DateTime),
            ("strict_verify", Kind::Integer),
            ("token_expire_time", Kind::Integer),
        ],
    ),
    (
        "user_account_tbl",
        &[
            ("id", Kind::Integer),
            ("account", Kind::Text),
            ("password", Kind::Text),
            ("account_type", Kind::Integer),
            ("app_key", Kind::Text),
            ("user_info_id", Kind::Integer),
            ("reg_time", Kind::DateTime),
            ("reg_ip", Kind::Text),
            ("bundle_id", Kind::Text),
        ],
    ),
    (
        "user_info_tbl",
        &[
            ("id", Kind::Integer),
            ("nickname", Kind::Text),
            ("headurl", Kind::Text),
        ],
    ),
];

/// Text columns tokencache writes longer values into than the original did, with the
/// length each needs: an argon2id PHC string (~100 characters), an IPv6 address,
/// tokencache's own limits on accounts and nicknames.
const WIDTHS: &[(&str, &str, u64)] = &[
    ("user_account_tbl", "account", 191),
    ("user_account_tbl", "password", 255),
    ("user_account_tbl", "reg_ip", 64),
    ("user_info_tbl", "nickname", 128),
];

/// Columns that must take any character (4-byte UTF-8 too: emoji in a nickname or an
/// account name), converted from MySQL's 3-byte `utf8`.
const ANY_CHARACTER: &[(&str, &str)] = &[
    ("user_account_tbl", "account"),
    ("user_info_tbl", "nickname"),
    ("user_info_tbl", "headurl"),
];

/// tokencache's own flags, added with the default that keeps every row as it was.
const FLAGS: &[(&str, &str)] = &[
    ("oauth2_client_tbl", "allow_nopwd"),
    ("oauth2_client_tbl", "disabled"),
    ("user_account_tbl", "disabled"),
];

/// Columns that must be unique, with the index name tokencache's own schema uses.
const UNIQUE: &[(&str, &str, &str)] = &[
    ("oauth2_client_tbl", "app_key", "uk_oauth2_client_app_key"),
    ("user_account_tbl", "account", "uk_user_account_account"),
];

/// Seed columns tokencache needs a value in (NULL-able in some installations).
const NOT_NULL: &[(&str, &str)] = &[
    ("oauth2_client_tbl", "app_key"),
    ("oauth2_client_tbl", "app_secret"),
    ("oauth2_client_tbl", "strict_verify"),
    ("oauth2_client_tbl", "token_expire_time"),
    ("user_account_tbl", "account"),
    ("user_account_tbl", "password"),
    ("user_account_tbl", "account_type"),
    ("user_info_tbl", "nickname"),
];

/// A column as information_schema describes it.
struct Column {
    name: String,
    data_type: String,
    /// The full type: `int(11) unsigned`, `datetime(6)`, `varchar(64)`.
    column_type: String,
    /// `on update current_timestamp()`, MySQL 8's `DEFAULT_GENERATED`.
    extra: String,
    char_length: Option<i64>,
    nullable: bool,
    default: Option<String>,
    collation: Option<String>,
    comment: String,
}

impl Column {
    /// `utf8` (3 bytes a character at most) becomes `utf8mb4` with the same collation
    /// rules, so no two values that differed start to compare equal (a unique key
    /// stays valid). Another character set keeps its own on a unique column.
    fn any_character_collation(&self, unique: bool) -> Option<String> {
        let collation = self.collation.as_deref()?;
        if collation.starts_with("utf8mb4") {
            return None;
        }
        for old in ["utf8mb3_", "utf8_"] {
            if let Some(rest) = collation.strip_prefix(old) {
                return Some(format!("utf8mb4_{rest}"));
            }
        }
        (!unique).then(|| "utf8mb4_unicode_ci".to_owned())
    }

    /// `MODIFY COLUMN` with a new type, collation and nullability, keeping the default
    /// and the comment as they are.
    fn modify(&self, column_type: &str, collation: Option<&str>, nullable: bool) -> String {
        let mut sql = format!("MODIFY COLUMN `{}` {column_type}", self.name);
        if let Some(collation) = collation.or(self.collation.as_deref()) {
            let charset = collation.split('_').next().unwrap_or(collation);
            sql.push_str(&format!(" CHARACTER SET {charset} COLLATE {collation}"));
        }
        sql.push_str(if nullable { " NULL" } else { " NOT NULL" });
        if let Some(default) = self.default_clause() {
            sql.push_str(&format!(" DEFAULT {default}"));
        }
        if let Some(at) = self.extra.find("on update ") {
            sql.push(' ');
            sql.push_str(&self.extra[at..].to_uppercase());
        }
        if !self.comment.is_empty() {
            sql.push_str(&format!(" COMMENT {}", quote(&self.comment)));
        }
        sql
    }

    /// MariaDB reports a default as an SQL expression (`'text'`, `NULL`,
    /// `current_timestamp()`), MySQL as the bare value: both are read back here.
    fn default_clause(&self) -> Option<String> {
        let default = self.default.as_deref()?;
        if default.eq_ignore_ascii_case("NULL") {
            return None;
        }
        // `current_timestamp()`, `CURRENT_TIMESTAMP`, `current_timestamp(6)`: as written.
        if default
            .to_ascii_lowercase()
            .starts_with("current_timestamp")
        {
            return Some(default.to_owned());
        }
        // MySQL 8 marks an expression default so; MariaDB writes it as an expression.
        if self.extra.contains("default_generated") {
            return Some(format!("({default})"));
        }
        if default.starts_with('\'') && default.ends_with('\'') && default.len() >= 2 {
            return Some(default.to_owned());
        }
        Some(quote(default))
    }
}

fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
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
    for (table, seed_columns) in SEED {
        let Some(columns) = table_columns(db, table, &mut problems).await? else {
            continue;
        };
        let find = |name: &str| columns.iter().find(|c| c.name == name);
        let mut changes = Vec::new();
        for (name, kind) in *seed_columns {
            match find(name) {
                None => problems.push(format!(
                    "{table}.{name} is missing: this is not a table of xxjwxc/oauth2 or tokencache; \
                     add the column or rename the table"
                )),
                Some(c) if !kind.accepts(&c.data_type) => problems.push(format!(
                    "{table}.{name} is {}, tokencache needs {}: change its type by hand \
                     (keeping its values), then run migrate again",
                    c.data_type,
                    kind.name()
                )),
                Some(_) => {}
            }
        }
        for c in &columns {
            let seed = seed_columns.iter().any(|(n, _)| *n == c.name);
            // sqlx reads tokencache's integer columns as signed 32-bit: an UNSIGNED one
            // would fail every query that reads it.
            if seed && Kind::Integer.accepts(&c.data_type) && c.column_type.contains("unsigned") {
                problems.push(format!(
                    "{table}.{} is {}: tokencache reads it as a signed INT; make it signed \
                     (ALTER TABLE {table} MODIFY {} INT ...), then run migrate again",
                    c.name, c.column_type, c.name
                ));
            }
            // A zero-date default makes MySQL (NO_ZERO_DATE, strict mode) refuse every
            // ALTER of the table.
            if Kind::DateTime.accepts(&c.data_type)
                && c.default
                    .as_deref()
                    .is_some_and(|d| d.trim_matches('\'').starts_with("0000-00-00"))
            {
                problems.push(format!(
                    "{table}.{} has the default {}, not a date: give it a real default or NULL",
                    c.name,
                    c.default.as_deref().unwrap_or_default()
                ));
            }
        }
        for (t, name) in NOT_NULL {
            if t != table {
                continue;
            }
            if let Some(c) = find(name).filter(|c| c.nullable) {
                let nulls = count(db, table, &format!("`{}` IS NULL", c.name)).await?;
                if nulls > 0 {
                    problems.push(format!(
                        "{table}.{name} is NULL in {nulls} row(s): tokencache needs a value \
                         there; fill them in, then run migrate again"
                    ));
                }
            }
        }
        for (t, name, _) in UNIQUE {
            if let Some(c) = find(name).filter(|c| t == table && Kind::Text.accepts(&c.data_type)) {
                if !matches!(c.data_type.as_str(), "char" | "varchar") {
                    problems.push(format!(
                        "{table}.{name} is {}: it needs a unique key, which takes a varchar; \
                         make it VARCHAR(255), then run migrate again",
                        c.data_type
                    ));
                }
            }
        }
        for (t, flag) in FLAGS {
            if t == table {
                match find(flag) {
                    None => {
                        changes.push(format!("ADD COLUMN `{flag}` TINYINT(1) NOT NULL DEFAULT 0"))
                    }
                    Some(c) if !Kind::Integer.accepts(&c.data_type) => problems.push(format!(
                        "{table}.{flag} is {}, tokencache needs a tinyint(1) flag",
                        c.data_type
                    )),
                    Some(_) => {}
                }
            }
        }
        // The original made expire_time NOT NULL; tokencache writes NULL for a client
        // that never expires. The default is kept.
        if *table == "oauth2_client_tbl" {
            if let Some(c) =
                find("expire_time").filter(|c| !c.nullable && Kind::DateTime.accepts(&c.data_type))
            {
                changes.push(c.modify(&c.column_type, None, true));
            }
        }
        // Wider, or able to hold any character, or both: one MODIFY a column.
        for c in &columns {
            let width = WIDTHS
                .iter()
                .find(|(t, n, _)| t == table && *n == c.name)
                .map(|(_, _, w)| *w);
            let any_character = ANY_CHARACTER
                .iter()
                .any(|(t, n)| t == table && *n == c.name);
            if !Kind::Text.accepts(&c.data_type) || (width.is_none() && !any_character) {
                continue;
            }
            let unique = UNIQUE.iter().any(|(t, n, _)| t == table && *n == c.name);
            let collation = any_character
                .then(|| c.any_character_collation(unique))
                .flatten();
            let short = width.filter(|w| {
                matches!(c.data_type.as_str(), "char" | "varchar")
                    && c.char_length.is_some_and(|l| l < *w as i64)
            });
            if short.is_some() || collation.is_some() {
                let column_type =
                    short.map_or_else(|| c.column_type.clone(), |w| format!("VARCHAR({w})"));
                changes.push(c.modify(&column_type, collation.as_deref(), c.nullable));
            }
        }
        for (t, name, index) in UNIQUE {
            let indexable = t == table
                && find(name).is_some_and(|c| matches!(c.data_type.as_str(), "char" | "varchar"));
            if indexable && !has_unique_index(db, table, name).await? {
                let duplicates = duplicates(db, table, name).await?;
                if duplicates.is_empty() {
                    changes.push(format!("ADD UNIQUE INDEX `{index}` (`{name}`)"));
                } else {
                    problems.push(format!(
                        "{table}.{name} must be unique, and these values are in more than one \
                         row: {}. Keep one row for each (delete or rename the others; requests \
                         name a row by its {name}, so only one can be meant), then run migrate again",
                        duplicates.join(", ")
                    ));
                }
            }
        }
        for (name, kind) in *seed_columns {
            if *kind == Kind::DateTime && find(name).is_some_and(|c| kind.accepts(&c.data_type)) {
                let zero = count(
                    db,
                    table,
                    &format!(
                        "CAST(`{name}` AS CHAR) LIKE '0000-%' OR CAST(`{name}` AS CHAR) LIKE '____-00-%' \
                         OR CAST(`{name}` AS CHAR) LIKE '____-__-00%'"
                    ),
                )
                .await?;
                if zero > 0 {
                    problems.push(format!(
                        "{table}.{name} holds {zero} zero date(s) ('0000-00-00', or a zero month or day), which are not \
                         dates; set them to a real date{} first, then run migrate again",
                        if find(name).is_some_and(|c| c.nullable) {
                            " or NULL"
                        } else {
                            ""
                        }
                    ));
                }
            }
        }
        if !changes.is_empty() {
            // One statement a table: MySQL applies it whole or not at all.
            statements.push(format!("ALTER TABLE `{table}` {}", changes.join(", ")));
        }
    }
    if problems.is_empty() {
        Ok(statements)
    } else {
        Err(refused(&problems))
    }
}

/// The columns of `table` in the current database; `None` when there is no such table
/// (the first migration creates it) or it is not a base table (a problem).
async fn table_columns<C: ConnectionTrait>(
    db: &C,
    table: &str,
    problems: &mut Vec<String>,
) -> Result<Option<Vec<Column>>, DbErr> {
    let kind = db
        .query_one(Statement::from_sql_and_values(
            DbBackend::MySql,
            "SELECT CAST(TABLE_TYPE AS CHAR) AS t FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
            [table.into()],
        ))
        .await?;
    let Some(kind) = kind else {
        return Ok(None);
    };
    let kind: String = kind.try_get("", "t")?;
    if kind != "BASE TABLE" {
        problems.push(format!(
            "{table} is a {}, not a table: tokencache writes to it",
            kind.to_lowercase()
        ));
        return Ok(None);
    }
    let rows = db
        .query_all(Statement::from_sql_and_values(
            DbBackend::MySql,
            "SELECT CAST(COLUMN_NAME AS CHAR) AS name, CAST(DATA_TYPE AS CHAR) AS data_type, \
             CAST(COLUMN_TYPE AS CHAR) AS column_type, CAST(EXTRA AS CHAR) AS extra, \
             CAST(CHARACTER_MAXIMUM_LENGTH AS SIGNED) AS char_length, \
             CAST(IS_NULLABLE AS CHAR) AS nullable, CAST(COLUMN_DEFAULT AS CHAR) AS dflt, \
             CAST(COLLATION_NAME AS CHAR) AS coll, \
             CAST(COLUMN_COMMENT AS CHAR) AS comment \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? \
             ORDER BY ORDINAL_POSITION",
            [table.into()],
        ))
        .await?;
    let mut columns = Vec::with_capacity(rows.len());
    for row in rows {
        columns.push(Column {
            name: row.try_get("", "name")?,
            data_type: row.try_get::<String>("", "data_type")?.to_lowercase(),
            column_type: row.try_get::<String>("", "column_type")?.to_lowercase(),
            extra: row.try_get::<String>("", "extra")?.to_lowercase(),
            char_length: row.try_get("", "char_length")?,
            nullable: row.try_get::<String>("", "nullable")? == "YES",
            default: row.try_get("", "dflt")?,
            collation: row.try_get("", "coll")?,
            comment: row.try_get("", "comment")?,
        });
    }
    Ok(Some(columns))
}

/// Whether an index of `table` makes `column` unique on its own.
async fn has_unique_index<C: ConnectionTrait>(
    db: &C,
    table: &str,
    column: &str,
) -> Result<bool, DbErr> {
    let n = number(
        db,
        Statement::from_sql_and_values(
            DbBackend::MySql,
            "SELECT COUNT(*) AS n FROM (SELECT INDEX_NAME FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND NON_UNIQUE = 0 \
             GROUP BY INDEX_NAME \
             HAVING COUNT(*) = 1 AND MAX(COLUMN_NAME) = ? AND MAX(SUB_PART) IS NULL) AS u",
            [table.into(), column.into()],
        ),
    )
    .await?;
    Ok(n > 0)
}

/// Up to 20 values of `column` held by more than one row, quoted, with their counts.
async fn duplicates<C: ConnectionTrait>(
    db: &C,
    table: &str,
    column: &str,
) -> Result<Vec<String>, DbErr> {
    let rows = db
        .query_all(Statement::from_string(
            DbBackend::MySql,
            format!(
                "SELECT CAST(`{column}` AS CHAR) AS v, COUNT(*) AS n FROM `{table}` \
                 GROUP BY `{column}` HAVING COUNT(*) > 1 ORDER BY `{column}` LIMIT 20"
            ),
        ))
        .await?;
    rows.iter()
        .map(|r| {
            let value: Option<String> = r.try_get("", "v")?;
            let n: i64 = r.try_get("", "n")?;
            Ok(format!(
                "{} ({n} rows)",
                value.map_or_else(|| "NULL".to_owned(), |v| quote(&v))
            ))
        })
        .collect()
}

/// How many rows of `table` match `condition`.
async fn count<C: ConnectionTrait>(db: &C, table: &str, condition: &str) -> Result<i64, DbErr> {
    number(
        db,
        Statement::from_string(
            DbBackend::MySql,
            format!("SELECT COUNT(*) AS n FROM `{table}` WHERE {condition}"),
        ),
    )
    .await
}

/// The column `n` of a query's one row (0 without a row).
async fn number<C: ConnectionTrait>(db: &C, query: Statement) -> Result<i64, DbErr> {
    Ok(db
        .query_one(query)
        .await?
        .map(|r| r.try_get::<i64>("", "n"))
        .transpose()?
        .unwrap_or(0))
}

/// Whether this migration is recorded as applied (then `plan` need not run before the
/// others): read without creating the migrations table.
pub async fn recorded<C: ConnectionTrait>(db: &C) -> Result<bool, DbErr> {
    if db.get_database_backend() != DbBackend::MySql {
        return Ok(false);
    }
    let table = number(
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
    let applied = number(
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
