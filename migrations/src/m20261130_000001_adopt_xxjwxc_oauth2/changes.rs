//! The changes: what the adoption adds and widens (never narrows or drops), gathered into
//! one `ALTER TABLE` a table. One function a kind of change.
use super::inspect::MissingKey;
use super::schema::{Kind, ANY_CHARACTER, FLAGS, UNIQUE, WIDTHS};
use super::table::{Column, Table};

/// The statement that brings `table` to what tokencache needs; `None` when it needs
/// nothing. `keys` are the unique keys it lacks (`inspect::missing_unique_keys`).
pub(super) fn alter(table: &Table, keys: &[MissingKey]) -> Option<String> {
    let mut changes = add_flags(table);
    changes.extend(expire_time_nullable(table));
    changes.extend(table.columns.iter().filter_map(|c| widen(table, c)));
    changes.extend(add_unique_keys(keys));
    // One statement a table: MySQL applies it whole or not at all.
    (!changes.is_empty()).then(|| format!("ALTER TABLE `{table}` {}", changes.join(", ")))
}

/// tokencache's flags the table lacks, added with the default that keeps every row as it
/// was.
fn add_flags(table: &Table) -> Vec<String> {
    FLAGS
        .iter()
        .filter(|(t, flag)| *t == table.name && table.column(flag).is_none())
        .map(|(_, flag)| format!("ADD COLUMN `{flag}` TINYINT(1) NOT NULL DEFAULT 0"))
        .collect()
}

/// The original made expire_time NOT NULL; tokencache writes NULL for a client that never
/// expires. The default is kept.
fn expire_time_nullable(table: &Table) -> Option<String> {
    if table.name != "oauth2_client_tbl" {
        return None;
    }
    table
        .column("expire_time")
        .filter(|c| !c.nullable && Kind::DateTime.accepts(&c.data_type))
        .map(|c| c.modify(&c.column_type, None, true))
}

/// Wider, or able to hold any character, or both: one MODIFY a column.
fn widen(table: &Table, c: &Column) -> Option<String> {
    let width = WIDTHS
        .iter()
        .find(|(t, n, _)| *t == table.name && *n == c.name)
        .map(|(_, _, w)| *w);
    let any_character = ANY_CHARACTER
        .iter()
        .any(|(t, n)| *t == table.name && *n == c.name);
    if !Kind::Text.accepts(&c.data_type) || (width.is_none() && !any_character) {
        return None;
    }
    let unique = UNIQUE
        .iter()
        .any(|(t, n, _)| *t == table.name && *n == c.name);
    let collation = any_character
        .then(|| c.any_character_collation(unique))
        .flatten();
    let short = width.filter(|w| {
        matches!(c.data_type.as_str(), "char" | "varchar")
            && c.char_length.is_some_and(|l| l < *w as i64)
    });
    if short.is_none() && collation.is_none() {
        return None;
    }
    let column_type = short.map_or_else(|| c.column_type.clone(), |w| format!("VARCHAR({w})"));
    Some(c.modify(&column_type, collation.as_deref(), c.nullable))
}

/// The unique keys that can be added: those whose values are each in one row.
fn add_unique_keys(keys: &[MissingKey]) -> Vec<String> {
    let mut changes = Vec::new();
    for key in keys.iter().filter(|key| key.duplicates.is_empty()) {
        let (index, name) = (key.index, key.column);
        changes.push(format!("ADD UNIQUE INDEX `{index}` (`{name}`)"));
    }
    changes
}
