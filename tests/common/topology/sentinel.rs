//! A local Sentinel setup, and the one a whole test process shares.
use std::sync::OnceLock;
use std::time::Duration;

use super::guard::Guard;
use super::node::{free_cluster_port, wait_until, Node, Scratch};
use super::Turn;

/// A master, one replica and three sentinels monitoring it as `mymaster`.
pub struct LocalSentinels {
    /// The master's and the replica's guard (the sentinels have no password; TLS when
    /// the nodes have it).
    pub guard: Guard,
    pub master: Node,
    pub replica: Node,
    pub sentinels: Vec<Node>,
    pub name: String,
    _dir: Scratch,
    /// Last: given back once the processes are gone.
    _turn: Option<Turn>,
}

impl LocalSentinels {
    /// down-after 1 s, so that a failover takes a few seconds.
    pub fn start() -> Self {
        Self::launch(Guard::default(), Some(Turn::take()))
    }

    /// The same, guarded.
    pub fn start_with(guard: Guard) -> Self {
        // No turn: the password and TLS tests start a cluster and a Sentinel setup at
        // once, and inject no fault.
        Self::launch(guard, None)
    }

    fn launch(guard: Guard, turn: Option<Turn>) -> Self {
        let dir = Scratch::new("tc_sentinel");
        let base = |port: u16| {
            let mut args = vec![
                "--bind".to_string(),
                "127.0.0.1".into(),
                "--save".into(),
                "".into(),
                "--appendonly".into(),
                "no".into(),
                // Replicas sync at once; DEBUG SLEEP stalls one in the fault tests.
                "--repl-diskless-sync-delay".into(),
                "0".into(),
                "--enable-debug-command".into(),
                "local".into(),
            ];
            args.extend(guard.server_args(port, false));
            args
        };
        let master_port = free_cluster_port();
        let master = Node::start(master_port, base(master_port));
        let replica_port = free_cluster_port();
        let mut args = base(replica_port);
        args.extend([
            "--replicaof".into(),
            "127.0.0.1".into(),
            master_port.to_string(),
        ]);
        let replica = Node::start(replica_port, args);
        wait_until("replica in sync", Duration::from_secs(20), || {
            guard
                .cli(replica_port, true, &["role"])
                .contains("connected")
        });
        let name = "mymaster".to_string();
        let mut sentinels = Vec::new();
        for _ in 0..3 {
            let port = free_cluster_port();
            let conf = dir.0.join(format!("sentinel-{port}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "{listen}bind 127.0.0.1\ndir {d}\n\
                     sentinel monitor {name} 127.0.0.1 {master_port} 2\n\
                     sentinel down-after-milliseconds {name} 1000\n\
                     sentinel failover-timeout {name} 5000\n\
                     sentinel parallel-syncs {name} 1\n{auth_pass}",
                    d = dir.0.display(),
                    listen = match &guard.tls {
                        Some(tls) => {
                            let mut lines = format!("port 0\ntls-port {port}\n");
                            for (k, v) in tls.settings() {
                                lines.push_str(&format!("{k} {v}\n"));
                            }
                            lines
                        }
                        None => format!("port {port}\n"),
                    },
                    auth_pass = guard
                        .password
                        .as_ref()
                        .map(|p| format!("sentinel auth-pass {name} {p}\n"))
                        .unwrap_or_default(),
                ),
            )
            .unwrap();
            sentinels.push(Node::start(
                port,
                vec![conf.display().to_string(), "--sentinel".into()],
            ));
        }
        let setup = Self {
            guard,
            master,
            replica,
            sentinels,
            name,
            _dir: dir,
            _turn: turn,
        };
        wait_until(
            "sentinels see the replica and each other",
            Duration::from_secs(30),
            || {
                setup.sentinels.iter().all(|s| {
                    let info = setup
                        .guard
                        .cli(s.port, false, &["sentinel", "master", &setup.name]);
                    let lines: Vec<&str> = info.lines().collect();
                    let field = |f: &str| {
                        lines
                            .iter()
                            .position(|l| *l == f)
                            .and_then(|i| lines.get(i + 1))
                            .map(|v| v.to_string())
                    };
                    field("num-slaves").as_deref() == Some("1")
                        && field("num-other-sentinels").as_deref() == Some("2")
                })
            },
        );
        setup
    }

    /// Sentinel URLs for `--redis-url` (carrying the master's password, when set).
    pub fn urls(&self) -> String {
        self.sentinels
            .iter()
            .map(|n| self.guard.url(n.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The port the sentinels name as the master now.
    pub fn master_port(&self) -> Option<u16> {
        let s = self.sentinels.iter().find(|s| s.pid.is_some())?;
        let out = self.guard.cli(
            s.port,
            false,
            &["sentinel", "get-master-addr-by-name", &self.name],
        );
        out.lines().nth(1)?.trim().parse().ok()
    }
}

/// The Sentinel setup every sentinel test of this process shares.
pub fn shared_sentinels() -> &'static LocalSentinels {
    static SENTINELS: OnceLock<LocalSentinels> = OnceLock::new();
    SENTINELS.get_or_init(|| LocalSentinels::launch(Guard::default(), None))
}
