//! The `portcullis` binary: argument parsing, logging set-up and the runtime. Everything else
//! lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use portcullis::Config;

#[derive(Debug, Parser)]
#[command(
    name = "portcullis",
    version,
    about = "Edge reverse proxy with first-class legal orders"
)]
struct Cli {
    /// Worker threads for the runtime (default: one per core; TOKIO_WORKER_THREADS also works).
    #[arg(long, global = true)]
    workers: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve until SIGTERM/SIGINT, then stop accepting and drain in-flight requests.
    Run {
        #[arg(long)]
        config: PathBuf,
        /// How long in-flight requests may take to finish after SIGTERM (e.g. 30s, 500ms).
        #[arg(long, default_value = "30s", value_parser = parse_grace)]
        grace: Duration,
    },
    /// Validate the config and everything it points at; print every error; exit non-zero on any.
    Check {
        #[arg(long)]
        config: PathBuf,
    },
    /// Start a built-in origin and the proxy on loopback (HTTP and HTTPS), and print what to try.
    Demo,
    /// Certificate tools.
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
}

#[derive(Debug, Subcommand)]
enum CertsCommand {
    /// Write a dev CA (reused when OUT already has one) and a certificate for the given hosts
    /// into OUT, which can then serve as `tls.certs_dir`. For development only.
    Generate {
        /// A DNS name, a `*.` wildcard or an IP address to cover; repeat for more.
        #[arg(long = "host", value_name = "NAME", required = true)]
        hosts: Vec<String>,
        /// The folder to write into (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

fn parse_grace(s: &str) -> Result<Duration, String> {
    portcullis::cli::parse_duration(s).ok_or_else(|| format!("{s:?} is not a duration like 30s"))
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .flatten_event(true)
        .with_writer(std::io::stdout)
        .init();
}

fn runtime(workers: Option<usize>) -> anyhow::Result<tokio::runtime::Runtime> {
    let workers = workers.or_else(|| {
        std::env::var("TOKIO_WORKER_THREADS")
            .ok()
            .and_then(|v| v.trim().parse().ok())
    });
    // One worker: a current-thread runtime does the same work without the multi-thread
    // scheduler's cross-thread bookkeeping (what it buys is recorded in bench/README.md).
    let mut b = match workers {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    if let Some(n) = workers.filter(|&n| n > 1) {
        b.worker_threads(n);
    }
    b.enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => match portcullis::cli::check(&config) {
            Ok(summary) => {
                print!("{summary}");
                ExitCode::SUCCESS
            }
            Err(errors) => {
                eprint!("{errors}");
                ExitCode::from(1)
            }
        },
        Command::Run { config, grace } => {
            let config = match Config::load(&config) {
                Ok(c) => c,
                Err(errors) => {
                    eprint!("{errors}");
                    return ExitCode::from(1);
                }
            };
            init_logging(&config.logging.level);
            let result = runtime(cli.workers)
                .and_then(|rt| Ok(rt.block_on(portcullis::cli::run(&config, grace))?));
            report(result)
        }
        Command::Certs {
            command: CertsCommand::Generate { hosts, out },
        } => match portcullis::cli::certs_generate(&hosts, &out) {
            Ok(summary) => {
                print!("{summary}");
                ExitCode::SUCCESS
            }
            Err(e) => report(Err(e.into())),
        },
        Command::Demo => {
            init_logging("info");
            let result =
                runtime(cli.workers).and_then(|rt| Ok(rt.block_on(portcullis::demo::run())?));
            report(result)
        }
    }
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("portcullis: {e:#}");
            ExitCode::from(1)
        }
    }
}
