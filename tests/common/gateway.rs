//! What the gateway tests (nginx, Traefik, Caddy) share: the application behind the
//! gateway (`Upstream`, which records every request that reaches it), a gateway program
//! run as a child of the test (`Gateway`), finding that program (or installing it once
//! per process), and filling the placeholders of a documented configuration file.
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

/// Bound on every wait for a process, a port or an answer.
pub const WAIT: Duration = Duration::from_secs(10);

/// A marker of the documented "cannot tell" page (nginx's and Caddy's configurations
/// carry it; the Traefik test's page server serves it).
pub const UNAVAILABLE_PAGE: &str = "Sign-in check temporarily unavailable";

/// The placeholders (`@NAME@`, capitals) still in `text`.
pub fn placeholders(text: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find('@') {
        let after = &rest[start + 1..];
        let name_len = after
            .bytes()
            .take_while(|b| b.is_ascii_uppercase() || *b == b'_')
            .count();
        if name_len > 0 && after[name_len..].starts_with('@') {
            found.push(&rest[start..start + name_len + 2]);
        }
        rest = after;
    }
    found
}

/// The distinct placeholders of `text`, sorted.
pub fn distinct_placeholders(text: &str) -> Vec<&str> {
    let mut found = placeholders(text);
    found.sort_unstable();
    found.dedup();
    found
}

/// `text` (the file `file`) with each `(placeholder, value)` filled in; fails the test if
/// one is left.
pub fn fill(text: &str, file: &str, values: &[(&str, &str)]) -> String {
    let rendered = values
        .iter()
        .fold(text.to_owned(), |t, (name, value)| t.replace(name, value));
    assert_eq!(
        placeholders(&rendered),
        Vec::<&str>::new(),
        "{file} has placeholders the test does not fill"
    );
    rendered
}

/// Whether `doc` fills `placeholder` in a `sed` command (`s/@NAME@/` or `s#@NAME@#`).
pub fn doc_fills(doc: &str, placeholder: &str) -> bool {
    doc.contains(&format!("-e 's/{placeholder}/")) || doc.contains(&format!("-e 's#{placeholder}#"))
}

/// A request as the upstream application received it.
#[derive(Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: hyper::HeaderMap,
    pub body_len: usize,
}

impl Received {
    /// Every value of header `name`, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap_or("<not text>"))
            .collect()
    }
}

type Seen = Arc<Mutex<Vec<Received>>>;

/// How an `Upstream` answers a request (its body already read).
type Answer = dyn Fn(&hyper::http::request::Parts) -> hyper::Response<Full<Bytes>> + Send + Sync;

/// A small HTTP server on 127.0.0.1 (the application behind a gateway, or the Traefik
/// test's error pages): reads each whole request, records it, and answers it.
pub struct Upstream {
    pub addr: SocketAddr,
    seen: Seen,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    /// The application: answers 200 "user=<X-Auth-Username>".
    pub async fn start() -> Upstream {
        Self::start_with(|parts| {
            let user = parts
                .headers
                .get("x-auth-username")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            hyper::Response::new(Full::new(Bytes::from(format!("user={user}"))))
        })
        .await
    }

    /// A server answering with `answer`.
    pub async fn start_with(
        answer: impl Fn(&hyper::http::request::Parts) -> hyper::Response<Full<Bytes>>
            + Send
            + Sync
            + 'static,
    ) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Seen = Arc::default();
        let recorder = seen.clone();
        let answer: Arc<Answer> = Arc::new(answer);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let recorder = recorder.clone();
                let answer = answer.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: hyper::Request<Incoming>| {
                        let recorder = recorder.clone();
                        let answer = answer.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body_len = match body.collect().await {
                                Ok(b) => b.to_bytes().len(),
                                Err(_) => 0,
                            };
                            let response = answer(&parts);
                            recorder.lock().unwrap().push(Received {
                                method: parts.method.to_string(),
                                path: parts.uri.to_string(),
                                headers: parts.headers,
                                body_len,
                            });
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Upstream { addr, seen, task }
    }

    /// How many requests reached it.
    pub fn requests(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// Every request it got, in order.
    pub fn received(&self) -> Vec<Received> {
        self.seen.lock().unwrap().clone()
    }

    /// The last request it got.
    pub fn last(&self) -> Received {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("the upstream got a request")
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The directories of the PATH, then `extra`.
fn search_dirs(extra: &[PathBuf]) -> Vec<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra.iter().cloned())
        .collect()
}

/// The program `name`: on the PATH, or in one of `extra`.
pub fn find_program(name: &str, extra: &[PathBuf]) -> Option<PathBuf> {
    search_dirs(extra)
        .into_iter()
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Runs one install step; its output is kept for the failure message.
pub fn run_step(program: &str, args: &[&str]) -> Result<(), String> {
    let out = std::process::Command::new(program)
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("`{program} {}` did not run: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{program} {}` failed ({}):\n{}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The program `name` (on the PATH or in `extra()`, asked again after installing); when
/// missing, `install` runs once per test process (tests of one binary wait for it). Fails
/// the test, naming the program and `how` to get it, when it is still missing: a gateway
/// test never passes without its gateway.
pub fn find_or_install(
    name: &str,
    extra: impl Fn() -> Vec<PathBuf>,
    install: impl FnOnce() -> Result<(), String>,
    how: &str,
) -> PathBuf {
    static INSTALLING: Mutex<()> = Mutex::new(());
    let _one_at_a_time = INSTALLING.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(found) = find_program(name, &extra()) {
        return found;
    }
    eprintln!("the {name} program is missing: installing it ({how})");
    let installed = install();
    find_program(name, &extra()).unwrap_or_else(|| {
        let why = match installed {
            Ok(()) => "the install step succeeded but the program is still not found".to_owned(),
            Err(e) => e,
        };
        panic!("the {name} program is missing and could not be installed: {how}\n{why}")
    })
}

/// A gateway program running as a child of the test, its stdout and stderr in
/// `<dir>/gateway.log`; killed, and `dir` removed, on `stop` or drop.
pub struct Gateway {
    name: String,
    child: tokio::process::Child,
    pub dir: PathBuf,
    /// `http://127.0.0.1:<port>`, where it listens.
    pub base: String,
}

impl Gateway {
    /// Starts `command` and waits until it listens on 127.0.0.1:`port`; fails the test
    /// with the program's own output if it exits first or does not listen in time.
    pub async fn spawn(
        name: &str,
        mut command: tokio::process::Command,
        dir: PathBuf,
        port: u16,
    ) -> Gateway {
        let log = std::fs::File::create(dir.join("gateway.log")).unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{name} did not start: {e}"));
        let mut gateway = Gateway {
            name: name.to_owned(),
            child,
            dir,
            base: format!("http://127.0.0.1:{port}"),
        };
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return gateway;
            }
            if let Ok(Some(status)) = gateway.child.try_wait() {
                panic!(
                    "{name} exited ({status}) before listening:\n{}",
                    gateway.log()
                );
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} did not listen on 127.0.0.1:{port} within {WAIT:?}:\n{}",
                gateway.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The program's output so far (for failure messages).
    pub fn log(&self) -> String {
        read(&self.dir.join("gateway.log"))
    }

    /// Fails the test with the log if the program has exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited ({status}):\n{}", self.name, self.log());
        }
    }

    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(WAIT, self.child.wait()).await;
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A fresh directory of a test's own under the system's temp directory.
pub fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(super::services::unique(tag));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// A client that neither follows redirects (a login redirect must be seen as one) nor
/// goes through a proxy from the environment.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(WAIT)
        .build()
        .unwrap()
}

pub fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Sends requests built by `request` until the answer is not 200 (a server being stopped
/// may still answer for a moment), within `WAIT`; returns the last answer.
pub async fn first_refusal(request: impl Fn() -> reqwest::RequestBuilder) -> reqwest::Response {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let response = request().send().await.unwrap();
        if response.status() != reqwest::StatusCode::OK || tokio::time::Instant::now() >= deadline {
            return response;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
