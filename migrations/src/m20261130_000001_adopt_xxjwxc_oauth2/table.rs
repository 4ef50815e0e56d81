//! A record table as it is (its columns, as information_schema describes them), and the
//! `MODIFY COLUMN` that changes one column while keeping the rest of its definition.
use std::fmt;

use super::schema::Kind;

/// One of the three record tables, as found.
pub(super) struct Table {
    pub(super) name: &'static str,
    /// The seed's columns of this table, with the kind each must have.
    pub(super) seed: &'static [(&'static str, Kind)],
    pub(super) columns: Vec<Column>,
}

impl Table {
    /// The column of this name, if the table has it.
    pub(super) fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Whether the column of this name is one of the seed's.
    pub(super) fn is_seed(&self, name: &str) -> bool {
        self.seed.iter().any(|(n, _)| *n == name)
    }
}

/// A table is named by its name in every problem and statement.
impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// A column as information_schema describes it.
pub(super) struct Column {
    pub(super) name: String,
    pub(super) data_type: String,
    /// The full type: `int(11) unsigned`, `datetime(6)`, `varchar(64)`.
    pub(super) column_type: String,
    /// `on update current_timestamp()`, MySQL 8's `DEFAULT_GENERATED`.
    pub(super) extra: String,
    pub(super) char_length: Option<i64>,
    pub(super) nullable: bool,
    pub(super) default: Option<String>,
    pub(super) collation: Option<String>,
    pub(super) comment: String,
}

impl Column {
    /// `utf8` (3 bytes a character at most) becomes `utf8mb4` with the same collation
    /// rules, so no two values that differed start to compare equal (a unique key
    /// stays valid). Another character set keeps its own on a unique column.
    pub(super) fn any_character_collation(&self, unique: bool) -> Option<String> {
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
    pub(super) fn modify(
        &self,
        column_type: &str,
        collation: Option<&str>,
        nullable: bool,
    ) -> String {
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

/// `text` as an SQL string literal.
pub(super) fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
}
