//! The sea-orm record store: the only module that imports the entities. One
//! implementation serves MySQL/MariaDB and SQLite (the embedded default).
use std::time::Duration;

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection,
    DbErr, EntityTrait, QueryFilter, QueryOrder, Set, SqlErr, TransactionTrait,
};

use super::entities::{client, signing_key, user_account, user_info};
use super::zone::DbZone;
use crate::secret::Secret;
use crate::store::{
    Client, ClientRecords, KeyRecords, NewClient, NewUser, Profile, ProfileRecords, RecordStore,
    StoreError, StoredKey, User, UserRecords,
};
use crate::telemetry::StoreOp;

/// sea-orm behind the record traits.
#[derive(Clone)]
pub struct SeaRecords {
    db: DatabaseConnection,
    /// Upper bound on one operation, pool wait included: no request hangs on the database.
    timeout: Duration,
    backend: &'static str,
    /// The zone the DATETIME columns are written in (UTC unless adopted from a server
    /// that wrote local times).
    zone: DbZone,
}

impl SeaRecords {
    /// Opens a pool on `url` (`mysql://…` or `sqlite://…`). Connections are made on
    /// demand, so the server starts even while the database is down.
    pub async fn open(url: &str, timeout: Duration, zone: DbZone) -> Result<Self, StoreError> {
        let backend = if url.starts_with("sqlite:") {
            "sqlite"
        } else {
            "mysql"
        };
        let mut options = ConnectOptions::new(url.to_owned());
        options
            .connect_timeout(timeout)
            .acquire_timeout(timeout)
            .max_connections(if backend == "sqlite" { 4 } else { 16 })
            .min_connections(0)
            .connect_lazy(backend == "mysql")
            .sqlx_logging(false);
        // sea-orm puts the whole URL in some of its errors: never its password.
        let db = Database::connect(options)
            .await
            .map_err(|e| redacted(e, url))?;
        Ok(Self {
            db,
            timeout,
            backend,
            zone,
        })
    }

    /// The connection, for the migrations (`migrate.rs`) and the legacy token import
    /// (`legacy.rs`).
    pub(crate) fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    pub(crate) fn zone(&self) -> DbZone {
        self.zone
    }

    fn client_from(&self, m: client::Model) -> Client {
        Client {
            app_key: m.app_key,
            app_secret: Secret::new(m.app_secret),
            expire_time: m.expire_time.map(|t| self.zone.to_utc(t)),
            strict_verify: m.strict_verify,
            token_expire_time: m.token_expire_time,
            allow_nopwd: m.allow_nopwd,
            disabled: m.disabled,
        }
    }

    pub(super) async fn bounded<T>(
        &self,
        operation: &'static str,
        op: impl std::future::Future<Output = Result<T, DbErr>>,
    ) -> Result<T, StoreError> {
        let timer = StoreOp::start("sql", operation);
        let result = match tokio::time::timeout(self.timeout, op).await {
            Ok(result) => result.map_err(db_error),
            Err(elapsed) => Err(StoreError::Unavailable {
                store: "sql",
                source: Box::new(elapsed),
            }),
        };
        // A unique-key conflict is an answer, not a store failure.
        timer.finish(!matches!(result, Err(StoreError::Unavailable { .. })));
        result
    }
}

/// The account row of `account` and its profile row. A legacy row may have no
/// user_info_tbl row.
async fn account_and_info<C: ConnectionTrait>(
    conn: &C,
    account: &str,
) -> Result<Option<(user_account::Model, Option<user_info::Model>)>, DbErr> {
    let Some(user) = user_account::Entity::find()
        .filter(user_account::Column::Account.eq(account))
        .one(conn)
        .await?
    else {
        return Ok(None);
    };
    let info = match user.user_info_id {
        Some(id) => user_info::Entity::find_by_id(id).one(conn).await?,
        None => None,
    };
    Ok(Some((user, info)))
}

/// A connection error without the URL's password: the URL itself is taken out, and any
/// other spelling of the password.
fn redacted(e: DbErr, url: &str) -> StoreError {
    let mut text = e.to_string().replace(url, "<the database URL>");
    let password = match url::Url::parse(url) {
        Ok(parsed) => parsed.password().map(str::to_owned),
        // Not a URL: whatever stands between the last ':' and '@' may be a password.
        Err(_) => url
            .split_once('@')
            .and_then(|(before, _)| before.rsplit_once(':'))
            .map(|(_, p)| p.to_owned()),
    };
    if let Some(password) = password.filter(|p| !p.is_empty()) {
        text = text
            .replace(&percent_decoded(&password), "***")
            .replace(&password, "***");
    }
    StoreError::Unavailable {
        store: "sql",
        source: text.into(),
    }
}

fn percent_decoded(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={text}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// A sea-orm error as a store error: a unique key's conflict is `Conflict`, anything else
/// `Unavailable` (also for the migrations, `migrate.rs`).
pub(super) fn db_error(e: DbErr) -> StoreError {
    if let Some(SqlErr::UniqueConstraintViolation(_)) = e.sql_err() {
        return StoreError::Conflict;
    }
    StoreError::Unavailable {
        store: "sql",
        source: Box::new(e),
    }
}

impl From<user_account::Model> for User {
    fn from(m: user_account::Model) -> Self {
        User {
            id: m.id,
            account: m.account,
            password: Secret::new(m.password),
            account_type: m.account_type,
            app_key: m.app_key.unwrap_or_default(),
            disabled: m.disabled,
        }
    }
}

impl RecordStore for SeaRecords {
    fn name(&self) -> &'static str {
        self.backend
    }

    fn pool_usage(&self) -> Option<(u32, u32)> {
        let (size, idle) = match self.backend {
            "sqlite" => {
                let pool = self.db.get_sqlite_connection_pool();
                (pool.size(), pool.num_idle())
            }
            _ => {
                let pool = self.db.get_mysql_connection_pool();
                (pool.size(), pool.num_idle())
            }
        };
        Some((
            size,
            size.saturating_sub(u32::try_from(idle).unwrap_or(u32::MAX)),
        ))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.bounded("ping", self.db.execute_unprepared("SELECT 1"))
            .await
            .map(|_| ())
    }
}

impl ClientRecords for SeaRecords {
    async fn client(&self, app_key: &str) -> Result<Option<Client>, StoreError> {
        let found = self
            .bounded(
                "client",
                client::Entity::find()
                    .filter(client::Column::AppKey.eq(app_key))
                    .one(&self.db),
            )
            .await?;
        Ok(found.map(|m| self.client_from(m)))
    }

    async fn clients(&self) -> Result<Vec<Client>, StoreError> {
        let all = self
            .bounded(
                "clients",
                client::Entity::find()
                    .order_by_asc(client::Column::AppKey)
                    .all(&self.db),
            )
            .await?;
        Ok(all.into_iter().map(|m| self.client_from(m)).collect())
    }

    async fn create_client(&self, c: &NewClient) -> Result<(), StoreError> {
        let row = client::ActiveModel {
            app_key: Set(c.app_key.clone()),
            app_secret: Set(c.app_secret.expose().to_owned()),
            expire_time: Set(c.expire_time.map(|t| self.zone.from_utc(t))),
            strict_verify: Set(c.strict_verify),
            token_expire_time: Set(c.token_expire_time),
            allow_nopwd: Set(c.allow_nopwd),
            disabled: Set(false),
            ..Default::default()
        };
        self.bounded("create_client", row.insert(&self.db))
            .await
            .map(|_| ())
    }

    async fn disable_client(&self, app_key: &str) -> Result<bool, StoreError> {
        // MySQL counts changed rows, not matched ones: look the row up first so that
        // disabling twice is not "no such client".
        if self.client(app_key).await?.is_none() {
            return Ok(false);
        }
        self.bounded(
            "disable_client",
            client::Entity::update_many()
                .col_expr(client::Column::Disabled, Expr::value(true))
                .filter(client::Column::AppKey.eq(app_key))
                .exec(&self.db),
        )
        .await?;
        Ok(true)
    }
}

impl UserRecords for SeaRecords {
    async fn user(&self, account: &str) -> Result<Option<User>, StoreError> {
        let found = self
            .bounded(
                "user",
                user_account::Entity::find()
                    .filter(user_account::Column::Account.eq(account))
                    .one(&self.db),
            )
            .await?;
        Ok(found.map(User::from))
    }

    async fn create_user(&self, u: &NewUser) -> Result<(), StoreError> {
        let u = u.clone();
        let reg_time = self.zone.from_utc(crate::clock::utc_now());
        let create = self.db.transaction::<_, (), DbErr>(move |txn| {
            Box::pin(async move {
                let info = user_info::ActiveModel {
                    nickname: Set(u.account.clone()),
                    headurl: Set(Some(String::new())),
                    ..Default::default()
                }
                .insert(txn)
                .await?;
                user_account::ActiveModel {
                    account: Set(u.account),
                    password: Set(u.password_hash.expose().to_owned()),
                    account_type: Set(u.account_type),
                    app_key: Set(Some(u.app_key)),
                    user_info_id: Set(Some(info.id)),
                    reg_time: Set(Some(reg_time)),
                    reg_ip: Set(Some(u.reg_ip)),
                    bundle_id: Set(Some(u.bundle_id)),
                    disabled: Set(false),
                    ..Default::default()
                }
                .insert(txn)
                .await?;
                Ok(())
            })
        });
        self.bounded("create_user", async move {
            create.await.map_err(|e| match e {
                sea_orm::TransactionError::Connection(e)
                | sea_orm::TransactionError::Transaction(e) => e,
            })
        })
        .await
    }

    async fn set_password(&self, account: &str, hash: &Secret) -> Result<bool, StoreError> {
        let result = self
            .bounded(
                "set_password",
                user_account::Entity::update_many()
                    .col_expr(
                        user_account::Column::Password,
                        Expr::value(hash.expose().to_owned()),
                    )
                    .filter(user_account::Column::Account.eq(account))
                    .exec(&self.db),
            )
            .await?;
        Ok(result.rows_affected > 0)
    }

    async fn disable_user(&self, account: &str) -> Result<bool, StoreError> {
        if self.user(account).await?.is_none() {
            return Ok(false);
        }
        self.bounded(
            "disable_user",
            user_account::Entity::update_many()
                .col_expr(user_account::Column::Disabled, Expr::value(true))
                .filter(user_account::Column::Account.eq(account))
                .exec(&self.db),
        )
        .await?;
        Ok(true)
    }
}

impl ProfileRecords for SeaRecords {
    async fn profile(&self, account: &str) -> Result<Option<Profile>, StoreError> {
        let found = self
            .bounded("profile", account_and_info(&self.db, account))
            .await?;
        // No user_info_tbl row: an empty profile.
        Ok(found.map(|(user, info)| {
            let (nickname, headurl) = info
                .map(|i| (i.nickname, i.headurl.unwrap_or_default()))
                .unwrap_or_default();
            Profile {
                account: user.account,
                account_type: user.account_type,
                app_key: user.app_key.unwrap_or_default(),
                nickname,
                headurl,
                reg_time: user.reg_time.map(|t| self.zone.to_utc(t)),
                reg_ip: user.reg_ip.unwrap_or_default(),
                bundle_id: user.bundle_id.unwrap_or_default(),
            }
        }))
    }

    async fn update_profile(
        &self,
        account: &str,
        nickname: &str,
        headurl: &str,
    ) -> Result<bool, StoreError> {
        let (account, nickname, headurl) =
            (account.to_owned(), nickname.to_owned(), headurl.to_owned());
        let update = self.db.transaction::<_, bool, DbErr>(move |txn| {
            Box::pin(async move {
                // MySQL reports changed rows, not matched ones: look the row up rather
                // than read "missing" into an update that changed nothing.
                let Some((user, info)) = account_and_info(txn, &account).await? else {
                    return Ok(false);
                };
                match info {
                    Some(info) => {
                        user_info::Entity::update_many()
                            .col_expr(user_info::Column::Nickname, Expr::value(nickname))
                            .col_expr(user_info::Column::Headurl, Expr::value(Some(headurl)))
                            .filter(user_info::Column::Id.eq(info.id))
                            .exec(txn)
                            .await?;
                    }
                    None => {
                        let info = user_info::ActiveModel {
                            nickname: Set(nickname),
                            headurl: Set(Some(headurl)),
                            ..Default::default()
                        }
                        .insert(txn)
                        .await?;
                        user_account::Entity::update_many()
                            .col_expr(user_account::Column::UserInfoId, Expr::value(info.id))
                            .filter(user_account::Column::Id.eq(user.id))
                            .exec(txn)
                            .await?;
                    }
                }
                Ok(true)
            })
        });
        self.bounded("update_profile", async {
            update.await.map_err(|e| match e {
                sea_orm::TransactionError::Connection(e)
                | sea_orm::TransactionError::Transaction(e) => e,
            })
        })
        .await
    }
}

impl KeyRecords for SeaRecords {
    async fn signing_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        let rows = self
            .bounded(
                "signing_keys",
                signing_key::Entity::find()
                    .order_by_asc(signing_key::Column::Id)
                    .all(&self.db),
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|m| StoredKey {
                kid: m.kid,
                algorithm: m.algorithm,
                private_key: Secret::new(m.private_key),
                published_at: m.published_at,
                signs_from: m.signs_from,
            })
            .collect())
    }

    async fn add_signing_key(&self, key: &StoredKey) -> Result<(), StoreError> {
        let row = signing_key::ActiveModel {
            kid: Set(key.kid.clone()),
            algorithm: Set(key.algorithm.clone()),
            private_key: Set(key.private_key.expose().to_owned()),
            published_at: Set(key.published_at),
            signs_from: Set(key.signs_from),
            ..Default::default()
        };
        self.bounded("add_signing_key", row.insert(&self.db))
            .await
            .map(|_| ())
    }

    async fn delete_signing_keys(&self, kids: &[String]) -> Result<u64, StoreError> {
        if kids.is_empty() {
            return Ok(0);
        }
        let done = self
            .bounded(
                "delete_signing_keys",
                signing_key::Entity::delete_many()
                    .filter(signing_key::Column::Kid.is_in(kids.iter().cloned()))
                    .exec(&self.db),
            )
            .await?;
        Ok(done.rows_affected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_errors_never_carry_the_password() {
        for (url, secret) in [
            ("mysql://root:s3cr%40t@db:3306/x", "s3cr@t"),
            ("mysql://root:plainpw@db:3306/x", "plainpw"),
            ("nosuch://root:hidden@db/x", "hidden"),
            ("not a url root:hunter2@db", "hunter2"),
        ] {
            let e = DbErr::Conn(sea_orm::RuntimeErr::Internal(format!(
                "cannot connect to {url} ({})",
                percent_decoded(url)
            )));
            let text = redacted(e, url).to_string();
            assert!(!text.contains(secret), "{text}");
        }
    }
}
