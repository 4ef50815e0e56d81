//! Real Redis topologies for the tests, made of `redis-server` processes on loopback ports:
//! a Redis Cluster (3 masters, 3 replicas) and a Sentinel setup (1 master, 1 replica, 3
//! sentinels). Nothing is written to disk but their config files in a temporary folder.
//!
//! Every process is started under a watchdog shell that kills it when this test process is
//! gone, so a failed or interrupted run leaves nothing behind; dropping the topology kills
//! them at once. A topology shared by a whole suite (`shared_cluster`,
//! `shared_sentinels`) lives as long as the test process; a failover test starts its own.
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokencache::app::Settings;
use tokencache::store::tokens::redis::{RedisConn, RedisMode, RedisTarget};

/// A port `p` with `p` and `p + 10000` (a cluster node's bus) both free, below 55535.
pub fn free_cluster_port() -> u16 {
    loop {
        let p: u16 = 20000 + rand::random::<u16>() % 30000;
        let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
        if free(p) && free(p + 10000) {
            return p;
        }
    }
}

/// A temporary folder, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(super::services::unique(tag));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One redis-server (or sentinel) process on `port`.
pub struct Node {
    pub port: u16,
    args: Vec<String>,
    pid: Option<u32>,
}

impl Node {
    pub fn start(port: u16, args: Vec<String>) -> Self {
        let mut node = Self {
            port,
            args,
            pid: None,
        };
        node.spawn();
        node
    }

    /// Starts the process (again) under a watchdog: a shell that kills it once this test
    /// process is gone.
    fn spawn(&mut self) {
        let quoted: Vec<String> = self.args.iter().map(|a| format!("'{a}'")).collect();
        let script = format!(
            "redis-server {} >/dev/null 2>&1 & child=$!; echo $child; \
             while kill -0 {parent} 2>/dev/null && kill -0 $child 2>/dev/null; do sleep 1; done; \
             kill -9 $child 2>/dev/null",
            quoted.join(" "),
            parent = std::process::id()
        );
        let mut shell = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| super::services::missing("redis-server (sh)", &e));
        let mut line = String::new();
        use std::io::BufRead;
        std::io::BufReader::new(shell.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        self.pid = line.trim().parse().ok();
        // The shell lives on as the watchdog; nobody waits for it but init.
        std::mem::forget(shell);
        wait_for_port(self.port);
    }

    /// Kills the process (SIGKILL: no goodbye to the cluster or the sentinels).
    pub fn kill(&mut self) {
        if let Some(pid) = self.pid.take() {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            // Until the port is closed.
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline
                && std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Starts it again with the same arguments (its config file says what it was).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "redis-server on {port} did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `redis-cli -p port args…`, its output.
pub fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .output()
        .unwrap_or_else(|e| super::services::missing("redis-cli", &e));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// How the nodes of a topology are guarded: a password (`requirepass`, replicas and
/// sentinels authenticating with it) and TLS (every node, its replication and its cluster
/// bus on TLS only, a certificate for 127.0.0.1 from a CA of the test's own).
#[derive(Clone, Default)]
pub struct Guard {
    pub password: Option<String>,
    pub tls: Option<Arc<Tls>>,
}

/// A CA and a server certificate for 127.0.0.1, made with openssl.
pub struct Tls {
    pub ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    _dir: Scratch,
}

impl Tls {
    pub fn make() -> Arc<Tls> {
        let dir = Scratch::new("tc_tls");
        let d = &dir.0;
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(d)
                .output()
                .unwrap_or_else(|e| super::services::missing("the openssl program", &e));
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=tokencache test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ]);
        run(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ]);
        std::fs::write(
            d.join("san.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .unwrap();
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.pem",
        ]);
        Arc::new(Tls {
            ca: d.join("ca.pem"),
            cert: d.join("server.pem"),
            key: d.join("server.key"),
            _dir: dir,
        })
    }

    /// The TLS settings of a server (`redis-server` flags, or config lines with `conf`).
    fn settings(&self) -> Vec<(&'static str, String)> {
        vec![
            ("tls-cert-file", self.cert.display().to_string()),
            ("tls-key-file", self.key.display().to_string()),
            ("tls-ca-cert-file", self.ca.display().to_string()),
            ("tls-auth-clients", "no".into()),
            ("tls-replication", "yes".into()),
        ]
    }
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
    fn cli_args(&self, password: bool) -> Vec<String> {
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

/// A Redis Cluster of 3 masters and 3 replicas.
pub struct LocalCluster {
    pub nodes: Vec<Node>,
    pub guard: Guard,
    _dir: Scratch,
}

impl LocalCluster {
    /// Node timeout 1 s, so that a failover takes a few seconds.
    pub fn start() -> Self {
        Self::start_with(Guard::default())
    }

    /// The same, guarded.
    pub fn start_with(guard: Guard) -> Self {
        let dir = Scratch::new("tc_cluster");
        let mut nodes = Vec::new();
        for _ in 0..6 {
            let port = free_cluster_port();
            let d = dir.0.display();
            nodes.push(Node::start(
                port,
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
                ]
                .map(String::from)
                .into_iter()
                .chain(guard.server_args(port, true))
                .collect(),
            ));
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
            .unwrap_or_else(|e| super::services::missing("redis-cli", &e));
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let cluster = Self {
            nodes,
            guard,
            _dir: dir,
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
}

impl LocalSentinels {
    /// down-after 1 s, so that a failover takes a few seconds.
    pub fn start() -> Self {
        Self::start_with(Guard::default())
    }

    /// The same, guarded.
    pub fn start_with(guard: Guard) -> Self {
        let dir = Scratch::new("tc_sentinel");
        let base = |port: u16| {
            let mut args = vec![
                "--bind".to_string(),
                "127.0.0.1".into(),
                "--save".into(),
                "".into(),
                "--appendonly".into(),
                "no".into(),
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

/// The cluster every cluster test of this process shares (keys under prefixes of their
/// own), started by the first that asks.
pub fn shared_cluster() -> &'static LocalCluster {
    static CLUSTER: OnceLock<LocalCluster> = OnceLock::new();
    CLUSTER.get_or_init(LocalCluster::start)
}

/// The Sentinel setup every sentinel test of this process shares.
pub fn shared_sentinels() -> &'static LocalSentinels {
    static SENTINELS: OnceLock<LocalSentinels> = OnceLock::new();
    SENTINELS.get_or_init(LocalSentinels::start)
}

/// A connection to the Redis the settings name, in their mode (for a test to look at keys).
pub async fn open(settings: &Settings) -> RedisConn {
    let target = RedisTarget {
        mode: settings.redis_mode,
        urls: settings.redis_url.clone().expect("a Redis-backed test"),
        sentinel_master: settings.redis_sentinel_master.clone(),
        timeout: Duration::from_secs(2),
    };
    RedisConn::open(&target)
        .await
        .expect("open the test's Redis")
}

/// Settings pointing at a topology.
pub fn point_at(settings: &mut Settings, mode: RedisMode) {
    match mode {
        RedisMode::Standalone => {}
        RedisMode::Cluster => {
            settings.redis_mode = mode;
            settings.redis_url = Some(shared_cluster().urls());
        }
        RedisMode::Sentinel => {
            let s = shared_sentinels();
            settings.redis_mode = mode;
            settings.redis_url = Some(s.urls());
            settings.redis_sentinel_master = Some(s.name.clone());
        }
    }
}
