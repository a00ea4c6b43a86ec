//! PROTOCOL.md section 12: the real binary with `--metrics-listen` serves Prometheus metrics at
//! `GET /metrics` — terminals by kind, calls by state, calls ended by status and reason, messages in
//! and out by kind, errors by code, call setup time as a histogram in seconds — read over plain HTTP
//! while and after a call is made over gRPC.

#[path = "support/binary.rs"]
mod binary;

use binary::*;
use webterminal_core::proto::webterminal::web_terminal_message::Message;
use webterminal_core::proto::webterminal::Bye;

const SECRET: &str = "metrics-test-secret";
const A: &str = "+4791234601";
const B: &str = "+4791234602";

/// The binary serving on a port of its own, its metrics on another, with `--records RECORDS` and
/// `extra` flags; returns both ports and the process (killed on drop).
fn serve(records: &std::ffi::OsStr, extra: &[&std::ffi::OsStr]) -> (u16, u16, Started) {
    let started = binary::serve()
        .args(["--jwt-secret", SECRET, "--phone-network", "none"])
        .arg("--records")
        .arg(records)
        .args(extra)
        .env("RUST_LOG", "warn")
        .metrics()
        .start();
    (started.port, started.metrics_port.unwrap(), started)
}

#[tokio::test]
async fn the_binary_serves_prometheus_metrics_of_its_calls() {
    let (port, metrics_port, _server) = serve("none".as_ref(), &[]);
    let (a_tx, mut a_rx) = open(port, SECRET, A).await;
    let (b_tx, mut b_rx) = open(port, SECRET, B).await;
    expect_sample(
        metrics_port,
        r#"webterminal_terminals{kind="multipipe"}"#,
        2.0,
    )
    .await;

    let id = place_call(&a_tx, B).await;
    let offered = next(&mut b_rx).await;
    expect_sample(metrics_port, r#"webterminal_calls{state="ringing"}"#, 1.0).await;
    answer_call(&b_tx, &offered.call_id, &mut a_rx).await;
    expect_sample(
        metrics_port,
        r#"webterminal_calls{state="established"}"#,
        1.0,
    )
    .await;
    // A message the core refuses: an Error with its code.
    a_tx.send(message("not-a-uuid", Message::Bye(Bye::default())))
        .await
        .unwrap();
    assert!(matches!(
        next(&mut a_rx).await.message,
        Some(Message::Error(_))
    ));
    hang_up(&a_tx, &id, &mut b_rx).await;

    let metrics = expect_sample(
        metrics_port,
        r#"webterminal_calls_ended_total{status="completed",reason="normal_clearing"}"#,
        1.0,
    )
    .await;
    for (series, want) in [
        (r#"webterminal_calls{state="established"}"#, 0.0),
        (r#"webterminal_calls{state="ringing"}"#, 0.0),
        (r#"webterminal_messages_in_total{kind="offer"}"#, 1.0),
        (r#"webterminal_messages_in_total{kind="answer"}"#, 1.0),
        (r#"webterminal_messages_in_total{kind="refused"}"#, 1.0),
        (r#"webterminal_messages_out_total{kind="offer"}"#, 1.0),
        (r#"webterminal_messages_out_total{kind="answer"}"#, 1.0),
        (r#"webterminal_messages_out_total{kind="bye"}"#, 1.0),
        (
            r#"webterminal_errors_sent_total{code="INVALID_CALL_ID"}"#,
            1.0,
        ),
        (r#"webterminal_call_setup_seconds_count"#, 1.0),
        (r#"webterminal_call_setup_seconds_bucket{le="+Inf"}"#, 1.0),
        (r#"webterminal_slow_consumers_dropped_total"#, 0.0),
    ] {
        assert_eq!(
            sample(&metrics, series),
            Some(want),
            "{series} in\n{metrics}"
        );
    }
    let setup = sample(&metrics, "webterminal_call_setup_seconds_sum").unwrap();
    assert!(
        setup > 0.0 && setup < 10.0,
        "setup time in seconds: {setup}"
    );
    assert!(
        metrics.contains("# TYPE webterminal_call_setup_seconds histogram"),
        "{metrics}"
    );
    assert!(
        metrics.contains("# HELP webterminal_terminals"),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "webterminal_records_up"),
        None,
        "--records none: records are not up, and not down either"
    );
    // The rpcs end: the terminals are gone.
    drop((a_tx, b_tx, a_rx, b_rx));
    expect_sample(
        metrics_port,
        r#"webterminal_terminals{kind="multipipe"}"#,
        0.0,
    )
    .await;
}

#[tokio::test]
async fn group_calls_are_counted_while_queued_and_their_hold_time_measured() {
    const SALES: &str = "+4721234600";
    let dir = tempfile::tempdir().unwrap();
    let routing = dir.path().join("routing.toml");
    std::fs::write(
        &routing,
        format!(
            "[[group]]\nnumber = \"{SALES}\"\nmembers = [ {{ msisdn = \"{B}\", extension = \"101\" }} ]\n"
        ),
    )
    .unwrap();
    let (port, metrics_port, _server) = serve(
        "none".as_ref(),
        &[std::ffi::OsStr::new("--routing"), routing.as_os_str()],
    );
    let (b_tx, mut b_rx) = open(port, SECRET, B).await;
    let (a_tx, mut a_rx) = open(port, SECRET, A).await;
    let id = place_call(&a_tx, SALES).await;
    assert!(matches!(
        next(&mut a_rx).await.message,
        Some(Message::Ringing(_))
    ));
    let offered = next(&mut b_rx).await;
    // Offered to the member, not yet answered: still waiting in the queue.
    let group = format!(r#"group="{SALES}""#);
    let queued = format!("webterminal_queued_calls{{{group}}}");
    expect_sample(metrics_port, &queued, 1.0).await;
    answer_call(&b_tx, &offered.call_id, &mut a_rx).await;
    let metrics = expect_sample(
        metrics_port,
        &format!("webterminal_queue_hold_seconds_count{{{group}}}"),
        1.0,
    )
    .await;
    assert_eq!(sample(&metrics, &queued), Some(0.0));
    assert_eq!(
        sample(
            &metrics,
            &format!(r#"webterminal_queue_hold_seconds_bucket{{{group},le="1"}}"#)
        ),
        Some(1.0),
        "answered within a second: {metrics}"
    );
    assert!(
        metrics.contains("# TYPE webterminal_queue_hold_seconds histogram"),
        "{metrics}"
    );
    hang_up(&a_tx, &id, &mut b_rx).await;
}

/// A records file that cannot be opened at start: the core serves calls without records, says so
/// with `webterminal_records_up 0`, and counts each call that ends as a record lost. The records
/// path points into a directory that does not exist and cannot be made (a regular file stands
/// where it would be: a missing directory is made, even as root).
#[tokio::test]
async fn records_that_cannot_be_opened_are_down_and_each_call_that_ends_is_a_record_lost() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-directory");
    std::fs::write(&blocker, b"").unwrap();
    let records = blocker.join("records.sqlite3");
    let (port, metrics_port, _server) = serve(records.as_os_str(), &[]);
    let metrics = expect_sample(metrics_port, "webterminal_records_up", 0.0).await;
    assert_eq!(
        sample(&metrics, "webterminal_records_lost_total"),
        Some(0.0),
        "{metrics}"
    );

    let (a_tx, _a_rx) = open(port, SECRET, A).await;
    let (_b_tx, mut b_rx) = open(port, SECRET, B).await;
    let id = place_call(&a_tx, B).await;
    assert!(matches!(
        next(&mut b_rx).await.message,
        Some(Message::Offer(_))
    ));
    hang_up(&a_tx, &id, &mut b_rx).await;

    let metrics = expect_sample(metrics_port, "webterminal_records_lost_total", 1.0).await;
    assert_eq!(
        sample(&metrics, "webterminal_records_up"),
        Some(0.0),
        "{metrics}"
    );
    assert!(
        metrics.contains("# TYPE webterminal_records_up gauge"),
        "{metrics}"
    );
}
