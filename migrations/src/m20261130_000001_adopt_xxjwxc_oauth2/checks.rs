//! The refusals: what keeps a table from being adopted as it is. One function a refusal,
//! each returning the problem it finds (`None`: none), worded for the operator who must
//! fix it by hand; `plan` lists them all and then changes nothing.
use sea_orm_migration::sea_orm::{ConnectionTrait, DbErr};

use super::inspect::{count, MissingKey};
use super::schema::Kind;
use super::table::{Column, Table};

/// Under a record table's name there is something else (a view): tokencache writes to it.
pub(super) fn not_a_table(table: &str, kind: &str) -> String {
    format!(
        "{table} is a {}, not a table: tokencache writes to it",
        kind.to_lowercase()
    )
}

/// A seed column is not there: not a table of the original's, nor of tokencache's.
pub(super) fn missing_column(table: &Table, name: &str) -> Option<String> {
    if table.column(name).is_some() {
        return None;
    }
    Some(format!(
        "{table}.{name} is missing: this is not a table of xxjwxc/oauth2 or tokencache; \
         add the column or rename the table"
    ))
}

/// A seed column holds another kind of value than tokencache reads from it.
pub(super) fn wrong_kind(table: &Table, name: &str, kind: Kind) -> Option<String> {
    let c = table.column(name).filter(|c| !kind.accepts(&c.data_type))?;
    Some(format!(
        "{table}.{name} is {}, tokencache needs {}: change its type by hand \
         (keeping its values), then run migrate again",
        c.data_type,
        kind.name()
    ))
}

/// An UNSIGNED seed integer: sqlx reads tokencache's integer columns as signed 32-bit, so
/// it would fail every query that reads it.
pub(super) fn unsigned_integer(table: &Table, c: &Column) -> Option<String> {
    if !(table.is_seed(&c.name)
        && Kind::Integer.accepts(&c.data_type)
        && c.column_type.contains("unsigned"))
    {
        return None;
    }
    Some(format!(
        "{table}.{} is {}: tokencache reads it as a signed INT; make it signed \
         (ALTER TABLE {table} MODIFY {} INT ...), then run migrate again",
        c.name, c.column_type, c.name
    ))
}

/// A zero-date default: MySQL (NO_ZERO_DATE, strict mode) refuses every ALTER of the
/// table.
pub(super) fn zero_date_default(table: &Table, c: &Column) -> Option<String> {
    let zero = Kind::DateTime.accepts(&c.data_type)
        && c.default
            .as_deref()
            .is_some_and(|d| d.trim_matches('\'').starts_with("0000-00-00"));
    if !zero {
        return None;
    }
    Some(format!(
        "{table}.{} has the default {}, not a date: give it a real default or NULL",
        c.name,
        c.default.as_deref().unwrap_or_default()
    ))
}

/// NULLs in a column tokencache needs a value in (counted when the column allows them).
pub(super) async fn nulls<C: ConnectionTrait>(
    db: &C,
    table: &Table,
    name: &str,
) -> Result<Option<String>, DbErr> {
    let Some(c) = table.column(name).filter(|c| c.nullable) else {
        return Ok(None);
    };
    let nulls = count(db, table.name, &format!("`{}` IS NULL", c.name)).await?;
    Ok((nulls > 0).then(|| {
        format!(
            "{table}.{name} is NULL in {nulls} row(s): tokencache needs a value \
             there; fill them in, then run migrate again"
        )
    }))
}

/// A column that must be unique is of a text type a unique key cannot take (a `text`).
pub(super) fn unique_not_varchar(table: &Table, name: &str) -> Option<String> {
    let c = table
        .column(name)
        .filter(|c| Kind::Text.accepts(&c.data_type))?;
    if matches!(c.data_type.as_str(), "char" | "varchar") {
        return None;
    }
    Some(format!(
        "{table}.{name} is {}: it needs a unique key, which takes a varchar; \
         make it VARCHAR(255), then run migrate again",
        c.data_type
    ))
}

/// One of tokencache's flags is there already, but not as an integer.
pub(super) fn flag_not_integer(table: &Table, flag: &str) -> Option<String> {
    let c = table
        .column(flag)
        .filter(|c| !Kind::Integer.accepts(&c.data_type))?;
    Some(format!(
        "{table}.{flag} is {}, tokencache needs a tinyint(1) flag",
        c.data_type
    ))
}

/// A unique key cannot be added: values in more than one row, of which requests could
/// only ever mean one.
pub(super) fn duplicated_values(table: &Table, key: &MissingKey) -> Option<String> {
    if key.duplicates.is_empty() {
        return None;
    }
    let name = key.column;
    Some(format!(
        "{table}.{name} must be unique, and these values are in more than one \
         row: {}. Keep one row for each (delete or rename the others; requests \
         name a row by its {name}, so only one can be meant), then run migrate again",
        key.duplicates.join(", ")
    ))
}

/// Zero dates ('0000-00-00', a zero month or day) in the rows of a date seed column:
/// not dates (counted when the column is of a date type).
pub(super) async fn zero_dates<C: ConnectionTrait>(
    db: &C,
    table: &Table,
    name: &str,
    kind: Kind,
) -> Result<Option<String>, DbErr> {
    if kind != Kind::DateTime
        || !table
            .column(name)
            .is_some_and(|c| kind.accepts(&c.data_type))
    {
        return Ok(None);
    }
    let zero = count(
        db,
        table.name,
        &format!(
            "CAST(`{name}` AS CHAR) LIKE '0000-%' OR CAST(`{name}` AS CHAR) LIKE '____-00-%' \
             OR CAST(`{name}` AS CHAR) LIKE '____-__-00%'"
        ),
    )
    .await?;
    if zero <= 0 {
        return Ok(None);
    }
    Ok(Some(format!(
        "{table}.{name} holds {zero} zero date(s) ('0000-00-00', or a zero month or day), which are not \
         dates; set them to a real date{} first, then run migrate again",
        if table.column(name).is_some_and(|c| c.nullable) {
            " or NULL"
        } else {
            ""
        }
    )))
}
