//! `tokencache import-legacy-tokens`: the original's live tokens carried over into Redis
//! (exactly the ones it would accept, under the account's stored spelling, resumable, the
//! old rows never changed), read from the database `--from` names, in the database's time
//! zone.
use reqwest::StatusCode;
use serde_json::json;

use super::{DropDatabase, LegacyDb};
use crate::common::*;

/// The original's live tokens in the fixture, and the ones it would refuse.
const LIVE_ACCESS: &str = "2DNweL5l6MOm1ftxzP8UreP6xKd2BBme";
const DAVE_ACCESS: &str = "DaveAccessToken0000000000000000a";
const EXPIRED_ACCESS: &str = "ExpiredAccessTokenAAAAAAAAAAAAAA";
const LIVE_REFRESH: &str = "qIhC0BLYESjN5mAjFN29QlEGvJgAzJ5U";
const DAVE_REFRESH: &str = "DaveRefreshToken000000000000000b";
const EXPIRED_REFRESH: &str = "ExpiredRefreshTokenBBBBBBBBBBBBB";
const USED_REFRESH: &str = "UsedRefreshTokenCCCCCCCCCCCCCCCC";

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

    // Run again: the rows are read again (the overlap before the mark), nothing is
    // written: the revoked tokens stay revoked.
    let again = import("5000").await;
    assert!(
        again.contains("oauth2_access_token: imported 0, already present 3, skipped 2 (expired 2, invalid 0); 5 rows read after id 0, mark 5..5"),
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
        late.contains("oauth2_access_token: imported 1, already present 3"),
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
    // LIVE_REFRESH, revoked above, is not written again: its key holds the revoked value.
    assert!(
        repeat.contains("oauth2_refresh_token: imported 0, already present 2, skipped 2"),
        "{repeat}"
    );
    assert_fails(&app.refresh(DAVE_REFRESH).await, 401, 102);
    assert_fails(&app.refresh(LIVE_REFRESH).await, 401, 102);

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

/// While the original still serves, a row can become visible after rows with higher ids
/// were read (its transaction commits later): a run goes on from `--overlap-ids` before
/// its mark, so the next run carries it over; with no overlap it would be skipped for
/// good, and the final `--all` pass still finds it. A copy of the database restored under
/// the same name is another source, with a mark of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and Redis: cargo test -- --include-ignored"]
async fn rows_committed_out_of_id_order_are_carried_over_and_a_copy_has_a_mark_of_its_own() {
    let legacy = LegacyDb::create(true).await;
    let prefix = Prefix::new();
    let import = |args: &'static [&'static str]| {
        let url = legacy.url.clone();
        let prefix = prefix.0.clone();
        async move {
            let mut all = vec!["import-legacy-tokens"];
            all.extend_from_slice(args);
            succeeded(&tokencache_cli(&url, Some(&prefix), &all))
        }
    };
    import(&["--overlap-ids", "0"]).await;
    let row = |id: u32, token: &str| {
        format!(
            "INSERT INTO oauth2_access_token (id, access_token, token_type, app_key, username, expires) \
             VALUES ({id}, '{token}', 'nomal', 'testapp', 'dave', UTC_TIMESTAMP() + INTERVAL 10 MINUTE)"
        )
    };
    // Id 50 is read and marked; id 40 commits after it.
    legacy
        .exec(&row(50, "LateAccessToken50000000000000000"))
        .await;
    import(&["--overlap-ids", "0"]).await;
    legacy
        .exec(&row(40, "LateAccessToken40000000000000000"))
        .await;
    let app = TestApp::start(
        Backend::Real,
        tokencache::app::Settings {
            redis_prefix: prefix.0.clone(),
            ..TestApp::real_settings(&legacy.url)
        },
        None,
        None,
    )
    .await;
    let late = "LateAccessToken40000000000000000";
    // With no overlap it is skipped...
    let out = import(&["--overlap-ids", "0"]).await;
    assert!(out.contains("0 rows read after id 50"), "{out}");
    assert_fails(&app.check_token(late).await, 401, 102);
    // ... by default a run reads it (ids 40 and 50 are within the overlap) ...
    let out = import(&[]).await;
    assert!(out.contains("oauth2_access_token: imported 1,"), "{out}");
    assert!(out.contains("mark 50..50"), "{out}");
    assert_eq!(app.check_token(late).await.0, StatusCode::OK);
    // ... and so does the final pass, which reads every row and writes nothing new.
    let out = import(&["--all"]).await;
    assert!(
        out.contains("oauth2_access_token: imported 0, already present 4")
            && out.contains("rows read after id 0, mark 50..50"),
        "{out}"
    );

    // The same database made again (a copy restored under its name): a mark of its own,
    // so its rows are all read, not skipped as the first one's.
    let marks_before = {
        let mut conn = redis_conn().await.unwrap();
        redis_keys(&mut conn, &prefix.0)
            .await
            .into_iter()
            .filter(|k| k.contains(":m:"))
            .count()
    };
    legacy.exec("DROP TABLE oauth2_access_token").await;
    // A table made a second later: its creation time differs.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    legacy
        .exec(
            "CREATE TABLE oauth2_access_token (id int(11) NOT NULL AUTO_INCREMENT, \
             access_token varchar(255) NOT NULL, token_type varchar(255) NOT NULL, \
             app_key varchar(255) NOT NULL, username varchar(255) NOT NULL, \
             expires datetime NOT NULL, PRIMARY KEY (id))",
        )
        .await;
    legacy
        .exec(&row(3, "CopiedAccessToken300000000000000"))
        .await;
    let out = import(&["--overlap-ids", "0"]).await;
    assert!(out.contains("oauth2_access_token: imported 1,"), "{out}");
    assert!(out.contains("1 rows read after id 0, mark 0..3"), "{out}");
    assert_eq!(
        app.check_token("CopiedAccessToken300000000000000").await.0,
        StatusCode::OK
    );
    let mut conn = redis_conn().await.unwrap();
    let marks_after = redis_keys(&mut conn, &prefix.0)
        .await
        .into_iter()
        .filter(|k| k.contains(":m:"))
        .count();
    assert_eq!(marks_after, marks_before + 2, "two marks of the copy's own");
    app.cleanup().await;
}
