//! `ceiling-grpc ADDR [hello]`: the gRPC ceiling of this machine for Envoy's ext_authz `Check`,
//! beside the HTTP one of `../../../shared/bench/ceiling`: a bare hyper HTTP/2 server
//! that reads each request's whole body, decodes nothing, does one Redis GET of key
//! `ceiling:bench` over one multiplexed connection to $REDIS_URL, and answers a fixed
//! `CheckResponse` (status OK and the four identity headers tokencache sets, encoded once
//! at start) with `grpc-status: 0` in the trailers. Current-thread runtime, as tokencache
//! runs with one worker. With `hello`, no GET: the transport's own cost.
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use envoy_types::pb::envoy::config::core::v3::{HeaderValue, HeaderValueOption};
use envoy_types::pb::envoy::service::auth::v3::{check_response, CheckResponse, OkHttpResponse};
use envoy_types::pb::google::rpc::Status;
use http_body::Frame;
use http_body_util::BodyExt;
use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message;
use tokio::net::TcpListener;

/// One data frame, then the trailers.
struct Unary(Option<Bytes>, Option<http::HeaderMap>);

impl http_body::Body for Unary {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(data) = self.0.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        Poll::Ready(self.1.take().map(|t| Ok(Frame::trailers(t))))
    }
}

fn fixed_answer() -> Bytes {
    let header = |k: &str, v: &str| HeaderValueOption {
        header: Some(HeaderValue {
            key: k.into(),
            value: v.into(),
            ..Default::default()
        }),
        append_action: 2,
        ..Default::default()
    };
    let response = CheckResponse {
        status: Some(Status {
            code: 0,
            message: "token is live".into(),
            details: vec![],
        }),
        http_response: Some(check_response::HttpResponse::OkResponse(OkHttpResponse {
            headers: vec![
                header("x-auth-username", "bench0"),
                header("x-auth-app-key", "bench"),
                header("x-auth-token-type", "web"),
                header("x-auth-expires-in", "3599"),
            ],
            ..Default::default()
        })),
        ..Default::default()
    };
    let body = response.encode_to_vec();
    let mut framed = Vec::with_capacity(5 + body.len());
    framed.push(0);
    framed.extend_from_slice(&(body.len() as u32).to_be_bytes());
    framed.extend_from_slice(&body);
    Bytes::from(framed)
}

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(serve())
}

async fn serve() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8081".into())
        .parse()?;
    let hello = std::env::args().nth(2).as_deref() == Some("hello");
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
    let conn = redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?;
    let answer = fixed_answer();
    let listener = TcpListener::bind(addr).await?;
    eprintln!("gRPC ceiling listening on {addr}");
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let conn = conn.clone();
        let answer = answer.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                let mut c = conn.clone();
                let answer = answer.clone();
                async move {
                    let _body = req.into_body().collect().await;
                    let status = if hello {
                        "0"
                    } else {
                        let r: redis::RedisResult<Option<Vec<u8>>> =
                            redis::cmd("GET").arg("ceiling:bench").query_async(&mut c).await;
                        if matches!(r, Ok(Some(_))) { "0" } else { "14" }
                    };
                    let mut trailers = http::HeaderMap::new();
                    trailers.insert("grpc-status", http::HeaderValue::from_static(status));
                    let response = Response::builder()
                        .header("content-type", "application/grpc")
                        .body(Unary(Some(answer), Some(trailers)))
                        .expect("static parts");
                    Ok::<_, Infallible>(response)
                }
            });
            let _ = http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
