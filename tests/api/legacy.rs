//! Moving from xxjwxc/oauth2: a MariaDB database made with the original's schema and rows
//! like its own (`tests/fixtures/xxjwxc_oauth2_*.sql`) is adopted in place by `tokencache
//! migrate`, or refused with nothing changed; every endpoint and the CLI work on it; and
//! `import-legacy-tokens` carries its live tokens over.
use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};
use serde_json::json;

use crate::common::*;

const SCHEMA: &str = include_str!("../fixtures/xxjwxc_oauth2_schema.sql");
const ROWS: &str = include_str!("../fixtures/xxjwxc_oauth2_rows.sql");

/// The original's live tokens in the fixture, and the ones it would refuse.
const LIVE_ACCESS: &str = "2DNweL5l6MOm1ftxzP8UreP6xKd2BBme";
const DAVE_ACCESS: &str = "DaveAccessToken0000000000000000a";
const EXPIRED_ACCESS: &str = "ExpiredAccessTokenAAAAAAAAAAAAAA";
const LIVE_REFRESH: &str = "qIhC0BLYESjN5mAjFN29QlEGvJgAzJ5U";
const DAVE_REFRESH: &str = "DaveRefreshToken000000000000000b";
const EXPIRED_REFRESH: &str = "ExpiredRefreshTokenBBBBBBBBBBBBB";
const USED_REFRESH: &str = "UsedRefreshTokenCCCCCCCCCCCCCCCC";

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

/// A Redis key prefix of the test's own, its keys deleted when the test ends.
struct Prefix(String);

impl Prefix {
    fn new() -> Prefix {
        Prefix(format!("{}:", unique("tclegacy")))
    }
}

impl Drop for Prefix {
    fn drop(&mut self) {
        delete_keys(&tokencache::app::Settings {
            redis_url: Some(REDIS_URL.into()),
            redis_prefix: self.0.clone(),
            ..Default::default()
        });
    }
}

/// A server on the adopted database, with a Redis prefix of its own.
async fn serve_on(legacy: &LegacyDb) -> TestApp {
    TestApp::start(
        Backend::Real,
        TestApp::real_settings(&legacy.url),
        None,
        None,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and Redis: cargo test -- --include-ignored"]
async fn migrate_adopts_the_originals_database_in_place_and_a_second_run_changes_nothing() {
    let legacy = LegacyDb::create(true).await;
    let rows_before = legacy.seed_rows().await;
    let operator_before: Vec<String> = legacy
        .snapshot()
        .await
        .into_iter()
        .filter(|s| {
            s.contains("shop_orders") || s.contains("v_accounts") || s.contains("count_accounts")
        })
        .collect();
    assert!(operator_before.len() >= 4, "{operator_before:?}");

    succeeded(&tokencache_cli(&legacy.url, None, &["migrate"]));

    // Not a row or a seed column lost; the operator's own objects untouched.
    assert_eq!(legacy.seed_rows().await, rows_before);
    let operator_after: Vec<String> = legacy
        .snapshot()
        .await
        .into_iter()
        .filter(|s| {
            s.contains("shop_orders") || s.contains("v_accounts") || s.contains("count_accounts")
        })
        .collect();
    assert_eq!(operator_after, operator_before);

    // What tokencache needs is there.
    let column = |table: &str, column: &str| {
        format!(
            "SELECT CONCAT_WS(' ', COLUMN_TYPE, IS_NULLABLE, IFNULL(CHARACTER_SET_NAME, '-'), IFNULL(COLUMN_DEFAULT, '-')) \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() \
             AND TABLE_NAME = '{table}' AND COLUMN_NAME = '{column}'"
        )
    };
    for (table, name, expected) in [
        ("oauth2_client_tbl", "allow_nopwd", "tinyint(1) NO - 0"),
        ("oauth2_client_tbl", "disabled", "tinyint(1) NO - 0"),
        (
            "oauth2_client_tbl",
            "expire_time",
            "datetime YES - current_timestamp()",
        ),
        ("user_account_tbl", "disabled", "tinyint(1) NO - 0"),
        ("user_account_tbl", "password", "varchar(255) NO utf8mb3 -"),
        ("user_account_tbl", "reg_ip", "varchar(64) YES utf8mb3 NULL"),
        ("user_account_tbl", "account", "varchar(191) NO utf8mb4 -"),
        ("user_info_tbl", "nickname", "varchar(128) NO utf8mb4 -"),
        ("user_info_tbl", "headurl", "varchar(255) YES utf8mb4 NULL"),
        // Seed columns keep their name, type and comment.
        ("oauth2_client_tbl", "token_expire_time", "int(11) NO - -"),
        ("user_account_tbl", "user_info_id", "int(11) NO - -"),
    ] {
        assert_eq!(
            legacy.string(&column(table, name)).await,
            expected,
            "{table}.{name}"
        );
    }
    assert_eq!(
        legacy
            .string(
                "SELECT CAST(COLUMN_COMMENT AS CHAR) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() \
                 AND TABLE_NAME = 'user_account_tbl' AND COLUMN_NAME = 'password'"
            )
            .await,
        "密码"
    );
    assert_eq!(
        legacy
            .strings(
                "SELECT CAST(INDEX_NAME AS CHAR) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() \
                 AND TABLE_NAME = 'oauth2_client_tbl' AND COLUMN_NAME = 'app_key' AND NON_UNIQUE = 0"
            )
            .await,
        ["uk_oauth2_client_app_key"]
    );

    // Twice: nothing changes the second time, and nothing is left to do.
    let schema_once = legacy.snapshot().await;
    succeeded(&tokencache_cli(&legacy.url, None, &["migrate"]));
    assert_eq!(legacy.snapshot().await, schema_once);
    assert!(migration::adoption_plan(&legacy.db)
        .await
        .unwrap()
        .is_empty());
    // Even without the migrations table (an operator who dropped it): the adoption finds
    // nothing to do on what it adopted.
    legacy.exec("DROP TABLE seaql_migrations").await;
    succeeded(&tokencache_cli(&legacy.url, None, &["migrate"]));
    let mut again = legacy.snapshot().await;
    again.retain(|s| !s.contains("seaql_migrations"));
    let mut once = schema_once.clone();
    once.retain(|s| !s.contains("seaql_migrations"));
    assert_eq!(again, once);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and Redis: cargo test -- --include-ignored"]
async fn a_fresh_database_gets_tokencaches_own_schema_which_the_adoption_leaves_alone() {
    let (settings, db_name, _) = TestApp::fresh_settings(Backend::Real).await;
    let _drop = DropDatabase(db_name.unwrap());
    let url = settings.database_url.clone().unwrap();
    let db = Database::connect(&url).await.unwrap();
    // Only the first migration: today's fresh schema, on which the adoption plans nothing.
    use migration::MigratorTrait;
    migration::Migrator::up(&db, Some(1)).await.unwrap();
    let plan = migration::adoption_plan(&db).await.unwrap();
    assert!(plan.is_empty(), "{plan:?}");
    succeeded(&tokencache_cli(&url, None, &["migrate"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and Redis: cargo test -- --include-ignored"]
async fn migrate_refuses_what_it_cannot_adopt_and_leaves_the_database_exactly_as_it_was() {
    let legacy = LegacyDb::create(true).await;
    legacy
        .exec(
            "INSERT INTO oauth2_client_tbl (app_key, app_secret, expire_time, strict_verify, token_expire_time) \
             VALUES ('testapp', 'another-secret', '2099-01-01', 1, 60), ('testapp', 'third', '2099-01-01', 1, 60)",
        )
        .await;
    legacy
        .exec("ALTER TABLE user_info_tbl MODIFY headurl BLOB NULL")
        .await;
    legacy
        .exec("ALTER TABLE user_info_tbl MODIFY id INT UNSIGNED NOT NULL AUTO_INCREMENT")
        .await;
    legacy
        .exec(
            "ALTER TABLE oauth2_client_tbl MODIFY strict_verify INT NULL; \
             UPDATE oauth2_client_tbl SET strict_verify = NULL WHERE app_key = 'oldapp'",
        )
        .await;
    legacy
        .exec(
            "SET SESSION sql_mode = ''; \
             UPDATE user_account_tbl SET reg_time = '0000-00-00 00:00:00' WHERE account = 'dave'; \
             ALTER TABLE oauth2_access_token MODIFY expires DATETIME NOT NULL DEFAULT '0000-00-00 00:00:00'; \
             ALTER TABLE user_account_tbl MODIFY reg_time DATETIME NULL DEFAULT '0000-00-00 00:00:00'",
        )
        .await;
    let before = legacy.snapshot().await;

    let out = tokencache_cli(&legacy.url, None, &["migrate"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "nothing was changed",
        "oauth2_client_tbl.app_key must be unique",
        "'testapp' (3 rows)",
        "user_info_tbl.headurl is blob",
        "user_account_tbl.reg_time holds 1 zero date",
        "user_account_tbl.reg_time has the default '0000-00-00 00:00:00'",
        "user_info_tbl.id is int(10) unsigned",
        "oauth2_client_tbl.strict_verify is NULL in 1 row(s)",
        "run migrate again",
    ] {
        assert!(stderr.contains(needle), "{needle:?} not in: {stderr}");
    }
    // No secret in the refusal.
    assert!(!stderr.contains("another-secret"), "{stderr}");
    assert_eq!(legacy.snapshot().await, before, "the database changed");
    assert!(
        legacy
            .strings("SHOW TABLES LIKE 'seaql_migrations'")
            .await
            .is_empty(),
        "not even the migrations table may be created"
    );

    // Serving refuses the same way.
    let served = tokencache_cli(&legacy.url, None, &["serve", "--listen", "127.0.0.1:0"]);
    assert!(!served.status.success());
    assert!(String::from_utf8_lossy(&served.stderr).contains("'testapp' (3 rows)"));
    assert_eq!(legacy.snapshot().await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and Redis: cargo test -- --include-ignored"]
async fn every_endpoint_and_the_cli_work_on_an_adopted_database() {
    let legacy = LegacyDb::create(true).await;
    let app = serve_on(&legacy).await;

    // The original's users log in with the passwords they always had, under the
    // original's clients and secrets: an MD5 hex in the other case, a plain password.
    let (status, v) = app
        .authorize("18020119796", "e10adc3949ba59abbe56e057f20f883e")
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["expire_time"], json!("7200"));
    let access = v["data"]["access_token"].as_str().unwrap().to_owned();
    let (status, v) = app.check_token(&access).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["username"], json!("18020119796"));
    // Re-hashed to argon2id on that login, and the same password still works.
    assert!(legacy
        .string("SELECT password FROM user_account_tbl WHERE account = '18020119796'")
        .await
        .starts_with("$argon2id$"));
    let (status, v) = app
        .authorize("18020119796", "e10adc3949ba59abbe56e057f20f883e")
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        app.authorize("carol@example.com", "carol-plain-pw").await.0,
        StatusCode::OK
    );
    assert_fails(
        &app.authorize("carol@example.com", "CAROL-PLAIN-PW!").await,
        401,
        1004,
    );
    assert_fails(&app.authorize("dave", "wrong").await, 401, 1004);

    // expire_time means what it meant: an expired client is refused with code 3.
    let t = now_ms().to_string();
    let old = json!({
        "appid": "oldapp", "username": "dave", "password": "dave-pw", "time": t,
        "token": sign(&["oldapp", "dave", "dave-pw", &t], "old-secret"),
    });
    assert_fails(&app.post("/api/v1/authorize", &old).await, 403, 3);

    // get_userinfo reads the original's rows, the NULLs and the missing profile too.
    let (status, v) = app.get_userinfo("18020119796").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        v["data"],
        json!({
            "account": "18020119796", "accountType": 1, "app_key": "testapp",
            "userInfo": {"nickname": "小明", "headurl": ""},
            "regTime": "2019-05-01T10:00:00Z", "regIp": "10.1.2.3", "bundle_id": "com.example.app",
        })
    );
    let (status, v) = app.get_userinfo("carol@example.com").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        v["data"]["userInfo"],
        json!({"nickname": "", "headurl": ""})
    );
    assert_eq!(v["data"]["regTime"], json!("0001-01-01T00:00:00Z"));
    assert_eq!(v["data"]["app_key"], json!(""));

    // update_userinfo writes the original's rows: any character now, and a profile row
    // for the user that had none.
    assert_done(
        &app.update_userinfo("carol@example.com", "Carol 🐈", "")
            .await,
    );
    let (_, v) = app.get_userinfo("carol@example.com").await;
    assert_eq!(v["data"]["userInfo"]["nickname"], json!("Carol 🐈"));
    assert_eq!(
        legacy
            .string("SELECT CAST(i.nickname AS CHAR) FROM user_account_tbl a JOIN user_info_tbl i ON i.id = a.user_info_id WHERE a.account = 'carol@example.com'")
            .await,
        "Carol 🐈"
    );
    assert_done(
        &app.update_userinfo("18020119796", "小明 ✨", "https://cdn.example.com/m.png")
            .await,
    );
    assert_eq!(
        legacy
            .string("SELECT CAST(headurl AS CHAR) FROM user_info_tbl WHERE id = 1")
            .await,
        "https://cdn.example.com/m.png"
    );

    // Sign-up through a client that ignores codes (strict_verify 2), then log in.
    assert_done(&app.doaction("erin@example.com", "erin-pw", "", "1").await);
    assert_eq!(
        app.authorize("erin@example.com", "erin-pw").await.0,
        StatusCode::OK
    );
    assert_eq!(
        legacy
            .string("SELECT CONCAT_WS('|', account_type, app_key, user_info_id > 0, reg_ip) FROM user_account_tbl WHERE account = 'erin@example.com'")
            .await,
        "2|testapp|1|127.0.0.1"
    );
    // A password change revokes the old tokens and the new password works.
    let (old_access, _) = app.login_as("dave", "dave-pw").await;
    assert_done(&app.doaction("dave", "dave-new-pw", "", "2").await);
    assert_fails(&app.check_token(&old_access).await, 401, 102);
    assert_eq!(app.authorize("dave", "dave-new-pw").await.0, StatusCode::OK);

    // strict_verify 1 still forces a code.
    let body = json!({
        "username": "frank@example.com", "password": "pw", "verify": "000000", "flag": "1",
        "bundleid": "com.example.app", "appid": "strictapp",
        "signature": sign(&["frank@example.com", "pw", "000000", "1", "com.example.app", "strictapp"], "strict-secret"),
    });
    assert_fails(&app.post("/api/v1/doaction", &body).await, 400, 1017);

    // The CLI on the same database.
    let list = succeeded(&tokencache_cli(&legacy.url, None, &["client", "list"]));
    for line in [
        "testapp\t7200\t2\t2099-01-01T00:00:00+00:00\tfalse\tfalse",
        "oldapp\t7200\t2\t2020-01-01T00:00:00+00:00\tfalse\tfalse",
        "strictapp\t600\t1\t2099-01-01T00:00:00+00:00\tfalse\tfalse",
    ] {
        assert!(list.contains(line), "{line:?} not in {list}");
    }
    assert!(!list.contains("test-secret-0123"), "{list}");
    succeeded(&tokencache_cli(
        &legacy.url,
        None,
        &[
            "client",
            "create",
            "--app-key",
            "newapp",
            "--token-ttl",
            "60",
        ],
    ));
    assert_eq!(
        legacy.string("SELECT IFNULL(expire_time, 'NULL') FROM oauth2_client_tbl WHERE app_key = 'newapp'").await,
        "NULL",
        "a client that never expires"
    );
    succeeded(&tokencache_cli(
        &legacy.url,
        None,
        &["client", "disable", "oldapp"],
    ));
    succeeded(&tokencache_cli_input(
        &legacy.url,
        None,
        &["user", "create", "--username", "gina"],
        "gina-pw\n",
    ));
    assert_eq!(app.authorize("gina", "gina-pw").await.0, StatusCode::OK);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and Redis: cargo test -- --include-ignored"]
async fn the_database_time_zone_is_applied_to_the_originals_local_times() {
    let legacy = LegacyDb::create(true).await;
    // Written by a server in UTC+8: four hours ahead as UTC, four hours ago in +08:00.
    let in_4h_utc = (chrono::Utc::now() + chrono::Duration::hours(4)).naive_utc();
    legacy
        .exec(&format!(
            "UPDATE oauth2_client_tbl SET expire_time = '{}' WHERE app_key = 'testapp'",
            in_4h_utc.format("%Y-%m-%d %H:%M:%S")
        ))
        .await;
    legacy
        .exec(&format!(
            "UPDATE oauth2_access_token SET expires = '{}' WHERE access_token = '{LIVE_ACCESS}'",
            (in_4h_utc + chrono::Duration::hours(6)).format("%Y-%m-%d %H:%M:%S")
        ))
        .await;
    let prefix = Prefix::new();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tokencache"))
        .args(["import-legacy-tokens"])
        .env("DATABASE_URL", &legacy.url)
        .env("REDIS_URL", REDIS_URL)
        .env("TOKENCACHE_REDIS_PREFIX", &prefix.0)
        .env("TOKENCACHE_DB_TIME_ZONE", "Asia/Shanghai")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let summary = succeeded(&out);
    assert!(
        summary.contains("expires read as Asia/Shanghai time"),
        "{summary}"
    );

    let mut settings = TestApp::real_settings(&legacy.url);
    settings.redis_prefix = prefix.0.clone();
    settings.db_zone = "+08:00".parse().unwrap();
    let app = TestApp::start(Backend::Real, settings, None, None).await;
    // The client expired four hours ago, in the server's own time.
    assert_fails(&app.authorize("dave", "dave-pw").await, 403, 3);
    // The token has two hours left: 10 h ahead of UTC, written in UTC+8.
    let (status, v) = app.check_token(LIVE_ACCESS).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let left: i64 = v["data"]["expire_time"].as_str().unwrap().parse().unwrap();
    assert!((2 * 3600 - 120..=2 * 3600).contains(&left), "{left}");
    // reg_time shown in UTC: 10:00 in UTC+8 is 02:00 UTC.
    let body = json!({
        "account": "18020119796", "appid": "strictapp",
        "signature": sign(&["18020119796", "strictapp"], "strict-secret"),
    });
    let (status, v) = app.post("/api/v1/get_userinfo", &body).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["regTime"], json!("2019-05-01T02:00:00Z"));
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and Redis: cargo test -- --include-ignored"]
async fn import_legacy_tokens_carries_over_exactly_the_tokens_the_original_would_accept() {
    let legacy = LegacyDb::create(true).await;
    // A zero date, which the original treated as expired.
    legacy
        .exec(
            "SET SESSION sql_mode = ''; INSERT INTO oauth2_access_token \
             (access_token, token_type, app_key, username, expires) \
             VALUES ('ZeroDateAccessTokenDDDDDDDDDDDDD', 'nomal', 'testapp', 'dave', '0000-00-00 00:00:00')",
        )
        .await;
    // A login typed in another case than the account (the original's collation found
    // `Dave` as `dave`, and wrote what was typed).
    legacy
        .exec(
            "INSERT INTO oauth2_access_token (access_token, token_type, app_key, username, expires) \
             VALUES ('MixedCaseAccessToken000000000000', 'web', 'testapp', 'Dave', UTC_TIMESTAMP() + INTERVAL 1 HOUR)",
        )
        .await;
    succeeded(&tokencache_cli(&legacy.url, None, &["migrate"]));
    let guard = Prefix::new();
    let prefix = guard.0.clone();
    let rows_before = legacy.seed_rows().await;

    let import = |batch: &'static str| {
        let url = legacy.url.clone();
        let prefix = prefix.clone();
        async move {
            succeeded(&tokencache_cli(
                &url,
                Some(&prefix),
                &["import-legacy-tokens", "--batch-size", batch],
            ))
        }
    };
    let summary = import("2").await;
    assert!(
        summary.contains("oauth2_access_token: imported 3, already present 0, skipped 2 (expired 2, invalid 0); 5 rows read"),
        "{summary}"
    );
    assert!(
        summary.contains("oauth2_refresh_token: imported 2, already present 0, skipped 2 (expired 2, invalid 0); 4 rows read"),
        "{summary}"
    );
    assert!(summary.contains("expires read as UTC time"), "{summary}");
    for token in [LIVE_ACCESS, LIVE_REFRESH, EXPIRED_ACCESS, USED_REFRESH] {
        assert!(!summary.contains(token), "a token was printed: {summary}");
    }
    // The old rows are never changed.
    assert_eq!(legacy.seed_rows().await, rows_before);

    // Stored the way tokencache keeps its own: hashed keys with the time left as TTL, in
    // the user's index.
    let mut conn = redis_conn().await.unwrap();
    let keys = redis_keys(&mut conn, &prefix).await;
    assert!(!keys.iter().any(|k| k.contains(LIVE_ACCESS)), "{keys:?}");
    assert!(keys.contains(&format!("{prefix}u:18020119796")), "{keys:?}");
    assert!(keys.contains(&format!("{prefix}u:dave")), "{keys:?}");

    let mut settings = TestApp::real_settings(&legacy.url);
    settings.redis_prefix = prefix.clone();
    let app = TestApp::start(Backend::Real, settings, None, None).await;

    // check_token: the live ones, with the time they have left; none of the others.
    let (status, v) = app.check_token(LIVE_ACCESS).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["username"], json!("18020119796"));
    assert_eq!(v["data"]["app_key"], json!("testapp"));
    assert_eq!(v["data"]["token_type"], json!("nomal"));
    let left: i64 = v["data"]["expire_time"].as_str().unwrap().parse().unwrap();
    assert!((3500..=3600).contains(&left), "{left}");
    let ttl = app
        .redis_ttl(&format!("a:{}", token_hash(LIVE_ACCESS)))
        .await;
    assert!((3500..=3600).contains(&ttl), "TTL {ttl}");
    assert_eq!(app.check_token(DAVE_ACCESS).await.0, StatusCode::OK);
    assert_fails(&app.check_token(EXPIRED_ACCESS).await, 401, 102);
    assert_fails(
        &app.check_token("ZeroDateAccessTokenDDDDDDDDDDDDD").await,
        401,
        102,
    );
    // Refresh tokens: expired and already used ones are refused; a live one works once,
    // with the lifetime its row was issued with.
    assert_fails(&app.refresh(EXPIRED_REFRESH).await, 401, 102);
    assert_fails(&app.refresh(USED_REFRESH).await, 401, 102);
    let (status, v) = app.refresh(DAVE_REFRESH).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["expire_time"], json!("1800"));
    assert_eq!(v["data"]["username"], json!("dave"));
    let new_access = v["data"]["access_token"].as_str().unwrap().to_owned();
    assert_eq!(app.check_token(&new_access).await.0, StatusCode::OK);

    // The imported tokens are in the users' indexes: logging a user out revokes them.
    succeeded(&tokencache_cli(
        &legacy.url,
        Some(&prefix),
        &["user", "logout", "18020119796"],
    ));
    assert_fails(&app.check_token(LIVE_ACCESS).await, 401, 102);
    assert_fails(&app.refresh(LIVE_REFRESH).await, 401, 102);

    // Run again: nothing new to read, nothing written: the revoked tokens stay revoked.
    let again = import("5000").await;
    assert!(
        again.contains("oauth2_access_token: imported 0, already present 0, skipped 0 (expired 0, invalid 0); 0 rows read, ids 5..5"),
        "{again}"
    );
    assert_fails(&app.check_token(LIVE_ACCESS).await, 401, 102);
    assert_fails(&app.refresh(LIVE_REFRESH).await, 401, 102);
    // Rows the original wrote since are picked up by the next run.
    legacy
        .exec(
            "INSERT INTO oauth2_access_token (access_token, token_type, app_key, username, expires) \
             VALUES ('LateAccessToken00000000000000000', 'nomal', 'testapp', 'dave', UTC_TIMESTAMP() + INTERVAL 10 MINUTE)",
        )
        .await;
    let late = import("5000").await;
    assert!(
        late.contains("oauth2_access_token: imported 1, already present 0"),
        "{late}"
    );
    assert_eq!(
        app.check_token("LateAccessToken00000000000000000").await.0,
        StatusCode::OK
    );

    // A run that finds no mark (as after one cut between its writes and its mark) finds
    // the tokens present and leaves them as they are: the refresh token used since stays
    // used, and presenting it again is refused.
    redis::cmd("DEL")
        .arg(format!(
            "{prefix}m:{}",
            legacy_mark_suffix(&keys, &prefix, "oauth2_refresh_token")
        ))
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    let repeat = import("5000").await;
    // (LIVE_REFRESH, revoked above, is written again: what deleting a mark by hand costs,
    // as the README says.)
    assert!(
        repeat.contains("oauth2_refresh_token: imported 1, already present 1, skipped 2"),
        "{repeat}"
    );
    assert_fails(&app.refresh(DAVE_REFRESH).await, 401, 102);

    // Filed under the account, not the case it was typed in: logging `dave` out revokes it.
    assert_eq!(
        app.check_token("MixedCaseAccessToken000000000000").await.0,
        StatusCode::OK
    );
    let (_, v) = app.check_token("MixedCaseAccessToken000000000000").await;
    assert_eq!(v["data"]["username"], json!("dave"));
    succeeded(&tokencache_cli(
        &legacy.url,
        Some(&prefix),
        &["user", "logout", "dave"],
    ));
    assert_fails(
        &app.check_token("MixedCaseAccessToken000000000000").await,
        401,
        102,
    );
    assert_fails(&app.check_token(DAVE_ACCESS).await, 401, 102);

    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and Redis: cargo test -- --include-ignored"]
async fn import_legacy_tokens_needs_redis_and_says_so() {
    let legacy = LegacyDb::create(false).await;
    let out = tokencache_cli(&legacy.url, None, &["import-legacy-tokens"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("set REDIS_URL"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The part of a resume-mark key after `m:` for `table`.
fn legacy_mark_suffix(keys: &[String], prefix: &str, table: &str) -> String {
    keys.iter()
        .filter_map(|k| k.strip_prefix(&format!("{prefix}m:")))
        .find(|k| k.ends_with(table))
        .unwrap_or_else(|| panic!("no mark for {table} in {keys:?}"))
        .to_owned()
}

/// The key suffix tokencache stores a token under.
fn token_hash(token: &str) -> String {
    tokencache::store::TokenHash::of(token).encode()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and Redis: cargo test -- --include-ignored"]
async fn adoption_keeps_a_columns_precision_default_and_on_update() {
    let legacy = LegacyDb::create(true).await;
    legacy
        .exec(
            "ALTER TABLE oauth2_client_tbl MODIFY expire_time DATETIME(3) NOT NULL \
             DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3) COMMENT 'kept'",
        )
        .await;
    legacy
        .exec("UPDATE oauth2_client_tbl SET expire_time = '2099-01-01 00:00:00.123' WHERE id = 1")
        .await;
    succeeded(&tokencache_cli(&legacy.url, None, &["migrate"]));
    let show = legacy
        .strings("SELECT CONCAT_WS(' | ', COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, EXTRA, COLUMN_COMMENT) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'oauth2_client_tbl' AND COLUMN_NAME = 'expire_time'")
        .await;
    assert_eq!(
        show,
        ["datetime(3) | YES | current_timestamp(3) | on update current_timestamp(3) | kept"]
    );
    assert_eq!(
        legacy
            .string("SELECT CAST(expire_time AS CHAR) FROM oauth2_client_tbl WHERE id = 1")
            .await,
        "2099-01-01 00:00:00.123"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and Redis: cargo test -- --include-ignored"]
async fn a_timestamp_column_with_a_local_time_zone_is_refused() {
    let legacy = LegacyDb::create(true).await;
    legacy
        .exec("ALTER TABLE oauth2_access_token MODIFY expires TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP")
        .await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tokencache"))
        .arg("migrate")
        .env("DATABASE_URL", &legacy.url)
        .env("TOKENCACHE_DB_TIME_ZONE", "+08:00")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("oauth2_access_token.expires is TIMESTAMP, which MySQL keeps in UTC"),
        "{stderr}"
    );
    // In UTC the same database is fine.
    succeeded(&tokencache_cli(&legacy.url, None, &["migrate"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and Redis: cargo test -- --include-ignored"]
async fn import_legacy_tokens_reads_the_database_named_by_from_and_migrates_neither() {
    let legacy = LegacyDb::create(true).await;
    let target = create_database("tc_test_target").await;
    let _target = DropDatabase(target.clone());
    let prefix = Prefix::new();
    let summary = succeeded(&tokencache_cli(
        &format!("{MYSQL_BASE}/{target}"),
        Some(&prefix.0),
        &["import-legacy-tokens", "--from", &legacy.url],
    ));
    assert!(
        summary.contains(&format!("source: {} ", legacy.name)),
        "{summary}"
    );
    assert!(
        summary.contains("oauth2_access_token: imported 2, already present 0, skipped 1"),
        "{summary}"
    );
    assert!(
        summary.contains("oauth2_refresh_token: imported 2, already present 0, skipped 2"),
        "{summary}"
    );
    // Both databases are only read: no table made in the target, no migrations table in
    // the source.
    let tables = |schema: &str| {
        format!(
            "SELECT CAST(COUNT(*) AS CHAR) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{schema}'"
        )
    };
    assert_eq!(legacy.string(&tables(&target)).await, "0");
    assert!(legacy
        .strings("SHOW TABLES LIKE 'seaql_migrations'")
        .await
        .is_empty());
}
