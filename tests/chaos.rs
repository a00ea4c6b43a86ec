//! Chaos over real gRPC: 30 terminals of 4 numbers, Pipe and MultiPipe, each on a
//! connection of its own, place, answer, decline, pull, renegotiate (real SDP fixtures), hang up, drop
//! their rpc or their whole connection, half-close and come back, at random (a seeded xorshift), for a
//! bounded time and number of steps, with short ring, negotiation and grace timeouts. Afterwards —
//! every client gone — the switch holds no call and no terminal (PROTOCOL.md section 6), and the
//! runtime's task count is back to where it was before the first terminal came (no leaked task).
//!
//! `CHAOS_SEED=n` replays one run; the seed is printed on failure.

#[path = "support/in_process.rs"]
mod in_process;
#[path = "support/terminal.rs"]
mod terminal;

use in_process::{no_phones, Core};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use terminal::{fixture, message, Kind};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::Code;
use webterminal_core::driver::{DriverHandle, DriverStats};
use webterminal_core::proto::common::PhoneNumber;
use webterminal_core::proto::webterminal::web_terminal_message::Message;
use webterminal_core::proto::webterminal::web_terminal_service_client::WebTerminalServiceClient;
use webterminal_core::proto::webterminal::{
    action, error, Action, Answer, Bye, Offer, Ringing, ToPhone, WebTerminalMessage,
};

const SECRET: &[u8] = b"chaos test secret, 32 bytes long";
const NUMBERS: [&str; 4] = ["+4799980001", "+4799980002", "+4799980003", "+4799980004"];
const TERMINALS: usize = 30;
/// How long the terminals act.
const CHAOS_TIME: Duration = Duration::from_secs(5);
/// Most steps one terminal takes.
const STEPS_PER_TERMINAL: usize = 400;
/// How long the switch may take to forget everything once the clients are gone.
const SETTLE: Duration = Duration::from_secs(10);

/// A tiny xorshift64* generator: no `rand` dependency, and a seed replays a run.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        (!items.is_empty()).then(|| &items[self.below(items.len())])
    }

    fn uuid(&mut self) -> String {
        uuid::Uuid::from_u64_pair(self.next(), self.next()).to_string()
    }
}

struct Sdps {
    offers: Vec<String>,
    answers: Vec<String>,
}

/// What happened, over all terminals: to check the chaos did exercise the switch, and nothing
/// unexpected came back.
#[derive(Default)]
struct Tally {
    calls_placed: AtomicUsize,
    offers_received: AtomicUsize,
    answers_received: AtomicUsize,
    in_calls: AtomicUsize,
    byes: AtomicUsize,
    pulls_or_reoffers: AtomicUsize,
    reconnects: AtomicUsize,
    rate_limited: AtomicUsize,
    /// Streams that ended with a status other than OK while the terminal was still using them.
    bad_status: AtomicUsize,
}

fn bump(counter: &AtomicUsize) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// One open rpc: the request sender, and the response messages read by a task of its own (not the
/// shared `Terminal`: an agent polls for what came without waiting, and sees how the stream ended).
struct Rpc {
    tx: mpsc::Sender<WebTerminalMessage>,
    rx: mpsc::UnboundedReceiver<Result<WebTerminalMessage, tonic::Status>>,
    reader: tokio::task::JoinHandle<()>,
}

async fn open(channel: &Channel, kind: Kind, msisdn: &str) -> Option<Rpc> {
    let (tx, requests) = mpsc::channel(64);
    let mut request = tonic::Request::new(ReceiverStream::new(requests));
    terminal::authorize(&mut request, SECRET, msisdn);
    let mut client = WebTerminalServiceClient::new(channel.clone());
    let response = tokio::time::timeout(Duration::from_secs(5), async {
        match kind {
            Kind::Pipe => client.pipe(request).await,
            Kind::Multi => client.multi_pipe(request).await,
        }
    })
    .await
    .expect("the rpc opens in time")
    .ok()?;
    let mut stream = response.into_inner();
    let (forward, rx) = mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        loop {
            match stream.message().await {
                Ok(Some(m)) => {
                    if forward.send(Ok(m)).is_err() {
                        return;
                    }
                }
                Ok(None) => return,
                Err(status) => {
                    let _ = forward.send(Err(status));
                    return;
                }
            }
        }
    });
    Some(Rpc { tx, rx, reader })
}

async fn connect(addr: SocketAddr) -> Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .expect("connect to the core")
}

/// One terminal acting at random until `deadline` or its step budget is spent.
struct Agent {
    addr: SocketAddr,
    number: usize,
    kind: Kind,
    rng: Rng,
    sdps: Arc<Sdps>,
    tally: Arc<Tally>,
    /// Ids it was offered (new calls or re-offers) and may answer.
    offered: Vec<String>,
    /// Ids of calls it takes part in or observes: for re-offers, pulls, Bye, ToPhone.
    known: Vec<String>,
}

impl Agent {
    fn forget_all(&mut self) {
        self.offered.clear();
        self.known.clear();
    }

    fn remember(list: &mut Vec<String>, id: &str) {
        if !id.is_empty() && !list.iter().any(|x| x == id) {
            list.push(id.to_owned());
            if list.len() > 8 {
                list.remove(0);
            }
        }
    }

    /// Reads everything that arrived; `false` when the stream ended.
    fn read(
        &mut self,
        rx: &mut mpsc::UnboundedReceiver<Result<WebTerminalMessage, tonic::Status>>,
    ) -> bool {
        loop {
            match rx.try_recv() {
                Ok(Ok(m)) => {
                    let id = m.call_id.clone();
                    match m.message {
                        Some(Message::Offer(_)) => {
                            bump(&self.tally.offers_received);
                            Self::remember(&mut self.offered, &id);
                            Self::remember(&mut self.known, &id);
                        }
                        Some(Message::Answer(_)) => {
                            bump(&self.tally.answers_received);
                            Self::remember(&mut self.known, &id);
                        }
                        Some(Message::InCall(_)) => {
                            bump(&self.tally.in_calls);
                            Self::remember(&mut self.known, &id);
                        }
                        Some(Message::Bye(_)) => {
                            bump(&self.tally.byes);
                            self.offered.retain(|x| *x != id);
                            // Kept in `known`: a Bye'd id is sometimes reused on purpose (stale ids).
                        }
                        Some(Message::Idle(_)) => {
                            self.known.retain(|x| *x != id);
                        }
                        // RATE_LIMIT_HIT also answers a call over the MultiPipe cap or a second
                        // call from a Pipe; only the token buckets say "per second".
                        Some(Message::Error(e))
                            if e.err == error::Code::RateLimitHit as i32
                                && e.message.contains("per second") =>
                        {
                            bump(&self.tally.rate_limited);
                        }
                        _ => {}
                    }
                }
                Ok(Err(status)) => {
                    if status.code() != Code::Ok {
                        eprintln!("terminal of {}: stream ended with {status:?}", self.number);
                        bump(&self.tally.bad_status);
                    }
                    return false;
                }
                Err(mpsc::error::TryRecvError::Empty) => return true,
                Err(mpsc::error::TryRecvError::Disconnected) => return false,
            }
        }
    }

    fn id_for_send(&self, id: &str) -> String {
        match self.kind {
            Kind::Pipe => String::new(),
            Kind::Multi => id.to_owned(),
        }
    }

    async fn run(mut self, deadline: Instant) {
        let mut channel = connect(self.addr).await;
        let mut rpc = open(&channel, self.kind, NUMBERS[self.number]).await;
        for _ in 0..STEPS_PER_TERMINAL {
            if Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2 + self.rng.below(25) as u64)).await;
            let Some(current) = rpc.as_mut() else {
                // Refused (e.g. a terminal limit): try again later.
                bump(&self.tally.reconnects);
                rpc = open(&channel, self.kind, NUMBERS[self.number]).await;
                continue;
            };
            if !self.read(&mut current.rx) {
                self.forget_all();
                rpc = open(&channel, self.kind, NUMBERS[self.number]).await;
                continue;
            }
            let roll = self.rng.below(100);
            let sent = match roll {
                // A new call to another number (sometimes one nobody has: no terminal there).
                0..=14 => {
                    let to = (self.number + 1 + self.rng.below(NUMBERS.len() - 1)) % NUMBERS.len();
                    let id = match self.kind {
                        Kind::Pipe => String::new(),
                        Kind::Multi => self.rng.uuid(),
                    };
                    let sdp = self.rng.pick(&self.sdps.offers).unwrap().clone();
                    bump(&self.tally.calls_placed);
                    Self::remember(&mut self.known, &id);
                    current
                        .tx
                        .send(message(
                            &id,
                            Message::Offer(Offer {
                                sdp,
                                msisdn: Some(PhoneNumber {
                                    e164: NUMBERS[to].into(),
                                }),
                                data: Default::default(),
                            }),
                        ))
                        .await
                }
                // Answer something it was offered.
                15..=39 => match self.rng.pick(&self.offered).cloned() {
                    Some(id) => {
                        self.offered.retain(|x| *x != id);
                        let sdp = self.rng.pick(&self.sdps.answers).unwrap().clone();
                        current
                            .tx
                            .send(message(
                                &self.id_for_send(&id),
                                Message::Answer(Answer { sdp }),
                            ))
                            .await
                    }
                    None => Ok(()),
                },
                40..=44 => match self.rng.pick(&self.offered).cloned() {
                    Some(id) => {
                        current
                            .tx
                            .send(message(
                                &self.id_for_send(&id),
                                Message::Ringing(Ringing {}),
                            ))
                            .await
                    }
                    None => Ok(()),
                },
                // Re-offer a call it carries, or pull one it observes.
                45..=56 => match self.rng.pick(&self.known).cloned() {
                    Some(id) => {
                        bump(&self.tally.pulls_or_reoffers);
                        let sdp = self.rng.pick(&self.sdps.offers).unwrap().clone();
                        current
                            .tx
                            .send(message(
                                &self.id_for_send(&id),
                                Message::Offer(Offer {
                                    sdp,
                                    msisdn: None,
                                    data: Default::default(),
                                }),
                            ))
                            .await
                    }
                    None => Ok(()),
                },
                // Hang up, cancel or decline.
                57..=70 => match self.rng.pick(&self.known).cloned() {
                    Some(id) => {
                        current
                            .tx
                            .send(message(
                                &self.id_for_send(&id),
                                Message::Bye(Bye { reason: 0 }),
                            ))
                            .await
                    }
                    None => Ok(()),
                },
                71..=72 => match self.rng.pick(&self.known).cloned() {
                    Some(id) => {
                        current
                            .tx
                            .send(message(
                                &self.id_for_send(&id),
                                Message::Action(Action {
                                    message: Some(action::Message::ToPhone(ToPhone {})),
                                }),
                            ))
                            .await
                    }
                    None => Ok(()),
                },
                // Drop the rpc (cancel) and open a new one, maybe of the other kind.
                73..=75 => {
                    let old = rpc.take().unwrap();
                    drop(old.tx);
                    drop(old.rx);
                    old.reader.abort();
                    self.forget_all();
                    if self.rng.chance(30) {
                        self.kind = match self.kind {
                            Kind::Pipe => Kind::Multi,
                            Kind::Multi => Kind::Pipe,
                        };
                    }
                    bump(&self.tally.reconnects);
                    rpc = open(&channel, self.kind, NUMBERS[self.number]).await;
                    Ok(())
                }
                // Drop the whole connection and come back on a new one.
                76 => {
                    let old = rpc.take().unwrap();
                    old.reader.abort();
                    drop(old);
                    channel = connect(self.addr).await;
                    self.forget_all();
                    bump(&self.tally.reconnects);
                    rpc = open(&channel, self.kind, NUMBERS[self.number]).await;
                    Ok(())
                }
                // Half-close, keep reading a little, then go and come back.
                77 => {
                    let mut old = rpc.take().unwrap();
                    drop(old.tx);
                    let until =
                        Instant::now() + Duration::from_millis(50 + self.rng.below(200) as u64);
                    while Instant::now() < until && self.read(&mut old.rx) {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    old.reader.abort();
                    drop(old.rx);
                    self.forget_all();
                    bump(&self.tally.reconnects);
                    rpc = open(&channel, self.kind, NUMBERS[self.number]).await;
                    Ok(())
                }
                _ => Ok(()),
            };
            // A failed send means the core ended the stream: the next step reads how.
            let _ = sent;
        }
        // Leave by dropping everything: the rpc is cancelled and the connection closes.
        if let Some(current) = rpc {
            current.reader.abort();
            drop(current);
        }
        drop(channel);
    }
}

async fn stats(driver: &DriverHandle) -> DriverStats {
    tokio::time::timeout(Duration::from_secs(5), driver.stats())
        .await
        .expect("the driver answers in time")
        .expect("the driver runs")
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_leaves_no_call_no_terminal_and_no_task_behind() {
    let seed = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("chaos seed: {seed} (CHAOS_SEED={seed} replays it)");
    tokio::time::timeout(Duration::from_secs(60), chaos(seed))
        .await
        .unwrap_or_else(|_| panic!("the chaos test took over 60 s (seed {seed})"));
}

async fn chaos(seed: u64) {
    let mut config = no_phones(SECRET);
    config.switch.ring_timeout = Duration::from_millis(400);
    config.switch.negotiation_timeout = Duration::from_millis(250);
    config.switch.reconnect_grace = Duration::from_millis(300);
    config.switch.multipipe_call_cap = 4;
    config.messages_per_second = 10_000;
    config.call_attempts_per_second = 10_000;
    let core = Core::start(config).await;
    let (addr, driver) = (core.addr, core.driver.clone());
    // Let the server settle, then take the baseline: the server's own tasks, no client.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let baseline = alive_tasks();

    let sdps = Arc::new(Sdps {
        offers: [
            "chromium-offer.sdp",
            "aiortc-offer.sdp",
            "chromium-hold-offer.sdp",
            "chromium-icerestart-offer.sdp",
            "aiortc-hold-offer.sdp",
        ]
        .iter()
        .map(|n| fixture(n))
        .collect(),
        answers: [
            "chromium-answer.sdp",
            "aiortc-answer.sdp",
            "chromium-hold-answer.sdp",
            "aiortc-hold-answer.sdp",
        ]
        .iter()
        .map(|n| fixture(n))
        .collect(),
    });
    let tally = Arc::new(Tally::default());
    let mut rng = Rng::new(seed);
    let deadline = Instant::now() + CHAOS_TIME;
    let mut agents = Vec::new();
    for i in 0..TERMINALS {
        let agent = Agent {
            addr,
            number: i % NUMBERS.len(),
            kind: if i % 2 == 0 { Kind::Pipe } else { Kind::Multi },
            rng: Rng::new(rng.next()),
            sdps: sdps.clone(),
            tally: tally.clone(),
            offered: Vec::new(),
            known: Vec::new(),
        };
        agents.push(tokio::spawn(agent.run(deadline)));
    }
    let mut mid = None;
    for (i, agent) in agents.into_iter().enumerate() {
        if i == 0 {
            // Halfway through, the switch is busy.
            tokio::time::sleep(CHAOS_TIME / 2).await;
            mid = Some(stats(&driver).await);
        }
        tokio::time::timeout(CHAOS_TIME + Duration::from_secs(20), agent)
            .await
            .expect("a terminal finished in time")
            .expect("a terminal did not panic");
    }

    // Every client is gone: the switch must forget every terminal and end every call (after the
    // reconnect grace), and every task the clients caused must end.
    let settle_until = Instant::now() + SETTLE;
    let mut last = stats(&driver).await;
    while last != (DriverStats::default()) && Instant::now() < settle_until {
        tokio::time::sleep(Duration::from_millis(50)).await;
        last = stats(&driver).await;
    }
    let mut tasks = alive_tasks();
    while tasks > baseline && Instant::now() < settle_until {
        tokio::time::sleep(Duration::from_millis(50)).await;
        tasks = alive_tasks();
    }
    let count = |c: &AtomicUsize| c.load(Ordering::Relaxed);
    let summary = format!(
        "seed {seed}: mid-run {mid:?}; placed {}, offers {}, answers {}, InCall {}, Bye {}, \
         re-offers/pulls {}, reconnects {}, rate limited {}, bad status {}",
        count(&tally.calls_placed),
        count(&tally.offers_received),
        count(&tally.answers_received),
        count(&tally.in_calls),
        count(&tally.byes),
        count(&tally.pulls_or_reoffers),
        count(&tally.reconnects),
        count(&tally.rate_limited),
        count(&tally.bad_status),
    );
    eprintln!("{summary}");
    assert_eq!(
        last,
        DriverStats::default(),
        "calls or terminals left {SETTLE:?} after every client went; {summary}"
    );
    assert!(
        tasks <= baseline,
        "{tasks} tasks alive, {baseline} before the terminals came; {summary}"
    );
    // The chaos did exercise the switch, with the raised rate limits not in the way.
    assert!(count(&tally.answers_received) >= 10, "{summary}");
    assert!(count(&tally.in_calls) >= 5, "{summary}");
    assert!(count(&tally.reconnects) >= 10, "{summary}");
    assert_eq!(count(&tally.rate_limited), 0, "{summary}");
    assert_eq!(count(&tally.bad_status), 0, "{summary}");

    core.stop().await;
}
