//! A load generator for webterminal-core: call setups per second, setup latency, server CPU per call
//! and server memory per registered terminal (results in BENCHMARKS.md).
//!
//! ```text
//! # the server, phone network off, in another shell (or see scripts/bench)
//! target/release/webterminal-core serve --phone-network none --jwt-secret bench --listen 127.0.0.1:50051
//! PID=$(pgrep -n webterminal-core)
//! # 1000 calls/s for 20 s between 1000 caller/callee pairs over 10 connections
//! cargo run --release --example loadgen -- --jwt-secret bench --server-pid $PID \
//!     --terminals 2000 --connections 10 --rate 1000 --duration 20s
//! # ramp 500, 1000, 2000, ... calls/s, 5 s each, and report the knee
//! cargo run --release --example loadgen -- --jwt-secret bench --server-pid $PID --ramp
//! # server memory per idle terminal: 50000 terminals over 50 connections
//! cargo run --release --example loadgen -- --jwt-secret bench --server-pid $PID --idle 50000 --connections 50
//! ```
//!
//! The logic lives in `run.rs` (the test suite runs it in-process: `tests/loadgen_smoke.rs`).

mod run;

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    about = "Load generator for webterminal-core: open-loop call setups and idle registrations"
)]
struct Args {
    /// The server's address.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    addr: String,
    /// The HS256 secret the server was started with (its --jwt-secret).
    #[arg(long, env = "WEBTERMINAL_JWT_SECRET", hide_env_values = true)]
    jwt_secret: String,
    /// Terminals to register for calls: half callers, half callees, paired.
    #[arg(long, default_value_t = 2000)]
    terminals: usize,
    /// HTTP/2 connections to spread the terminals over (default: one per 1000 terminals; at most
    /// 1024 terminals per connection, the server's max_concurrent_streams).
    #[arg(long)]
    connections: Option<usize>,
    /// Calls per second, started open loop.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// How long to place calls at --rate.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Step the rate up through --ramp-rates, --step each, and report the knee.
    #[arg(long, conflicts_with = "idle")]
    ramp: bool,
    /// The ramp's rates, calls per second.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "500,1000,2000,3000,5000,7500,10000,15000,20000"
    )]
    ramp_rates: Vec<f64>,
    /// How long each ramp step lasts.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    step: Duration,
    /// The ramp stops after this many dirty steps in a row.
    #[arg(long, default_value_t = 2)]
    stop_after_dirty: usize,
    /// Idle mode: register this many terminals, place no call, and report server RSS per terminal.
    #[arg(long)]
    idle: Option<usize>,
    /// Idle mode: how long to wait with every terminal registered before reading RSS.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    settle: Duration,
    /// The server's process id, to read its CPU time and RSS from /proc. Default: this process.
    #[arg(long)]
    server_pid: Option<u32>,
    /// A call with no Answer this long after its Offer fails.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    call_timeout: Duration,
    /// The knee's bound on p99 setup latency.
    #[arg(long, default_value = "10ms", value_parser = parse_duration)]
    knee_p99: Duration,
    /// Terminal i gets +479 followed by (msisdn-base + i) in 8 digits.
    #[arg(long, default_value_t = 0)]
    msisdn_base: u64,
    /// Connects and registrations in flight at once.
    #[arg(long, default_value_t = 256)]
    open_concurrency: usize,
    /// Spread the connections over source addresses 127.0.0.1 ..= 127.0.0.N (loopback servers with
    /// more connections than one address has ephemeral ports).
    #[arg(long, default_value_t = 1)]
    source_ips: u8,
    /// Tokio worker threads of the generator.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Directory holding chromium-offer.sdp and chromium-answer.sdp.
    #[arg(long)]
    sdp_dir: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let (mode, terminals) = if let Some(n) = args.idle {
        (
            run::Mode::Idle {
                settle: args.settle,
            },
            n,
        )
    } else if args.ramp {
        (
            run::Mode::Ramp {
                rates: args.ramp_rates.clone(),
                step: args.step,
                stop_after_dirty: args.stop_after_dirty,
            },
            args.terminals,
        )
    } else {
        (
            run::Mode::Fixed {
                rate: args.rate,
                duration: args.duration,
            },
            args.terminals,
        )
    };
    let mut opts = run::Options::new(args.addr, args.jwt_secret, mode);
    opts.terminals = terminals;
    opts.connections = args.connections;
    opts.server_pid = args.server_pid;
    opts.call_timeout = args.call_timeout;
    opts.knee_p99 = args.knee_p99;
    opts.msisdn_base = args.msisdn_base;
    opts.open_concurrency = args.open_concurrency;
    opts.source_ips = args.source_ips;
    if let Some(dir) = args.sdp_dir {
        opts.sdp_dir = dir;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("loadgen: cannot start tokio: {e}");
            return ExitCode::FAILURE;
        }
    };
    let report = runtime.block_on(run::run(opts));
    print!("{report}");
    if report.setup_error.is_some() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// `500ms`, `5s`, `1m`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration like 500ms, 5s or 1m");
    let (number, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
    let n: u64 = number.parse().map_err(|_| bad())?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(bad()),
    }
}
