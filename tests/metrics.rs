//! PROTOCOL.md section 12: the real binary with `--metrics-listen` serves Prometheus metrics at
//! `GET /metrics` — terminals by kind, calls by state, calls ended by status and reason, messages in
//! and out by kind, errors by code, call setup time as a histogram in seconds — read over plain HTTP
//! while and after a call is made over gRPC.

use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use webterminal_core::core::Msisdn;
use webterminal_core::proto::common::PhoneNumber;
use webterminal_core::proto::webterminal::web_terminal_message::Message;
use webterminal_core::proto::webterminal::web_terminal_service_client::WebTerminalServiceClient;
use webterminal_core::proto::webterminal::{Answer, Bye, Offer, WebTerminalMessage};
use webterminal_core::server::auth::{mint_token, REQUIRED_SCOPE};

const SECRET: &str = "metrics-test-secret";
const A: &str = "+4791234601";
const B: &str = "+4791234602";
const WAIT: Duration = Duration::from_secs(10);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/sdp/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

type Stream = tonic::Streaming<WebTerminalMessage>;

async fn open(port: u16, msisdn: &str) -> (mpsc::Sender<WebTerminalMessage>, Stream) {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut client = loop {
        match WebTerminalServiceClient::connect(format!("http://127.0.0.1:{port}")).await {
            Ok(client) => break client,
            Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("the server never listened: {e}"),
        }
    };
    let (tx, rx) = mpsc::channel(16);
    let mut request = tonic::Request::new(ReceiverStream::new(rx));
    let token = mint_token(
        SECRET.as_bytes(),
        &Msisdn::parse(msisdn).unwrap(),
        REQUIRED_SCOPE,
        Duration::from_secs(600),
    );
    let bearer = format!("Bearer {token}").parse().unwrap();
    request.metadata_mut().insert("authorization", bearer);
    (tx, client.multi_pipe(request).await.unwrap().into_inner())
}

async fn next(rx: &mut Stream) -> WebTerminalMessage {
    tokio::time::timeout(WAIT, rx.next())
        .await
        .expect("a message in time")
        .unwrap()
        .unwrap()
}

fn message(call_id: &str, body: Message) -> WebTerminalMessage {
    WebTerminalMessage {
        message: Some(body),
        call_id: call_id.into(),
    }
}

/// The body of `GET /metrics`.
async fn scrape(port: u16) -> String {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("the metrics listener");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    tokio::time::timeout(WAIT, stream.read_to_string(&mut response))
        .await
        .expect("a response in time")
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
}

/// The value of the sample `name{labels}` (labels exactly as Prometheus writes them).
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().unwrap())
    })
}

/// Polls the metrics until `series` has `want` (the driver counts as it goes; a scrape can come
/// a moment before).
async fn expect_sample(port: u16, series: &str, want: f64) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let metrics = scrape(port).await;
        if sample(&metrics, series) == Some(want) {
            return metrics;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("{series} is not {want}:\n{metrics}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_binary_serves_prometheus_metrics_of_its_calls() {
    let (port, metrics_port) = (free_port(), free_port());
    let _server = Server(
        Command::new(env!("CARGO_BIN_EXE_webterminal-core"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--metrics-listen", &format!("127.0.0.1:{metrics_port}")])
            .args(["--jwt-secret", SECRET, "--phone-network", "none"])
            .args(["--records", "none"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the server starts"),
    );
    let (a_tx, mut a_rx) = open(port, A).await;
    let (b_tx, mut b_rx) = open(port, B).await;
    expect_sample(
        metrics_port,
        r#"webterminal_terminals{kind="multipipe"}"#,
        2.0,
    )
    .await;

    let id = uuid::Uuid::new_v4().to_string();
    let offer = Offer {
        sdp: fixture("chromium-offer.sdp"),
        msisdn: Some(PhoneNumber { e164: B.into() }),
        data: Default::default(),
    };
    a_tx.send(message(&id, Message::Offer(offer)))
        .await
        .unwrap();
    let offered = next(&mut b_rx).await;
    expect_sample(metrics_port, r#"webterminal_calls{state="ringing"}"#, 1.0).await;
    let answer = Answer {
        sdp: fixture("chromium-answer.sdp"),
    };
    b_tx.send(message(&offered.call_id, Message::Answer(answer)))
        .await
        .unwrap();
    assert!(matches!(
        next(&mut a_rx).await.message,
        Some(Message::Answer(_))
    ));
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
    a_tx.send(message(&id, Message::Bye(Bye::default())))
        .await
        .unwrap();
    assert!(matches!(
        next(&mut b_rx).await.message,
        Some(Message::Bye(_))
    ));

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
    // The rpcs end: the terminals are gone.
    drop((a_tx, b_tx, a_rx, b_rx));
    expect_sample(
        metrics_port,
        r#"webterminal_terminals{kind="multipipe"}"#,
        0.0,
    )
    .await;
}
