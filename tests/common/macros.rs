//! `on_both_stores!`: one scenario run on each backend, as four tests: on MariaDB + one
//! Redis, on MariaDB + a Redis Cluster, on MariaDB + Redis under Sentinel (those three
//! `#[ignore]`d in a plain `cargo test`: run with `cargo test -- --include-ignored`) and on
//! the embedded stores. A scenario takes what it needs:
//!
//! - `async fn name(app) { … }`: a server with the test client and `alice`;
//! - `async fn name(app, hook) { … }`: the same, delivering codes to a receiver `hook`;
//! - `async fn name(backend: Backend) { … }`: the backend, to start what it needs itself.
//!
//! `on_every_front!(Gateway, through_gateway)`: every gateway scenario
//! (`common::front::scenarios`) as one test through the gateway `Gateway` (a `Front`),
//! `<scenario>::through_gateway`; each gateway's test binary says it once.

/// Runs each scenario on both backends (see the module's text for the three forms).
#[macro_export]
macro_rules! on_both_stores {
    () => {};
    (async fn $name:ident($backend:ident : Backend) $body:block $($rest:tt)*) => {
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
            #[ignore = "needs MariaDB and redis-server: cargo test -- --include-ignored"]
            async fn on_redis_cluster() {
                scenario($crate::common::Backend::Cluster).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = "needs MariaDB and redis-server: cargo test -- --include-ignored"]
            async fn on_redis_sentinel() {
                scenario($crate::common::Backend::Sentinel).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_embedded_stores() {
                scenario($crate::common::Backend::Embedded).await;
            }
        }
        $crate::on_both_stores!($($rest)*);
    };
    (async fn $name:ident($app:ident, $hook:ident) $body:block $($rest:tt)*) => {
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
            #[ignore = "needs MariaDB and redis-server: cargo test -- --include-ignored"]
            async fn on_redis_cluster() {
                let (app, hook) = $crate::common::spawn_with_webhook($crate::common::Backend::Cluster, |_| {}).await;
                scenario(&app, &hook).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = "needs MariaDB and redis-server: cargo test -- --include-ignored"]
            async fn on_redis_sentinel() {
                let (app, hook) = $crate::common::spawn_with_webhook($crate::common::Backend::Sentinel, |_| {}).await;
                scenario(&app, &hook).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_embedded_stores() {
                let (app, hook) = $crate::common::spawn_with_webhook($crate::common::Backend::Embedded, |_| {}).await;
                scenario(&app, &hook).await;
            }
        }
        $crate::on_both_stores!($($rest)*);
    };
    (async fn $name:ident($app:ident) $body:block $($rest:tt)*) => {
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
            #[ignore = "needs MariaDB and redis-server: cargo test -- --include-ignored"]
            async fn on_redis_cluster() {
                let app = $crate::common::TestApp::spawn($crate::common::Backend::Cluster).await;
                scenario(&app).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = "needs MariaDB and redis-server: cargo test -- --include-ignored"]
            async fn on_redis_sentinel() {
                let app = $crate::common::TestApp::spawn($crate::common::Backend::Sentinel).await;
                scenario(&app).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_embedded_stores() {
                let app = $crate::common::TestApp::spawn($crate::common::Backend::Embedded).await;
                scenario(&app).await;
            }
        }
        $crate::on_both_stores!($($rest)*);
    };
}

/// Runs every gateway scenario through `$front` (see the module's text). A new scenario is
/// a function of `common::front::scenarios` and its name below, under what it needs.
#[macro_export]
macro_rules! on_every_front {
    ($front:ty, $through:ident) => {
        $crate::on_every_front!(@plain $front, $through:
            the_gateway_doc_shows_whole_the_files_run
        );
        $crate::on_every_front!(
            @needs "needs MariaDB, Redis and the gateway (installed when missing): \
                    cargo test -- --include-ignored",
            $front, $through:
            a_live_token_passes_with_its_identity_and_its_whole_request,
            a_forged_identity_header_never_reaches_the_application,
            a_forged_forwarded_for_hop_never_changes_the_counted_address,
            a_dead_token_is_refused_and_reaches_nothing,
            a_missing_token_is_refused_and_reaches_nothing,
            a_stopped_tokencache_gets_the_unavailable_page_never_a_pass
        );
        $crate::on_every_front!(
            @needs "needs MariaDB, redis-server and the gateway (installed when missing): \
                    cargo test -- --include-ignored",
            $front, $through:
            a_redis_outage_gets_the_unavailable_page_and_the_check_recovers_after
        );
        $crate::on_every_front!(
            @needs "needs the gateway (installed when missing): cargo test -- --include-ignored",
            $front, $through:
            the_applications_own_errors_keep_their_status
        );
    };
    (@plain $front:ty, $through:ident: $($scenario:ident),+) => {
        $(
            mod $scenario {
                #[allow(unused_imports)]
                use super::*;

                #[test]
                fn $through() {
                    $crate::common::front::scenarios::$scenario::<$front>();
                }
            }
        )+
    };
    (@needs $needs:literal, $front:ty, $through:ident: $($scenario:ident),+) => {
        $(
            mod $scenario {
                #[allow(unused_imports)]
                use super::*;

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[ignore = $needs]
                async fn $through() {
                    $crate::common::front::scenarios::$scenario::<$front>().await;
                }
            }
        )+
    };
}
