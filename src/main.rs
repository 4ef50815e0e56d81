//! The `tokencache` binary: parses the command line and runs the command.
#![forbid(unsafe_code)]

use clap::Parser;
use tokencache::cli::{self, Cli, Command};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Serve(ref args) => cli::serve(&cli.stores, args).await,
        command => cli::admin(&cli.stores, command).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tokencache: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
