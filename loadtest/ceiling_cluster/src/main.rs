//! `ceiling-cluster ADDR`: one GET of key `ceiling:bench` per request through the redis
//! crate's cluster client (seed nodes in $REDIS_URLS, comma-separated), returned in JSON.
//! The same server as the shared bench ceiling's `redis` mode (one GET per request, the
//! whole request body read first), routed by slot as any cluster client must: the
//! one-round-trip ceiling of this machine against a Redis Cluster.
use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

fn json(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(body))
        .expect("static response parts are valid")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into())
        .parse()?;
    let urls: Vec<String> = std::env::var("REDIS_URLS")?
        .split(',')
        .map(str::to_owned)
        .collect();
    let conn = redis::cluster::ClusterClient::new(urls)?
        .get_async_connection()
        .await?;
    let listener = TcpListener::bind(addr).await?;
    eprintln!("cluster ceiling listening on {addr}");
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let conn = conn.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                let mut c = conn.clone();
                async move {
                    let _body = req
                        .into_body()
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    let r: redis::RedisResult<Option<String>> = redis::cmd("GET")
                        .arg("ceiling:bench")
                        .query_async(&mut c)
                        .await;
                    let resp = match r {
                        Ok(Some(v)) => json(
                            StatusCode::OK,
                            Bytes::from(format!("{{\"active\":true,\"value\":{v}}}")),
                        ),
                        Ok(None) => {
                            json(StatusCode::NOT_FOUND, Bytes::from_static(b"{\"active\":false}"))
                        }
                        Err(_) => json(
                            StatusCode::SERVICE_UNAVAILABLE,
                            Bytes::from_static(b"{\"error\":\"redis\"}"),
                        ),
                    };
                    Ok::<_, Infallible>(resp)
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
