//! One `redis-server` (or sentinel) process under a watchdog, the scratch folder of a
//! topology, and `redis-cli`.
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::super::services::{missing, unique};

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
pub(super) struct Scratch(pub(super) PathBuf);

impl Scratch {
    pub(super) fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(unique(tag));
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
    pub(super) pid: Option<u32>,
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
            .unwrap_or_else(|e| missing("redis-server (sh)", &e));
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

    /// Whether it runs (not killed).
    pub fn alive(&self) -> bool {
        self.pid.is_some()
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
        .unwrap_or_else(|e| missing("redis-cli", &e));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub(super) fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Until `replica` has every write its master made.
pub fn wait_replicated(master: u16, replica: u16) {
    let offset = |port: u16, field: &str| -> u64 {
        cli(port, &["info", "replication"])
            .lines()
            .find_map(|l| l.trim().strip_prefix(field)?.parse().ok())
            .unwrap_or(0)
    };
    let target = offset(master, "master_repl_offset:");
    let deadline = Instant::now() + Duration::from_secs(10);
    while offset(replica, "slave_repl_offset:") < target {
        assert!(
            Instant::now() < deadline,
            "replica {replica} did not catch up"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
