//! The macros that run one scenario on each backend: a test on MariaDB + Redis
//! (`#[ignore]`d in a plain `cargo test`: run with `cargo test -- --include-ignored`)
//! and one on the embedded stores.

/// Runs each scenario on both backends with the default server: `async fn name(app) {…}`.
#[macro_export]
macro_rules! on_both_stores {
    ($(async fn $name:ident($app:ident) $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            async fn scenario($app: &$crate::common::TestApp) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = "needs MariaDB and Redis: cargo test -- --include-ignored"]
            async fn on_mariadb_and_redis() {
                let app = $crate::common::TestApp::spawn($crate::common::Backend::Real).await;
                scenario(&app).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_embedded_stores() {
                let app = $crate::common::TestApp::spawn($crate::common::Backend::Embedded).await;
                scenario(&app).await;
            }
        }
    )*};
}

/// Runs each scenario on both backends with codes delivered to a receiver in the test:
/// `async fn name(app, hook) {…}`.
#[macro_export]
macro_rules! accounts_on_both_stores {
    ($(async fn $name:ident($app:ident, $hook:ident) $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            async fn scenario($app: &$crate::common::TestApp, $hook: &$crate::common::Webhook) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = "needs MariaDB and Redis: cargo test -- --include-ignored"]
            async fn on_mariadb_and_redis() {
                let (app, hook) = $crate::common::spawn_with_webhook($crate::common::Backend::Real, |_| {}).await;
                scenario(&app, &hook).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_embedded_stores() {
                let (app, hook) = $crate::common::spawn_with_webhook($crate::common::Backend::Embedded, |_| {}).await;
                scenario(&app, &hook).await;
            }
        }
    )*};
}

/// Runs each scenario once per backend, the scenario starting what it needs:
/// `async fn name(backend) {…}`.
#[macro_export]
macro_rules! on_each_backend {
    ($(async fn $name:ident($backend:ident) $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            async fn scenario($backend: $crate::common::Backend) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = "needs MariaDB and Redis: cargo test -- --include-ignored"]
            async fn on_mariadb_and_redis() {
                scenario($crate::common::Backend::Real).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_embedded_stores() {
                scenario($crate::common::Backend::Embedded).await;
            }
        }
    )*};
}
