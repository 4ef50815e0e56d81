//! Operator routes: health, readiness, request ids.
use reqwest::StatusCode;
use serde_json::json;

use crate::common::*;
use crate::on_both_stores;

on_both_stores! {
    async fn healthz_is_alive_and_readyz_names_both_stores(app) {
        let r = app.http.get(format!("{}/healthz", app.base)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let (status, v) = app.readyz().await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v["status"], json!("ready"));
        let stores = v["stores"].as_object().unwrap();
        let expected = match app.backend {
            Backend::Real | Backend::Cluster | Backend::Sentinel => ["redis", "mysql"],
            Backend::Embedded => ["in-process", "sqlite"],
        };
        for name in expected {
            assert_eq!(stores[name], json!("ok"), "{v}");
        }
        let r = app.http.head(format!("{}/readyz", app.base)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let r = app.http.post(format!("{}/healthz", app.base)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(r.headers()["allow"], "GET");
    }

    async fn a_request_id_is_echoed_or_generated(app) {
        let r = app
            .http
            .post(format!("{}/api/v1/check_token", app.base))
            .header("x-request-id", "gw-42")
            .json(&json!({"token": "x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["x-request-id"], "gw-42");
        let r = app.http.get(format!("{}/healthz", app.base)).send().await.unwrap();
        let id = r.headers()["x-request-id"].to_str().unwrap();
        assert_eq!(id.len(), 16, "{id}");
    }
}
