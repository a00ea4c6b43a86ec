//! The soak (`examples/soak`, run long by `scripts/soak`) for 30 seconds against the real binary:
//! 300 terminals over gRPC and WebSockets, the simulated phones and an operator in chaos while Redis
//! crashes twice; afterwards no call is left, every call has exactly one STARTED and one final
//! event and one closed record, every answered group call was announced on Redis, and the core
//! logged no error and no panic. Memory flatness is judged by the ten-minute run only (BENCHMARKS.md):
//! thirty seconds do not warm up.
//!
//! `SOAK_SEED=n` replays the clients' choices of one run.

#[path = "../examples/soak/soak.rs"]
mod soak;

use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_seconds_of_chaos_leave_nothing_behind() {
    let seed = std::env::var("SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("soak seed: {seed} (SOAK_SEED={seed} replays it)");
    let work = tempfile::tempdir().unwrap();
    let options = soak::Options {
        core: env!("CARGO_BIN_EXE_webterminal-core").into(),
        redis_server: std::env::var("REDIS_SERVER")
            .unwrap_or_else(|_| "redis-server".to_owned())
            .into(),
        work_dir: work.path().to_owned(),
        sdp_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sdp").into(),
        terminals: 300,
        duration: Duration::from_secs(30),
        step: Duration::from_secs(4),
        redis_crash_every: Duration::from_secs(10),
        seed,
        memory_growth_limit: None,
    };
    let report = soak::run(options).await.expect("the soak runs");
    eprintln!("{}", report.summary);
    assert!(
        report.failures.is_empty(),
        "seed {seed}:\n{}",
        report.failures.join("\n")
    );
    let plot = work.path().join("soak.svg");
    soak::plot::draw(&plot, &report.samples).expect("the plot is drawn");
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("resident memory"),
        "{svg}"
    );
    // The chaos did exercise the core.
    for needle in ["COMPLETED", "UNANSWERED", "REJECTED"] {
        assert!(report.summary.contains(needle), "{}", report.summary);
    }
}
