//! Shutdown under load (PROTOCOL.md 4.9), against the real binary: `webterminal-core serve`
//! with 20 established calls, 4 ringing calls forked to two terminals each, and a few observers (56
//! terminals, Pipe and MultiPipe, each on a connection of its own) gets SIGTERM. Every live leg —
//! both legs of every established call, every ringing caller and every fork — gets
//! `Bye{SERVER_SHUTDOWN}` with its call id, every response stream (observers' too) ends with status
//! OK, and the process exits 0 within a bound.

#[path = "support/binary.rs"]
mod binary;

use binary::terminal::{self, fixture, offer, Kind};
use std::net::SocketAddr;
use std::time::Duration;
use tonic::transport::Channel;
use webterminal_core::proto::webterminal::web_terminal_message::Message;
use webterminal_core::proto::webterminal::{bye, Answer, Ringing};

const SECRET: &str = "shutdown-under-load-test-secret";
const ESTABLISHED: usize = 20;
const RINGING: usize = 4;
const OBSERVED: usize = 4;
/// How long the process may take to exit after SIGTERM.
const EXIT_BOUND: Duration = Duration::from_secs(10);
const WAIT: Duration = Duration::from_secs(10);

/// A distinct number per (role, index).
fn number(role: u32, i: usize) -> String {
    format!("+47{role}{:07}", 5000 + i)
}

/// A shared terminal with a name for the failures and its kind for the ids it sends: one leg or
/// observer of the load, drained to the end of its stream after SIGTERM.
struct Terminal {
    name: String,
    kind: Kind,
    terminal: terminal::Terminal,
}

impl Terminal {
    async fn open(addr: SocketAddr, kind: Kind, msisdn: &str, name: String) -> Terminal {
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_timeout(WAIT)
            .connect()
            .await
            .expect("connect");
        let terminal = terminal::Terminal::open(channel, kind, SECRET, msisdn)
            .await
            .unwrap_or_else(|s| panic!("{name}: rpc refused: {s:?}"));
        let mut t = Terminal {
            name,
            kind,
            terminal,
        };
        if kind == Kind::Pipe {
            match t.next().await {
                Message::Idle(_) | Message::InCall(_) => {}
                other => panic!("{}: greeted with {other:?}", t.name),
            }
        }
        t
    }

    async fn next_with_id(&mut self) -> (String, Message) {
        let m = tokio::time::timeout(WAIT, self.terminal.rx.message())
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
        self.terminal.send(call_id, message).await;
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
            match tokio::time::timeout(WAIT, self.terminal.rx.message()).await {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_byes_every_leg_and_exits_0() {
    tokio::time::timeout(Duration::from_secs(90), scenario())
        .await
        .expect("the shutdown-under-load test finished in time");
}

async fn scenario() {
    let mut core = binary::serve()
        .args(["--jwt-secret", SECRET, "--phone-network", "none"])
        .args(["--records", "none"])
        .env("RUST_LOG", "error")
        .start();
    let addr = core.addr;

    let sdp = fixture("chromium-offer.sdp");
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
        caller.send(&caller.id(&chosen), offer(&sdp, &b)).await;
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
        caller.send(&a_id, offer(&sdp, &b)).await;
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
    core.signal("TERM");

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

    // Within EXIT_BOUND of SIGTERM.
    let status = core.wait_exit(EXIT_BOUND).await;
    assert!(status.success(), "the server exited with {status}");
}
