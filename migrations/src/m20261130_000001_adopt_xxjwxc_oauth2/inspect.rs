//! The queries that read the database as it is (information_schema and the tables'
//! rows). None of them writes.
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};

use super::schema::UNIQUE;
use super::table::{quote, Column, Table};

/// What the database holds under a record table's name.
pub(super) enum Found {
    /// Nothing: the first migration creates the table.
    Absent,
    /// Something else than a base table (a view): its `TABLE_TYPE`.
    NotATable(String),
    /// A base table, with its columns in their order.
    Columns(Vec<Column>),
}

/// The columns of `table` in the current database, or why there are none to adopt.
pub(super) async fn columns<C: ConnectionTrait>(db: &C, table: &str) -> Result<Found, DbErr> {
    let kind = db
        .query_one(Statement::from_sql_and_values(
            DbBackend::MySql,
            "SELECT CAST(TABLE_TYPE AS CHAR) AS t FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
            [table.into()],
        ))
        .await?;
    let Some(kind) = kind else {
        return Ok(Found::Absent);
    };
    let kind: String = kind.try_get("", "t")?;
    if kind != "BASE TABLE" {
        return Ok(Found::NotATable(kind));
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
    Ok(Found::Columns(columns))
}

/// A column that must be unique, of a type a unique key takes, without one yet.
pub(super) struct MissingKey {
    pub(super) column: &'static str,
    /// The index name tokencache's own schema uses.
    pub(super) index: &'static str,
    /// The values more than one row holds (up to 20): while there is one, the key cannot
    /// be added.
    pub(super) duplicates: Vec<String>,
}

/// The unique keys `table` lacks on a `char` or `varchar` column, each with the values
/// that stand in its way.
pub(super) async fn missing_unique_keys<C: ConnectionTrait>(
    db: &C,
    table: &Table,
) -> Result<Vec<MissingKey>, DbErr> {
    let mut missing = Vec::new();
    for &(t, name, index) in UNIQUE {
        let indexable = t == table.name
            && table
                .column(name)
                .is_some_and(|c| matches!(c.data_type.as_str(), "char" | "varchar"));
        if indexable && !has_unique_index(db, table.name, name).await? {
            missing.push(MissingKey {
                column: name,
                index,
                duplicates: duplicates(db, table.name, name).await?,
            });
        }
    }
    Ok(missing)
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
pub(super) async fn count<C: ConnectionTrait>(
    db: &C,
    table: &str,
    condition: &str,
) -> Result<i64, DbErr> {
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
pub(super) async fn number<C: ConnectionTrait>(db: &C, query: Statement) -> Result<i64, DbErr> {
    Ok(db
        .query_one(query)
        .await?
        .map(|r| r.try_get::<i64>("", "n"))
        .transpose()?
        .unwrap_or(0))
}
