//! What tokencache needs of the original's three record tables: the seed's columns and
//! the kind of each, the widths, character sets, flags and unique keys it adds, the
//! columns it needs a value in.

/// What kind of values a seed column must hold for tokencache to read it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Integer,
    Text,
    DateTime,
}

impl Kind {
    pub(super) fn accepts(self, data_type: &str) -> bool {
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

    pub(super) fn name(self) -> &'static str {
        match self {
            Kind::Integer => "an integer type",
            Kind::Text => "a text type (varchar, char, text)",
            Kind::DateTime => "datetime or timestamp",
        }
    }
}

/// The seed's columns of the three record tables, with the kind each must have.
pub(super) const SEED: &[(&str, &[(&str, Kind)])] = &[
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
pub(super) const WIDTHS: &[(&str, &str, u64)] = &[
    ("user_account_tbl", "account", 191),
    ("user_account_tbl", "password", 255),
    ("user_account_tbl", "reg_ip", 64),
    ("user_info_tbl", "nickname", 128),
];

/// Columns that must take any character (4-byte UTF-8 too: emoji in a nickname or an
/// account name), converted from MySQL's 3-byte `utf8`.
pub(super) const ANY_CHARACTER: &[(&str, &str)] = &[
    ("user_account_tbl", "account"),
    ("user_info_tbl", "nickname"),
    ("user_info_tbl", "headurl"),
];

/// tokencache's own flags, added with the default that keeps every row as it was.
pub(super) const FLAGS: &[(&str, &str)] = &[
    ("oauth2_client_tbl", "allow_nopwd"),
    ("oauth2_client_tbl", "disabled"),
    ("user_account_tbl", "disabled"),
];

/// Columns that must be unique, with the index name tokencache's own schema uses.
pub(super) const UNIQUE: &[(&str, &str, &str)] = &[
    ("oauth2_client_tbl", "app_key", "uk_oauth2_client_app_key"),
    ("user_account_tbl", "account", "uk_user_account_account"),
];

/// Seed columns tokencache needs a value in (NULL-able in some installations).
pub(super) const NOT_NULL: &[(&str, &str)] = &[
    ("oauth2_client_tbl", "app_key"),
    ("oauth2_client_tbl", "app_secret"),
    ("oauth2_client_tbl", "strict_verify"),
    ("oauth2_client_tbl", "token_expire_time"),
    ("user_account_tbl", "account"),
    ("user_account_tbl", "password"),
    ("user_account_tbl", "account_type"),
    ("user_info_tbl", "nickname"),
];
