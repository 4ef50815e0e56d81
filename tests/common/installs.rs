//! Programs and packages a test needs, found or installed once per process: a failed
//! install fails the test through `missing`, naming what to install.
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use super::services::missing;

/// Checks `probe`, else runs `install` and checks again (once per process, per `cell`).
pub fn require(
    cell: &'static OnceLock<Result<(), String>>,
    what: &str,
    probe: impl Fn() -> bool,
    install: impl FnOnce() -> std::io::Result<Output>,
) {
    let found = cell.get_or_init(|| {
        if probe() {
            return Ok(());
        }
        let out = install().map_err(|e| e.to_string())?;
        if probe() {
            Ok(())
        } else {
            Err(format!(
                "the install failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    });
    if let Err(e) = found {
        missing(what, e);
    }
}

/// python3 that runs `probe` (Python code importing what is needed), else `pip install
/// packages` first.
pub fn require_python(
    cell: &'static OnceLock<Result<(), String>>,
    what: &str,
    probe: &str,
    packages: &[&str],
) {
    require(
        cell,
        what,
        || {
            Command::new("python3")
                .args(["-c", probe])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        },
        || {
            Command::new("python3")
                .args(["-m", "pip", "install", "-q"])
                .args(packages)
                .output()
        },
    );
}

/// python3 with PyJWT and cryptography (the upstream verifier of the phantom tokens).
pub fn require_pyjwt() {
    static FOUND: OnceLock<Result<(), String>> = OnceLock::new();
    require_python(
        &FOUND,
        "python3 with PyJWT and cryptography (pip install \"pyjwt[crypto]\")",
        "import jwt, cryptography; jwt.PyJWKClient",
        &["pyjwt[crypto]"],
    );
}
