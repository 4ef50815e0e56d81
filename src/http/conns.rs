//! The open connections: whose they are and how long each has been idle, so that idle
//! or slow clients cannot hold the server. A connection that has not sent a complete
//! request head within `header_timeout` of being accepted, or within `idle_timeout` of
//! its last answer, or whose request body has not arrived within `body_timeout` of its
//! first byte being awaited, is closed; one client network holds at most `per_ip`
//! connections.
//!
//! No timer per request: a request costs two atomic counts and one store of a clock
//! that a sweeper task advances (every `TICK`); the sweeper also closes what is due.
//! (hyper's own header-read timer arms one per request, which cost check_token a fifth
//! of its throughput.) A partial request head counts as idle: a client that trickles
//! one in byte by byte (slowloris) is closed like one that sends nothing.
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// How often the clock advances and the sweeper looks: the deadlines' resolution.
const TICK: Duration = Duration::from_millis(250);

/// Milliseconds since the process's first connection, advanced by the sweeper.
static CLOCK_MS: AtomicU64 = AtomicU64::new(0);

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn tick_clock() -> u64 {
    let now = u64::try_from(epoch().elapsed().as_millis()).unwrap_or(u64::MAX);
    CLOCK_MS.store(now, Ordering::Relaxed);
    now
}

/// The limits on connections.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    /// How long a request's body may take to arrive once its head has.
    pub body_timeout: Duration,
    /// Connections one client network may hold at once; 0: no limit.
    pub per_ip: usize,
}

/// One open connection.
pub struct Conn {
    /// When it was accepted, or its last answer was made (ms of `CLOCK_MS`).
    idle_since: AtomicU64,
    /// Requests being served on it; never closed while one is.
    in_flight: AtomicU32,
    /// Whether it has had a request (which deadline applies).
    served: AtomicBool,
    /// When its request's body began to be read (ms of `CLOCK_MS`, plus one); 0 while
    /// no body is being read.
    reading_since: AtomicU64,
    /// Tells the connection's task to drop it.
    pub close: Notify,
}

impl Conn {
    /// A request head arrived.
    pub fn begin(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.served.store(true, Ordering::Relaxed);
    }

    /// Its request's body is being read from now.
    pub fn reading_body(&self) {
        self.reading_since
            .store(CLOCK_MS.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    /// Its request's body is read (or failed).
    pub fn body_read(&self) {
        self.reading_since.store(0, Ordering::Relaxed);
    }

    /// Its answer is made: idle from now.
    pub fn end(&self) {
        self.idle_since
            .store(CLOCK_MS.load(Ordering::Relaxed), Ordering::Relaxed);
        self.in_flight.fetch_sub(1, Ordering::Release);
    }
}

/// Every open connection, and how many each address holds.
pub struct Conns {
    limits: ConnLimits,
    open: Mutex<HashMap<u64, Arc<Conn>>>,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    next_id: AtomicU64,
}

/// A connection's place in `Conns`, given back when dropped.
pub struct Admitted {
    conns: Arc<Conns>,
    id: u64,
    ip: IpAddr,
    pub conn: Arc<Conn>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Ok(mut open) = self.conns.open.lock() {
            open.remove(&self.id);
        }
        if let Ok(mut per_ip) = self.conns.per_ip.lock() {
            if let Some(n) = per_ip.get_mut(&self.ip) {
                *n -= 1;
                if *n == 0 {
                    per_ip.remove(&self.ip);
                }
            }
        }
    }
}

impl Conns {
    pub fn new(limits: ConnLimits) -> Arc<Conns> {
        tick_clock();
        Arc::new(Conns {
            limits,
            open: Mutex::new(HashMap::new()),
            per_ip: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
        })
    }

    /// Registers a connection from `ip`; `None` when that address holds its share already.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Admitted> {
        {
            let mut per_ip = self.per_ip.lock().ok()?;
            let n = per_ip.entry(ip).or_insert(0);
            if self.limits.per_ip > 0 && *n >= self.limits.per_ip {
                return None;
            }
            *n += 1;
        }
        let conn = Arc::new(Conn {
            idle_since: AtomicU64::new(CLOCK_MS.load(Ordering::Relaxed)),
            in_flight: AtomicU32::new(0),
            served: AtomicBool::new(false),
            reading_since: AtomicU64::new(0),
            close: Notify::new(),
        });
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut open) = self.open.lock() {
            open.insert(id, conn.clone());
        }
        Some(Admitted {
            conns: self.clone(),
            id,
            ip,
            conn,
        })
    }

    /// Advances the clock and closes every connection past its deadline; how many.
    pub fn sweep(&self) -> usize {
        let now = tick_clock();
        let header = u64::try_from(self.limits.header_timeout.as_millis()).unwrap_or(u64::MAX);
        let idle = u64::try_from(self.limits.idle_timeout.as_millis()).unwrap_or(u64::MAX);
        let body = u64::try_from(self.limits.body_timeout.as_millis()).unwrap_or(u64::MAX);
        let Ok(open) = self.open.lock() else {
            return 0;
        };
        let mut closed = 0;
        for conn in open.values() {
            // A body trickled in byte by byte is timed like a slow head.
            let reading = conn.reading_since.load(Ordering::Relaxed);
            if reading > 0 && now.saturating_sub(reading - 1) >= body {
                conn.close.notify_one();
                closed += 1;
                continue;
            }
            if conn.in_flight.load(Ordering::Acquire) > 0 {
                continue;
            }
            let deadline = if conn.served.load(Ordering::Relaxed) {
                idle
            } else {
                header
            };
            let since = conn.idle_since.load(Ordering::Relaxed);
            if now.saturating_sub(since) >= deadline {
                conn.close.notify_one();
                closed += 1;
            }
        }
        closed
    }

    /// Sweeps every `TICK` until the returned handle is aborted.
    pub fn start_sweeper(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let conns = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(TICK);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                every.tick().await;
                let Some(conns) = conns.upgrade() else {
                    return;
                };
                let closed = conns.sweep();
                if closed > 0 {
                    crate::telemetry::connections_closed("idle", closed as u64);
                }
            }
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.lock().map(|o| o.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_ip: usize) -> ConnLimits {
        ConnLimits {
            header_timeout: Duration::from_millis(0),
            idle_timeout: Duration::from_secs(3600),
            body_timeout: Duration::from_millis(0),
            per_ip,
        }
    }

    #[test]
    fn one_address_holds_at_most_its_share_and_gets_it_back_on_close() {
        let conns = Conns::new(limits(2));
        let ip: IpAddr = [10, 0, 0, 1].into();
        let a = conns.admit(ip).expect("first");
        let _b = conns.admit(ip).expect("second");
        assert!(conns.admit(ip).is_none(), "a third is over the share");
        assert!(
            conns.admit([10, 0, 0, 2].into()).is_some(),
            "another address is not"
        );
        drop(a);
        assert!(conns.admit(ip).is_some(), "a closed one frees its place");
    }

    #[test]
    fn a_connection_without_a_request_is_closed_at_its_deadline_and_a_busy_one_never() {
        let conns = Conns::new(limits(0));
        let idle = conns.admit([10, 0, 0, 1].into()).unwrap();
        let busy = conns.admit([10, 0, 0, 1].into()).unwrap();
        busy.conn.begin();
        // header_timeout 0: due at once; the busy one is serving a request.
        assert_eq!(conns.sweep(), 1);
        // After its answer the idle timeout (an hour) applies.
        busy.conn.end();
        assert_eq!(conns.sweep(), 1, "only the one without a request, again");
        drop(idle);
        assert_eq!(conns.sweep(), 0);
        assert_eq!(conns.open(), 1);
        // Busy reading a body past its bound (0 here): closed; once read, it is not.
        busy.conn.begin();
        busy.conn.reading_body();
        assert_eq!(conns.sweep(), 1);
        busy.conn.body_read();
        assert_eq!(conns.sweep(), 0);
    }
}
