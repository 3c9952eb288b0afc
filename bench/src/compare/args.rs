//! The command-line options of `compare`.

use std::path::PathBuf;

/// Options of `portcullis-bench compare`.
#[derive(Debug, Clone, clap::Args)]
pub struct CompareArgs {
    /// Seconds per load run (each run is bounded; 15 at most).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=15))]
    pub duration: u64,
    /// Rounds over all proxies (at least 3 unless --smoke).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// One ~1 s round of every scenario, 200 idle connections, for CI. Fails
    /// only when a tool is missing, a proxy does not start or fails its
    /// correctness check, or a run does not complete; judges no numbers.
    #[arg(long)]
    pub smoke: bool,
    /// Comma-separated scenarios (default: all).
    #[arg(long, value_delimiter = ',')]
    pub scenarios: Vec<String>,
    /// Comma-separated proxies: nginx, haproxy, portcullis (default: all).
    #[arg(long, value_delimiter = ',')]
    pub proxies: Vec<String>,
    /// The portcullis binary; built with cargo if missing.
    /// [default: target/release/portcullis, under CARGO_TARGET_DIR if set]
    #[arg(long)]
    pub portcullis: Option<PathBuf>,
    /// Connections held open by the idle scenario [default: 10000; 200 with --smoke].
    #[arg(long)]
    pub idle_connections: Option<usize>,
    /// Concurrent connections of wrk and h2load.
    #[arg(long, default_value_t = 64)]
    pub connections: u32,
    /// Concurrent HTTP/2 streams per h2load connection.
    #[arg(long, default_value_t = 10)]
    pub h2_streams: u32,
    /// `openssl s_time` processes run side by side in the TLS handshake
    /// scenarios (each opens one connection after another).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub tls_clients: u32,
    /// Host names in the policy table of `policy-1m-table` and
    /// `policy-reload-1m` [default: 1000000; 10000 with --smoke].
    #[arg(long)]
    pub policy_hosts: Option<usize>,
    /// Requests per second (over 16 connections) of the paced load in
    /// `policy-reload-1m`: moderate, well below what the proxy core can serve.
    #[arg(long, default_value_t = 4000, value_parser = clap::value_parser!(u64).range(100..=50_000))]
    pub reload_rate: u64,
    /// CPU the proxies are pinned to.
    #[arg(long, default_value_t = 0)]
    pub proxy_cpu: usize,
    /// CPU the load generator, origin and harness are pinned to.
    #[arg(long, default_value_t = 1)]
    pub load_cpu: usize,
    /// Longest wait, in seconds, for the machine to go quiet before a run.
    #[arg(long, default_value_t = 30)]
    pub quiet_wait: u64,
    /// Where results go [default: bench/results, or bench/results/raw with --smoke].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Keep the temporary directory (configs, logs) for debugging.
    #[arg(long)]
    pub keep_temp: bool,
}
