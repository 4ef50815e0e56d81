//! From the arguments to the settings each part of the server takes.
use std::time::Duration;

use super::args::{AccountArgs, DeliveryArg, LangArg, ServeArgs, StoreArgs};
use crate::app::Settings;
use crate::delivery::DeliverySettings;
use crate::domain::limits::Limits;
use crate::domain::password::Argon2Settings;
use crate::domain::Rules;
use crate::http::{HttpSettings, Lang};
use crate::secret::Secret;
use crate::upstream::UpstreamSettings;

impl AccountArgs {
    pub(super) fn limits(&self) -> Limits {
        Limits {
            code_ttl: self.code_ttl,
            code_resend: self.code_resend,
            code_attempts: self.code_attempts,
            code_guesses_per_hour: self.code_guesses_per_hour,
            code_sends_per_hour: self.code_sends_per_hour,
            code_sends_new_per_ip: self.code_sends_new_per_ip,
            code_sends_new_total: self.code_sends_new_total,
            login_failures: self.login_failures,
            login_window: self.login_window,
            ip_window: self.ip_window,
            ip_authorize: self.ip_limit_authorize,
            ip_get_verify: self.ip_limit_get_verify,
            ip_check_user: self.ip_limit_check_user,
            ip_doaction: self.ip_limit_doaction,
            ip_unknown_clients: self.ip_limit_unknown_clients,
            ipv6_prefix: self.ipv6_prefix,
        }
    }

    pub(super) fn delivery(&self) -> DeliverySettings {
        match (self.code_delivery, &self.code_webhook) {
            (DeliveryArg::Webhook, Some(url)) => DeliverySettings::Webhook {
                url: Secret::new(url.clone()),
                timeout: Duration::from_millis(self.code_webhook_timeout_ms),
                secret: self
                    .code_webhook_secret
                    .clone()
                    .filter(|s| !s.is_empty())
                    .map(Secret::new),
            },
            // clap requires --code-webhook with `webhook`.
            _ => DeliverySettings::Log,
        }
    }
}

impl StoreArgs {
    pub(super) fn rules(&self, freshness_window: u64) -> Rules {
        Rules {
            freshness_window,
            argon2: Argon2Settings {
                memory_kib: self.argon2_memory_kib,
                iterations: self.argon2_iterations,
                parallelism: self.argon2_parallelism,
            },
            ..Rules::DEFAULT
        }
    }

    /// Settings for a command other than `serve`.
    pub(super) fn settings(&self, migrate: bool) -> Settings {
        Settings {
            database_url: self.database_url.clone(),
            redis_url: self.redis_url.clone(),
            redis_mode: self.redis_mode,
            redis_sentinel_master: self.redis_sentinel_master.clone(),
            near_cache: None,
            redis_prefix: self.redis_prefix.clone(),
            redis_timeout: Duration::from_millis(self.redis_timeout_ms),
            redis_wait_replicas: self.redis_wait_replicas,
            redis_wait_timeout: Duration::from_millis(self.redis_wait_timeout_ms),
            redis_wait_on_issue: self.redis_wait_on_issue,
            database_timeout: Duration::from_millis(self.database_timeout_ms),
            db_zone: self.db_time_zone,
            migrate,
            rules: self.rules(Rules::default().freshness_window),
            http: HttpSettings::default(),
            delivery: DeliverySettings::default(),
            upstream: None,
        }
    }
}

impl ServeArgs {
    pub fn settings(&self, stores: &StoreArgs) -> Settings {
        Settings {
            migrate: !self.no_migrate,
            near_cache: self.near_cache.then_some(self.near_cache_max_entries),
            rules: Rules {
                limits: self.accounts.limits(),
                client_cache: Duration::from_secs(self.client_cache_secs),
                max_sessions_per_user: self.max_sessions_per_user,
                ..stores.rules(self.freshness_window)
            },
            delivery: self.accounts.delivery(),
            upstream: self.upstream_jwt.then(|| UpstreamSettings {
                issuer: self
                    .issuer
                    .clone()
                    .unwrap_or_else(|| format!("http://localhost:{}", self.listen.port())),
                audience: self.upstream_jwt_audience.clone(),
                ttl_secs: self.upstream_jwt_ttl_secs,
                jwks_max_age_secs: self.jwks_max_age_secs,
                reload: Duration::from_secs(self.upstream_jwt_reload_secs),
                cache_entries: self.near_cache_max_entries,
            }),
            http: HttpSettings {
                compat_http_200: self.compat_http_200,
                max_body_bytes: self.max_body_bytes,
                lang: match self.lang {
                    LangArg::En => Lang::En,
                    LangArg::Zh => Lang::Zh,
                },
                shutdown_grace: Duration::from_secs(self.shutdown_grace),
                forward_auth_cache_secs: self.forward_auth_cache_secs,
                max_connections: self.max_connections,
                max_connections_per_ip: self.max_connections_per_ip,
                header_timeout: Duration::from_secs(self.header_timeout),
                idle_timeout: Duration::from_secs(self.idle_timeout),
                body_timeout: Duration::from_secs(self.body_timeout),
                refuse_identity_headers: !self.allow_identity_headers,
                trusted_proxies: self.accounts.trusted_proxies.clone(),
                issuer: self.issuer.clone().unwrap_or_default(),
            },
            ..stores.settings(true)
        }
    }
}
