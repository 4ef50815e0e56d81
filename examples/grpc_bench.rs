//! Throughput of tokencache's gRPC ext_authz (`--grpc-listen`), as Envoy calls it: a
//! client generated from Envoy's protos (the `envoy-types` crate) sending `Check` for one
//! live token from CONCURRENCY tasks over CONNECTIONS HTTP/2 connections, on one thread
//! (like `wrk -t1`), for SECONDS. Prints requests per second and latency percentiles.
//!
//!     cargo run --release --example grpc_bench -- http://127.0.0.1:9095 <token> [50] [10] [1]
//!
//! Arguments: the service's URL, an access token, CONCURRENCY (50), SECONDS (10),
//! CONNECTIONS (1). Every answer must be OK (the token live), or the run fails.
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, token, rest @ ..] = args.as_slice() else {
        eprintln!("usage: grpc_bench URL TOKEN [CONCURRENCY] [SECONDS] [CONNECTIONS]");
        std::process::exit(2);
    };
    let number = |i: usize, default: u64| {
        rest.get(i)
            .map_or(default, |v| v.parse().expect("a number"))
    };
    let (concurrency, seconds, connections) = (number(0, 50), number(1, 10), number(2, 1));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(
        url.clone(),
        token.clone(),
        concurrency,
        seconds,
        connections,
    ));
}

async fn run(url: String, token: String, concurrency: u64, seconds: u64, connections: u64) {
    let mut channels = Vec::new();
    for _ in 0..connections {
        let channel = tonic::transport::Endpoint::from_shared(url.clone())
            .expect("a URL")
            .connect()
            .await
            .expect("connect");
        channels.push(channel);
    }
    let mut headers = std::collections::HashMap::new();
    headers.insert("authorization".to_string(), format!("Bearer {token}"));
    let request = CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(HttpRequest {
                    method: "GET".into(),
                    path: "/orders/1".into(),
                    headers,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    };
    let end = Instant::now() + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..concurrency)
        .map(|i| {
            let mut client =
                AuthorizationClient::new(channels[i as usize % channels.len()].clone());
            let request = request.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < end {
                    let started = Instant::now();
                    let answer = client.check(request.clone()).await.expect("a Check answer");
                    let code = answer.into_inner().status.map_or(0, |s| s.code);
                    assert_eq!(code, 0, "the token must be live");
                    latencies.push(started.elapsed());
                }
                latencies
            })
        })
        .collect();
    let started = Instant::now();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    println!(
        "grpc Check: {} requests in {elapsed:.1} s, {:.0} req/s, p50 {:?}, p99 {:?} \
         ({concurrency} concurrent, {connections} connection(s))",
        all.len(),
        all.len() as f64 / elapsed,
        pct(0.50),
        pct(0.99)
    );
}
