//! `tokencache migrate` on the original's database: adopted in place, the operator's own
//! tables, views and routines untouched, a second run changing nothing; or refused, with
//! nothing changed, saying what to fix; and every endpoint and the CLI on the adopted
//! database.
use reqwest::StatusCode;
use sea_orm::Database;
use serde_json::json;

use super::{DropDatabase, LegacyDb};
use crate::common::*;

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
