//! An idle-connection flood, as an attacker with nothing but a TCP client makes one:
//! 10,000 connections from one address that never send a byte. Another client is still
//! answered, the flood's connections beyond its address's share are closed at once, and
//! the rest once their header deadline has passed. Its own test binary: it holds 10,000
//! sockets, which the other suites' tests should not share a process with.
mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use common::*;
use reqwest::StatusCode;
use tokio::net::TcpStream;

const FLOOD: usize = 10_000;

/// How many of `streams` the server still holds open (not closed: no EOF yet).
fn still_open(streams: &[TcpStream]) -> usize {
    let mut buf = [0u8; 1];
    streams
        .iter()
        .filter(|s| match s.try_read(&mut buf) {
            Ok(0) => false,
            Ok(_) => true,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => true,
            Err(_) => false,
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_flood_from_one_address_does_not_starve_other_clients() {
    // The flood's sockets and the server's in one process: raise the soft limit on open
    // files as far as the hard one allows, and say so when that is not enough.
    let files = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(0);
    assert!(
        files >= FLOOD as u64 + 2_000,
        "this test holds {FLOOD} sockets; the open-file limit is {files} (raise `ulimit -Hn`)"
    );
    let app = TestApp::spawn_with(Backend::Embedded, |s| {
        s.http.header_timeout = Duration::from_secs(2);
        s.http.idle_timeout = Duration::from_secs(2);
    })
    .await;
    let share = app.settings.http.max_connections_per_ip;
    assert!(
        share > 0 && share < FLOOD,
        "the default share is a part of the slots"
    );
    let (access, _) = app.login().await;
    let addr: SocketAddr = app.base.trim_start_matches("http://").parse().unwrap();

    // The flood: connections from 127.0.0.1 that send nothing.
    let mut flood = Vec::with_capacity(FLOOD);
    let mut refused = 0;
    for _ in 0..FLOOD {
        match tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr)).await {
            Ok(Ok(s)) => flood.push(s),
            _ => refused += 1,
        }
    }
    assert!(flood.len() >= FLOOD * 9 / 10, "{refused} connects failed");
    // Let the server accept what it will.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let open = still_open(&flood);
    assert!(
        open <= share,
        "{open} of the flood's connections are held, more than the share of {share}"
    );

    // Another client (another address of the loopback) is answered, every time.
    let other = reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)))
        .timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let mut took = Vec::with_capacity(100);
    for _ in 0..100 {
        let started = Instant::now();
        let r = other
            .post(format!("{}/api/v1/check_token", app.base))
            .json(&serde_json::json!({ "token": access }))
            .send()
            .await
            .expect("answered while the flood holds its connections");
        assert_eq!(r.status(), StatusCode::OK);
        took.push(started.elapsed());
    }
    took.sort();
    // A figure, not a pass/fail condition (timing belongs in benchmarks).
    eprintln!(
        "check_token from another address during the flood: p50 {:?}, p99 {:?}, max {:?} \
         ({} flood connections held, share {share})",
        took[49], took[98], took[99], open
    );

    // After the header deadline (2 s, swept every 250 ms) none of the flood is held.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(
        still_open(&flood),
        0,
        "idle connections outlived their deadline"
    );
    // The server still answers the flood's own address once it behaves.
    assert_eq!(app.check_token(&access).await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keep_alive_connection_is_closed_after_its_idle_timeout_not_before() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let app = TestApp::spawn_with(Backend::Embedded, |s| {
        s.http.header_timeout = Duration::from_secs(30);
        s.http.idle_timeout = Duration::from_secs(1);
    })
    .await;
    let addr: SocketAddr = app.base.trim_start_matches("http://").parse().unwrap();
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = conn.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // Within the idle timeout the connection serves another request.
    tokio::time::sleep(Duration::from_millis(300)).await;
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let n = conn.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // Idle past it (1 s, swept every 250 ms): closed by the server.
    let closed = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
        .await
        .expect("the server closed the idle connection");
    assert_eq!(closed.unwrap_or(0), 0, "EOF");
}

/// Waits until the server closes `stream` (EOF or a reset); how long that took.
async fn closed_within(stream: &mut TcpStream, bound: Duration) -> Duration {
    use tokio::io::AsyncReadExt;
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(
            bound.saturating_sub(started.elapsed()),
            stream.read(&mut buf),
        )
        .await
        {
            Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => continue,
            Err(_) => panic!("the server still holds the connection after {bound:?}"),
        }
    }
}

/// A body sent slowly (its head whole, then a byte now and then) is timed like a slow
/// head: the connection is closed at `--body-timeout`, whatever it trickles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_sent_byte_by_byte_is_cut_off_at_the_body_timeout() {
    use tokio::io::AsyncWriteExt;
    let app = TestApp::spawn_with(Backend::Embedded, |s| {
        s.http.body_timeout = Duration::from_secs(1);
    })
    .await;
    let addr: SocketAddr = app.base.trim_start_matches("http://").parse().unwrap();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            b"POST /api/v1/check_token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 1000\r\n\r\n{",
        )
        .await
        .unwrap();
    // A byte every 200 ms keeps the connection busy, never done.
    let (mut read, mut write) = stream.into_split();
    let trickle = tokio::spawn(async move {
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if write.write_all(b" ").await.is_err() {
                return;
            }
        }
    });
    use tokio::io::AsyncReadExt;
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(8), read.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break started.elapsed(),
            Ok(Ok(_)) => continue,
            Err(_) => panic!("a trickled body held the connection for 8 s"),
        }
    };
    trickle.abort();
    assert!(
        closed >= Duration::from_millis(900),
        "closed after {closed:?}"
    );
    println!("trickled body: connection closed after {closed:?} (--body-timeout 1 s)");
    // Another client is answered all along.
    assert_eq!(app.check_token("x").await.0, StatusCode::UNAUTHORIZED);
    app.cleanup().await;
}

/// The gRPC listener keeps the HTTP listener's rules: a connection that sends nothing is
/// closed at the header timeout, one over its network's share at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grpc_listener_closes_idle_connections_and_keeps_each_address_to_its_share() {
    let app = TestApp::spawn_with(Backend::Embedded, |s| {
        s.http.header_timeout = Duration::from_secs(2);
        s.http.max_connections_per_ip = 2;
    })
    .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(tokencache::grpc::serve(
        listener,
        app.state.clone(),
        async {
            let _ = stopped.await;
        },
    ));
    let opened = Instant::now();
    let mut first = TcpStream::connect(addr).await.unwrap();
    let mut second = TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut third = TcpStream::connect(addr).await.unwrap();
    let over = closed_within(&mut third, Duration::from_secs(1)).await;
    println!("gRPC: a third connection from one address closed after {over:?}");
    for stream in [&mut first, &mut second] {
        closed_within(stream, Duration::from_secs(6)).await;
        let idle = opened.elapsed();
        assert!(idle >= Duration::from_millis(1500), "closed after {idle:?}");
    }
    println!(
        "gRPC: idle connections closed after {:?} (header timeout 2 s)",
        opened.elapsed()
    );
    app.cleanup().await;
}
