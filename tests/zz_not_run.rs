//! The last line of a plain `cargo test` (cargo runs test targets by name, this one
//! last): how many service-backed tests the run left out, and how to run them. It asks
//! the test binaries of `SUITES` themselves (`--list --ignored`), so the count follows
//! their tests.
use std::path::{Path, PathBuf};
use std::process::Command;

/// The integration test binaries (a new one with ignored tests belongs here too).
const SUITES: [&str; 10] = [
    "api",
    "caddy",
    "discovery",
    "flood",
    "grpc",
    "history",
    "metrics",
    "nginx",
    "phantom",
    "traefik",
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    if args
        .iter()
        .any(|a| a == "--include-ignored" || a == "--ignored")
    {
        println!("service-backed tests: run (--include-ignored)");
        return;
    }
    let Some(deps) = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
    else {
        return;
    };
    let mut total = 0;
    for suite in SUITES {
        let Some(exe) = newest(&deps, suite) else {
            continue;
        };
        let Ok(out) = Command::new(&exe)
            .args(["--list", "--ignored", "--format", "terse"])
            .output()
        else {
            continue;
        };
        total += String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.ends_with(": test"))
            .count();
    }
    println!(
        "{total} service-backed tests not run (they need MariaDB, Redis, redis-server, nginx, \
         traefik, caddy, python3, node): \
         cargo test -- --include-ignored (bash .ci/run starts what they need)"
    );
}

/// The newest test executable of `suite` in `dir` (`<suite>-<hash>`, no extension).
fn newest(dir: &Path, suite: &str) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_prefix(suite)
                .and_then(|rest| rest.strip_prefix('-'))
                .is_some_and(|hash| hash.chars().all(|c| c.is_ascii_hexdigit()))
        })
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .max_by_key(|(modified, _)| *modified)
        .map(|(_, path)| path)
}
