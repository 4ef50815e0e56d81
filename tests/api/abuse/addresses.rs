//! Client addresses: behind trusted proxies a forged leftmost X-Forwarded-For hop never
//! changes the counted address, and an IPv6 client counts by its /64. (Through the real
//! nginx, Traefik and Caddy with the project's configs: tests/common/front.)
use reqwest::StatusCode;
use serde_json::json;

use crate::common::*;
use crate::on_both_stores;

on_both_stores! {
    async fn twelve_logins_with_forged_leftmost_hops_count_under_one_address(backend: Backend) {
        let app = TestApp::spawn_with(backend, |s| {
            s.http.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
            s.rules.limits.ip_authorize = 5;
        })
        .await;
        let mut answers = Vec::new();
        for n in 0..12 {
            // What nginx's $proxy_add_x_forwarded_for makes of a client's own header.
            let xff = format!("10.66.0.{n}, 203.0.113.50");
            let body = app.authorize_body("alice", PASSWORD, &now_ms().to_string());
            answers.push(app.post_raw("/api/v1/authorize", &body, &[("x-forwarded-for", &xff)]).await.status);
        }
        let ok = answers.iter().filter(|s| **s == StatusCode::OK).count();
        let limited = answers.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count();
        assert_eq!((ok, limited), (5, 7), "{answers:?}");
        app.cleanup().await;
    }

    async fn an_ipv6_client_counts_by_its_64_prefix(backend: Backend) {
        let app = TestApp::spawn_with(backend, |s| {
            s.http.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
            s.rules.limits.ip_check_user = 2;
        })
        .await;
        let app = &app;
        let check = |ip: &'static str| async move {
            app.post_raw("/api/v1/check_user", &json!({"username": "alice"}), &[("x-forwarded-for", ip)])
                .await
                .status
        };
        assert_eq!(check("2001:db8:1:2::1").await, StatusCode::OK);
        assert_eq!(check("2001:db8:1:2:ffff::2").await, StatusCode::OK);
        // Any other address of the same /64 is the same client.
        assert_eq!(check("2001:db8:1:2:abcd:1234:5678:9").await, StatusCode::TOO_MANY_REQUESTS);
        // The next /64 is another.
        assert_eq!(check("2001:db8:1:3::1").await, StatusCode::OK);
    }
}

/// The old flag believed the leftmost hop: a server given it refuses to start and names
/// its replacement, rather than start counting every client as the proxy.
#[test]
fn the_removed_trust_forwarded_for_flag_is_refused_naming_trusted_proxies() {
    let dir = std::env::temp_dir().join(unique("tc_flag"));
    std::fs::create_dir_all(&dir).unwrap();
    for (args, env) in [
        (vec!["serve", "--trust-forwarded-for"], None),
        (
            vec!["serve"],
            Some(("TOKENCACHE_TRUST_FORWARDED_FOR", "true")),
        ),
    ] {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_tokencache"));
        command
            .args(&args)
            .args(["--listen", "127.0.0.1:0"])
            .current_dir(&dir)
            .env_remove("DATABASE_URL")
            .env_remove("REDIS_URL");
        if let Some((k, v)) = env {
            command.env(k, v);
        }
        let out = command.output().unwrap();
        assert!(!out.status.success(), "{args:?} started");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--trusted-proxies"), "{err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
