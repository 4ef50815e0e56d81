//! A local Redis Cluster, and the one a whole test process shares.
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use super::super::services::missing;
use super::guard::Guard;
use super::node::{free_cluster_port, wait_until, Node, Scratch};
use super::Turn;

/// A Redis Cluster of 3 masters and 3 replicas.
pub struct LocalCluster {
    pub nodes: Vec<Node>,
    pub guard: Guard,
    _dir: Scratch,
    /// Last: given back once the nodes are gone.
    _turn: Option<Turn>,
}

impl LocalCluster {
    /// Node timeout 1 s, so that a failover takes a few seconds.
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
        let dir = Scratch::new("tc_cluster");
        let mut nodes = Vec::new();
        for _ in 0..6 {
            let port = free_cluster_port();
            nodes.push(Node::start(port, node_args(&dir, &guard, port)));
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .args(guard.cli_args(true))
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .unwrap_or_else(|e| missing("redis-cli", &e));
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let cluster = Self {
            nodes,
            guard,
            _dir: dir,
            _turn: turn,
        };
        cluster.wait_healthy();
        cluster
    }

    /// Until every node says `cluster_state:ok` and every replica is in sync.
    pub fn wait_healthy(&self) {
        wait_until("cluster healthy", Duration::from_secs(30), || {
            self.nodes.iter().filter(|n| n.pid.is_some()).all(|n| {
                let info = self.cli(n.port, &["cluster", "info"]);
                let role = self.cli(n.port, &["role"]);
                info.contains("cluster_state:ok")
                    && (role.starts_with("master") || role.contains("connected"))
            })
        });
    }

    /// `redis-cli` on a node, guarded as the cluster is.
    pub fn cli(&self, port: u16, args: &[&str]) -> String {
        self.guard.cli(port, true, args)
    }

    /// Seed nodes for `--redis-url`.
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(|n| self.guard.url(n.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The index in `nodes` of the master serving `key`'s slot, asked of a live node.
    pub fn master_of(&self, key: &str) -> usize {
        self.serving(key).expect("a master serves the key's slot")
    }

    /// The same, `None` while no healthy master serves it.
    pub fn serving(&self, key: &str) -> Option<usize> {
        let live = self.nodes.iter().find(|n| n.pid.is_some()).unwrap();
        let slot: u16 = self
            .cli(live.port, &["cluster", "keyslot", key])
            .trim()
            .parse()
            .unwrap();
        let nodes = self.cli(live.port, &["cluster", "nodes"]);
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 9 || !fields[2].contains("master") || fields[2].contains("fail") {
                continue;
            }
            let port: u16 = fields[1].split(['@', ':']).nth(1).unwrap().parse().unwrap();
            for range in &fields[8..] {
                let (lo, hi) = range.split_once('-').unwrap_or((range, range));
                if let (Ok(lo), Ok(hi)) = (lo.parse::<u16>(), hi.parse::<u16>()) {
                    if (lo..=hi).contains(&slot) {
                        return self.nodes.iter().position(|n| n.port == port);
                    }
                }
            }
        }
        None
    }

    /// The port of the first replica of the master at `master`.
    pub fn replica_of(&self, master: u16) -> u16 {
        self.cli(master, &["info", "replication"])
            .lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("slave0:")?
                    .split(',')
                    .find_map(|f| f.strip_prefix("port=")?.parse().ok())
            })
            .expect("the master has a replica")
    }

    /// Whether a node other than `old_port` is now the master serving `key`'s slot.
    pub fn promoted(&self, key: &str, old_port: u16) -> bool {
        self.serving(key).is_some_and(|i| {
            self.nodes[i].port != old_port
                && self
                    .cli(self.nodes[i].port, &["role"])
                    .starts_with("master")
        })
    }
}

/// A cluster node's `redis-server` arguments.
fn node_args(dir: &Scratch, guard: &Guard, port: u16) -> Vec<String> {
    let d = dir.0.display();
    [
        "--bind",
        "127.0.0.1",
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        &format!("{d}/nodes-{port}.conf"),
        "--cluster-node-timeout",
        "1000",
        "--dir",
        &d.to_string(),
        "--save",
        "",
        "--appendonly",
        "no",
        // Replicas sync at once; DEBUG SLEEP stalls one in the fault tests.
        "--repl-diskless-sync-delay",
        "0",
        "--enable-debug-command",
        "local",
    ]
    .map(String::from)
    .into_iter()
    .chain(guard.server_args(port, true))
    .collect()
}

impl LocalCluster {
    /// A new master with no slots, and a replica of it, joined to the cluster (as
    /// `redis-cli --cluster add-node` does); their indexes in `nodes`.
    pub fn add_master_with_replica(&mut self) -> (usize, usize) {
        let seed = format!("127.0.0.1:{}", self.nodes[0].port);
        let master_port = free_cluster_port();
        self.nodes.push(Node::start(
            master_port,
            node_args(&self._dir, &self.guard, master_port),
        ));
        let add = |args: &[&str]| {
            let out = Command::new("redis-cli")
                .args(self.guard.cli_args(true))
                .args(["--cluster", "add-node"])
                .args(args)
                .output()
                .unwrap_or_else(|e| missing("redis-cli", &e));
            assert!(
                out.status.success(),
                "redis-cli --cluster add-node: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        };
        add(&[&format!("127.0.0.1:{master_port}"), &seed]);
        let master_id = self.id(master_port);
        wait_until(
            "the cluster knows the new master",
            Duration::from_secs(20),
            || {
                self.nodes[..self.nodes.len() - 1]
                    .iter()
                    .filter(|n| n.pid.is_some())
                    .all(|n| self.cli(n.port, &["cluster", "nodes"]).contains(&master_id))
            },
        );
        let replica_port = free_cluster_port();
        self.nodes.push(Node::start(
            replica_port,
            node_args(&self._dir, &self.guard, replica_port),
        ));
        add(&[
            &format!("127.0.0.1:{replica_port}"),
            &seed,
            "--cluster-slave",
            "--cluster-master-id",
            &master_id,
        ]);
        self.wait_healthy();
        // In sync, as an operator waits before moving slots to it: until then the new
        // master's writes that wait for a replica (revocations, index entries) answer 503.
        wait_until(
            "the new master's replica in sync",
            Duration::from_secs(20),
            || {
                self.cli(replica_port, &["info", "replication"])
                    .contains("master_link_status:up")
            },
        );
        (self.nodes.len() - 2, self.nodes.len() - 1)
    }

    /// A node's cluster id.
    pub fn id(&self, port: u16) -> String {
        self.cli(port, &["cluster", "myid"]).trim().to_owned()
    }

    /// `redis-cli --cluster <args…>` against the cluster (a reshard, a rebalance): its
    /// output, the command failing the test when it fails.
    pub fn manage(&self, args: &[&str]) -> String {
        let seed = format!("127.0.0.1:{}", self.nodes[0].port);
        let out = Command::new("redis-cli")
            .args(self.guard.cli_args(true))
            .arg("--cluster")
            .arg(args[0])
            .arg(&seed)
            .args(&args[1..])
            .output()
            .unwrap_or_else(|e| missing("redis-cli", &e));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "redis-cli --cluster {args:?}: {text}");
        text
    }
}

/// The cluster every cluster test of this process shares (keys under prefixes of their
/// own), started by the first that asks.
pub fn shared_cluster() -> &'static LocalCluster {
    static CLUSTER: OnceLock<LocalCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| LocalCluster::launch(Guard::default(), None))
}
