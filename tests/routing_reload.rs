//! PROTOCOL.md section 10: the real binary reads its routing file (`--routing FILE`) at start and
//! again on SIGHUP. A good file changes where new group calls go; a bad one is logged and counted
//! (`webterminal_routing_reloads_total{result="failed"}`) and the groups in force stay; a bad file at
//! start stops the binary with a message naming the file.

#[path = "support/binary.rs"]
mod binary;

use binary::*;
use std::path::Path;
use tokio::sync::mpsc::Sender;
use webterminal_core::proto::webterminal::web_terminal_message::Message;
use webterminal_core::proto::webterminal::{bye, Bye, WebTerminalMessage};

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

fn serve(routing: &Path) -> Started {
    binary::serve()
        .args(["--jwt-secret", SECRET, "--phone-network", "none"])
        .args(["--records", "none", "--routing"])
        .arg(routing)
        .env("RUST_LOG", "info")
        .metrics()
        .start()
}

/// A calls SALES; `member` is offered the call; A cancels and the member gets `Bye{CANCELLED}`.
async fn group_call_reaches(
    a_tx: &Sender<WebTerminalMessage>,
    a_rx: &mut Stream,
    member: &mut Stream,
) {
    let id = place_call(a_tx, SALES).await;
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
    let dir = tempfile::tempdir().unwrap();
    let routing = dir.path().join("routing.toml");
    std::fs::write(&routing, group_of(B)).unwrap();
    let server = serve(&routing);
    let (port, metrics_port) = (server.port, server.metrics_port.unwrap());
    let (a_tx, mut a_rx) = open(port, SECRET, A).await;
    let (_b_tx, mut b_rx) = open(port, SECRET, B).await;
    let (_c_tx, mut c_rx) = open(port, SECRET, C).await;
    group_call_reaches(&a_tx, &mut a_rx, &mut b_rx).await;

    // A good file: the group's member is C now.
    std::fs::write(&routing, group_of(C)).unwrap();
    server.signal("HUP");
    expect_sample(
        metrics_port,
        r#"webterminal_routing_reloads_total{result="reloaded"}"#,
        1.0,
    )
    .await;
    group_call_reaches(&a_tx, &mut a_rx, &mut c_rx).await;

    // A bad file: logged and counted; C is still the member.
    std::fs::write(&routing, "[[group]]\nnumber = 5\n").unwrap();
    server.signal("HUP");
    expect_sample(
        metrics_port,
        r#"webterminal_routing_reloads_total{result="failed"}"#,
        1.0,
    )
    .await;
    group_call_reaches(&a_tx, &mut a_rx, &mut c_rx).await;
    let logged = server.log.text();
    assert!(
        logged.contains("routing file not reloaded") && logged.contains("routing.toml"),
        "{logged}"
    );
}

#[test]
fn a_bad_routing_file_at_start_stops_the_binary_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let routing = dir.path().join("routing.toml");
    std::fs::write(
        &routing,
        "[[group]]\nnumber = \"+4721000000\"\nmembers = []\n",
    )
    .unwrap();
    let output = binary::serve()
        .args(["--jwt-secret", SECRET, "--records", "none", "--routing"])
        .arg(&routing)
        .output();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("routing.toml") && stderr.contains("has no members"),
        "{stderr}"
    );
}
