//! How a topology's nodes are guarded (a password, TLS), and so how `redis-server`,
//! `redis-cli` and tokencache are told to reach them.
use std::sync::Arc;

use super::node::cli;
use super::tls::Tls;

/// How the nodes of a topology are guarded: a password (`requirepass`, replicas and
/// sentinels authenticating with it) and TLS (every node, its replication and its cluster
/// bus on TLS only, a certificate for 127.0.0.1 from a CA of the test's own).
#[derive(Clone, Default)]
pub struct Guard {
    pub password: Option<String>,
    pub tls: Option<Arc<Tls>>,
}

impl Guard {
    /// `redis-server` flags: where it listens, and how it is guarded.
    pub fn server_args(&self, port: u16, cluster: bool) -> Vec<String> {
        let mut args = Vec::new();
        match &self.tls {
            Some(tls) => {
                args.extend([
                    "--port".into(),
                    "0".into(),
                    "--tls-port".into(),
                    port.to_string(),
                ]);
                for (k, v) in tls.settings() {
                    args.extend([format!("--{k}"), v]);
                }
                if cluster {
                    args.extend(["--tls-cluster".into(), "yes".into()]);
                }
            }
            None => args.extend(["--port".into(), port.to_string()]),
        }
        if let Some(p) = &self.password {
            args.extend([
                "--requirepass".into(),
                p.clone(),
                "--masterauth".into(),
                p.clone(),
            ]);
        }
        args
    }

    /// redis-cli's flags to reach a node (`password`: with the password).
    pub(super) fn cli_args(&self, password: bool) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(tls) = &self.tls {
            args.extend([
                "--tls".into(),
                "--cacert".into(),
                tls.ca.display().to_string(),
            ]);
        }
        if let (true, Some(p)) = (password, &self.password) {
            args.extend(["--no-auth-warning".into(), "-a".into(), p.clone()]);
        }
        args
    }

    /// `redis-cli` on a node.
    pub fn cli(&self, port: u16, password: bool, args: &[&str]) -> String {
        let mut all = self.cli_args(password);
        all.extend(args.iter().map(|a| a.to_string()));
        cli(port, &all.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// A URL for tokencache.
    pub fn url(&self, port: u16) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        let auth = self
            .password
            .as_ref()
            .map(|p| format!(":{p}@"))
            .unwrap_or_default();
        format!("{scheme}://{auth}127.0.0.1:{port}")
    }
}
