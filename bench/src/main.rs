//! `portcullis-bench`: CLI entry point. The work is in the library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use portcullis_bench::compare::{self, CompareArgs};

#[derive(Debug, Parser)]
#[command(version, about = "Portcullis benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run Portcullis, nginx and HAProxy side by side and report per-request
    /// cost, throughput, latency and memory (see bench/README.md).
    Compare(CompareArgs),
    /// One abusive client at full speed beside a well-behaved one: the well-behaved client's
    /// success rate and p99 with and without the flood, and the proxy-core cost of a refused
    /// request against a forwarded one, Portcullis beside nginx with the same limits.
    Flood(portcullis_bench::flood::FloodArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Compare(args) => match compare::run(&args) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => {
                eprintln!("compare: some checks or runs failed (see Failures in the report)");
                ExitCode::FAILURE
            }
            Err(e) => {
                eprintln!("compare: {e:#}");
                ExitCode::from(2)
            }
        },
        Command::Flood(args) => match portcullis_bench::flood::run(&args) {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("flood: {e:#}");
                ExitCode::from(2)
            }
        },
    }
}
