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
