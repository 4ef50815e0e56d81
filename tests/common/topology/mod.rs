//! Real Redis topologies for the tests, made of `redis-server` processes on loopback ports:
//! a Redis Cluster (3 masters, 3 replicas) and a Sentinel setup (1 master, 1 replica, 3
//! sentinels). Nothing is written to disk but their config files in a temporary folder.
//!
//! Every process is started under a watchdog shell that kills it when this test process is
//! gone, so a failed or interrupted run leaves nothing behind; dropping the topology kills
//! them at once. A topology shared by a whole suite (`shared_cluster`,
//! `shared_sentinels`) lives as long as the test process; a failover test starts its own.
//!
//! `node` is one process (and `cli`), `tls` the certificates, `guard` a password and TLS
//! on every node, `cluster` and `sentinel` the two topologies.
mod cluster;
mod guard;
mod node;
mod sentinel;
mod tls;

use std::time::Duration;

use tokencache::app::Settings;
use tokencache::store::tokens::redis::{RedisConn, RedisMode, RedisTarget};

pub use cluster::{shared_cluster, LocalCluster};
pub use guard::Guard;
pub use node::{cli, free_cluster_port, wait_replicated, Node};
pub use sentinel::{shared_sentinels, LocalSentinels};
pub use tls::Tls;

/// One topology of a test's own at a time in a test process: a failover, a reshard or a
/// stalled replica is timed against bounds of seconds (node timeout 1 s, a `WAIT` of
/// 250 ms), and two of them at once on this 2-core machine, each with six to eight
/// `redis-server` processes and traffic, pushed each other past those bounds (a retried
/// logout that found no replica in time, a removed node's slot map late). Taken by
/// `LocalCluster::start` and `LocalSentinels::start` (not by the shared topologies, which
/// live as long as the process, nor by `start_with`), given back when the topology is
/// dropped. A test takes one turn at most (a second would wait for itself).
pub struct Turn(());

static TURN: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
static TURN_FREED: std::sync::Condvar = std::sync::Condvar::new();

impl Turn {
    pub fn take() -> Self {
        let mut taken = TURN.lock().unwrap_or_else(|p| p.into_inner());
        while *taken {
            taken = TURN_FREED.wait(taken).unwrap_or_else(|p| p.into_inner());
        }
        *taken = true;
        Turn(())
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        *TURN.lock().unwrap_or_else(|p| p.into_inner()) = false;
        TURN_FREED.notify_one();
    }
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
