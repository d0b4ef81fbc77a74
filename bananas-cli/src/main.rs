//! `bananas`: inspect and operate a Bananas deployment from the shell,
//! without the application's task code. See `docs/CLI.md`.
//!
//! ```text
//! bananas stats                      # one table of queues, then workers
//! bananas jobs show ID
//! bananas dead list | dead requeue ID|--all | dead purge
//! bananas enqueue NAME --payload '{"a":1}' [--priority high] [--route gpu] [--countdown 30]
//! bananas schedules --api http://app:8080
//! bananas serve --addr 0.0.0.0:8080  # the HTTP API, standalone
//! ```
//!
//! It talks to the broker named by `BANANAS_URL` (or `--url`), prints tables
//! by default and JSON with `--json`, and on failure prints one line to
//! stderr and exits with status 1.

mod api;
mod cli;
mod commands;
mod connect;
mod output;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}")),
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// Prints `message` as one line on stderr and returns a failure status.
fn fail(message: &str) -> ExitCode {
    let one_line = message.split_whitespace().collect::<Vec<_>>().join(" ");
    output::stderr_line(&format!("bananas: error: {one_line}"));
    ExitCode::FAILURE
}
