//! The real `webterminal-core` binary for tests, and what they talk to it with: a free loopback
//! port, a server process killed on drop, MultiPipe terminals over gRPC with HS256 tokens, and
//! Prometheus scrapes.
//!
//! Include it with `#[path = "support/binary.rs"] mod binary;`.

#![allow(dead_code)]

use std::process::Child;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use webterminal_core::auth::{mint_token, REQUIRED_SCOPE};
use webterminal_core::core::Msisdn;
use webterminal_core::proto::webterminal::web_terminal_message::Message;
use webterminal_core::proto::webterminal::web_terminal_service_client::WebTerminalServiceClient;
use webterminal_core::proto::webterminal::WebTerminalMessage;

/// How long a test waits for the server or a message before it fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// A free port on 127.0.0.1 (bound, read, released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The SDP fixture `name` (`tests/fixtures/sdp/`).
pub fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/sdp/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The server process, killed (and reaped) on drop.
pub struct Server(pub Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A MultiPipe's response stream.
pub type Stream = tonic::Streaming<WebTerminalMessage>;

/// Opens a MultiPipe on `port` as `msisdn`, with a token signed with `secret`; waits for the
/// server to listen (up to [`WAIT`]).
pub async fn open(
    port: u16,
    secret: &str,
    msisdn: &str,
) -> (mpsc::Sender<WebTerminalMessage>, Stream) {
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
        secret.as_bytes(),
        &Msisdn::parse(msisdn).unwrap(),
        REQUIRED_SCOPE,
        Duration::from_secs(600),
    );
    let bearer = format!("Bearer {token}").parse().unwrap();
    request.metadata_mut().insert("authorization", bearer);
    (tx, client.multi_pipe(request).await.unwrap().into_inner())
}

/// The next message on `rx`; fails the test after [`WAIT`].
pub async fn next(rx: &mut Stream) -> WebTerminalMessage {
    tokio::time::timeout(WAIT, rx.next())
        .await
        .expect("a message in time")
        .unwrap()
        .unwrap()
}

/// A message on call `call_id`.
pub fn message(call_id: &str, body: Message) -> WebTerminalMessage {
    WebTerminalMessage {
        message: Some(body),
        call_id: call_id.into(),
    }
}

/// The body of `GET /metrics` on `port`; waits (up to [`WAIT`]) for the listener, which the
/// exporter binds a moment after the core's own.
pub async fn scrape(port: u16) -> String {
    let (status, body) = http_get(port, "/metrics").await;
    assert_eq!(status, 200, "{body}");
    body
}

/// `GET path` on `127.0.0.1:port` over HTTP/1.1: the status code and the body. Waits (up to
/// [`WAIT`]) for the listener.
pub async fn http_get(port: u16, path: &str) -> (u16, String) {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut stream = loop {
        match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            Ok(stream) => break stream,
            Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(e) => panic!("the listener on {port}: {e}"),
        }
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(WAIT, stream.read_to_string(&mut response))
        .await
        .expect("a response in time")
        .unwrap();
    let status = response
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP/1.1 response: {response}"));
    let body = response
        .split_once("\r\n\r\n")
        .map_or("", |(_, body)| body)
        .to_owned();
    (status, body)
}

/// A server started on ports of its own choosing (`--listen 127.0.0.1:0`, and
/// `--metrics-listen 127.0.0.1:0` when `metrics`), with the ports it printed.
pub struct Started {
    pub server: Server,
    /// The main port: gRPC, WebSockets, `/healthz`.
    pub port: u16,
    /// The metrics port, when asked for.
    pub metrics_port: Option<u16>,
    /// The SIP trunk's UDP port (`  sip: udp ADDR`), with `--phone-network sip`.
    pub sip_port: Option<u16>,
    /// What the server printed on stdout until it reported its ports.
    pub stdout: String,
}

/// Starts `webterminal-core serve` with `args` on port 0 (and the metrics on port 0 when
/// `metrics`), stderr inherited, and waits (up to [`WAIT`]) until it prints the ports it bound
/// (the SIP trunk's too when `args` hold `--phone-network sip`).
pub fn serve_on_free_ports(args: &[&str], metrics: bool) -> Started {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let mut command = Command::new(env!("CARGO_BIN_EXE_webterminal-core"));
    command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args);
    if metrics {
        command.args(["--metrics-listen", "127.0.0.1:0"]);
    }
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the server starts");
    let stdout = child.stdout.take().unwrap();
    let server = Server(child);
    let sip = args.windows(2).any(|w| w == ["--phone-network", "sip"]);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = std::io::BufReader::new(stdout).lines();
        let mut printed = String::new();
        let (mut port, mut metrics_port, mut sip_port) = (None, None, None);
        for line in lines.by_ref() {
            let Ok(line) = line else { break };
            printed.push_str(&line);
            printed.push('\n');
            let port_after = |marker: &str| -> Option<u16> {
                let rest = &line[line.find(marker)? + marker.len()..];
                let addr = rest.split(|c: char| c.is_whitespace() || c == '/').next()?;
                addr.rsplit_once(':')?.1.parse().ok()
            };
            if line.starts_with("webterminal-core listening on ") {
                port = port_after("listening on ");
            }
            if line.trim_start().starts_with("metrics: ") {
                metrics_port = port_after("http://");
            }
            if line.trim_start().starts_with("sip: udp ") {
                sip_port = port_after("udp ");
            }
            if let Some(port) = port
                .filter(|_| metrics_port.is_some() || !metrics)
                .filter(|_| sip_port.is_some() || !sip)
            {
                let _ = tx.send((port, metrics_port, sip_port, printed.clone()));
                break;
            }
        }
        // Keep reading so that the server never blocks on a full pipe.
        for _ in lines {}
    });
    let (port, metrics_port, sip_port, stdout) = rx
        .recv_timeout(WAIT)
        .expect("the server prints the ports it bound");
    Started {
        server,
        port,
        metrics_port,
        sip_port,
        stdout,
    }
}

/// The value of the sample `name{labels}` (labels exactly as Prometheus writes them).
pub fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().unwrap())
    })
}

/// Polls the metrics until `series` has `want` (the driver counts as it goes; a scrape can come
/// a moment before); returns the scrape that had it.
pub async fn expect_sample(port: u16, series: &str, want: f64) -> String {
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
