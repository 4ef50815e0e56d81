//! Guessing: the login lockout holds under concurrency, and verification codes are
//! bounded per account and network across resends, while a stranger's wrong guesses
//! never void the owner's code.
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::*;
use crate::on_both_stores;

/// The requests of a client at `ip` (behind the trusted proxy 127.0.0.1).
fn from(ip: &str) -> [(&'static str, String); 1] {
    [("x-forwarded-for", ip.to_owned())]
}

impl TestApp {
    async fn post_from(&self, path: &str, body: &Value, ip: &str) -> Answer {
        let [(name, value)] = from(ip);
        self.post_raw(path, body, &[(name, &value)]).await
    }
}

on_both_stores! {
    async fn forty_concurrent_wrong_passwords_check_at_most_five(app) {
        let guesses = (0..40).map(|_| app.authorize("alice", "wrong"));
        let answers = futures::future::join_all(guesses).await;
        let checked = answers.iter().filter(|(_, v)| v["code"] == json!(1004)).count();
        let refused = answers.iter().filter(|(s, v)| *s == StatusCode::TOO_MANY_REQUESTS && v["code"] == json!(405)).count();
        assert_eq!((checked, refused), (5, 35), "{answers:?}");
        // Locked, the right password too.
        assert_fails(&app.authorize("alice", PASSWORD).await, 429, 405);
    }
}

// A new code does not reset the budget of guesses: a network gets
// `code_guesses_per_hour` guesses at a name, however many codes it asks for.
on_both_stores! {
    async fn a_new_code_does_not_reset_the_guess_budget(backend: Backend) {
        let (app, hook) = spawn_with_webhook(backend, |s| {
            s.rules.limits.code_resend = 0;
            s.rules.limits.code_attempts = 5;
            s.rules.limits.code_guesses_per_hour = 10;
        })
        .await;
        app.create_user("owner@example.com", "old-pw").await;
        let user = "owner@example.com";
        // Each guess, right or wrong, spends one of the ten: past them, 405 / 429.
        let mut guesses = 0;
        let mut expect = |code_wrong: (u16, i64)| {
            guesses += 1;
            if guesses <= 10 { code_wrong } else { (429, 405) }
        };
        for _ in 0..2 {
            assert_done(&app.get_verify(user, "2", "1").await.pair());
            let code = hook.code_for(user);
            let wrong = if code == "000000" { "000001" } else { "000000" };
            for _ in 0..5 {
                let (status, id) = expect((400, 1017));
                assert_fails(&app.doaction(user, "new-pw", wrong, "2").await, status, id);
            }
            // The fifth wrong guess voided this code.
            let (status, id) = expect((400, 1017));
            assert_fails(&app.doaction(user, "new-pw", &code, "2").await, status, id);
        }
        // The ten spent: a third code, right as it is, is refused.
        assert_done(&app.get_verify(user, "2", "1").await.pair());
        let code = hook.code_for(user);
        let refused = app.post_raw("/api/v1/doaction", &app.doaction_body(user, "new-pw", &code, "2"), &[]).await;
        assert_fails(&refused.pair(), 429, 405);
        assert!((3500..=3600).contains(&refused.retry_after()), "{}", refused.retry_after());
        app.login_as(user, "old-pw").await;
        app.cleanup().await;
    }
}

// A code belongs to the network that asked for it: a stranger elsewhere guessing wrong
// voids nothing of the owner's, spends only the stranger's own budget.
on_both_stores! {
    async fn a_strangers_wrong_guesses_never_void_the_owners_code(backend: Backend) {
        let (app, hook) = spawn_with_webhook(backend, |s| {
            s.http.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        })
        .await;
        let user = "owner@example.com";
        app.create_user(user, "old-pw").await;
        let owner = "203.0.113.1";
        let stranger = "198.51.100.9";
        let ask = app.get_verify_body(user, "2", "1");
        assert_done(&app.post_from("/api/v1/get_verify", &ask, owner).await.pair());
        let code = hook.code_for(user);
        let wrong = if code == "000000" { "000001" } else { "000000" };
        let guess = app.doaction_body(user, "stolen-pw", wrong, "2");
        for n in 0..20 {
            let got = app.post_from("/api/v1/doaction", &guess, stranger).await;
            let expected = if n < 10 { (400, 1017) } else { (429, 405) };
            assert_fails(&got.pair(), expected.0, expected.1);
        }
        // Even the right code, from the stranger's network, is none of theirs.
        let right = app.doaction_body(user, "stolen-pw", &code, "2");
        assert_fails(&app.post_from("/api/v1/doaction", &right, stranger).await.pair(), 429, 405);
        // The owner's code works, from the owner's network.
        let mine = app.doaction_body(user, "new-pw", &code, "2");
        assert_done(&app.post_from("/api/v1/doaction", &mine, owner).await.pair());
        app.login_as(user, "new-pw").await;
        assert_fails(&app.authorize(user, "stolen-pw").await, 401, 1004);
        app.cleanup().await;
    }
}

// Codes to one name are bounded per hour whoever asks, and codes to names without an
// account (sign-ups: SMS pumping) per network and in total.
on_both_stores! {
    async fn codes_sent_are_bounded_per_name_per_network_and_in_total(backend: Backend) {
        let (app, hook) = spawn_with_webhook(backend, |s| {
            s.http.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
            s.rules.limits.code_resend = 0;
            s.rules.limits.code_sends_per_hour = 2;
            s.rules.limits.code_sends_new_per_ip = 2;
            s.rules.limits.code_sends_new_total = 3;
        })
        .await;
        let sign_up = |name: &str| app.get_verify_body(name, "1", "1");
        let a = "203.0.113.1";
        let b = "198.51.100.2";
        for name in ["n1@example.com", "n2@example.com"] {
            assert_done(&app.post_from("/api/v1/get_verify", &sign_up(name), a).await.pair());
        }
        let third = app.post_from("/api/v1/get_verify", &sign_up("n3@example.com"), a).await;
        assert_fails(&third.pair(), 429, 1013);
        assert!((3500..=3600).contains(&third.retry_after()));
        // Another network: its own share, until the total is reached.
        assert_done(&app.post_from("/api/v1/get_verify", &sign_up("n4@example.com"), b).await.pair());
        assert_fails(&app.post_from("/api/v1/get_verify", &sign_up("n5@example.com"), b).await.pair(), 429, 1013);
        assert_eq!(hook.calls().len(), 3);

        // An account's codes: two an hour, from any network.
        let user = "owner@example.com";
        app.create_user(user, "pw").await;
        let reset = app.get_verify_body(user, "2", "1");
        assert_done(&app.post_from("/api/v1/get_verify", &reset, a).await.pair());
        assert_done(&app.post_from("/api/v1/get_verify", &reset, b).await.pair());
        assert_fails(&app.post_from("/api/v1/get_verify", &reset, "192.0.2.77").await.pair(), 429, 1013);
        assert_eq!(hook.calls().len(), 5);
        app.cleanup().await;
    }
}
