//! PROTOCOL.md section 9 with the real binary: records survive a restart, and a call live when
//! the process is killed (SIGKILL, no chance to clean up) is closed at the next start with
//! reason SERVER_SHUTDOWN, status COMPLETED (it was answered) and its end marked estimated, as
//! `webterminal-core records --format json` prints it. And a records path that cannot be opened
//! does not stop the binary from serving calls: the failure is logged.

#[path = "support/binary.rs"]
mod binary;

use binary::terminal::{channel, fixture, offer, Kind, Terminal};
use binary::Started;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use webterminal_core::proto::simulator::simulated_phone_network_client::SimulatedPhoneNetworkClient;
use webterminal_core::proto::simulator::PhoneRequest;
use webterminal_core::proto::webterminal::web_terminal_message::Message;
use webterminal_core::proto::webterminal::Bye;

const SECRET: &str = "records after a crash test secret";
const A: &str = "+4799990001";
/// Phones without terminals: the simulated network rings them.
const ENDED: &str = "+4799990010";
const LIVE: &str = "+4799990011";

/// `serve` keeping records in `records`, on `addr` (the address an earlier run reported) or, at
/// first, on a port of its own; once it listens.
fn serve(addr: Option<SocketAddr>, records: &Path) -> Started {
    let launch = binary::serve()
        .args(["--jwt-secret", SECRET, "--records"])
        .arg(records)
        .env("RUST_LOG", "error");
    match addr {
        Some(addr) => launch.listen(addr).start_rebinding(),
        None => launch.start(),
    }
}

/// Waits for a message matching `want`, skipping others (Ringing and the like).
async fn wait_for(a: &mut Terminal, what: &str, want: impl Fn(&Message) -> bool) {
    let until = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let message = tokio::time::timeout_at(until, a.rx.message())
            .await
            .unwrap_or_else(|_| panic!("no {what} in time"))
            .expect("no status")
            .expect("stream open");
        if message.message.as_ref().is_some_and(&want) {
            return;
        }
    }
}

/// A's MultiPipe calls `to`'s simulated phone and makes it answer; returns the call id.
async fn answered_call(a: &mut Terminal, addr: SocketAddr, to: &str) -> String {
    let id = uuid::Uuid::new_v4().to_string();
    a.send(&id, offer(&fixture("chromium-offer.sdp"), to)).await;
    wait_for(a, "Ringing", |m| matches!(m, Message::Ringing(_))).await;
    SimulatedPhoneNetworkClient::new(channel(addr).await)
        .answer(PhoneRequest { msisdn: to.into() })
        .await
        .expect("the phone answers");
    wait_for(a, "Answer", |m| matches!(m, Message::Answer(_))).await;
    id
}

async fn open(addr: SocketAddr) -> Terminal {
    Terminal::open(channel(addr).await, Kind::Multi, SECRET, A)
        .await
        .expect("MultiPipe")
}

/// `webterminal-core records --records PATH --format json`, one object per record.
fn records_json(records: &Path) -> Vec<serde_json::Value> {
    let out = binary::run("records")
        .args(["--format", "json", "--records"])
        .arg(records)
        .output();
    assert!(
        out.status.success(),
        "records failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON object per line"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_live_at_sigkill_is_closed_as_estimated_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let records = dir.path().join("records.sqlite3");
    let mut first = serve(None, &records);
    let addr = first.addr;
    let mut a = open(addr).await;
    // One call ends before the crash...
    let ended = answered_call(&mut a, addr, ENDED).await;
    a.send(&ended, Message::Bye(Bye { reason: 0 })).await;
    // ...one is still live when the process is killed, two seconds after its answer.
    answered_call(&mut a, addr, LIVE).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    first.kill();
    drop(a);

    let before = records_json(&records);
    assert_eq!(
        before.len(),
        1,
        "only the ended call is a record yet: {before:?}"
    );

    // The same address: the terminals' server restarted.
    let mut second = serve(Some(addr), &records);
    let after = records_json(&records);
    second.kill();
    assert_eq!(after.len(), 2, "{after:?}");
    let by_callee = |callee: &str| {
        after
            .iter()
            .find(|r| r["callee"] == callee)
            .unwrap_or_else(|| panic!("no record of the call to {callee}: {after:?}"))
    };
    let done = by_callee(ENDED);
    assert_eq!(done["status"], "COMPLETED");
    assert_eq!(done["reason"], "NORMAL_CLEARING");
    assert_eq!(done["end_estimated"], false);
    assert_eq!(done, &before[0], "it survived the restart unchanged");

    let cut = by_callee(LIVE);
    assert_eq!(cut["status"], "COMPLETED", "it had been answered");
    assert_eq!(cut["reason"], "SERVER_SHUTDOWN");
    assert_eq!(cut["end_estimated"], true);
    assert_eq!(cut["caller"], A);
    assert_eq!(cut["answered_by"], LIVE);
    let time = |field: &str| {
        humantime::parse_rfc3339(cut[field].as_str().expect("a time")).expect("RFC 3339")
    };
    assert!(time("answered_at") <= time("ended_at"));
    // The writer noted the core alive while the call was live: the estimate is not the answer.
    let talk = cut["talk_ms"].as_u64().unwrap();
    assert!(
        (1_000..=2_500).contains(&talk),
        "ended at the last time the core was known alive: {talk} ms after the answer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_records_path_that_cannot_be_opened_is_logged_and_calls_go_on() {
    let dir = tempfile::tempdir().unwrap();
    // Its directory is a regular file: neither root nor anyone can make the database there.
    let blocker = dir.path().join("not-a-directory");
    std::fs::write(&blocker, b"").unwrap();
    let mut core = serve(None, &blocker.join("records.sqlite3"));
    let addr = core.addr;
    let mut a = open(addr).await;
    let id = answered_call(&mut a, addr, ENDED).await;
    a.send(&id, Message::Bye(Bye { reason: 0 })).await;
    core.kill();
    let log = core.log.text();
    assert!(
        log.contains("running without records") && log.contains("not-a-directory"),
        "the failure is logged: {log}"
    );
}
