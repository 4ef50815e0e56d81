//! The command line: `serve`, `migrate`, `import-legacy-tokens`, `client …`, `user …`.
//! Every flag can also come from the environment (`DATABASE_URL`, `REDIS_URL`,
//! `TOKENCACHE_<FLAG>`). `args` declares them, `settings` turns them into the settings
//! of each part, `admin` runs the administrative commands; serving is `app::serve`.
mod admin;
mod args;
mod settings;

use std::net::SocketAddr;

pub use admin::admin;
pub use args::{
    AccountArgs, Cli, ClientCommand, ClientCreateArgs, Command, DeliveryArg, ImportArgs, LangArg,
    LogFormat, ServeArgs, StoreArgs, UserCommand,
};

use crate::app;
use crate::domain::DomainError;
use crate::store::StoreError;

/// A command's failure, printed on stderr.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Start(#[from] app::StartError),
    #[error("{0}")]
    Domain(#[from] DomainError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("--expires: {0}")]
    Expires(String),
    #[error(
        "import-legacy-tokens writes to Redis: set REDIS_URL (the in-process token store \
         lives inside one server process and cannot be filled from here)"
    )]
    ImportNeedsRedis,
    #[error("no {0} ({1}): give it on standard input or in the variable the help names")]
    Secret(&'static str, String),
    #[error("import-legacy-tokens reads the original's database: set DATABASE_URL or --from")]
    ImportNeedsSource,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("import stopped (run it again to go on where it stopped): {0}")]
    Import(#[source] StoreError),
    #[error(
        "--trust-forwarded-for (TOKENCACHE_TRUST_FORWARDED_FOR) was removed: it took the \
         leftmost X-Forwarded-For hop, which the client writes. Name the proxies in front of \
         tokencache with --trusted-proxies (TOKENCACHE_TRUSTED_PROXIES, e.g. 10.0.0.0/8)"
    )]
    TrustForwardedForRemoved,
}

/// Binds the listen address and serves until Ctrl-C or SIGTERM.
pub async fn serve(stores: &StoreArgs, args: &ServeArgs) -> Result<(), CliError> {
    if args.accounts.trust_forwarded_for {
        return Err(CliError::TrustForwardedForRemoved);
    }
    let settings = args.settings(stores);
    app::serve(&settings, args.listen, args.grpc_listen)
        .await
        .map_err(|e| match e {
            app::ServeError::Start(e) => CliError::Start(e),
            app::ServeError::Listen { addr, source } => CliError::Listen { addr, source },
        })
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, FromArgMatches};

    use super::*;
    use crate::app::Settings;

    /// Every default is written once: what `serve` runs with when no flag or variable is
    /// given is exactly `Settings::default()`.
    #[test]
    fn the_command_lines_defaults_are_the_settings_defaults() {
        // With every environment variable ignored: the machine's own (DATABASE_URL, …)
        // must not take part.
        let no_env = |c: clap::Command| c.mut_args(|a| a.env(None::<&str>));
        let command = no_env(Cli::command()).mut_subcommand("serve", no_env);
        let matches = command
            .try_get_matches_from(["tokencache", "serve"])
            .expect("parses");
        let cli = Cli::from_arg_matches(&matches).expect("matches");
        let Command::Serve(args) = &cli.command else {
            panic!("serve parsed as another command");
        };
        let from_cli = args.settings(&cli.stores);
        assert_eq!(
            format!("{from_cli:?}"),
            format!("{:?}", Settings::default())
        );
    }
}
