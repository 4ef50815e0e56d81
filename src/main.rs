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
    let workers = match &cli.command {
        Command::Serve(args) => match args.worker_threads.filter(|n| *n > 0) {
            Some(n) => Some(n),
            // tokio's own variable still counts when the flag is not given.
            None => match std::env::var("TOKIO_WORKER_THREADS") {
                Err(_) => Some(default_workers()),
                Ok(n) => match n.trim().parse::<usize>() {
                    Ok(n) if n > 0 => Some(n),
                    _ => {
                        eprintln!("tokencache: TOKIO_WORKER_THREADS must be a positive integer, not {n:?}");
                        return std::process::ExitCode::FAILURE;
                    }
                },
            },
        },
        _ => None,
    };
    // One worker: a current-thread runtime, which does not pay for work stealing (the
    // multi-thread scheduler's atomics and its separate driver parking).
    let mut runtime = match workers {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    runtime.enable_all();
    if let Some(n) = workers.filter(|n| *n > 1) {
        runtime.worker_threads(n);
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

/// One worker thread per core but one (at least one); one worker runs a current-thread
/// runtime (measured: check_token 0.84 of the ceiling on a multi-thread runtime of one
/// worker, 0.96 on a current-thread one, docs/loadtest.md). The kernel's network stack does
/// more than half of the work of serving check_token (perf), much of it outside the
/// workers, and Redis often shares the host: on the 2-core development machine one
/// worker met the ceiling ratios in every run, two missed the p99 one in most
/// (loadtest/README.md).
fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1))
}
