//! Shutdown under load (PROTOCOL.md 4.9), against the real binary: `webterminal-core serve`
//! with 20 established calls, 4 ringing calls forked to two terminals each, and a few observers (56
//! terminals, Pipe and MultiPipe, each on a connection of its own) gets SIGTERM. Every live leg —
//! both legs of every established call, every ringing caller and every fork — gets
//! `Bye{SERVER_SHUTDOWN}` with its call id, every response stream (observers' too) ends with status
//! OK, and the process exits 0 within a bound.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::Streaming;
use webterminal_core::auth::{mint_token, REQUIRED_SCOPE};
use webterminal_core::core::Msisdn;
use webterminal_core::proto::common::PhoneNumber;
use webterminal_core::proto::webterminal::web_terminal_message::Message;
use webterminal_core::proto::webterminal::web_terminal_service_client::WebTerminalServiceClient;
use webterminal_core::proto::webterminal::{bye, Answer, Offer, Ringing, WebTerminalMessage};

const SECRET: &str = "shutdown-under-load-test-secret";
const ESTABLISHED: usize = 20;
const RINGING: usize = 4;
const OBSERVED: usize = 4;
/// How long the process may take to exit after SIGTERM.
const EXIT_BOUND: Duration = Duration::from_secs(10);
const WAIT: Duration = Duration::from_secs(10);

fn fixture(name: &str) -> String {
    let path = format!(
        "{}{name}",
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sdp/")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A distinct number per (role, index).
fn number(role: u32, i: usize) -> String {
    format!("+47{role}{:07}", 5000 + i)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Pipe,
    Multi,
}

struct Terminal {
    name: String,
    kind: Kind,
    tx: mpsc::Sender<WebTerminalMessage>,
    rx: Streaming<WebTerminalMessage>,
}

impl Terminal {
    async fn open(addr: SocketAddr, kind: Kind, msisdn: &str, name: String) -> Terminal {
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_timeout(WAIT)
            .connect()
            .await
            .expect("connect");
        let token = mint_token(
            SECRET.as_bytes(),
            &Msisdn::parse(msisdn).unwrap(),
            REQUIRED_SCOPE,
            Duration::from_secs(600),
        );
        let (tx, requests) = mpsc::channel(16);
        let mut request = tonic::Request::new(ReceiverStream::new(requests));
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        let mut client = WebTerminalServiceClient::new(channel);
        let response = match kind {
            Kind::Pipe => client.pipe(request).await,
            Kind::Multi => client.multi_pipe(request).await,
        };
        let rx = response
            .unwrap_or_else(|s| panic!("{name}: rpc refused: {s:?}"))
            .into_inner();
        let mut t = Terminal { name, kind, tx, rx };
        if kind == Kind::Pipe {
            match t.next().await {
                Message::Idle(_) | Message::InCall(_) => {}
                other => panic!("{}: greeted with {other:?}", t.name),
            }
        }
        t
    }

    async fn next_with_id(&mut self) -> (String, Message) {
        let m = tokio::time::timeout(WAIT, self.rx.message())
            .await
            .unwrap_or_else(|_| panic!("{}: nothing in time", self.name))
            .unwrap_or_else(|s| panic!("{}: stream failed: {s:?}", self.name))
            .unwrap_or_else(|| panic!("{}: stream ended early", self.name));
        (m.call_id, m.message.expect("oneof set"))
    }

    async fn next(&mut self) -> Message {
        self.next_with_id().await.1
    }

    async fn send(&self, call_id: &str, message: Message) {
        self.tx
            .send(WebTerminalMessage {
                message: Some(message),
                call_id: call_id.to_owned(),
            })
            .await
            .expect("request stream open");
    }

    /// The id this terminal puts on messages about `id`: a Pipe's is ignored.
    fn id(&self, id: &str) -> String {
        match self.kind {
            Kind::Pipe => String::new(),
            Kind::Multi => id.to_owned(),
        }
    }

    /// After SIGTERM: reads to the end of the stream; returns what came, and fails unless the stream
    /// ends with status OK.
    async fn drain_to_end(mut self) -> (String, Vec<(String, Message)>) {
        let mut got = Vec::new();
        loop {
            match tokio::time::timeout(WAIT, self.rx.message()).await {
                Err(_) => panic!("{}: the stream did not end in time; got {got:?}", self.name),
                Ok(Ok(Some(m))) => got.push((m.call_id, m.message.expect("oneof set"))),
                Ok(Ok(None)) => return (self.name, got),
                Ok(Err(status)) => panic!(
                    "{}: the stream ended with {status:?}, not OK; got {got:?}",
                    self.name
                ),
            }
        }
    }
}

fn offer_to(sdp: &str, to: &str) -> Message {
    Message::Offer(Offer {
        sdp: sdp.to_owned(),
        msisdn: Some(PhoneNumber { e164: to.into() }),
        data: Default::default(),
    })
}

async fn wait_for_listener(addr: SocketAddr, child: &mut tokio::process::Child) {
    let until = tokio::time::Instant::now() + WAIT;
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the server exited before listening: {status}");
        }
        assert!(
            tokio::time::Instant::now() < until,
            "the server did not listen on {addr} in time"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_byes_every_leg_and_exits_0() {
    tokio::time::timeout(Duration::from_secs(90), scenario())
        .await
        .expect("the shutdown-under-load test finished in time");
}

async fn scenario() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_webterminal-core"))
        .args([
            "serve",
            "--listen",
            &addr.to_string(),
            "--jwt-secret",
            SECRET,
            "--phone-network",
            "none",
            "--records",
            "none",
        ])
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start webterminal-core serve");
    wait_for_listener(addr, &mut child).await;

    let offer = fixture("chromium-offer.sdp");
    let answer = fixture("aiortc-answer.sdp");
    // (terminal, the call id its Bye must carry); observers expect none.
    let mut legs: Vec<(Terminal, String)> = Vec::new();
    let mut observers: Vec<Terminal> = Vec::new();

    // 20 established calls, Pipe and MultiPipe on either side.
    for i in 0..ESTABLISHED {
        let (a, b) = (number(1, i), number(2, i));
        let (ka, kb) = if i % 2 == 0 {
            (Kind::Multi, Kind::Pipe)
        } else {
            (Kind::Pipe, Kind::Multi)
        };
        let caller = Terminal::open(addr, ka, &a, format!("caller {i}")).await;
        let mut callee = Terminal::open(addr, kb, &b, format!("callee {i}")).await;
        let chosen = uuid::Uuid::new_v4().to_string();
        caller.send(&caller.id(&chosen), offer_to(&offer, &b)).await;
        let (b_id, m) = callee.next_with_id().await;
        assert!(matches!(m, Message::Offer(_)), "callee {i}: {m:?}");
        callee
            .send(
                &callee.id(&b_id),
                Message::Answer(Answer {
                    sdp: answer.clone(),
                }),
            )
            .await;
        let mut caller = caller;
        let (a_id, m) = caller.next_with_id().await;
        assert!(matches!(m, Message::Answer(_)), "caller {i}: {m:?}");
        if ka == Kind::Multi {
            assert_eq!(a_id, chosen);
        }
        if i < OBSERVED {
            // Another terminal of the callee's number observes the call: not a leg (a Pipe is
            // greeted with InCall, a MultiPipe told nothing).
            let kind = if i % 2 == 0 { Kind::Pipe } else { Kind::Multi };
            observers.push(Terminal::open(addr, kind, &b, format!("observer {i}")).await);
        }
        legs.push((caller, a_id));
        legs.push((callee, b_id));
    }

    // 4 ringing calls, each forked to two terminals of the callee (one alerts).
    for i in 0..RINGING {
        let (a, b) = (number(3, i), number(4, i));
        let mut caller = Terminal::open(addr, Kind::Multi, &a, format!("ringing caller {i}")).await;
        let mut fork1 = Terminal::open(addr, Kind::Pipe, &b, format!("fork {i}.1")).await;
        let mut fork2 = Terminal::open(addr, Kind::Multi, &b, format!("fork {i}.2")).await;
        let a_id = uuid::Uuid::new_v4().to_string();
        caller.send(&a_id, offer_to(&offer, &b)).await;
        let (id1, m1) = fork1.next_with_id().await;
        let (id2, m2) = fork2.next_with_id().await;
        assert!(matches!((&m1, &m2), (Message::Offer(_), Message::Offer(_))));
        assert_eq!(id1, id2, "both forks see the callee side's id");
        fork1.send("", Message::Ringing(Ringing {})).await;
        assert!(matches!(caller.next().await, Message::Ringing(_)));
        legs.push((caller, a_id));
        legs.push((fork1, id1));
        legs.push((fork2, id2));
    }
    let terminals = legs.len() + observers.len();
    assert_eq!(terminals, 2 * ESTABLISHED + 3 * RINGING + OBSERVED);

    // SIGTERM (no libc/nix dependency: the kill(1) utility).
    let pid = child.id().expect("the server runs").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("run kill");
    assert!(killed.success());

    let drains: Vec<_> = legs
        .into_iter()
        .map(|(t, id)| {
            tokio::spawn(async move {
                let (name, got) = t.drain_to_end().await;
                (name, got, Some(id))
            })
        })
        .chain(observers.into_iter().map(|t| {
            tokio::spawn(async move {
                let (name, got) = t.drain_to_end().await;
                (name, got, None)
            })
        }))
        .collect();
    for drain in drains {
        let (name, got, expected) = drain.await.expect("no panic while draining");
        let byes: Vec<(String, i32)> = got
            .iter()
            .filter_map(|(id, m)| match m {
                Message::Bye(b) => Some((id.clone(), b.reason)),
                _ => None,
            })
            .collect();
        match expected {
            Some(id) => assert_eq!(
                byes,
                vec![(id, bye::Reason::ServerShutdown as i32)],
                "{name}: exactly one Bye{{SERVER_SHUTDOWN}} on its call; got {got:?}"
            ),
            None => assert!(byes.is_empty(), "{name} is no leg: {got:?}"),
        }
    }

    let status = tokio::time::timeout(EXIT_BOUND, child.wait())
        .await
        .unwrap_or_else(|_| panic!("the server did not exit within {EXIT_BOUND:?} of SIGTERM"))
        .expect("wait for the server");
    assert!(status.success(), "the server exited with {status}");
}
