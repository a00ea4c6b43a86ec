//! One soak terminal: a subscriber's device that registers, places calls (to terminals, groups and
//! phones, some with call context), reacts to what it is offered as a person would (rings, answers
//! after a moment, declines, ignores), and in a call holds, resumes, transfers, hands over to the
//! phone or hangs up; it pulls calls shown to it with `InCall`. Now and then its connection
//! misbehaves: the rpc is dropped and reopened within the reconnect grace, the whole connection
//! drops, the stream is half-closed, or the reader turns slow for a while.

use super::clients::{self, End, Kind, Rpc, Transport};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tonic::transport::Channel;
use webterminal_core::core::Msisdn;
use webterminal_core::proto::common::PhoneNumber;
use webterminal_core::proto::webterminal::web_terminal_message::Message;
use webterminal_core::proto::webterminal::{
    action, error, Action, Answer, Bye, Offer, Ringing, ToPhone, Transfer, WebTerminalMessage,
};

/// What every terminal shares: where the core is, who can be called, the SDPs, and the tallies.
pub struct World {
    pub addr: SocketAddr,
    pub secret: Vec<u8>,
    /// Numbers with terminals.
    pub numbers: Vec<Msisdn>,
    /// Group numbers (routing file).
    pub groups: Vec<Msisdn>,
    /// Numbers that only have a (simulated) phone.
    pub phones: Vec<Msisdn>,
    pub sdps: Sdps,
    pub tally: Tally,
    /// Setup latency: a terminal's Offer of a new call to a callee's device receiving it, in µs
    /// (carried in the call context as [`SENT_AT`]).
    pub setup: Mutex<hdrhistogram::Histogram<u64>>,
    /// What [`SENT_AT`] counts from.
    pub epoch: Instant,
}

/// Real browser and aiortc SDPs (`tests/fixtures/sdp/`).
pub struct Sdps {
    pub offers: Vec<String>,
    pub hold_offers: Vec<String>,
    pub answers: Vec<String>,
    pub hold_answers: Vec<String>,
}

/// What the terminals did and saw, summed.
#[derive(Default)]
pub struct Tally {
    pub calls_to_terminals: AtomicUsize,
    pub calls_to_groups: AtomicUsize,
    pub calls_to_phones: AtomicUsize,
    pub answers: AtomicUsize,
    pub declines: AtomicUsize,
    pub hang_ups: AtomicUsize,
    pub holds: AtomicUsize,
    pub resumes: AtomicUsize,
    pub pulls: AtomicUsize,
    pub handovers: AtomicUsize,
    pub transfers: AtomicUsize,
    pub rpc_drops: AtomicUsize,
    pub connection_drops: AtomicUsize,
    pub half_closes: AtomicUsize,
    pub slow_spells: AtomicUsize,
    pub refused_opens: AtomicUsize,
    /// `Error` messages received, by code name.
    pub errors: Mutex<BTreeMap<String, usize>>,
    /// Rpcs the core ended with a status, by code (`Closed` for a clean end).
    pub ends: Mutex<BTreeMap<String, usize>>,
}

fn bump(counter: &AtomicUsize) {
    counter.fetch_add(1, Ordering::Relaxed);
}

fn bump_named(map: &Mutex<BTreeMap<String, usize>>, name: String) {
    *map.lock().unwrap().entry(name).or_default() += 1;
}

/// How the terminal reaches the core, fixed for its life.
pub struct Setup {
    pub msisdn: Msisdn,
    pub transport: Transport,
    pub kind: Kind,
    /// A connection shared with other terminals (as a gateway multiplexes), or `None`: its own.
    pub shared: Option<Channel>,
    pub seed: u64,
    /// Mean time between two of its own actions.
    pub step: Duration,
}

/// Something the terminal decided to do later.
#[derive(Clone, Debug)]
enum Plan {
    Ringing(String),
    Answer(String),
    Decline(String),
    /// In an answered call: hold, transfer, hand over or hang up.
    MidCall(String),
    Resume(String),
    Pull(String),
}

struct Agent {
    world: Arc<World>,
    setup: Setup,
    rng: ChaCha8Rng,
    channel: Option<Channel>,
    rpc: Option<Rpc>,
    plans: Vec<(Instant, Plan)>,
    /// New calls offered to it, not answered or ended yet.
    offered: HashSet<String>,
    /// Calls it is in (answered on it).
    active: HashSet<String>,
    /// Calls of its number on other devices (`InCall`): it may pull them.
    observed: HashSet<String>,
    /// Re-offers it sent that wait for the far side's answer: the call is held or resumed.
    on_hold: HashSet<String>,
    /// When it last placed a call not yet answered or ended.
    dialling: Option<Instant>,
}

/// How long a call it placed may go unanswered before the terminal stops waiting for it (more than
/// the core's ring timeout in the soak).
const DIAL_PATIENCE: Duration = Duration::from_secs(10);

/// The call context key a caller puts the number it dials and its Offer's time in
/// (`NUMBER@MICROS`, µs since [`World::epoch`]), so that the callee's devices can measure the setup
/// latency of a direct call (not of a group call or a transfer, which wait for people).
pub const SENT_AT: &str = "soak.sent_us";

/// Runs one terminal until `deadline`, then leaves by dropping its rpc and connection.
pub async fn run(world: Arc<World>, setup: Setup, deadline: Instant) {
    let mut agent = Agent {
        rng: ChaCha8Rng::seed_from_u64(setup.seed),
        channel: setup.shared.clone(),
        world,
        setup,
        rpc: None,
        plans: Vec::new(),
        offered: HashSet::new(),
        active: HashSet::new(),
        observed: HashSet::new(),
        on_hold: HashSet::new(),
        dialling: None,
    };
    // Registrations spread over the first seconds, as devices come online.
    let spread = agent.below(3000) as u64;
    tokio::time::sleep(Duration::from_millis(spread)).await;
    while Instant::now() < deadline {
        agent.step().await;
    }
}

impl Agent {
    fn below(&mut self, n: usize) -> usize {
        (self.rng.next_u64() % n.max(1) as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn millis(&mut self, from: u64, to: u64) -> Duration {
        Duration::from_millis(from + self.below((to - from) as usize) as u64)
    }

    fn pick_number(&mut self, from: fn(&World) -> &Vec<Msisdn>) -> Msisdn {
        let list = from(&self.world);
        let i = self.below(list.len());
        from(&self.world)[i].clone()
    }

    fn forget_calls(&mut self) {
        self.plans.clear();
        self.offered.clear();
        self.active.clear();
        self.observed.clear();
        self.on_hold.clear();
        self.dialling = None;
    }

    fn plan(&mut self, after: Duration, plan: Plan) {
        self.plans.push((Instant::now() + after, plan));
    }

    /// One turn: (re)open if needed, read what arrived, carry out what is due, maybe act on a whim.
    async fn step(&mut self) {
        if self.rpc.is_none() && !self.reopen().await {
            tokio::time::sleep(Duration::from_millis(500)).await;
            return;
        }
        let pause = self.millis(20, 100);
        tokio::time::sleep(pause).await;
        self.read();
        let now = Instant::now();
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.plans)
            .into_iter()
            .partition(|(at, _)| *at <= now);
        self.plans = later;
        for (_, plan) in due {
            self.carry_out(plan).await;
        }
        // On a whim, about once per `step` on average.
        let chance = (pause.as_micros() * 1000 / self.setup.step.as_micros().max(1)) as usize;
        if self.below(1000) < chance {
            self.whim().await;
        }
    }

    async fn reopen(&mut self) -> bool {
        if self.channel.is_none() && self.setup.transport != Transport::WebSocket {
            self.channel = clients::connect(self.world.addr).await;
        }
        let channel = match &self.channel {
            Some(channel) => channel.clone(),
            None if self.setup.transport == Transport::WebSocket => {
                // The WebSocket path does not use it: any lazily built channel will do.
                match tonic::transport::Endpoint::from_shared(format!("http://{}", self.world.addr))
                {
                    Ok(endpoint) => endpoint.connect_lazy(),
                    Err(_) => return false,
                }
            }
            None => return false,
        };
        self.rpc = clients::open(
            self.world.addr,
            &channel,
            self.setup.transport,
            self.setup.kind,
            &self.world.secret,
            &self.setup.msisdn,
        )
        .await;
        if self.rpc.is_none() {
            bump(&self.world.tally.refused_opens);
        }
        self.rpc.is_some()
    }

    /// Reads everything that arrived; on the rpc's end, forgets its calls (a new rpc starts clean).
    fn read(&mut self) {
        loop {
            let Some(rpc) = self.rpc.as_mut() else { return };
            match rpc.rx.try_recv() {
                Ok((at, Ok(message))) => {
                    let opened = rpc.opened;
                    self.receive(message, at, opened)
                }
                Ok((_, Err(end))) => {
                    let name = match end {
                        End::Closed => "Closed".to_owned(),
                        End::Status(code) => format!("{code:?}"),
                    };
                    bump_named(&self.world.tally.ends, name);
                    self.rpc = None;
                    self.forget_calls();
                    return;
                }
                Err(tokio::sync::mpsc::error::TryRecvError::Empty) => return,
                Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => {
                    self.rpc = None;
                    self.forget_calls();
                    return;
                }
            }
        }
    }

    /// `message`, taken off the connection at `at` (unknown while the reader was slow) by an rpc
    /// opened at `opened`.
    fn receive(&mut self, message: WebTerminalMessage, at: Option<Instant>, opened: Instant) {
        let id = message.call_id;
        match message.message {
            Some(Message::Offer(offer)) => {
                if self.active.contains(&id) {
                    // A re-offer from the far side: answer it at once, in kind.
                    let after = self.millis(20, 300);
                    let held = offer.sdp.contains("a=sendonly") || offer.sdp.contains("a=inactive");
                    self.plan(after, Plan::Answer(id.clone()));
                    if held {
                        self.on_hold.insert(id);
                    } else {
                        self.on_hold.remove(&id);
                    }
                } else if !self.offered.contains(&id) {
                    if let Some(at) = at {
                        self.measure_setup(&offer.data, at, opened);
                    }
                    self.offered.insert(id.clone());
                    self.react_to_new_call(id);
                }
            }
            Some(Message::Answer(_)) => {
                self.dialling = None;
                if self.active.insert(id.clone()) {
                    let after = self.millis(1_000, 12_000);
                    self.plan(after, Plan::MidCall(id.clone()));
                }
                self.observed.remove(&id);
            }
            Some(Message::InCall(_)) => self.observe(id),
            Some(Message::Idle(_)) => {
                self.observed.remove(&id);
            }
            Some(Message::Bye(_)) => {
                self.dialling = None;
                self.offered.remove(&id);
                self.active.remove(&id);
                self.observed.remove(&id);
                self.on_hold.remove(&id);
            }
            Some(Message::Error(e)) => {
                let code = error::Code::try_from(e.err)
                    .map(|c| c.as_str_name().to_owned())
                    .unwrap_or_else(|_| e.err.to_string());
                bump_named(&self.world.tally.errors, code);
            }
            _ => {}
        }
    }

    /// A call of its number on another device: now and then it pulls it a moment later.
    fn observe(&mut self, id: String) {
        if !self.active.contains(&id) && self.observed.insert(id.clone()) && self.chance(25) {
            let after = self.millis(300, 4_000);
            self.plan(after, Plan::Pull(id));
        }
    }

    fn react_to_new_call(&mut self, id: String) {
        match self.below(100) {
            0..=59 => {
                let ring = self.millis(10, 200);
                let answer = self.millis(300, 3_000);
                self.plan(ring, Plan::Ringing(id.clone()));
                self.plan(answer, Plan::Answer(id));
            }
            60..=69 => {
                let after = self.millis(500, 2_000);
                self.plan(after, Plan::Decline(id));
            }
            // Let it ring: another device may take it, or the ring timeout ends it.
            _ => {}
        }
    }

    /// Records a direct call's setup latency: from its caller's Offer to `at`. An Offer sent before
    /// this rpc was `opened` (a ringing call shown to a device that just came) is not a setup.
    fn measure_setup(&self, context: &HashMap<String, String>, at: Instant, opened: Instant) {
        let Some((to, sent)) = context.get(SENT_AT).and_then(|v| v.split_once('@')) else {
            return;
        };
        let Ok(sent) = sent.parse::<u64>() else {
            return;
        };
        let opened = opened.duration_since(self.world.epoch).as_micros() as u64;
        if to != self.setup.msisdn.as_str() || sent < opened {
            return;
        }
        let now = at.duration_since(self.world.epoch).as_micros() as u64;
        let _ = self
            .world
            .setup
            .lock()
            .unwrap()
            .record(now.saturating_sub(sent).max(1));
    }

    /// The id to send on: a Pipe's messages carry none.
    fn wire_id(&self, id: &str) -> String {
        match self.setup.kind {
            Kind::Pipe => String::new(),
            Kind::MultiPipe => id.to_owned(),
        }
    }

    async fn send(&mut self, id: &str, body: Message) {
        let message = WebTerminalMessage {
            call_id: self.wire_id(id),
            message: Some(body),
        };
        if let Some(rpc) = self.rpc.as_ref() {
            // A full or closed stream: the next read says how it ended.
            let _ = rpc.tx.try_send(message);
        }
    }

    fn sdp(&mut self, from: fn(&Sdps) -> &Vec<String>) -> String {
        let list = from(&self.world.sdps);
        let i = self.below(list.len());
        from(&self.world.sdps)[i].clone()
    }

    async fn carry_out(&mut self, plan: Plan) {
        let tally = self.world.clone();
        let tally = &tally.tally;
        match plan {
            Plan::Ringing(id) if self.offered.contains(&id) => {
                self.send(&id, Message::Ringing(Ringing {})).await
            }
            Plan::Answer(id) if self.offered.remove(&id) => {
                let sdp = self.sdp(|s| &s.answers);
                self.send(&id, Message::Answer(Answer { sdp })).await;
                bump(&tally.answers);
                self.active.insert(id.clone());
                let after = self.millis(1_000, 12_000);
                self.plan(after, Plan::MidCall(id));
            }
            Plan::Answer(id) if self.active.contains(&id) => {
                // The answer to a far-side re-offer.
                let sdp = if self.on_hold.remove(&id) {
                    self.sdp(|s| &s.hold_answers)
                } else {
                    self.sdp(|s| &s.answers)
                };
                self.send(&id, Message::Answer(Answer { sdp })).await;
            }
            Plan::Decline(id) if self.offered.remove(&id) => {
                self.send(&id, Message::Bye(Bye { reason: 0 })).await;
                bump(&tally.declines);
            }
            Plan::MidCall(id) if self.active.contains(&id) => self.mid_call(id).await,
            Plan::Resume(id) if self.active.contains(&id) => {
                let sdp = self.sdp(|s| &s.offers);
                self.send(&id, reoffer(sdp)).await;
                bump(&tally.resumes);
                let after = self.millis(1_000, 8_000);
                self.plan(after, Plan::MidCall(id));
            }
            Plan::Pull(id) if self.observed.remove(&id) => {
                let sdp = self.sdp(|s| &s.offers);
                self.send(&id, reoffer(sdp)).await;
                bump(&tally.pulls);
            }
            _ => {}
        }
    }

    async fn mid_call(&mut self, id: String) {
        let tally = self.world.clone();
        let tally = &tally.tally;
        match self.below(100) {
            0..=54 => {
                self.active.remove(&id);
                self.send(&id, Message::Bye(Bye { reason: 0 })).await;
                bump(&tally.hang_ups);
            }
            55..=74 => {
                let sdp = self.sdp(|s| &s.hold_offers);
                self.send(&id, reoffer(sdp)).await;
                bump(&tally.holds);
                let after = self.millis(1_000, 5_000);
                self.plan(after, Plan::Resume(id));
            }
            75..=84 => {
                let to = if self.chance(30) {
                    self.pick_number(|w| &w.groups)
                } else {
                    self.pick_number(|w| &w.numbers)
                };
                self.active.remove(&id);
                let transfer = Transfer {
                    msisdn: Some(PhoneNumber {
                        e164: to.as_str().to_owned(),
                    }),
                };
                let body = Message::Action(Action {
                    message: Some(action::Message::Transfer(transfer)),
                });
                self.send(&id, body).await;
                bump(&tally.transfers);
            }
            85..=92 => {
                self.active.remove(&id);
                let body = Message::Action(Action {
                    message: Some(action::Message::ToPhone(ToPhone {})),
                });
                self.send(&id, body).await;
                bump(&tally.handovers);
            }
            // Talk on: the far side ends it.
            _ => {}
        }
    }

    /// Something not prompted by any message: a new call, or trouble with the connection.
    async fn whim(&mut self) {
        let tally = self.world.clone();
        let tally = &tally.tally;
        match self.below(100) {
            0..=49 => {
                let to = self.pick_number(|w| &w.numbers);
                if to != self.setup.msisdn {
                    bump(&tally.calls_to_terminals);
                    self.dial(to).await;
                }
            }
            50..=64 => {
                bump(&tally.calls_to_groups);
                let to = self.pick_number(|w| &w.groups);
                self.dial(to).await;
            }
            65..=79 => {
                bump(&tally.calls_to_phones);
                let to = self.pick_number(|w| &w.phones);
                self.dial(to).await;
            }
            80..=85 => {
                // Drop the rpc and come back at once: within the reconnect grace.
                if let Some(rpc) = self.rpc.take() {
                    rpc.cancel();
                }
                self.forget_calls();
                bump(&tally.rpc_drops);
            }
            86..=88 if self.setup.shared.is_none() => {
                // Drop the whole connection (its own only: others share the shared one).
                self.rpc = None;
                self.channel = None;
                self.forget_calls();
                bump(&tally.connection_drops);
            }
            89..=90 => {
                if let Some(rpc) = self.rpc.as_mut() {
                    rpc.half_close();
                    bump(&tally.half_closes);
                }
            }
            91..=93 => {
                if let Some(rpc) = self.rpc.as_ref() {
                    let slow = rpc.slow.clone();
                    slow.store(true, Ordering::Relaxed);
                    let spell = self.millis(500, 3_000);
                    tokio::spawn(async move {
                        tokio::time::sleep(spell).await;
                        slow.store(false, Ordering::Relaxed);
                    });
                    bump(&tally.slow_spells);
                }
            }
            _ => {}
        }
    }

    async fn dial(&mut self, to: Msisdn) {
        // A Pipe carries one call at a time: a second one would only be refused.
        let dialling = self.dialling.is_some_and(|at| at.elapsed() < DIAL_PATIENCE);
        if self.setup.kind == Kind::Pipe
            && (dialling || !self.active.is_empty() || !self.offered.is_empty())
        {
            return;
        }
        let id = match self.setup.kind {
            Kind::Pipe => String::new(),
            Kind::MultiPipe => {
                uuid::Uuid::from_u64_pair(self.rng.next_u64(), self.rng.next_u64()).to_string()
            }
        };
        let sdp = self.sdp(|s| &s.offers);
        let mut body = Offer {
            sdp,
            msisdn: Some(PhoneNumber {
                e164: to.as_str().to_owned(),
            }),
            data: Default::default(),
        };
        if self.chance(30) {
            let contact = format!("CRM-{}", self.below(100_000));
            body.data.insert("contact_ref".to_owned(), contact);
        }
        let sent = self.world.epoch.elapsed().as_micros();
        body.data.insert(SENT_AT.to_owned(), format!("{to}@{sent}"));
        self.dialling = Some(Instant::now());
        self.send(&id, Message::Offer(body)).await;
    }
}

/// A re-offer, or a pull: an Offer on a call with no number.
fn reoffer(sdp: String) -> Message {
    Message::Offer(Offer {
        sdp,
        msisdn: None,
        data: Default::default(),
    })
}
