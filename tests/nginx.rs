//! The real nginx in front of an upstream, configured with `deploy/nginx/tokencache.conf`
//! (the file docs/gateways.md documents), checking every request with the real server's
//! forward-auth route: every scenario of `common::front::scenarios`, through nginx. What is
//! nginx's own is here: finding it (or installing it, `apt-get install nginx-light`), the
//! nginx.conf around the documented file, and where it differs from the other gateways
//! (the data of `impl Front for Nginx`). Its own test binary: it needs the `nginx`
//! program.
mod common;

use std::net::SocketAddr;
use std::path::PathBuf;

use common::front::{DeployFile, Front};
use common::gateway::*;
use common::*;
use reqwest::StatusCode;

on_every_front!(Nginx, through_nginx);

/// The documented configuration, with its `@LISTEN@`, `@TOKENCACHE@` and `@UPSTREAM@`
/// placeholders.
const CONF: &str = include_str!("../deploy/nginx/tokencache.conf");

/// How to get the program, in the failure that finds it missing.
const HOW: &str = "apt-get install nginx-light (or nginx; Debian's nginx has the auth_request \
                   module; bash .ci/run installs it)";

/// The `nginx` program (on the PATH, or in /usr/sbin: Debian's place, not on every PATH),
/// installed with apt-get first when missing (with a fresh package list if the first try
/// fails).
fn nginx_program() -> PathBuf {
    find_or_install(
        "nginx",
        || vec![PathBuf::from("/usr/sbin")],
        || {
            let install = |package| run_step("apt-get", &["install", "-y", "-qq", package]);
            install("nginx-light")
                .or_else(|_| install("nginx"))
                .or_else(|_| {
                    run_step("apt-get", &["update", "-qq"])?;
                    install("nginx-light").or_else(|_| install("nginx"))
                })
        },
        HOW,
    )
}

/// nginx with the documented configuration, in the foreground as a child of the test, its
/// pid file, temp files and logs in a directory of its own.
struct Nginx {
    gateway: Gateway,
}

impl Front for Nginx {
    const NAME: &'static str = "nginx";

    const FILES: &'static [DeployFile] = &[DeployFile {
        path: "deploy/nginx/tokencache.conf",
        text: CONF,
        block: "nginx",
        placeholders: &["@LISTEN@", "@TOKENCACHE@", "@UPSTREAM@"],
    }];

    /// `auth_request` turns any answer but 200 and 401 into 500, which
    /// `error_page 500 = @tokencache_unavailable` answers with the 503 page.
    const WHEN_TOKENCACHE_IS_UNREACHABLE: StatusCode = StatusCode::SERVICE_UNAVAILABLE;

    const LOGS_WHEN_TOKENCACHE_IS_UNREACHABLE: &'static [&'static str] =
        &["auth request unexpected status: 502"];

    const LOGS_WHEN_TOKENCACHE_ANSWERS_503: &'static [&'static str] =
        &["auth request unexpected status: 503"];

    const REFUSAL_CACHE_CONTROL: Option<&'static str> = None;

    /// `proxy_set_header` sends no header for an empty value; the client's own is replaced
    /// all the same.
    const EMPTY_TOKEN_TYPE_REACHES_THE_APP_AS: &'static [&'static str] = &[];
    // Its own X-Auth-* headers go to the check with the rest (403); nginx drops the
    // ones spelled with underscores (`underscores_in_headers off`).
    const FORGED_REFUSED: &'static [&'static str] = &["X-Auth-Username", "X-Auth-Token-Type"];

    /// `proxy_intercept_errors` is off: `error_page 500` only catches the check's.
    const PAGES_THE_APPLICATIONS_OWN: &'static [u16] = &[];

    async fn start(tokencache: &str, upstream: SocketAddr) -> Nginx {
        let program = nginx_program();
        let port = free_port();
        let dir = temp_dir("tc_nginx");

        let rendered = fill(
            CONF,
            "deploy/nginx/tokencache.conf",
            &[
                ("@LISTEN@", &format!("127.0.0.1:{port}")),
                ("@TOKENCACHE@", tokencache),
                ("@UPSTREAM@", &upstream.to_string()),
            ],
        );
        let include = dir.join("tokencache.conf");
        std::fs::write(&include, rendered).unwrap();
        // What a distribution's nginx.conf provides around a conf.d file, made to run as
        // a child of the test: foreground, one process, everything inside `dir`.
        let d = dir.display();
        let main = format!(
            "daemon off;\n\
             master_process off;\n\
             error_log stderr notice;\n\
             pid \"{d}/nginx.pid\";\n\
             events {{ worker_connections 256; }}\n\
             http {{\n\
             \x20   client_body_temp_path \"{d}/client_body\";\n\
             \x20   proxy_temp_path \"{d}/proxy\";\n\
             \x20   fastcgi_temp_path \"{d}/fastcgi\";\n\
             \x20   uwsgi_temp_path \"{d}/uwsgi\";\n\
             \x20   scgi_temp_path \"{d}/scgi\";\n\
             \x20   access_log \"{d}/access.log\";\n\
             \x20   include \"{}\";\n\
             }}\n",
            include.display()
        );
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, main).unwrap();

        let args = |extra: &[&str]| {
            let mut a: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
            a.extend([
                "-e".into(),
                "stderr".into(),
                "-p".into(),
                format!("{d}/"),
                "-c".into(),
                conf.display().to_string(),
            ]);
            a
        };
        // `nginx -t` first: a configuration error shows as nginx's own message.
        let check = tokio::time::timeout(
            WAIT,
            tokio::process::Command::new(&program)
                .args(args(&["-t", "-q"]))
                .kill_on_drop(true)
                .output(),
        )
        .await
        .expect("nginx -t finished in time")
        .expect("nginx -t ran");
        assert!(
            check.status.success(),
            "nginx -t refused the configuration:\n{}",
            String::from_utf8_lossy(&check.stderr)
        );

        let mut command = tokio::process::Command::new(&program);
        command.args(args(&[]));
        let gateway = Gateway::spawn("nginx", command, dir, port).await;
        Nginx { gateway }
    }

    fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    async fn stop(self) {
        self.gateway.stop().await;
    }
}
