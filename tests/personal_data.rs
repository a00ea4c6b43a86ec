//! Phone numbers, SDP bodies and call context values are personal data: the real binary, logging at
//! `debug`, must not write a full number, any SDP line or a context value to its log while it carries
//! a call with real Chromium SDP and a caller's context — unless the operator asks for it with
//! `--log-personal-data`.

#[path = "support/binary.rs"]
mod binary;

use binary::*;
use webterminal_core::proto::common::PhoneNumber;
use webterminal_core::proto::webterminal::web_terminal_message::Message;
use webterminal_core::proto::webterminal::Offer;

const SECRET: &str = "personal-data-test-secret";
const A: &str = "+4791234501";
const B: &str = "+4791234502";
/// The caller's call context: a name and a ticket reference are personal data.
const CONTEXT: [(&str, &str); 2] = [
    ("display_name", "Kari Nordmann"),
    ("contact_ref", "TICKET-4711-8842"),
];

/// Runs one call A → B with real Chromium SDP through a server started with `extra` flags, and returns
/// everything the server logged.
async fn log_of_a_call(extra: &[&str]) -> String {
    let mut server = binary::serve()
        .args(["--jwt-secret", SECRET, "--phone-network", "none"])
        .args(["--records", "none"])
        .args(extra)
        .env("RUST_LOG", "debug")
        .start();
    let port = server.port;
    let (a_tx, mut a_rx) = open(port, SECRET, A).await;
    let (b_tx, mut b_rx) = open(port, SECRET, B).await;
    let id = uuid::Uuid::new_v4().to_string();
    let offer = Offer {
        sdp: fixture("chromium-offer.sdp"),
        msisdn: Some(PhoneNumber { e164: B.into() }),
        data: CONTEXT
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    };
    a_tx.send(message(&id, Message::Offer(offer)))
        .await
        .unwrap();
    let offered = next(&mut b_rx).await;
    answer_call(&b_tx, &offered.call_id, &mut a_rx).await;
    hang_up(&a_tx, &id, &mut b_rx).await;
    // SIGTERM: the server shuts down and closes its log.
    server.signal("TERM");
    server.wait_exit(WAIT).await;
    server.log.text()
}

/// Lines of the fixtures that identify a person's machine or session.
fn sdp_lines() -> Vec<String> {
    let mut lines = Vec::new();
    for name in ["chromium-offer.sdp", "chromium-answer.sdp"] {
        for line in fixture(name).lines() {
            if [
                "a=candidate",
                "a=ice-ufrag",
                "a=ice-pwd",
                "a=fingerprint",
                "a=rtcp-xr",
                "c=IN",
            ]
            .iter()
            .any(|p| line.starts_with(p))
            {
                lines.push(line.trim_end().to_string());
            }
        }
    }
    lines
}

#[tokio::test]
async fn the_log_holds_no_phone_number_and_no_sdp_by_default() {
    let log = log_of_a_call(&[]).await;
    assert!(
        log.contains("call established"),
        "the call was logged: {log}"
    );
    for number in [A, B] {
        assert!(!log.contains(number), "{number} in the log:\n{log}");
    }
    for line in sdp_lines() {
        let value = line.split_once('=').unwrap().1;
        assert!(!log.contains(value), "SDP line {line:?} in the log:\n{log}");
    }
    assert!(
        log.contains("contact_ref"),
        "the context is logged, its values redacted: {log}"
    );
    for (key, value) in CONTEXT {
        assert!(!log.contains(value), "{key}'s value in the log:\n{log}");
    }
}

#[tokio::test]
async fn log_personal_data_shows_numbers_when_asked() {
    let log = log_of_a_call(&["--log-personal-data"]).await;
    assert!(log.contains(A) && log.contains(B), "numbers shown:\n{log}");
    for (key, value) in CONTEXT {
        assert!(log.contains(value), "{key}'s value shown:\n{log}");
    }
}

#[tokio::test]
async fn json_logs_are_one_object_a_line_and_hold_no_personal_data() {
    let log = log_of_a_call(&["--log-format", "json"]).await;
    let mut messages = Vec::new();
    for line in log.lines() {
        let object: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON object ({e}): {line}"));
        for field in ["timestamp", "level", "target"] {
            assert!(object.get(field).is_some(), "{field} in {line}");
        }
        messages.push(
            object["fields"]["message"]
                .as_str()
                .unwrap_or("")
                .to_owned(),
        );
    }
    assert!(
        messages.iter().any(|m| m == "call established"),
        "the call was logged: {log}"
    );
    for number in [A, B] {
        let digits = number.trim_start_matches('+');
        assert!(!log.contains(digits), "{number} in the log:\n{log}");
    }
    for line in sdp_lines() {
        let value = line.split_once('=').unwrap().1;
        assert!(!log.contains(value), "SDP line {line:?} in the log:\n{log}");
    }
    for (key, value) in CONTEXT {
        assert!(!log.contains(value), "{key}'s value in the log:\n{log}");
    }
}
