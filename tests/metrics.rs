//! `/metrics` after known traffic: names, labels, bucket bounds. Its own test binary, so
//! its process-wide recorder sees only this test's traffic.
mod common;

use common::*;
use reqwest::StatusCode;

fn sample(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name_and_labels) && l[name_and_labels.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_describe_known_traffic_with_route_templates_and_fine_buckets() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let (access, refresh) = app.login().await;
    for _ in 0..3 {
        assert_eq!(app.check_token(&access).await.0, StatusCode::OK);
    }
    // Through the legacy prefix: the same route template.
    let legacy = app
        .post(
            "/oauth2/api/v1/check_token",
            &serde_json::json!({"token": access}),
        )
        .await;
    assert_eq!(legacy.0, StatusCode::OK);
    assert_eq!(app.check_token("nope").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(app.refresh(&refresh).await.0, StatusCode::OK);
    assert_eq!(app.refresh(&refresh).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.authorize("alice", "wrong").await.0,
        StatusCode::UNAUTHORIZED
    );
    let raw = app
        .http
        .get(format!("{}/some/raw/path/xyz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), StatusCode::NOT_FOUND);

    let response = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = response.text().await.unwrap();

    let ok_checks = r#"http_server_request_duration_seconds_count{http_route="/api/v1/check_token",http_request_method="POST",http_response_status_code="200"}"#;
    assert_eq!(sample(&text, ok_checks), Some(4.0), "{text}");
    let bad_checks = r#"http_server_request_duration_seconds_count{http_route="/api/v1/check_token",http_request_method="POST",http_response_status_code="401"}"#;
    assert_eq!(sample(&text, bad_checks), Some(1.0));
    let unknown = r#"http_server_request_duration_seconds_count{http_route="other",http_request_method="GET",http_response_status_code="404"}"#;
    assert_eq!(sample(&text, unknown), Some(1.0));
    assert!(
        !text.contains("/some/raw/path"),
        "raw paths never become labels"
    );
    assert!(
        !text.contains("/oauth2/api"),
        "legacy routes fold into one template"
    );
    assert!(!text.contains("alice"), "no username as a label value");

    for le in ["0.0001", "0.00025", "0.0005", "0.001", "0.25", "1", "+Inf"] {
        let bucket = format!(
            r#"http_server_request_duration_seconds_bucket{{http_route="/api/v1/check_token",http_request_method="POST",http_response_status_code="200",le="{le}"}}"#
        );
        assert!(sample(&text, &bucket).is_some(), "bucket le={le} missing");
    }

    assert_eq!(
        sample(&text, r#"tokencache_token_checks_total{result="valid"}"#),
        Some(4.0)
    );
    assert_eq!(
        sample(&text, r#"tokencache_token_checks_total{result="invalid"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"tokencache_tokens_issued_total{route="authorize"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"tokencache_tokens_issued_total{route="refresh_token"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, r#"tokencache_token_refreshes_total{result="ok"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"tokencache_token_refreshes_total{result="invalid"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"tokencache_login_failures_total{reason="bad_credentials"}"#
        ),
        Some(1.0)
    );
    assert!(sample(
        &text,
        r#"tokencache_store_operation_duration_seconds_count{store="sql",operation="user"}"#
    )
    .is_some_and(|n| n >= 2.0));
    assert!(
        sample(&text, r#"tokencache_store_pool_connections{store="sql"}"#)
            .is_some_and(|n| n >= 1.0)
    );
    assert!(sample(&text, r#"tokencache_store_pool_in_use{store="sql"}"#).is_some());
    assert_eq!(
        sample(&text, r#"tokencache_build_info{version="0.1.0"}"#),
        Some(1.0)
    );
    for process in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
    ] {
        assert!(sample(&text, process).is_some(), "{process} missing");
    }
    for line in text
        .lines()
        .filter(|l| l.starts_with("# TYPE") && l.ends_with("counter"))
    {
        assert!(
            line.split(' ').nth(2).unwrap().ends_with("_total"),
            "counter without _total: {line}"
        );
    }
    app.cleanup().await;
}
