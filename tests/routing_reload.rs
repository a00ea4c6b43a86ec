//! PROTOCOL.md section 10: the real binary reads its routing file (`--routing FILE`) at start and
//! again on SIGHUP. A good file changes where new group calls go; a bad one is logged and counted
//! (`webterminal_routing_reloads_total{result="failed"}`) and the groups in force stay; a bad file at
//! start stops the binary with a message naming the file.

#[path = "support/binary.rs"]
mod binary;

use binary::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use tokio::sync::mpsc::Sender;
use webterminal_core::proto::common::PhoneNumber;
use webterminal_core::proto::webterminal::web_terminal_message::Message;
use webterminal_core::proto::webterminal::{bye, Bye, Offer, WebTerminalMessage};

const SECRET: &str = "routing-reload-test-secret";
const SALES: &str = "+4721000000";
const A: &str = "+4791234701";
const B: &str = "+4791234702";
const C: &str = "+4791234703";

fn group_of(member: &str) -> String {
    format!(
        "[[group]]\nnumber = \"{SALES}\"\nmembers = [ {{ msisdn = \"{member}\", extension = \"1\" }} ]\n"
    )
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wt-routing-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn serve(routing: &Path, port: u16, metrics_port: u16, log: &Path) -> Server {
    Server(
        Command::new(env!("CARGO_BIN_EXE_webterminal-core"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--metrics-listen", &format!("127.0.0.1:{metrics_port}")])
            .args(["--jwt-secret", SECRET, "--phone-network", "none"])
            .args(["--records", "none", "--routing"])
            .arg(routing)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .expect("the server starts"),
    )
}

fn hang_up_signal(server: &Server) {
    let status = Command::new("kill")
        .args(["-HUP", &server.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// A calls SALES; `member` is offered the call; A cancels and the member gets `Bye{CANCELLED}`.
async fn group_call_reaches(
    a_tx: &Sender<WebTerminalMessage>,
    a_rx: &mut Stream,
    member: &mut Stream,
) {
    let id = uuid::Uuid::new_v4().to_string();
    let offer = Offer {
        sdp: fixture("chromium-offer.sdp"),
        msisdn: Some(PhoneNumber { e164: SALES.into() }),
        data: Default::default(),
    };
    a_tx.send(message(&id, Message::Offer(offer)))
        .await
        .unwrap();
    assert!(matches!(
        next(a_rx).await.message,
        Some(Message::Ringing(_))
    ));
    let offered = next(member).await;
    assert!(
        matches!(offered.message, Some(Message::Offer(_))),
        "{offered:?}"
    );
    a_tx.send(message(&id, Message::Bye(Bye::default())))
        .await
        .unwrap();
    match next(member).await.message {
        Some(Message::Bye(b)) => assert_eq!(b.reason, bye::Reason::Cancelled as i32),
        other => panic!("expected Bye, got {other:?}"),
    }
}

#[tokio::test]
async fn sighup_applies_a_good_routing_file_and_keeps_the_groups_when_it_is_bad() {
    let dir = temp_dir();
    let routing = dir.join("routing.toml");
    let log = dir.join("core.log");
    std::fs::write(&routing, group_of(B)).unwrap();
    let (port, metrics_port) = (free_port(), free_port());
    let server = serve(&routing, port, metrics_port, &log);
    let (a_tx, mut a_rx) = open(port, SECRET, A).await;
    let (_b_tx, mut b_rx) = open(port, SECRET, B).await;
    let (_c_tx, mut c_rx) = open(port, SECRET, C).await;
    group_call_reaches(&a_tx, &mut a_rx, &mut b_rx).await;

    // A good file: the group's member is C now.
    std::fs::write(&routing, group_of(C)).unwrap();
    hang_up_signal(&server);
    expect_sample(
        metrics_port,
        r#"webterminal_routing_reloads_total{result="reloaded"}"#,
        1.0,
    )
    .await;
    group_call_reaches(&a_tx, &mut a_rx, &mut c_rx).await;

    // A bad file: logged and counted; C is still the member.
    std::fs::write(&routing, "[[group]]\nnumber = 5\n").unwrap();
    hang_up_signal(&server);
    expect_sample(
        metrics_port,
        r#"webterminal_routing_reloads_total{result="failed"}"#,
        1.0,
    )
    .await;
    group_call_reaches(&a_tx, &mut a_rx, &mut c_rx).await;
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("routing file not reloaded") && logged.contains("routing.toml"),
        "{logged}"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_routing_file_at_start_stops_the_binary_naming_the_file() {
    let dir = temp_dir();
    let routing = dir.join("routing.toml");
    std::fs::write(
        &routing,
        "[[group]]\nnumber = \"+4721000000\"\nmembers = []\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_webterminal-core"))
        .args(["serve", "--listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--jwt-secret", SECRET, "--records", "none", "--routing"])
        .arg(&routing)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("routing.toml") && stderr.contains("has no members"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
