//! The `tokencache` binary: parses the command line and runs the command.
#![forbid(unsafe_code)]

use clap::Parser;
use tokencache::cli::{self, Cli, Command, LogFormat};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
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
