//! A soak of webterminal-core under chaos (`scripts/soak` builds and runs it): 1,000 terminals
//! (gRPC Pipe and MultiPipe, some with client tokens, and WebSockets; several per number) and the
//! simulated phones call, answer, decline, cancel, pull, hand over, transfer, hold and resume, ring
//! groups with queues and attach call context, while connections drop, half-close, read slowly and
//! come back, an operator ends calls, and Redis crashes and comes back; records are on. Then every
//! client stops and the soak checks that nothing is left (no call, gauges at zero), that every call
//! has exactly one STARTED and one final event and one closed record, that every answered group
//! call was announced on Redis, that memory stayed flat over the second half, and that the core
//! logged no error and no panic.
//!
//! ```text
//! scripts/soak                       # ten minutes, 1,000 terminals
//! scripts/soak --duration 30s --terminals 300
//! ```
//!
//! It prints a summary, writes it to `OUT/summary.txt` and draws memory and calls over time in
//! `OUT/soak.svg`. Exits 1 when a check failed.

#[path = "soak.rs"]
mod soak;

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(about = "A soak of webterminal-core under chaos, ending with nothing left")]
struct Args {
    /// The webterminal-core binary.
    #[arg(long, default_value = "target/release/webterminal-core")]
    core: PathBuf,
    /// The redis-server binary.
    #[arg(long, env = "REDIS_SERVER", default_value = "redis-server")]
    redis_server: PathBuf,
    /// How long the chaos lasts (e.g. 30s, 10m).
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Terminals.
    #[arg(long, default_value_t = 1000)]
    terminals: usize,
    /// Mean time between two unprompted actions of one terminal.
    #[arg(long, default_value = "4s", value_parser = humantime::parse_duration)]
    step: Duration,
    /// How often Redis crashes (for 1 to 4 s); 0s: never.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    redis_crash_every: Duration,
    /// The seed of every random choice. Default: from the clock.
    #[arg(long)]
    seed: Option<u64>,
    /// Where the summary and the plot go.
    #[arg(long, default_value = "target/soak")]
    out: PathBuf,
    /// How much the core's resident memory may grow over the second half, in percent.
    #[arg(long, default_value_t = 1.0)]
    memory_growth_limit: f64,
    /// The SDP fixtures.
    #[arg(long, default_value = "tests/fixtures/sdp")]
    sdp_dir: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let work = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("soak: a working directory: {e}");
            return ExitCode::FAILURE;
        }
    };
    let options = soak::Options {
        core: args.core,
        redis_server: args.redis_server,
        work_dir: work.path().to_owned(),
        sdp_dir: args.sdp_dir,
        terminals: args.terminals,
        duration: args.duration,
        step: args.step,
        redis_crash_every: args.redis_crash_every,
        seed,
        memory_growth_limit: Some(args.memory_growth_limit / 100.0),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("soak: cannot start tokio: {e}");
            return ExitCode::FAILURE;
        }
    };
    let report = match runtime.block_on(soak::run(options)) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("soak: {e}");
            return ExitCode::FAILURE;
        }
    };
    print!("{}", report.summary);
    let _ = std::fs::create_dir_all(&args.out);
    let mut text = report.summary.clone();
    for failure in &report.failures {
        text.push_str(&format!("FAILED: {failure}\n"));
    }
    if let Err(e) = std::fs::write(args.out.join("summary.txt"), &text) {
        eprintln!("soak: {}: {e}", args.out.display());
    }
    if let Err(e) = soak::plot::draw(&args.out.join("soak.svg"), &report.samples) {
        eprintln!("soak: {e}");
    }
    if report.failures.is_empty() {
        println!("soak passed (summary and plot in {})", args.out.display());
        ExitCode::SUCCESS
    } else {
        for failure in &report.failures {
            println!("FAILED: {failure}");
        }
        ExitCode::FAILURE
    }
}
