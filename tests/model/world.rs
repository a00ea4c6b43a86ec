//! The world of the model-based test (`tests/model.rs`) and of the fuzz target (`fuzz/`): a small
//! set of numbers, up to six terminals (Pipe and MultiPipe), a phone network whose legs are known from
//! the switch's `PhoneCommand`s, and a clock moved by hand — plus a model of what every terminal was
//! told, checked after every step against what PROTOCOL.md promises.
//!
//! Both the proptest and the fuzz target include this file with `#[path]`: [`Op`] is the shared input
//! type ([`Op::decode`] maps four raw bytes to one, for the fuzzer), [`run`] the interpreter.
//!
//! What is checked after every step:
//! - `Switch::check_invariants`, and the terminal count;
//! - at most one active leg per side: no two terminals of one number believe they carry one call;
//! - ids and numbers stay with their subscriber: every call id a terminal is told about belongs to
//!   its own number (each id has one owner), and every `from`/`peer` is the other party of a call
//!   its number was part of;
//! - every terminal's view is consistent with what it was told: Answer, Ringing, Bye and Error only
//!   for calls it has in the matching state, an Offer for a new call only when it is eligible
//!   (not half-closed, a Pipe in no call, a MultiPipe under its cap), a Pipe never told InCall while
//!   in a call of its own, Idle for a MultiPipe only for a call it observes (or never heard of: it
//!   registered while the call was up), no observer left showing a call that ended;
//! - a refused message changes nothing (no output), and an accepted one fits the terminal's state;
//! - at shutdown every live leg gets `Bye{SERVER_SHUTDOWN}` and no call is left;
//! - groups (section 10), when the setup installs one at [`GROUP`]: a call to it gets `Ringing` at
//!   once (or `Bye{UNAVAILABLE}` at once when no member but the caller has a terminal); its members'
//!   terminals are offered it with `from` = the caller, under the one id of the group's side, which
//!   no number but a member offered it (and, once answered, the answering member) is ever told; a
//!   member is offered at most one group call at a time and none while in an answered call; a
//!   member's decline never ends the call; a member one at a time rings no longer than the member
//!   ring timeout; the caller never gets `BUSY` or `DECLINED`, and `NO_ANSWER` exactly at the queue
//!   timeout; once a member answers, the caller's peer is that member, and the `Answered` event
//!   names the member, the group and the hold time; members' phones are never rung;
//! - at the end, with every terminal gone, the grace over and every phone leg hung up, no call is left.

#![allow(dead_code)]

use std::collections::HashSet;
use std::fmt::Write as _;
use std::time::{Duration, Instant};
use webterminal_core::core::*;

/// The numbers of the world: terminals register for the first [`TERMINAL_NUMBERS`]; the fourth has
/// only its phone; the last, [`GROUP`], is a group's number when the setup installs one (else a
/// number with no terminal either). No terminal ever registers as it.
pub const NUMBERS: [&str; 5] = [
    "+4790000001",
    "+4790000002",
    "+4790000003",
    "+4790000004",
    "+4721000000",
];
pub const TERMINAL_NUMBERS: usize = 3;
/// The index of the group's number in [`NUMBERS`].
pub const GROUP: usize = 4;
/// The member ring timeouts a setup may choose (ms).
pub const MEMBER_RING_CHOICES: [u16; 2] = [25, 45];
/// The queue timeouts a setup may choose (ms).
pub const QUEUE_CHOICES: [u16; 2] = [90, 160];
pub const MAX_TERMINALS: usize = 6;
pub const MAX_TERMINALS_PER_MSISDN: usize = 3;
pub const MULTIPIPE_CALL_CAP: usize = 3;
pub const RING_MS: u16 = 100;
pub const NEGOTIATION_MS: u16 = 40;
pub const GRACE_MS: u16 = 70;

const NAMES: [&str; 5] = ["A", "B", "C", "D", "G"];

/// The SDP fixtures, relayed as they are (paths relative to this file).
const SDPS: [&str; 6] = [
    include_str!("../fixtures/sdp/chromium-offer.sdp"),
    include_str!("../fixtures/sdp/chromium-answer.sdp"),
    include_str!("../fixtures/sdp/aiortc-offer.sdp"),
    include_str!("../fixtures/sdp/aiortc-answer.sdp"),
    include_str!("../fixtures/sdp/chromium-hold-offer.sdp"),
    include_str!("../fixtures/sdp/chromium-icerestart-offer.sdp"),
];

/// How the switch is configured for one run.
#[derive(Clone, Copy, Debug)]
pub struct Setup {
    /// A phone network is attached (every call also rings the callee's phone; ToPhone works).
    pub phone_network: bool,
    /// A reconnect grace of [`GRACE_MS`] (else zero: a gone active leg ends its call at once).
    pub grace: bool,
    /// A group at [`GROUP`], installed with `Switch::set_router` (else no router at all).
    pub group: Option<GroupSetup>,
}

/// The group of a run (PROTOCOL.md section 10).
#[derive(Clone, Copy, Debug)]
pub struct GroupSetup {
    pub strategy: Strategy,
    /// The members: bit `i` for `NUMBERS[i]`, `i` < 4 (D, with no terminal, may be one); none
    /// means A alone.
    pub members: u8,
    /// Index into [`MEMBER_RING_CHOICES`] (modulo).
    pub member_ring: u8,
    /// Index into [`QUEUE_CHOICES`] (modulo).
    pub queue: u8,
}

impl GroupSetup {
    /// Three raw bytes to a group (for the fuzzer).
    pub fn decode(b: [u8; 3]) -> GroupSetup {
        let [s, members, t] = b;
        GroupSetup {
            strategy: match s % 3 {
                0 => Strategy::RingAll,
                1 => Strategy::RoundRobin,
                _ => Strategy::LongestIdle,
            },
            members,
            member_ring: t & 1,
            queue: (t >> 1) & 1,
        }
    }

    /// Whether `NUMBERS[number]` is a member.
    pub fn is_member(&self, number: usize) -> bool {
        number < GROUP && self.member_mask() & (1 << number) != 0
    }

    fn member_mask(&self) -> u8 {
        match self.members & 0x0f {
            0 => 1,
            m => m,
        }
    }

    pub fn member_ring_ms(&self) -> u16 {
        MEMBER_RING_CHOICES[usize::from(self.member_ring) % MEMBER_RING_CHOICES.len()]
    }

    pub fn queue_ms(&self) -> u16 {
        QUEUE_CHOICES[usize::from(self.queue) % QUEUE_CHOICES.len()]
    }

    /// The routing file of the group.
    fn table(&self) -> GroupTable {
        let members = (0..GROUP)
            .filter(|i| self.is_member(*i))
            .map(|i| Member {
                msisdn: Msisdn::parse(NUMBERS[i]).unwrap(),
                extension: format!("10{i}"),
            })
            .collect();
        let group = Group {
            number: Msisdn::parse(NUMBERS[GROUP]).unwrap(),
            strategy: self.strategy,
            member_ring_timeout: Duration::from_millis(self.member_ring_ms().into()),
            queue_timeout: Duration::from_millis(self.queue_ms().into()),
            members,
        };
        GroupTable::new([group]).expect("the model's group is valid")
    }
}

/// One run: a setup, the steps, and whether the server shuts down after them.
#[derive(Clone, Debug)]
pub struct Input {
    pub setup: Setup,
    pub ops: Vec<Op>,
    pub shutdown: bool,
}

/// One step. Indices (`term`, `call`, `leg`, `sdp`, ...) are taken modulo what exists at that moment,
/// so every sequence is meaningful.
#[derive(Clone, Debug)]
pub enum Op {
    /// A terminal opens `Pipe` (or `MultiPipe`) as number `number % 3`.
    Register { number: u8, multi: bool },
    /// A terminal's rpc ends (PROTOCOL.md 4.8).
    Unregister { term: u8 },
    /// A terminal half-closes its request stream (section 3).
    HalfClose { term: u8 },
    /// `Offer{sdp, msisdn=NUMBERS[to % 5]}` (the group's number included): a new call. A MultiPipe uses a fresh id, or with
    /// `reuse` one of the ids it has seen (live: INVALID_CALL_ID; ended: a new call).
    Call {
        term: u8,
        to: u8,
        reuse: Option<u8>,
        sdp: u8,
    },
    /// A message about an existing call. A MultiPipe picks `call` among the ids it has seen, one
    /// fresh id, and one of another number's ids; a Pipe sends no id.
    Send { term: u8, call: u8, msg: Msg },
    /// The phone network reports `event` on one of the phone legs that are up.
    Phone { leg: u8, event: PhoneOp, sdp: u8 },
    /// The phone of `NUMBERS[from % 5]` calls `NUMBERS[to % 5]` (4.11); nothing without a phone
    /// network.
    Dial { from: u8, to: u8, sdp: u8 },
    /// The clock moves `ms` milliseconds; every timer due fires in order.
    Advance { ms: u16 },
}

/// A terminal's message about an existing call.
#[derive(Clone, Copy, Debug)]
pub enum Msg {
    /// A re-offer (4.7) or a pull (4.5).
    Offer {
        sdp: u8,
    },
    Answer {
        sdp: u8,
    },
    Ringing,
    Bye,
    ToPhone,
    /// `Action{Transfer}` to `NUMBERS[to % 5]` (4.12; to the group's number too: nothing special
    /// is promised of that beyond the general properties).
    Transfer {
        to: u8,
    },
}

/// What the phone network reports about a leg.
#[derive(Clone, Copy, Debug)]
pub enum PhoneOp {
    Ringing,
    Answered,
    Busy,
    Declined,
    Unreachable,
    HandOverReady,
    HandOverFailed,
    HungUp,
    /// The phone re-offers (4.7, 4.11).
    Offer,
}

impl Op {
    /// Four raw bytes to one step (for the fuzzer): byte 0 picks the kind, with weights like the
    /// proptest's; the others fill the fields.
    pub fn decode(b: [u8; 4]) -> Op {
        let [tag, x, y, z] = b;
        match tag % 32 {
            0..=3 => Op::Register {
                number: x,
                multi: y & 1 == 1,
            },
            4 => Op::Unregister { term: x },
            5 => Op::HalfClose { term: x },
            6..=9 => Op::Call {
                term: x,
                to: y,
                reuse: (z & 0x80 != 0).then_some(z & 0x7f),
                sdp: z,
            },
            10..=22 => Op::Send {
                term: x,
                call: y,
                msg: match z % 8 {
                    0 => Msg::Offer { sdp: z >> 3 },
                    1..=3 => Msg::Answer { sdp: z >> 3 },
                    4 => Msg::Ringing,
                    5 | 6 => Msg::Bye,
                    _ if z & 0x80 == 0 => Msg::ToPhone,
                    _ => Msg::Transfer { to: x ^ y },
                },
            },
            23..=26 => Op::Phone {
                leg: x,
                event: match y % 9 {
                    0 => PhoneOp::Ringing,
                    1 => PhoneOp::Answered,
                    2 => PhoneOp::Busy,
                    3 => PhoneOp::Declined,
                    4 => PhoneOp::Unreachable,
                    5 => PhoneOp::HandOverReady,
                    6 => PhoneOp::HandOverFailed,
                    7 => PhoneOp::HungUp,
                    _ => PhoneOp::Offer,
                },
                sdp: z,
            },
            27 => Op::Dial {
                from: x,
                to: y,
                sdp: z,
            },
            _ => Op::Advance {
                ms: match x % 12 {
                    0 => 1,
                    1 => NEGOTIATION_MS,
                    2 => GRACE_MS,
                    3 => RING_MS,
                    4 => NEGOTIATION_MS - 1,
                    // Around the group's timers (section 10).
                    5 => MEMBER_RING_CHOICES[usize::from(y) % MEMBER_RING_CHOICES.len()],
                    6 => QUEUE_CHOICES[usize::from(y) % QUEUE_CHOICES.len()],
                    7 => MEMBER_RING_CHOICES[usize::from(y) % MEMBER_RING_CHOICES.len()] - 1,
                    _ => u16::from(y) % (QUEUE_CHOICES[1] + GRACE_MS),
                },
            },
        }
    }
}

/// Runs `input` from an empty switch and checks every step. `Ok` is the trace of the steps and every
/// output of the switch; `Err` describes the first broken promise, with the trace so far.
pub fn run(input: &Input) -> Result<String, String> {
    run_from(input, Instant::now())
}

/// [`run`] with the clock starting at `start`: two runs from one start give identical traces.
pub fn run_from(input: &Input, start: Instant) -> Result<String, String> {
    let mut world = World::new(input.setup);
    world.now = start;
    for (i, op) in input.ops.iter().enumerate() {
        let _ = writeln!(world.trace, "step {i}: {op:?}");
        world
            .step(op)
            .and_then(|()| world.after_step())
            .map_err(|e| world.failure(&format!("step {i} ({op:?})"), &e))?;
    }
    if input.shutdown {
        let _ = writeln!(world.trace, "shutdown");
        world
            .shutdown()
            .and_then(|()| world.after_step())
            .map_err(|e| world.failure("shutdown", &e))?;
    }
    let _ = writeln!(
        world.trace,
        "end: every terminal goes, every phone hangs up"
    );
    world.finish().map_err(|e| world.failure("the end", &e))?;
    Ok(world.trace)
}

/// What a terminal believes about one call it takes part in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum St {
    /// It placed the call; not answered yet.
    Calling,
    /// It was offered the call (a ringing fork).
    Offered,
    /// It carries the call's media (the side's active leg).
    Active,
    /// It asked to pull the call; no answer yet.
    Pulling,
}

#[derive(Clone, Debug)]
struct Entry {
    /// `None` only for a Pipe's own call before the core told it the id.
    id: Option<CallId>,
    state: St,
    /// The other party (index into NUMBERS), kept by [`World::set_peer`] once the call has an id.
    peer: usize,
    /// It re-offered and waits for the answer.
    reoffer_pending: bool,
    /// The far side re-offered and waits for its answer (may be stale after a negotiation timeout).
    incoming_offer: bool,
    /// It asked for a handover to the phone.
    handover_pending: bool,
    /// It got Ringing already.
    alerted: bool,
    /// When it entered this entry's state (a group offer rings no longer than its timeout).
    since: Instant,
}

#[derive(Debug)]
struct Term {
    id: TerminalId,
    number: usize,
    kind: PipeKind,
    half_closed: bool,
    entries: Vec<Entry>,
    /// Calls of its number it was told InCall for and that have not ended (a Pipe: at most one).
    /// Their other party is the one [`World::peers`] holds.
    observed: Vec<CallId>,
    /// Every id it was ever told about or used, in order.
    known: Vec<CallId>,
    /// A Pipe that has not yet got its greeting (InCall or Idle).
    greeted: bool,
    /// A Pipe that was in a call (or pulling) since it was last told InCall or Idle.
    busy_since_told: bool,
}

impl Term {
    fn entry(&self, id: CallId) -> Option<usize> {
        self.entries.iter().position(|e| e.id == Some(id))
    }

    /// A Pipe's current call: the one it is in (not a pull).
    fn pipe_current(&self) -> Option<usize> {
        self.entries.iter().position(|e| e.state != St::Pulling)
    }

    fn in_calls(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| e.state != St::Pulling)
            .count()
    }

    fn learn(&mut self, id: CallId) {
        if !self.known.contains(&id) {
            self.known.push(id);
        }
    }
}

/// A call to the group (section 10), as its `Started` event told.
#[derive(Debug)]
struct GroupCall {
    /// The group side's id: the one its members are offered it under.
    id: CallId,
    caller: usize,
    caller_id: CallId,
    call_ref: CallRef,
    started: Instant,
    /// The member whose terminal answered.
    answered_by: Option<usize>,
    /// The members whose terminals were told of it.
    told: Vec<usize>,
}

pub struct World {
    pub switch: Switch,
    pub now: Instant,
    setup: Setup,
    numbers: Vec<Msisdn>,
    sdps: Vec<Sdp>,
    terms: Vec<Term>,
    next_terminal: u64,
    next_id: u64,
    /// Phone legs the switch opened and has not released.
    phone_legs: Vec<PhoneLegId>,
    /// Calls the phone network brought in so far (numbers their legs).
    dials: u64,
    /// Transfers accepted: (transferring number, far party, target) (4.12).
    transfers: Vec<(usize, usize, usize)>,
    /// Every call's statuses so far (section 8).
    lifecycles: std::collections::HashMap<CallRef, Vec<CallStatus>>,
    last_sequence: u64,
    released: HashSet<PhoneLegId>,
    /// Which number each call id belongs to, as first seen.
    owners: Vec<(CallId, usize)>,
    /// The other party of (number, id): as first seen, then as a transfer or a group member's
    /// answer changed it ([`World::set_peer`]).
    peers: Vec<((usize, CallId), usize)>,
    /// (caller, callee) of every call placed.
    attempts: HashSet<(usize, usize)>,
    /// (number, id) of calls known to have ended.
    ended: HashSet<(usize, CallId)>,
    /// Every call to the group, in order.
    group_calls: Vec<GroupCall>,
    /// Ids of calls transferred to the group (4.12, section 10), with their far party: shown to
    /// every member but the far party, until one claims it by pulling it.
    transferred_to_group: Vec<(CallId, usize)>,
    shutting_down: bool,
    shut_down: bool,
    /// The terminal whose `unregister` is being applied.
    departing: Option<TerminalId>,
    pub trace: String,
}

fn fail<T>(msg: impl Into<String>) -> Result<T, String> {
    Err(msg.into())
}

/// The other party of `number`'s call `id` as `peers` ([`World::peers`]) holds it.
fn peer_of(peers: &[((usize, CallId), usize)], number: usize, id: CallId) -> Option<usize> {
    peers
        .iter()
        .find(|(k, _)| *k == (number, id))
        .map(|(_, peer)| *peer)
}

impl World {
    pub fn new(setup: Setup) -> World {
        let config = SwitchConfig {
            ring_timeout: ms(RING_MS),
            negotiation_timeout: ms(NEGOTIATION_MS),
            phone_network: setup.phone_network,
            multipipe_call_cap: MULTIPIPE_CALL_CAP,
            max_terminals_per_msisdn: MAX_TERMINALS_PER_MSISDN,
            max_terminals: MAX_TERMINALS,
            reconnect_grace: if setup.grace {
                ms(GRACE_MS)
            } else {
                Duration::ZERO
            },
        };
        let now = Instant::now();
        let mut switch = Switch::new(config, 1, now);
        if let Some(group) = setup.group {
            switch.set_router(Box::new(group.table()));
        }
        World {
            switch,
            now,
            setup,
            numbers: NUMBERS.iter().map(|n| Msisdn::parse(n).unwrap()).collect(),
            sdps: SDPS
                .iter()
                .map(|s| Sdp::parse(s, 64 * 1024).expect("fixture SDP is valid"))
                .collect(),
            terms: Vec::new(),
            next_terminal: 1,
            next_id: 1,
            phone_legs: Vec::new(),
            dials: 0,
            transfers: Vec::new(),
            lifecycles: std::collections::HashMap::new(),
            last_sequence: 0,
            released: HashSet::new(),
            owners: Vec::new(),
            peers: Vec::new(),
            attempts: HashSet::new(),
            ended: HashSet::new(),
            group_calls: Vec::new(),
            transferred_to_group: Vec::new(),
            shutting_down: false,
            shut_down: false,
            departing: None,
            trace: String::new(),
        }
    }

    fn failure(&self, at: &str, e: &str) -> String {
        let tail: Vec<&str> = self.trace.lines().rev().take(200).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!(
            "at {at}: {e}\n--- trace (numbers: A={} B={} C={} D={} G={}; {:?}) ---\n{}",
            NUMBERS[0],
            NUMBERS[1],
            NUMBERS[2],
            NUMBERS[3],
            NUMBERS[4],
            self.setup,
            tail.join("\n")
        )
    }

    fn sdp(&self, i: u8) -> Sdp {
        self.sdps[usize::from(i) % self.sdps.len()].clone()
    }

    fn number_of(&self, m: &Msisdn) -> Result<usize, String> {
        self.numbers
            .iter()
            .position(|n| n == m)
            .ok_or_else(|| format!("unknown number {m} in an output"))
    }

    fn fresh_id(&mut self) -> CallId {
        let n = self.next_id;
        self.next_id += 1;
        CallId::parse(&format!("00000000-0000-4000-8000-{n:012x}")).unwrap()
    }

    fn owner(&self, id: CallId) -> Option<usize> {
        self.owners.iter().find(|(i, _)| *i == id).map(|(_, o)| *o)
    }

    /// The group call whose group side's id is `id`.
    fn group_call(&self, id: CallId) -> Option<&GroupCall> {
        self.group_calls.iter().find(|g| g.id == id)
    }

    /// Whether `number` is a member of the run's group.
    fn is_member(&self, number: usize) -> bool {
        self.setup.group.is_some_and(|g| g.is_member(number))
    }

    /// Whether a member other than `caller` has a terminal (section 10: else `UNAVAILABLE`).
    fn group_reachable(&self, caller: usize) -> bool {
        caller != GROUP
            && self
                .terms
                .iter()
                .any(|t| t.number != caller && self.is_member(t.number))
    }

    /// Every id belongs to one number: the first to see it. A group call's id is the exception
    /// (section 10): until answered it is told to members offered the call (never to its caller),
    /// from then on only to the member who answered — or to a number that chose it itself for a
    /// call of its own (a MultiPipe reusing an id it was told).
    fn claim(&mut self, id: CallId, number: usize) -> Result<(), String> {
        if let Some((_, far)) = self.transferred_to_group.iter().find(|(i, _)| *i == id) {
            if number == *far || !self.is_member(number) {
                return fail(format!(
                    "id {id} of a call transferred to the group told to a terminal of {}",
                    NAMES[number]
                ));
            }
            return Ok(());
        }
        if let Some(g) = self.group_call(id) {
            // (A member offered it before the answer still hears the end of its offer.)
            let fits = match g.answered_by {
                Some(m) => m == number || g.told.contains(&number),
                None => number != g.caller && self.is_member(number),
            } || self.owners.contains(&(id, number));
            return match fits {
                true => Ok(()),
                false => fail(format!(
                    "id {id} of a group call (from {}, answered by {:?}) told to a terminal of {}",
                    NAMES[g.caller],
                    g.answered_by.map(|m| NAMES[m]),
                    NAMES[number]
                )),
            };
        }
        match self.owner(id) {
            Some(o) if o != number => fail(format!(
                "id {id} of {} leaked to a terminal of {}",
                NAMES[o], NAMES[number]
            )),
            Some(_) => Ok(()),
            None => {
                self.owners.push((id, number));
                Ok(())
            }
        }
    }

    /// Records `peer` as the other party of `number`'s call `id`: the one place the model learns or
    /// changes a call's other party. Every entry its terminals hold for the call follows, so that a
    /// terminal's far party is the one the core last named (a transfer taken, 4.12; a group member's
    /// answer, section 10), and a transfer it makes hands over that party, not the call's first one.
    fn set_peer(&mut self, number: usize, id: CallId, peer: usize) {
        self.peers.retain(|(k, _)| *k != (number, id));
        self.peers.push(((number, id), peer));
        for t in self.terms.iter_mut().filter(|t| t.number == number) {
            for e in t.entries.iter_mut().filter(|e| e.id == Some(id)) {
                e.peer = peer;
            }
        }
    }

    /// `peer` is named to a terminal of `number` about call `id`: it must be that call's other party,
    /// and a number `number` had a call with.
    fn check_peer(&mut self, number: usize, id: CallId, peer: usize) -> Result<(), String> {
        if let Some(known) = peer_of(&self.peers, number, id) {
            // The call's other party transferred it to the group, and a member took it.
            let to_member = self.is_member(peer)
                && self
                    .transfers
                    .iter()
                    .any(|(_, far, to)| *far == number && *to == GROUP);
            if known != peer && (self.transfers.contains(&(known, number, peer)) || to_member) {
                // The call's other party transferred it to `peer` (4.12).
                self.set_peer(number, id, peer);
                return Ok(());
            }
            if known != peer {
                return fail(format!(
                    "{} told {} is the other party of {id}, which is {}",
                    NAMES[number], NAMES[peer], NAMES[known]
                ));
            }
            return Ok(());
        }
        // A member offered a group call hears of its caller (section 10).
        let group_caller = self
            .group_call(id)
            .is_some_and(|g| g.caller == peer && self.is_member(number));
        if peer == number
            || !(self.attempts.contains(&(number, peer))
                || self.attempts.contains(&(peer, number))
                || group_caller)
        {
            return fail(format!(
                "{} told about {} on {id}, a number it never had a call with",
                NAMES[number], NAMES[peer]
            ));
        }
        self.set_peer(number, id, peer);
        Ok(())
    }

    fn drain(&mut self) -> Vec<Output> {
        let mut outs = Vec::new();
        while let Some(o) = self.switch.poll_output() {
            let _ = writeln!(self.trace, "    {o:?}");
            outs.push(o);
        }
        outs
    }

    fn term_index(&self, id: TerminalId) -> Option<usize> {
        self.terms.iter().position(|t| t.id == id)
    }

    // ---------------------------------------------------------------------------------------------
    // Steps
    // ---------------------------------------------------------------------------------------------

    pub fn step(&mut self, op: &Op) -> Result<(), String> {
        match *op {
            Op::Register { number, multi } => self.register(number, multi),
            Op::Unregister { term } => {
                if self.terms.is_empty() {
                    return Ok(());
                }
                let t = self.terms.remove(usize::from(term) % self.terms.len());
                self.unregister(t.id)
            }
            Op::HalfClose { term } => {
                if self.terms.is_empty() {
                    return Ok(());
                }
                let ti = usize::from(term) % self.terms.len();
                self.terms[ti].half_closed = true;
                let _ = writeln!(self.trace, "    ({:?} half-closes)", self.terms[ti].id);
                self.switch.half_close(self.now, self.terms[ti].id);
                let outs = self.drain();
                if !outs.is_empty() {
                    return fail("a half-close produced outputs");
                }
                Ok(())
            }
            Op::Call {
                term,
                to,
                reuse,
                sdp,
            } => self.call(term, to, reuse, sdp),
            Op::Send { term, call, msg } => self.send(term, call, msg),
            Op::Phone { leg, event, sdp } => self.phone(leg, event, sdp),
            Op::Dial { from, to, sdp } => self.dial(from, to, sdp),
            Op::Advance { ms: d } => self.advance(ms(d)),
        }
    }

    /// `terminal`'s rpc ended; it is already out of `self.terms`.
    fn unregister(&mut self, terminal: TerminalId) -> Result<(), String> {
        let _ = writeln!(self.trace, "    ({terminal:?} goes)");
        self.switch.unregister(self.now, terminal);
        let outs = self.drain();
        self.departing = Some(terminal);
        let result = self.apply(outs);
        self.departing = None;
        result
    }

    fn register(&mut self, number: u8, multi: bool) -> Result<(), String> {
        let number = usize::from(number) % TERMINAL_NUMBERS;
        let kind = if multi {
            PipeKind::MultiPipe
        } else {
            PipeKind::Pipe
        };
        let id = TerminalId(self.next_terminal);
        self.next_terminal += 1;
        let total = self.terms.len();
        let same = self.terms.iter().filter(|t| t.number == number).count();
        let _ = writeln!(
            self.trace,
            "    ({id:?} is a {kind:?} of {})",
            NAMES[number]
        );
        let result = self
            .switch
            .register(self.now, id, self.numbers[number].clone(), kind);
        let outs = self.drain();
        match result {
            Ok(()) => {
                if total >= MAX_TERMINALS || same >= MAX_TERMINALS_PER_MSISDN {
                    return fail(format!(
                        "registration accepted past a limit ({total} terminals, {same} of the number)"
                    ));
                }
                self.terms.push(Term {
                    id,
                    number,
                    kind,
                    half_closed: false,
                    entries: Vec::new(),
                    observed: Vec::new(),
                    known: Vec::new(),
                    greeted: kind == PipeKind::MultiPipe,
                    busy_since_told: false,
                });
                self.apply(outs)?;
                if !self.terms.last().unwrap().greeted {
                    return fail("a Pipe was not greeted with InCall or Idle");
                }
                Ok(())
            }
            Err(e) => {
                if total < MAX_TERMINALS && same < MAX_TERMINALS_PER_MSISDN {
                    return fail(format!("registration refused under the limits: {e}"));
                }
                if !outs.is_empty() {
                    return fail("a refused registration produced outputs");
                }
                Ok(())
            }
        }
    }

    fn call(&mut self, term: u8, to: u8, reuse: Option<u8>, sdp: u8) -> Result<(), String> {
        if self.terms.is_empty() {
            return Ok(());
        }
        let ti = usize::from(term) % self.terms.len();
        let to = usize::from(to) % NUMBERS.len();
        let call_id = match self.terms[ti].kind {
            PipeKind::MultiPipe => Some(match reuse {
                Some(k) if !self.terms[ti].known.is_empty() => {
                    let known = &self.terms[ti].known;
                    known[usize::from(k) % known.len()]
                }
                _ => self.fresh_id(),
            }),
            PipeKind::Pipe => None,
        };
        let request = Request {
            call_id,
            body: RequestBody::Offer {
                sdp: self.sdp(sdp),
                to: Some(self.numbers[to].clone()),
                context: Default::default(),
            },
        };
        let tid = self.terms[ti].id;
        let _ = writeln!(
            self.trace,
            "    ({tid:?} calls {} with {call_id:?})",
            NAMES[to]
        );
        let result = self.switch.handle_request(self.now, tid, request);
        let outs = self.drain();
        let number = self.terms[ti].number;
        match result {
            Ok(()) => {
                let t = &self.terms[ti];
                if to == number {
                    return fail("an Offer to the terminal's own number was accepted");
                }
                match t.kind {
                    PipeKind::Pipe if !t.entries.is_empty() => {
                        return fail("a Pipe in a call was let place another")
                    }
                    PipeKind::MultiPipe if t.entries.iter().any(|e| e.id == call_id) => {
                        return fail("a new call reusing a live id was accepted")
                    }
                    PipeKind::MultiPipe if t.in_calls() >= MULTIPIPE_CALL_CAP => {
                        return fail("a MultiPipe at its call cap was let place another")
                    }
                    _ => {}
                }
                if let Some(id) = call_id {
                    // A group call's id it was told, reused for a call of its own: its number's
                    // from now on (section 2), whatever the group call does meanwhile.
                    if self.group_call(id).is_some() && !self.owners.contains(&(id, number)) {
                        self.owners.push((id, number));
                    }
                    self.claim(id, number)?;
                    self.set_peer(number, id, to);
                    self.ended.remove(&(number, id));
                    self.terms[ti].learn(id);
                }
                self.attempts.insert((number, to));
                self.terms[ti].busy_since_told = true;
                self.terms[ti].entries.push(Entry {
                    id: call_id,
                    state: St::Calling,
                    peer: to,
                    reoffer_pending: false,
                    incoming_offer: false,
                    handover_pending: false,
                    alerted: false,
                    since: self.now,
                });
            }
            Err(rejection) => {
                let _ = writeln!(self.trace, "    refused: {rejection}");
                if !outs.is_empty() {
                    return fail("a refused message produced outputs");
                }
                if to == number && rejection.code != ErrorCode::InvalidArgument {
                    return fail(format!(
                        "an Offer to one's own number got {rejection}, not INVALID_ARGUMENT"
                    ));
                }
                return Ok(());
            }
        }
        // Section 10: a call to the group gets Ringing at once, or Bye{UNAVAILABLE} at once when
        // no member but the caller has a terminal.
        if to == GROUP && self.setup.group.is_some() {
            let told: Vec<&NoticeBody> = outs
                .iter()
                .filter_map(|o| match o {
                    Output::Deliver { terminal, notice } if *terminal == tid => Some(&notice.body),
                    _ => None,
                })
                .collect();
            let reachable = self.group_reachable(number);
            let fits = match reachable {
                true => matches!(told[..], [NoticeBody::Ringing]),
                false => matches!(
                    told[..],
                    [NoticeBody::Bye {
                        reason: ByeReason::Unavailable
                    }]
                ),
            };
            if !fits {
                return fail(format!(
                    "a call to the group (a member has a terminal: {reachable}) got {told:?} at once"
                ));
            }
        }
        self.apply(outs)
    }

    fn send(&mut self, term: u8, call: u8, msg: Msg) -> Result<(), String> {
        if self.terms.is_empty() {
            return Ok(());
        }
        let ti = usize::from(term) % self.terms.len();
        let number = self.terms[ti].number;
        // Which id it sends, and whether the terminal knows it.
        let (call_id, unknown) = match self.terms[ti].kind {
            PipeKind::Pipe => (None, false),
            PipeKind::MultiPipe => {
                let known = &self.terms[ti].known;
                let k = usize::from(call) % (known.len() + 2);
                if k < known.len() {
                    (Some(known[k]), false)
                } else if k == known.len() {
                    (Some(self.fresh_id()), true)
                } else {
                    let other = self
                        .owners
                        .iter()
                        .find(|(id, o)| *o != number && self.group_call(*id).is_none());
                    match other {
                        Some((id, _)) => (Some(*id), true),
                        None => (Some(self.fresh_id()), true),
                    }
                }
            }
        };
        let body = match msg {
            Msg::Offer { sdp } => RequestBody::Offer {
                sdp: self.sdp(sdp),
                to: None,
                context: Default::default(),
            },
            Msg::Answer { sdp } => RequestBody::Answer { sdp: self.sdp(sdp) },
            Msg::Ringing => RequestBody::Ringing,
            Msg::Bye => RequestBody::Bye,
            Msg::ToPhone => RequestBody::ToPhone,
            Msg::Transfer { to } => RequestBody::Transfer {
                to: self.numbers[usize::from(to) % NUMBERS.len()].clone(),
            },
        };
        let tid = self.terms[ti].id;
        let _ = writeln!(self.trace, "    ({tid:?} sends {msg:?} on {call_id:?})");
        let result = self
            .switch
            .handle_request(self.now, tid, Request { call_id, body });
        let outs = self.drain();
        if let Err(rejection) = result {
            let _ = writeln!(self.trace, "    refused: {rejection}");
            if !outs.is_empty() {
                return fail("a refused message produced outputs");
            }
            if unknown && rejection.code != ErrorCode::InvalidCallId {
                return fail(format!(
                    "a message for an id the number does not have got {rejection}, not INVALID_CALL_ID"
                ));
            }
            return Ok(());
        }
        if unknown {
            return fail("a message for an id the number does not have was accepted");
        }
        // The group call it was offered and now answers or declines (section 10).
        let offered_group = {
            let t = &self.terms[ti];
            let entry = match call_id {
                Some(id) => t.entry(id),
                None => t.pipe_current(),
            };
            entry
                .filter(|i| t.entries[*i].state == St::Offered)
                .and_then(|i| t.entries[i].id)
                .filter(|id| self.group_call(*id).is_some())
        };
        let phone_network = self.setup.phone_network;
        let t = &mut self.terms[ti];
        let (entry, observed) = match call_id {
            Some(id) => (t.entry(id), t.observed.contains(&id).then_some(id)),
            None => (t.pipe_current(), t.observed.first().copied()),
        };
        let state = entry.map(|i| t.entries[i].state);
        match msg {
            Msg::Offer { .. } => match entry {
                Some(i) if state == Some(St::Active) && !t.entries[i].reoffer_pending => {
                    t.entries[i].reoffer_pending = true;
                }
                None if observed.is_some()
                    && (call_id.is_some() || t.entries.is_empty()) =>
                {
                    let id = observed.unwrap();
                    // The call's other party now, which a transfer may have changed since the
                    // InCall it pulls from (4.12).
                    let Some(peer) = peer_of(&self.peers, number, id) else {
                        return fail(format!("a pull of {id}, whose other party was never named"));
                    };
                    t.busy_since_told = true;
                    t.entries.push(Entry {
                        id: Some(id),
                        state: St::Pulling,
                        peer,
                        reoffer_pending: false,
                        incoming_offer: false,
                        handover_pending: false,
                        alerted: false,
                        since: self.now,
                    });
                }
                _ => {
                    return fail(format!(
                        "an Offer (re-offer or pull) was accepted from a terminal in state {state:?}"
                    ))
                }
            },
            Msg::Answer { .. } => match entry {
                Some(i) if state == Some(St::Offered) => {
                    let e = &mut t.entries[i];
                    e.state = St::Active;
                    let id = e.id.unwrap();
                    t.observed.retain(|o| *o != id);
                    if t.kind == PipeKind::Pipe {
                        t.observed.clear();
                    }
                }
                Some(i) if state == Some(St::Active) && t.entries[i].incoming_offer => {
                    t.entries[i].incoming_offer = false;
                }
                _ => {
                    return fail(format!(
                        "an Answer was accepted from a terminal in state {state:?} with no offer pending"
                    ))
                }
            },
            Msg::Ringing => {
                if state != Some(St::Offered) {
                    return fail(format!(
                        "Ringing was accepted from a terminal in state {state:?}"
                    ));
                }
            }
            Msg::Bye => match state {
                Some(St::Calling | St::Offered | St::Active) => {
                    let e = t.entries.remove(entry.unwrap());
                    if let Some(id) = e.id {
                        self.ended.insert((number, id));
                    }
                }
                _ => return fail(format!("Bye was accepted from a terminal in state {state:?}")),
            },
            Msg::Transfer { to } => match entry {
                Some(i) if state == Some(St::Active) => {
                    // The far party is handed over to `to`: from now on `to` may be named to it,
                    // and it to `to`'s terminals, as that call's other party (4.12).
                    let far = t.entries[i].peer;
                    let to = usize::from(to) % NUMBERS.len();
                    self.attempts.insert((far, to));
                    self.transfers.push((number, far, to));
                    if to == GROUP && self.setup.group.is_some() {
                        // Shown to the members, any of whom may take it (section 10).
                        let members: Vec<usize> = (0..GROUP)
                            .filter(|m| self.is_member(*m) && *m != far)
                            .collect();
                        for m in members {
                            self.attempts.insert((far, m));
                        }
                    }
                }
                _ => {
                    return fail(format!(
                        "Transfer was accepted from a terminal in state {state:?}"
                    ))
                }
            },
            Msg::ToPhone => match entry {
                Some(i) if state == Some(St::Active) && phone_network => {
                    t.entries[i].handover_pending = true;
                }
                _ => {
                    return fail(format!(
                        "ToPhone was accepted from a terminal in state {state:?} (phone network: {phone_network})"
                    ))
                }
            },
        }
        match (offered_group, msg) {
            (Some(id), Msg::Answer { .. }) => self.member_answered(id, number)?,
            (Some(id), Msg::Bye) => {
                self.apply(outs)?;
                // Section 10: a member's decline passes the call on; it never ends it.
                let call_ref = self.group_call(id).map(|g| g.call_ref);
                let history = call_ref.and_then(|r| self.lifecycles.get(&r));
                if history.is_some_and(|h| h.last().is_some_and(|s| s.is_final())) {
                    return fail(format!(
                        "a member's decline ended the group call {id}: {history:?}"
                    ));
                }
                return Ok(());
            }
            _ => {}
        }
        self.apply(outs)
    }

    /// A terminal of member `member` answered group call `id` (section 10): the call is now between
    /// its caller and that member, whom the caller's terminals may be told of as the other party.
    fn member_answered(&mut self, id: CallId, member: usize) -> Result<(), String> {
        let g = self.group_calls.iter_mut().find(|g| g.id == id).unwrap();
        if let Some(m) = g.answered_by {
            return fail(format!(
                "{} answered group call {id}, which {} answered already",
                NAMES[member], NAMES[m]
            ));
        }
        g.answered_by = Some(member);
        let (caller, caller_id) = (g.caller, g.caller_id);
        self.set_peer(caller, caller_id, member);
        self.attempts.insert((caller, member));
        Ok(())
    }

    fn phone(&mut self, leg: u8, event: PhoneOp, sdp: u8) -> Result<(), String> {
        if self.phone_legs.is_empty() {
            return Ok(());
        }
        let leg = self.phone_legs[usize::from(leg) % self.phone_legs.len()];
        let sdp = self.sdp(sdp);
        let event = match event {
            PhoneOp::Ringing => PhoneEvent::Ringing { leg },
            PhoneOp::Answered => PhoneEvent::Answered { leg, sdp },
            PhoneOp::Busy => PhoneEvent::Rejected {
                leg,
                reason: PhoneRejection::Busy,
            },
            PhoneOp::Declined => PhoneEvent::Rejected {
                leg,
                reason: PhoneRejection::Declined,
            },
            PhoneOp::Unreachable => PhoneEvent::Rejected {
                leg,
                reason: PhoneRejection::Unreachable,
            },
            PhoneOp::HandOverReady => PhoneEvent::HandOverReady { leg, sdp },
            PhoneOp::HandOverFailed => PhoneEvent::HandOverFailed {
                leg,
                message: "the model says no".into(),
            },
            PhoneOp::HungUp => PhoneEvent::HungUp { leg },
            PhoneOp::Offer => PhoneEvent::Offer { leg, sdp },
        };
        let _ = writeln!(self.trace, "    (phone: {event:?})");
        self.switch.handle_phone_event(self.now, event);
        let outs = self.drain();
        self.apply(outs)
    }

    /// 4.11: a phone calls a number, on a leg the network numbers.
    fn dial(&mut self, from: u8, to: u8, sdp: u8) -> Result<(), String> {
        if !self.setup.phone_network {
            return Ok(());
        }
        let (from, to) = (
            usize::from(from) % NUMBERS.len(),
            usize::from(to) % NUMBERS.len(),
        );
        self.dials += 1;
        let leg = PhoneLegId::from_network(self.dials);
        self.new_leg(leg)?;
        if from != to {
            self.attempts.insert((from, to));
        }
        let event = PhoneEvent::Incoming {
            leg,
            from: self.numbers[from].clone(),
            to: self.numbers[to].clone(),
            sdp: self.sdp(sdp),
            context: Default::default(),
        };
        let _ = writeln!(self.trace, "    (phone: {event:?})");
        self.switch.handle_phone_event(self.now, event);
        let outs = self.drain();
        // Section 10: a call to the group is alerted at once, or released UNAVAILABLE at once.
        if to == GROUP && from != GROUP && self.setup.group.is_some() {
            let reachable = self.group_reachable(from);
            let told: Vec<&PhoneCommand> = outs
                .iter()
                .filter_map(|o| match o {
                    Output::Phone(c) => Some(c),
                    _ => None,
                })
                .collect();
            let fits = match reachable {
                true => matches!(told[..], [PhoneCommand::Alerting { leg: l }] if *l == leg),
                false => matches!(
                    told[..],
                    [PhoneCommand::Release { leg: l, reason: ByeReason::Unavailable }] if *l == leg
                ),
            };
            if !fits {
                return fail(format!(
                    "a phone's call to the group (a member has a terminal: {reachable}) got {told:?} at once"
                ));
            }
        }
        self.apply(outs)
    }

    fn advance(&mut self, by: Duration) -> Result<(), String> {
        let until = self.now + by;
        while let Some(at) = self.switch.poll_timeout() {
            if at > until {
                break;
            }
            self.now = self.now.max(at);
            let _ = writeln!(self.trace, "    (timers fire)");
            self.switch.handle_timeout(self.now);
            let outs = self.drain();
            self.apply(outs)?;
            self.switch.check_invariants()?;
        }
        self.now = until;
        Ok(())
    }

    /// The server shuts down (4.9).
    pub fn shutdown(&mut self) -> Result<(), String> {
        self.shutting_down = true;
        self.switch.shutdown(self.now);
        let outs = self.drain();
        self.apply(outs)?;
        self.shutting_down = false;
        self.shut_down = true;
        // No Idle at shutdown (the streams end right after): views are moot.
        for t in &mut self.terms {
            t.observed.clear();
        }
        if self.switch.call_count() != 0 {
            return fail(format!(
                "{} calls left after shutdown",
                self.switch.call_count()
            ));
        }
        for t in &self.terms {
            if !t.entries.is_empty() {
                return fail(format!(
                    "{:?} got no Bye{{SERVER_SHUTDOWN}} for {:?}",
                    t.id, t.entries
                ));
            }
        }
        Ok(())
    }

    /// Every terminal goes, the grace passes, every phone leg still up hangs up: no call is left.
    pub fn finish(&mut self) -> Result<(), String> {
        while let Some(t) = self.terms.pop() {
            self.unregister(t.id)?;
            self.after_step()?;
        }
        self.advance(ms(GRACE_MS + 1))?;
        for leg in self.phone_legs.clone() {
            let _ = writeln!(self.trace, "    (phone: {leg:?} hangs up)");
            self.switch
                .handle_phone_event(self.now, PhoneEvent::HungUp { leg });
            let outs = self.drain();
            self.apply(outs)?;
            self.after_step()?;
        }
        self.advance(ms(RING_MS + NEGOTIATION_MS + GRACE_MS))?;
        self.after_step()?;
        if self.switch.call_count() != 0 {
            return fail(format!(
                "every terminal has gone and every phone hung up, yet the switch holds {} calls",
                self.switch.call_count()
            ));
        }
        if self.switch.poll_timeout().is_some() {
            return fail("a timer is still armed with no call");
        }
        for (call, history) in &self.lifecycles {
            if !history.last().is_some_and(|s| s.is_final()) {
                return fail(format!("call {call} never ended: {history:?}"));
            }
        }
        Ok(())
    }

    // ---------------------------------------------------------------------------------------------
    // Outputs
    // ---------------------------------------------------------------------------------------------

    fn apply(&mut self, outs: Vec<Output>) -> Result<(), String> {
        for out in outs {
            match out {
                Output::Deliver { terminal, notice } => {
                    let Some(ti) = self.term_index(terminal) else {
                        return fail(format!(
                            "a notice for {terminal:?}, which is not registered"
                        ));
                    };
                    self.deliver(ti, notice)?;
                }
                Output::Phone(command) => self.phone_command(command)?,
                Output::Event(event) => self.call_event(event)?,
            }
        }
        Ok(())
    }

    /// Section 8: sequences grow by one; every call's events follow `STARTED → (RINGING) →
    /// (ANSWERED → (HELD/RESUMED/MOVED)*) →` exactly one final status, COMPLETED if and only if it
    /// was answered, with a reason.
    fn call_event(&mut self, event: CallEvent) -> Result<(), String> {
        if event.sequence != self.last_sequence + 1 {
            return fail(format!(
                "event {} after {}: sequences grow by one",
                event.sequence, self.last_sequence
            ));
        }
        self.last_sequence = event.sequence;
        self.group_event(&event)?;
        let history = self.lifecycles.entry(event.call_ref).or_default();
        let answered = history.contains(&CallStatus::Answered);
        let status = event.status;
        let fits = match status {
            CallStatus::Started => history.is_empty(),
            _ if history.is_empty() => false,
            _ if history.last().is_some_and(|s| s.is_final()) => false,
            CallStatus::Ringing => !answered && !history.contains(&CallStatus::Ringing),
            CallStatus::Answered => !answered,
            CallStatus::Held | CallStatus::Resumed | CallStatus::Moved => answered,
            CallStatus::Completed => answered && event.reason.is_some(),
            CallStatus::Unanswered | CallStatus::Rejected | CallStatus::Failed => {
                !answered
                    && event
                        .reason
                        .is_some_and(|r| CallStatus::of_end(false, r) == status)
            }
        };
        if !fits {
            return fail(format!(
                "call event {status:?} ({:?}) after {history:?}",
                event.reason
            ));
        }
        history.push(status);
        Ok(())
    }

    /// Section 10, as call events tell it: a call to the group starts with the group as its callee
    /// (and is recorded); its `Answered` names the member who answered, the group, the member's
    /// extension, the hold time and the id the member was offered; no other event has a group
    /// answer; unanswered, it never ends DECLINED or BUSY (a member's decline passes it on).
    fn group_event(&mut self, event: &CallEvent) -> Result<(), String> {
        let Some(setup) = self.setup.group else {
            if event.group_answer.is_some() {
                return fail("a group answer with no group");
            }
            return Ok(());
        };
        let callee = self.number_of(&event.callee)?;
        if event.status == CallStatus::Started && callee == GROUP {
            let caller = self.number_of(&event.caller)?;
            self.group_calls.push(GroupCall {
                id: event.callee_call_id,
                caller,
                caller_id: event.caller_call_id,
                call_ref: event.call_ref,
                started: self.now,
                answered_by: None,
                told: Vec::new(),
            });
            return Ok(());
        }
        let now = self.now;
        let Some(g) = self
            .group_calls
            .iter()
            .find(|g| g.call_ref == event.call_ref)
        else {
            if event.group_answer.is_some() {
                return fail(format!("a group answer on a call to {}", NAMES[callee]));
            }
            return Ok(());
        };
        let answered = self
            .lifecycles
            .get(&event.call_ref)
            .is_some_and(|h| h.contains(&CallStatus::Answered));
        match event.status {
            CallStatus::Answered => {
                let Some(m) = g.answered_by else {
                    return fail("a group call answered by no member's terminal");
                };
                let expected = GroupAnswer {
                    group: self.numbers[GROUP].clone(),
                    extension: format!("10{m}"),
                    hold_time: now.saturating_duration_since(g.started),
                };
                if callee != m
                    || event.callee_call_id != g.id
                    || event.group_answer.as_ref() != Some(&expected)
                    || !setup.is_member(m)
                {
                    return fail(format!(
                        "group call answered by {}: Answered says callee {} ({}), {:?}",
                        NAMES[m], NAMES[callee], event.callee_call_id, event.group_answer
                    ));
                }
            }
            _ if event.group_answer.is_some() => {
                return fail(format!("a group answer on {:?}", event.status))
            }
            status if status.is_final() && !answered => {
                if matches!(event.reason, Some(ByeReason::Declined | ByeReason::Busy)) {
                    return fail(format!(
                        "a group call ended {status:?} ({:?}) before an answer",
                        event.reason
                    ));
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn phone_command(&mut self, command: PhoneCommand) -> Result<(), String> {
        if !self.setup.phone_network {
            return fail("a phone command with no phone network");
        }
        match command {
            PhoneCommand::Ring { leg, to, from, .. } => {
                let (to, from) = (self.number_of(&to)?, self.number_of(&from)?);
                if to == GROUP && self.setup.group.is_some() {
                    return fail("the group's number was rung as a phone");
                }
                if !self.attempts.contains(&(from, to)) {
                    return fail("a phone rung for a call nobody placed");
                }
                self.new_leg(leg)
            }
            PhoneCommand::HandOver { leg, msisdn, peer } => {
                let (m, p) = (self.number_of(&msisdn)?, self.number_of(&peer)?);
                let asked = self.terms.iter().any(|t| {
                    t.number == m && t.entries.iter().any(|e| e.handover_pending && e.peer == p)
                }) || self
                    .transfers
                    .iter()
                    // A transfer target's phone (4.12), or a handover after a transfer.
                    .any(|(_, far, to)| (*far == p && *to == m) || (*far == m && *to == p));
                if !asked {
                    return fail("a handover nobody asked for");
                }
                self.new_leg(leg)
            }
            PhoneCommand::Offer { leg, .. }
            | PhoneCommand::Answer { leg, .. }
            | PhoneCommand::Alerting { leg }
            | PhoneCommand::OfferFailed { leg } => {
                if !self.phone_legs.contains(&leg) {
                    return fail(format!("a command for phone leg {leg:?}, which is not up"));
                }
                Ok(())
            }
            PhoneCommand::Release { leg, reason } => {
                if !self.phone_legs.contains(&leg) {
                    return fail(format!("phone leg {leg:?} released twice or never opened"));
                }
                if self.shutting_down && reason != ByeReason::ServerShutdown {
                    return fail(format!("phone leg released with {reason:?} at shutdown"));
                }
                self.phone_legs.retain(|l| *l != leg);
                self.released.insert(leg);
                Ok(())
            }
            other => fail(format!(
                "a phone command the model does not know: {other:?}"
            )),
        }
    }

    fn new_leg(&mut self, leg: PhoneLegId) -> Result<(), String> {
        if self.phone_legs.contains(&leg) || self.released.contains(&leg) {
            return fail(format!("phone leg {leg:?} opened twice"));
        }
        self.phone_legs.push(leg);
        Ok(())
    }

    fn deliver(&mut self, ti: usize, notice: Notice) -> Result<(), String> {
        let number = self.terms[ti].number;
        let kind = self.terms[ti].kind;
        let tid = self.terms[ti].id;
        let Notice { call_id, body } = notice;
        let who = format!("{tid:?} ({kind:?} of {})", NAMES[number]);

        // Section 3: a Pipe's Idle carries no id; everything else carries one.
        let id = match (kind, &body, call_id) {
            (PipeKind::Pipe, NoticeBody::Idle, None) => None,
            (PipeKind::Pipe, NoticeBody::Idle, Some(_)) => {
                return fail(format!("{who}: a Pipe's Idle with a call_id"))
            }
            (_, _, None) => return fail(format!("{who}: {body:?} without a call_id")),
            (_, _, Some(id)) => Some(id),
        };
        if !self.terms[ti].greeted {
            if !matches!(body, NoticeBody::Idle | NoticeBody::InCall { .. }) {
                return fail(format!("{who}: a Pipe greeted with {body:?}"));
            }
            self.terms[ti].greeted = true;
        }
        if self.shutting_down && !matches!(body, NoticeBody::Bye { .. }) {
            return fail(format!("{who}: {body:?} at shutdown"));
        }
        if let (Some(id), NoticeBody::InCall { peer }) = (id, &body) {
            // A call transferred to the group, shown to a member under the side's new id.
            let far = self.number_of(peer)?;
            let fresh = self.owner(id).is_none()
                && self.group_call(id).is_none()
                && !self.transferred_to_group.iter().any(|(i, _)| *i == id);
            if fresh
                && self.is_member(number)
                && self
                    .transfers
                    .iter()
                    .any(|(_, f, to)| *f == far && *to == GROUP)
            {
                self.transferred_to_group.push((id, far));
            }
        }
        if let Some(id) = id {
            self.claim(id, number)?;
            if let Some(g) = self.group_calls.iter_mut().find(|g| g.id == id) {
                let other_member = g.answered_by.is_some_and(|m| m != number)
                    && !self.owners.contains(&(id, number));
                if other_member && !matches!(body, NoticeBody::Bye { .. }) {
                    return fail(format!(
                        "{who}: {body:?} on group call {id}, which {} answered",
                        NAMES[g.answered_by.unwrap()]
                    ));
                }
                if !g.told.contains(&number) {
                    g.told.push(number);
                }
            }
        }
        // A Pipe's own call gets its id with the first notice about it.
        if let (Some(id), PipeKind::Pipe) = (id, kind) {
            let t = &mut self.terms[ti];
            if matches!(
                body,
                NoticeBody::Ringing | NoticeBody::Answer { .. } | NoticeBody::Bye { .. }
            ) && t.entry(id).is_none()
            {
                if let Some(e) = t
                    .entries
                    .iter_mut()
                    .find(|e| e.id.is_none() && e.state == St::Calling)
                {
                    e.id = Some(id);
                    let peer = e.peer;
                    self.set_peer(number, id, peer);
                    self.ended.remove(&(number, id));
                }
            }
        }
        let was_known = id.is_some_and(|id| self.terms[ti].known.contains(&id));
        let entry = id.and_then(|id| self.terms[ti].entry(id));
        let state = entry.map(|i| self.terms[ti].entries[i].state);

        match body {
            NoticeBody::Offer { from, .. } => {
                let id = id.unwrap();
                let from = self.number_of(&from)?;
                match (entry, state) {
                    (Some(i), Some(St::Active)) => {
                        self.check_peer(number, id, from)?;
                        self.terms[ti].entries[i].incoming_offer = true;
                    }
                    (Some(_), _) => {
                        return fail(format!("{who}: an Offer on {id} in state {state:?}"))
                    }
                    (None, _) => {
                        let t = &self.terms[ti];
                        if t.half_closed {
                            return fail(format!("{who}: offered a new call after half-close"));
                        }
                        if t.kind == PipeKind::Pipe && !t.entries.is_empty() {
                            return fail(format!(
                                "{who}: a Pipe in a call offered another ({:?})",
                                t.entries
                            ));
                        }
                        if t.in_calls() >= MULTIPIPE_CALL_CAP {
                            return fail(format!("{who}: offered a call past its cap"));
                        }
                        if t.observed.contains(&id) {
                            return fail(format!("{who}: offered a call it observes"));
                        }
                        // Section 10: a member is offered its group's calls, one at a time, never
                        // while in an answered call, and hears of the caller.
                        let group = self.group_call(id).map(|g| (g.caller, g.answered_by));
                        if let Some((caller, answered_by)) = group {
                            if caller != from || answered_by.is_some() {
                                return fail(format!(
                                    "{who}: offered group call {id} from {} (its caller is {}, answered by {answered_by:?})",
                                    NAMES[from], NAMES[caller]
                                ));
                            }
                            let busy = self.terms.iter().find(|o| {
                                o.number == number
                                    && o.entries
                                        .iter()
                                        .any(|e| matches!(e.state, St::Active | St::Pulling))
                            });
                            if let Some(o) = busy {
                                return fail(format!(
                                    "{who}: offered group call {id} while {:?} of its number is in an answered call ({:?})",
                                    o.id, o.entries
                                ));
                            }
                            self.ended.remove(&(number, id));
                            // Its caller is the other party (checked above), whatever the number
                            // used the id for meanwhile (a call of its own, ended).
                            self.set_peer(number, id, from);
                        } else if !self.attempts.contains(&(from, number)) {
                            return fail(format!(
                                "{who}: offered a call from {}, who never called",
                                NAMES[from]
                            ));
                        }
                        self.check_peer(number, id, from)?;
                        self.terms[ti].busy_since_told = true;
                        self.terms[ti].entries.push(Entry {
                            id: Some(id),
                            state: St::Offered,
                            peer: from,
                            reoffer_pending: false,
                            incoming_offer: false,
                            handover_pending: false,
                            alerted: false,
                            since: self.now,
                        });
                    }
                }
            }
            NoticeBody::Answer { .. } => {
                let id = id.unwrap();
                let t = &mut self.terms[ti];
                match (entry, state) {
                    (Some(i), Some(St::Calling | St::Pulling)) => {
                        t.entries[i].state = St::Active;
                        t.observed.retain(|o| *o != id);
                        if t.kind == PipeKind::Pipe {
                            t.observed.clear();
                        }
                    }
                    (Some(i), Some(St::Active)) if t.entries[i].reoffer_pending => {
                        t.entries[i].reoffer_pending = false;
                    }
                    _ => {
                        return fail(format!(
                            "{who}: an Answer on {id} in state {state:?} with no offer of its own pending"
                        ))
                    }
                }
            }
            NoticeBody::Ringing => {
                let id = id.unwrap();
                match entry {
                    Some(i) if state == Some(St::Calling) && !self.terms[ti].entries[i].alerted => {
                        self.terms[ti].entries[i].alerted = true;
                    }
                    _ => {
                        return fail(format!(
                            "{who}: Ringing on {id} in state {state:?} (or a second time)"
                        ))
                    }
                }
            }
            NoticeBody::Bye { reason } => {
                let id = id.unwrap();
                let Some(i) = entry else {
                    return fail(format!(
                        "{who}: Bye{{{reason:?}}} on {id}, a call it is not in"
                    ));
                };
                use ByeReason::*;
                let e = &self.terms[ti].entries[i];
                let to_group = e.peer == GROUP && self.setup.group.is_some();
                // (The latest: a MultiPipe may place another call under an id it used.)
                let queue_waited = self
                    .group_calls
                    .iter()
                    .rev()
                    .find(|g| g.caller == number && g.caller_id == id)
                    .map(|g| self.now.saturating_duration_since(g.started));
                let queue_timeout = self.setup.group.map(|g| ms(g.queue_ms()));
                let fits = match state.unwrap() {
                    // Section 10: the caller of a group call never hears a member's decline or
                    // busy: NO_ANSWER at the queue timeout, or UNAVAILABLE at once.
                    St::Calling if to_group => match reason {
                        NoAnswer => queue_waited.is_some() && queue_waited == queue_timeout,
                        Unavailable => !e.alerted,
                        _ => false,
                    },
                    St::Calling => matches!(reason, Busy | Declined | NoAnswer | Unavailable),
                    St::Offered => {
                        matches!(reason, Cancelled | AnsweredElsewhere | DeclinedElsewhere)
                    }
                    St::Active => {
                        matches!(reason, NormalClearing | PeerGone | Pulled | Transferred)
                            // The far party of a transfer nobody took (4.12).
                            || (matches!(reason, NoAnswer | Unavailable | Busy | NegotiationFailed)
                                && self.transfers.iter().any(|(_, far, _)| *far == number))
                    }
                    St::Pulling => {
                        matches!(reason, NegotiationFailed | NormalClearing | PeerGone)
                            // Pulling a transferred call when nobody took it in time: the puller
                            // gets the far party's reason (4.12).
                            || (matches!(reason, NoAnswer | Unavailable)
                                && self.transfers.iter().any(|(_, _, to)| {
                                    *to == number || (*to == GROUP && self.is_member(number))
                                }))
                    }
                } || reason == ServerShutdown;
                if !fits || (reason == ServerShutdown) != self.shutting_down {
                    return fail(format!(
                        "{who}: Bye{{{reason:?}}} on {id} in state {state:?}"
                    ));
                }
                self.terms[ti].entries.remove(i);
                if !matches!(reason, Pulled | AnsweredElsewhere | NegotiationFailed) {
                    self.ended.insert((number, id));
                }
            }
            NoticeBody::Idle => {
                let t = &mut self.terms[ti];
                t.busy_since_told = false;
                match id {
                    None => {
                        if t.entries.iter().any(|e| e.state != St::Pulling) {
                            return fail(format!("{who}: Idle{{}} while in a call of its own"));
                        }
                        if let Some(o) = t.observed.pop() {
                            self.ended.insert((number, o));
                        }
                    }
                    Some(id) => {
                        if entry.is_some() {
                            return fail(format!(
                                "{who}: Idle on {id}, a call it is in ({state:?})"
                            ));
                        }
                        let observed = t.observed.contains(&id);
                        if !observed && was_known {
                            return fail(format!(
                                "{who}: Idle on {id}, a call it knows but does not observe"
                            ));
                        }
                        t.observed.retain(|o| *o != id);
                        self.ended.insert((number, id));
                    }
                }
            }
            NoticeBody::InCall { peer } => {
                let id = id.unwrap();
                let peer = self.number_of(&peer)?;
                self.check_peer(number, id, peer)?;
                self.ended.remove(&(number, id));
                let t = &mut self.terms[ti];
                // A Pipe reflects only its number's latest call (4.4): when its leg moves to the
                // phone, the InCall it gets may be for a newer call than the one it handed over.
                let handed_over = match entry {
                    None if t.kind == PipeKind::Pipe => t
                        .entries
                        .iter()
                        .position(|e| e.state == St::Active && e.handover_pending),
                    _ => None,
                };
                match (entry, state) {
                    (Some(i), Some(St::Active)) if t.entries[i].handover_pending => {
                        // 4.6: its leg moved to the phone; no Bye.
                        t.entries.remove(i);
                    }
                    (None, _) => {
                        if let Some(i) = handed_over {
                            t.entries.remove(i);
                        }
                    }
                    (Some(_), Some(St::Pulling)) => {}
                    _ => {
                        return fail(format!(
                            "{who}: InCall on {id}, a call it is in ({state:?}), without a Bye"
                        ))
                    }
                }
                let excused = t.entries.is_empty() || t.entries.iter().any(|e| e.id == Some(id));
                let busy_elsewhere = !excused;
                if t.kind == PipeKind::Pipe {
                    if busy_elsewhere {
                        return fail(format!(
                            "{who}: a Pipe told InCall on {id} while in a call of its own ({:?})",
                            t.entries
                        ));
                    }
                    t.observed.clear();
                }
                t.busy_since_told = false;
                t.observed.retain(|o| *o != id);
                t.observed.push(id);
            }
            NoticeBody::Error(rejection) => {
                let id = id.unwrap();
                let t = &mut self.terms[ti];
                match entry {
                    Some(i)
                        if t.entries[i].reoffer_pending
                            && rejection.code == ErrorCode::TryAgain =>
                    {
                        t.entries[i].reoffer_pending = false;
                    }
                    Some(i)
                        if t.entries[i].handover_pending
                            && rejection.code == ErrorCode::Unknown =>
                    {
                        t.entries[i].handover_pending = false;
                    }
                    _ => {
                        return fail(format!(
                            "{who}: an unasked-for Error on {id} ({rejection}) in state {state:?}"
                        ))
                    }
                }
            }
        }
        if let Some(id) = id {
            self.terms[ti].learn(id);
        }
        Ok(())
    }

    // ---------------------------------------------------------------------------------------------
    // After every step
    // ---------------------------------------------------------------------------------------------

    pub fn after_step(&mut self) -> Result<(), String> {
        self.switch.check_invariants()?;
        if self.switch.terminal_count() != self.terms.len() {
            return fail(format!(
                "the switch counts {} terminals, the world has {}",
                self.switch.terminal_count(),
                self.terms.len()
            ));
        }
        // At most one active leg per side.
        let mut active: Vec<(usize, CallId, TerminalId)> = Vec::new();
        for t in &self.terms {
            for e in &t.entries {
                if let (St::Active, Some(id)) = (e.state, e.id) {
                    if let Some((_, _, other)) =
                        active.iter().find(|(n, i, _)| (*n, *i) == (t.number, id))
                    {
                        return fail(format!(
                            "{other:?} and {:?} of {} both believe they carry {id}",
                            t.id, NAMES[t.number]
                        ));
                    }
                    active.push((t.number, id, t.id));
                }
            }
        }
        for t in &self.terms {
            if t.kind == PipeKind::Pipe && t.entries.len() > 1 {
                return fail(format!("Pipe {:?} is in {:?}", t.id, t.entries));
            }
            if t.in_calls() > MULTIPIPE_CALL_CAP {
                return fail(format!("{:?} is in {:?}, past its cap", t.id, t.entries));
            }
            if t.number >= TERMINAL_NUMBERS {
                return fail(format!("{:?} is a terminal of {}", t.id, NAMES[t.number]));
            }
            // No observer still shows a call that ended (a busy Pipe is told when it is free).
            let pipe_excused = t.kind == PipeKind::Pipe && !t.entries.is_empty();
            if !pipe_excused {
                for id in &t.observed {
                    if self.ended.contains(&(t.number, *id)) {
                        return fail(format!(
                            "{:?} ({:?} of {}) still shows InCall on {id}, which ended",
                            t.id, t.kind, NAMES[t.number]
                        ));
                    }
                }
            }
        }
        self.check_group_offers()
    }

    /// Section 10: a member is offered at most one group call at a time; one offered to a member
    /// one at a time rings no longer than the member ring timeout, and every group offer no longer
    /// than the queue timeout.
    fn check_group_offers(&self) -> Result<(), String> {
        let Some(setup) = self.setup.group else {
            return Ok(());
        };
        for (number, name) in NAMES.iter().enumerate().take(TERMINAL_NUMBERS) {
            let mut offered: Vec<CallId> = Vec::new();
            for t in self.terms.iter().filter(|t| t.number == number) {
                for e in t.entries.iter().filter(|e| e.state == St::Offered) {
                    let Some(g) = e.id.and_then(|id| self.group_call(id)) else {
                        continue;
                    };
                    if !offered.contains(&g.id) {
                        offered.push(g.id);
                    }
                    let rang = self.now.saturating_duration_since(e.since);
                    let waited = self.now.saturating_duration_since(g.started);
                    let one_at_a_time = setup.strategy != Strategy::RingAll;
                    if (one_at_a_time && rang > ms(setup.member_ring_ms()))
                        || waited > ms(setup.queue_ms())
                    {
                        return fail(format!(
                            "{:?} of {name} still rings for group call {} after {rang:?} (queued {waited:?})",
                            t.id, g.id
                        ));
                    }
                }
            }
            if offered.len() > 1 {
                return fail(format!(
                    "{name} is offered {} group calls at once: {offered:?}",
                    offered.len()
                ));
            }
        }
        Ok(())
    }
}

fn ms(n: u16) -> Duration {
    Duration::from_millis(u64::from(n))
}
