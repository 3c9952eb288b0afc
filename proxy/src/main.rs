//! The `portcullis` binary: argument parsing, logging set-up and the runtime. Everything else
//! lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use portcullis::Config;
use time::OffsetDateTime;

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
    /// Legal-order policy files: validate, explain a decision, transparency report.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Ed25519 keys for signing policy bundles.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// The fleet as etcd sees it (policy.source: etcd).
    Fleet {
        #[command(subcommand)]
        command: FleetCommand,
    },
    /// The hash-chained audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Parse and validate FILE with the running proxy's parser; print its orders, hosts and
    /// states, or every error (file:line: order: key: message); exit 1 on any.
    Check {
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// The time order states are shown for (RFC 3339 or YYYY-MM-DD; default: now).
        #[arg(long, value_name = "TIME", value_parser = parse_time)]
        at: Option<OffsetDateTime>,
    },
    /// Show the decision for one request: the verdict, the winning order and why each order
    /// under the host (or SNI) matched or not.
    Explain {
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// The Host the client sends.
        #[arg(long)]
        host: String,
        /// The request target.
        #[arg(long, default_value = "/")]
        path: String,
        /// The client's country, ISO 3166-1 alpha-2 (default: unknown).
        #[arg(long, value_name = "CC")]
        country: Option<String>,
        /// The TLS SNI of the connection (default: none, plain HTTP).
        #[arg(long)]
        sni: Option<String>,
        /// When (RFC 3339 or YYYY-MM-DD; default: now).
        #[arg(long, value_name = "TIME", value_parser = parse_time)]
        at: Option<OffsetDateTime>,
    },
    /// Validate FILE and write its signed bundle (the policy bytes, an ed25519 signature over
    /// them and the signer's key id) for nodes with policy.trusted_keys; print its serial,
    /// sha256 and key id. An invalid policy is not signed.
    Sign {
        /// The signer's private key (from `portcullis keys generate`).
        #[arg(long, value_name = "KEY")]
        key: PathBuf,
        /// Where to write the bundle (default: FILE.bundle).
        #[arg(long, value_name = "BUNDLE")]
        out: Option<PathBuf>,
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Write a signed BUNDLE to <prefix>/policy in etcd for every node with policy.source:
    /// etcd. Refused (exit 1) unless its serial is higher than the one published; a concurrent
    /// publish is detected (compare-and-put) and decided again. Prints the serial and revision.
    Publish {
        /// An etcd endpoint, http://host:port.
        #[arg(long, value_name = "URL")]
        etcd: String,
        /// The key prefix the nodes use (policy.etcd.prefix).
        #[arg(long, default_value = "/portcullis")]
        prefix: String,
        /// Verify the bundle against this public key first (repeat for more); without it the
        /// bundle is only checked to be well-formed (every node verifies it anyway).
        #[arg(long = "trusted-key", value_name = "PATH")]
        trusted_keys: Vec<PathBuf>,
        #[arg(value_name = "BUNDLE")]
        bundle: PathBuf,
    },
    /// Transparency counts per jurisdiction, authority type and action over [SINCE, UNTIL):
    /// orders received in the period and orders in effect during it.
    Report {
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Start of the period, inclusive (YYYY-MM-DD, midnight UTC, or RFC 3339).
        #[arg(long, value_name = "DATE", value_parser = parse_time)]
        since: OffsetDateTime,
        /// End of the period, exclusive (YYYY-MM-DD, midnight UTC, or RFC 3339).
        #[arg(long, value_name = "DATE", value_parser = parse_time)]
        until: OffsetDateTime,
        #[arg(long, value_enum, default_value = "markdown")]
        format: Format,
    },
}

#[derive(Debug, Subcommand)]
enum FleetCommand {
    /// The published serial and every node's report (serial, lag behind the published serial,
    /// applied_at, seconds since its report, last error).
    Status {
        /// An etcd endpoint, http://host:port.
        #[arg(long, value_name = "URL")]
        etcd: String,
        /// The key prefix the nodes use (policy.etcd.prefix).
        #[arg(long, default_value = "/portcullis")]
        prefix: String,
        /// One JSON object instead of the table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Write a new ed25519 key pair: OUT/NAME.key (PKCS#8 PEM, mode 0600; keep it secret) and
    /// OUT/NAME.pub (PEM public key, for policy.trusted_keys). Never overwrites a key.
    Generate {
        /// The folder to write into (created if missing).
        #[arg(long, value_name = "DIR", default_value = ".")]
        out: PathBuf,
        /// The file name stem of both keys.
        #[arg(long, default_value = "legal")]
        name: String,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    Csv,
    Markdown,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check the audit log's hash chain (a folder means FOLDER/audit.jsonl); print the record
    /// count and last hash, or the first broken record and exit 1.
    Verify {
        #[arg(value_name = "FILE_OR_STATE_DIR")]
        path: PathBuf,
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

fn parse_time(s: &str) -> Result<OffsetDateTime, String> {
    portcullis::cli::parse_time(s)
        .ok_or_else(|| format!("{s:?} is not a date (YYYY-MM-DD) or an RFC 3339 time"))
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
        Command::Policy { command } => policy(command),
        Command::Fleet {
            command: FleetCommand::Status { etcd, prefix, json },
        } => block_on(portcullis::cli::fleet_status(&etcd, &prefix, json)),
        Command::Keys {
            command: KeysCommand::Generate { out, name },
        } => output(portcullis::cli::keys_generate(&out, &name)),
        Command::Audit {
            command: AuditCommand::Verify { path },
        } => output(portcullis::cli::audit_verify(&path)),
        Command::Demo => {
            init_logging("info");
            let result =
                runtime(cli.workers).and_then(|rt| Ok(rt.block_on(portcullis::demo::run())?));
            report(result)
        }
    }
}

fn policy(command: PolicyCommand) -> ExitCode {
    use portcullis::cli::{ExplainRequest, ReportFormat};
    output(match command {
        PolicyCommand::Publish {
            etcd,
            prefix,
            trusted_keys,
            bundle,
        } => {
            return block_on(portcullis::cli::policy_publish(
                &etcd,
                &prefix,
                &bundle,
                &trusted_keys,
            ));
        }
        PolicyCommand::Sign { key, out, file } => {
            return output(portcullis::cli::policy_sign(&key, &file, out.as_deref()));
        }
        PolicyCommand::Check { file, at } => {
            portcullis::cli::policy_check(&file, at.unwrap_or_else(OffsetDateTime::now_utc))
        }
        PolicyCommand::Explain {
            file,
            host,
            path,
            country,
            sni,
            at,
        } => portcullis::cli::policy_explain(
            &file,
            &ExplainRequest {
                host,
                path,
                country,
                sni,
                at: at.unwrap_or_else(OffsetDateTime::now_utc),
            },
        ),
        PolicyCommand::Report {
            file,
            since,
            until,
            format,
        } => {
            let format = match format {
                Format::Csv => ReportFormat::Csv,
                Format::Markdown => ReportFormat::Markdown,
            };
            portcullis::cli::policy_report(&file, since, until, format)
        }
    })
}

/// Runs a command that talks to etcd on a small runtime of its own.
fn block_on<E: std::fmt::Display>(
    command: impl std::future::Future<Output = Result<String, E>>,
) -> ExitCode {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => output(rt.block_on(command)),
        Err(e) => output(Err(format!("cannot start the async runtime: {e}"))),
    }
}

/// Prints a command's text to stdout (exit 0) or its error to stderr (exit 1).
fn output<E: std::fmt::Display>(result: Result<String, E>) -> ExitCode {
    match result {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            let text = e.to_string();
            eprint!("{text}");
            if !text.ends_with('\n') {
                eprintln!();
            }
            ExitCode::from(1)
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
