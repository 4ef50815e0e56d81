//! The `tokencache` binary: parses the command line and runs the command.
#![forbid(unsafe_code)]

use std::io::IsTerminal;

use clap::Parser;
use tokencache::cli::{self, Cli, Command, LogFormat};
use tracing_subscriber::EnvFilter;

/// mimalloc gives back the memory of argon2 hashes (19 MiB each) once they are done,
/// where glibc kept it in per-thread arenas: RSS went from 8 MiB to ~300 MiB after a
/// burst of logins. See loadtest/README.md.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal, never in log files.
        .with_ansi(std::io::stderr().is_terminal());
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Command::Serve(args) = &cli.command {
        match args.worker_threads.filter(|n| *n > 0) {
            Some(n) => {
                runtime.worker_threads(n);
            }
            // tokio's own variable still counts when the flag is not given.
            None if std::env::var_os("TOKIO_WORKER_THREADS").is_some() => {}
            None => {
                runtime.worker_threads(default_workers());
            }
        }
    }
    let runtime = match runtime.build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tokencache: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            // Boxed: the two futures nest deeply enough that a release build's layout
            // computation of one future holding both overflowed rustc's query depth.
            Command::Serve(ref args) => Box::pin(cli::serve(&cli.stores, args)).await,
            command => Box::pin(cli::admin(&cli.stores, command)).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Each cause once, whether or not a layer prints its source itself.
            eprintln!("tokencache: {}", tokencache::http::error::chain(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// One worker thread per core but one (at least one). The kernel's network stack does
/// more than half of the work of serving check_token (perf), much of it outside the
/// workers, and Redis often shares the host: on the 2-core development machine one
/// worker met the ceiling ratios in every run, two missed the p99 one in most
/// (loadtest/README.md).
fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1))
}
