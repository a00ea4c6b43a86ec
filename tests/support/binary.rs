//! The real `webterminal-core` binary for tests, and what they talk to it with: one launcher
//! ([`serve`], [`run`]) for the server on ports it binds itself and reports, its log kept and shown
//! when a test fails, the process killed on drop; MultiPipe terminals over gRPC with HS256 tokens
//! ([`terminal`]); HTTP requests and Prometheus scrapes.
//!
//! Include it with `#[path = "support/binary.rs"] mod binary;`.

#![allow(dead_code)]

use std::ffi::{OsStr, OsString};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use webterminal_core::proto::webterminal::web_terminal_message::Message;
use webterminal_core::proto::webterminal::web_terminal_service_client::WebTerminalServiceClient;
use webterminal_core::proto::webterminal::{Answer, Bye, WebTerminalMessage};

#[path = "terminal.rs"]
pub mod terminal;

pub use terminal::{fixture, message};

/// How long a test waits for the server or a message before it fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// A free port on 127.0.0.1 (bound, read, released): only for a tool that cannot bind port 0 and
/// report it; the binary does ([`serve`]).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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
    terminal::authorize(&mut request, secret, msisdn);
    (tx, client.multi_pipe(request).await.unwrap().into_inner())
}

/// Sends an Offer of Chromium's SDP to `to` on a new call of `tx`'s MultiPipe; the call's id.
pub async fn place_call(tx: &mpsc::Sender<WebTerminalMessage>, to: &str) -> String {
    let id = uuid::Uuid::new_v4().to_string();
    let offer = terminal::offer(&fixture("chromium-offer.sdp"), to);
    tx.send(message(&id, offer)).await.unwrap();
    id
}

/// The callee answers call `call_id` (its id) with Chromium's answer; the caller (`caller_rx`) gets
/// the Answer.
pub async fn answer_call(
    tx: &mpsc::Sender<WebTerminalMessage>,
    call_id: &str,
    caller_rx: &mut Stream,
) {
    let answer = Message::Answer(Answer {
        sdp: fixture("chromium-answer.sdp"),
    });
    tx.send(message(call_id, answer)).await.unwrap();
    let answered = next(caller_rx).await;
    assert!(
        matches!(answered.message, Some(Message::Answer(_))),
        "{answered:?}"
    );
}

/// One side hangs up call `call_id` (its id); the other side (`other_rx`) gets a Bye.
pub async fn hang_up(tx: &mpsc::Sender<WebTerminalMessage>, call_id: &str, other_rx: &mut Stream) {
    tx.send(message(call_id, Message::Bye(Bye::default())))
        .await
        .unwrap();
    let bye = next(other_rx).await;
    assert!(matches!(bye.message, Some(Message::Bye(_))), "{bye:?}");
}

/// The next message on `rx`; fails the test after [`WAIT`].
pub async fn next(rx: &mut Stream) -> WebTerminalMessage {
    tokio::time::timeout(WAIT, rx.next())
        .await
        .expect("a message in time")
        .unwrap()
        .unwrap()
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
/// `--metrics-listen 127.0.0.1:0` when asked), with the ports it printed.
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
    /// The main address, as the server printed it.
    pub addr: SocketAddr,
    /// Its stderr.
    pub log: Log,
}

impl Started {
    pub fn pid(&self) -> u32 {
        self.server.0.id()
    }

    /// Sends `signal` (`TERM`, `HUP`, ...) with kill(1).
    pub fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -{signal}");
    }

    /// SIGKILL, and reaps the process.
    pub fn kill(&mut self) {
        self.server.0.kill().expect("SIGKILL");
        self.server.0.wait().unwrap();
    }

    /// Whether the process still runs.
    pub fn running(&mut self) -> bool {
        self.server.0.try_wait().unwrap().is_none()
    }

    /// Waits for the process to exit; fails the test if it still runs after `within`.
    pub async fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(status) = self.server.0.try_wait().unwrap() {
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the server did not exit within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Starts `webterminal-core serve` with `args` on port 0 (and the metrics on port 0 when
/// `metrics`), and waits (up to [`WAIT`]) until it prints the ports it bound (the SIP trunk's too
/// when `args` hold `--phone-network sip`): [`serve`]`().args(args)`, `.metrics()`, `.start()`.
pub fn serve_on_free_ports(args: &[&str], metrics: bool) -> Started {
    let launch = serve().args(args);
    match metrics {
        true => launch.metrics().start(),
        false => launch.start(),
    }
}

/// How a test starts the real binary: [`serve`] (`serve --listen 127.0.0.1:0`) or [`run`] (any
/// subcommand), then arguments, variables, an optional wrapper (`prlimit ...`), the metrics
/// listener; [`Launch::start`] waits for the ports the server reports, [`Launch::output`] runs a
/// command to its end. The server's stderr goes to a file of its own ([`Log`]), printed when the
/// test fails.
#[derive(Clone)]
pub struct Launch {
    args: Vec<OsString>,
    listen: Option<String>,
    metrics: bool,
    env: Vec<(OsString, Option<OsString>)>,
    env_clear: bool,
    wrapper: Vec<OsString>,
}

/// `webterminal-core serve --listen 127.0.0.1:0`: the port is the one the server reports.
pub fn serve() -> Launch {
    Launch {
        listen: Some("127.0.0.1:0".into()),
        ..run("serve")
    }
}

/// `webterminal-core SUBCOMMAND`, nothing added.
pub fn run(subcommand: &str) -> Launch {
    Launch {
        args: vec![subcommand.into()],
        listen: None,
        metrics: false,
        env: Vec::new(),
        env_clear: false,
        wrapper: Vec::new(),
    }
}

impl Launch {
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Launch {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, args: I) -> Launch {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Launch {
        self.env.push((key.into(), Some(value.as_ref().to_owned())));
        self
    }

    pub fn env_remove(mut self, key: &str) -> Launch {
        self.env.push((key.into(), None));
        self
    }

    /// No variable inherited from the test.
    pub fn env_clear(mut self) -> Launch {
        self.env_clear = true;
        self
    }

    /// Runs the binary through `program args... <binary> ...` (e.g. `prlimit --nofile=...`); the
    /// wrapper must exec the binary, so that the process is the server's.
    pub fn wrapper<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, program: I) -> Launch {
        self.wrapper = program.into_iter().map(|a| a.as_ref().to_owned()).collect();
        self
    }

    /// `--metrics-listen 127.0.0.1:0`; [`Launch::start`] waits for its port too.
    pub fn metrics(mut self) -> Launch {
        self.metrics = true;
        self
    }

    /// Listens on `addr` rather than on a port of its own choosing: a restart on the address an
    /// earlier run reported (see [`Launch::start_rebinding`]).
    pub fn listen(mut self, addr: SocketAddr) -> Launch {
        self.listen = Some(addr.to_string());
        self
    }

    fn command(&self) -> Command {
        let binary = env!("CARGO_BIN_EXE_webterminal-core");
        let mut command = match self.wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(binary);
                command
            }
            None => Command::new(binary),
        };
        command.args(&self.args);
        if let Some(listen) = &self.listen {
            command.args(["--listen", listen]);
        }
        if self.metrics {
            command.args(["--metrics-listen", "127.0.0.1:0"]);
        }
        if self.env_clear {
            command.env_clear();
        }
        for (key, value) in &self.env {
            match value {
                Some(value) => command.env(key, value),
                None => command.env_remove(key),
            };
        }
        command.stdin(Stdio::null());
        command
    }

    /// Runs the command to its end; its stdout and stderr.
    pub fn output(self) -> Output {
        self.command().output().expect("the binary runs")
    }

    /// Starts the server and waits (up to [`WAIT`]) until it prints the ports it bound (the
    /// metrics' with [`Launch::metrics`], the SIP trunk's with `--phone-network sip`); fails the
    /// test, showing its log, if it exits first.
    pub fn start(self) -> Started {
        self.try_start()
            .unwrap_or_else(|log| panic!("the server did not start; its log:\n{log}"))
    }

    /// As [`Launch::start`], retrying for a few seconds while the address it listens on is still
    /// in use (`EADDRINUSE`: the port of a run just killed, rebound).
    pub fn start_rebinding(self) -> Started {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            match self.clone().try_start() {
                Ok(started) => return started,
                Err(log)
                    if log.contains("Address already in use")
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(100))
                }
                Err(log) => panic!("the server did not start; its log:\n{log}"),
            }
        }
    }

    /// As [`Launch::start`]; the server's log when it exits before it reports its ports.
    pub fn try_start(self) -> Result<Started, String> {
        use std::io::BufRead;
        let log = Log::new();
        let mut child = self
            .command()
            .stdout(Stdio::piped())
            .stderr(log.stdio())
            .spawn()
            .expect("the server starts");
        let stdout = child.stdout.take().unwrap();
        let server = Server(child);
        let metrics = self.metrics;
        let sip = self
            .args
            .windows(2)
            .any(|w| w[0] == "--phone-network" && w[1] == "sip");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = std::io::BufReader::new(stdout).lines();
            let mut printed = String::new();
            let (mut addr, mut metrics_port, mut sip_port) = (None, None, None);
            for line in lines.by_ref() {
                let Ok(line) = line else { break };
                printed.push_str(&line);
                printed.push('\n');
                let addr_after = |marker: &str| -> Option<SocketAddr> {
                    let rest = &line[line.find(marker)? + marker.len()..];
                    rest.split(|c: char| c.is_whitespace() || c == '/')
                        .next()?
                        .parse()
                        .ok()
                };
                if line.starts_with("webterminal-core listening on ") {
                    addr = addr_after("listening on ");
                }
                if line.trim_start().starts_with("metrics: ") {
                    metrics_port = addr_after("http://").map(|a| a.port());
                }
                if line.trim_start().starts_with("sip: udp ") {
                    sip_port = addr_after("udp ").map(|a| a.port());
                }
                if let Some(addr) = addr
                    .filter(|_| metrics_port.is_some() || !metrics)
                    .filter(|_| sip_port.is_some() || !sip)
                {
                    let _ = tx.send((addr, metrics_port, sip_port, printed.clone()));
                    break;
                }
            }
            // Keep reading so that the server never blocks on a full pipe.
            for _ in lines {}
        });
        match rx.recv_timeout(WAIT) {
            Ok((addr, metrics_port, sip_port, stdout)) => Ok(Started {
                server,
                port: addr.port(),
                metrics_port,
                sip_port,
                stdout,
                addr,
                log,
            }),
            Err(e) => {
                drop(server);
                Err(format!("({e}) {}", log.text()))
            }
        }
    }
}

/// A server's stderr, in a temporary file; printed if the test fails while it is held.
pub struct Log(tempfile::NamedTempFile);

impl Log {
    fn new() -> Log {
        Log(tempfile::NamedTempFile::new().expect("a file for the server's log"))
    }

    fn stdio(&self) -> Stdio {
        Stdio::from(self.0.reopen().unwrap())
    }

    /// What the server has logged so far.
    pub fn text(&self) -> String {
        std::fs::read_to_string(self.0.path()).unwrap()
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- the server's log:\n{}", self.text());
        }
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
