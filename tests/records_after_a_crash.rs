//! PROTOCOL.md section 9 with the real binary: records survive a restart, and a call live when
//! the process is killed (SIGKILL, no chance to clean up) is closed at the next start with
//! reason SERVER_SHUTDOWN, status COMPLETED (it was answered) and its end marked estimated, as
//! `webterminal-core records --format json` prints it. And a records path that cannot be opened
//! does not stop the binary from serving calls: the failure is logged.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::Streaming;
use webterminal_core::auth::{mint_token, REQUIRED_SCOPE};
use webterminal_core::core::Msisdn;
use webterminal_core::proto::common::PhoneNumber;
use webterminal_core::proto::simulator::simulated_phone_network_client::SimulatedPhoneNetworkClient;
use webterminal_core::proto::simulator::PhoneRequest;
use webterminal_core::proto::webterminal::web_terminal_message::Message;
use webterminal_core::proto::webterminal::web_terminal_service_client::WebTerminalServiceClient;
use webterminal_core::proto::webterminal::{Bye, Offer, WebTerminalMessage};

const SECRET: &str = "records after a crash test secret";
const A: &str = "+4799990001";
/// Phones without terminals: the simulated network rings them.
const ENDED: &str = "+4799990010";
const LIVE: &str = "+4799990011";

fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_webterminal-core")
}

fn sdp() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/sdp/chromium-offer.sdp"
    ))
    .unwrap()
}

/// A fresh directory under the system's temporary one, removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// `serve` on `addr` keeping records in `records`, once it listens.
async fn serve(addr: SocketAddr, records: &Path) -> tokio::process::Child {
    serve_with(addr, records, Stdio::inherit()).await
}

async fn serve_with(addr: SocketAddr, records: &Path, stderr: Stdio) -> tokio::process::Child {
    let mut child = tokio::process::Command::new(binary())
        .args([
            "serve",
            "--listen",
            &addr.to_string(),
            "--jwt-secret",
            SECRET,
        ])
        .arg("--records")
        .arg(records)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .expect("start webterminal-core serve");
    let until = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the server exited before listening: {status}");
        }
        assert!(tokio::time::Instant::now() < until, "not listening in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child
}

async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

struct Terminal {
    tx: mpsc::Sender<WebTerminalMessage>,
    rx: Streaming<WebTerminalMessage>,
}

impl Terminal {
    async fn open(addr: SocketAddr) -> Terminal {
        let token = mint_token(
            SECRET.as_bytes(),
            &Msisdn::parse(A).unwrap(),
            REQUIRED_SCOPE,
            Duration::from_secs(600),
        );
        let (tx, rx) = mpsc::channel(16);
        let mut request = tonic::Request::new(ReceiverStream::new(rx));
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        let rx = WebTerminalServiceClient::new(channel(addr).await)
            .multi_pipe(request)
            .await
            .expect("MultiPipe")
            .into_inner();
        Terminal { tx, rx }
    }

    async fn send(&self, call_id: &str, message: Message) {
        self.tx
            .send(WebTerminalMessage {
                message: Some(message),
                call_id: call_id.to_owned(),
            })
            .await
            .unwrap();
    }

    /// Waits for a message matching `want`, skipping others (Ringing and the like).
    async fn wait_for(&mut self, what: &str, want: impl Fn(&Message) -> bool) {
        let until = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let message = tokio::time::timeout_at(until, self.rx.message())
                .await
                .unwrap_or_else(|_| panic!("no {what} in time"))
                .expect("no status")
                .expect("stream open");
            if message.message.as_ref().is_some_and(&want) {
                return;
            }
        }
    }

    /// Calls `to`'s simulated phone and makes it answer; returns the call id.
    async fn answered_call(&mut self, addr: SocketAddr, to: &str) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        self.send(
            &id,
            Message::Offer(Offer {
                sdp: sdp(),
                msisdn: Some(PhoneNumber { e164: to.into() }),
                data: Default::default(),
            }),
        )
        .await;
        self.wait_for("Ringing", |m| matches!(m, Message::Ringing(_)))
            .await;
        SimulatedPhoneNetworkClient::new(channel(addr).await)
            .answer(PhoneRequest { msisdn: to.into() })
            .await
            .expect("the phone answers");
        self.wait_for("Answer", |m| matches!(m, Message::Answer(_)))
            .await;
        id
    }
}

/// `webterminal-core records --records PATH --format json`, one object per record.
fn records_json(records: &Path) -> Vec<serde_json::Value> {
    let out = std::process::Command::new(binary())
        .args(["records", "--format", "json", "--records"])
        .arg(records)
        .output()
        .expect("run webterminal-core records");
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
    let dir =
        TempDir(std::env::temp_dir().join(format!("wtc-records-crash-{}", uuid::Uuid::new_v4())));
    let records = dir.0.join("records.sqlite3");
    let addr = free_addr();
    let mut first = serve(addr, &records).await;
    let mut a = Terminal::open(addr).await;
    // One call ends before the crash...
    let ended = a.answered_call(addr, ENDED).await;
    a.send(&ended, Message::Bye(Bye { reason: 0 })).await;
    // ...one is still live when the process is killed, two seconds after its answer.
    a.answered_call(addr, LIVE).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    first.kill().await.expect("SIGKILL");
    drop(a);

    let before = records_json(&records);
    assert_eq!(
        before.len(),
        1,
        "only the ended call is a record yet: {before:?}"
    );

    let mut second = serve(addr, &records).await;
    let after = records_json(&records);
    second.kill().await.unwrap();
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
    use tokio::io::AsyncReadExt;
    let dir = TempDir(
        std::env::temp_dir().join(format!("wtc-records-unopenable-{}", uuid::Uuid::new_v4())),
    );
    std::fs::create_dir_all(&dir.0).unwrap();
    // Its directory is a regular file: neither root nor anyone can make the database there.
    let blocker = dir.0.join("not-a-directory");
    std::fs::write(&blocker, b"").unwrap();
    let addr = free_addr();
    let mut core = serve_with(addr, &blocker.join("records.sqlite3"), Stdio::piped()).await;
    let mut a = Terminal::open(addr).await;
    let id = a.answered_call(addr, ENDED).await;
    a.send(&id, Message::Bye(Bye { reason: 0 })).await;
    core.kill().await.unwrap();
    let mut log = String::new();
    core.stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .await
        .unwrap();
    assert!(
        log.contains("running without records") && log.contains("not-a-directory"),
        "the failure is logged: {log}"
    );
}
