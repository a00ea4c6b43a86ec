//! The switch: owns every terminal, call, side, leg, fork and timer (PROTOCOL.md sections 3–7).
//!
//! One owner, `&mut self`, no locks (str0m, quinn-proto). Each input method takes `now`; its effects
//! are queued as [`Output`]s to drain with [`Switch::poll_output`] before the next input, and the next
//! deadline is [`Switch::poll_timeout`]. Call ids come from a generator seeded by the caller and no
//! decision depends on hash-map iteration order, so one seed and one sequence of inputs always give
//! the same outputs.
//!
//! One module per concern: [`call`] (the state), [`terminals`] (registration and the call cap),
//! [`routing`] (new calls), [`ringing`] (setup), [`negotiation`] (re-offer, pull, handover),
//! [`established`] (moves, grace, ending), [`terminal_view`] (InCall / Idle), [`phone`] (the phone
//! network's reports), [`queue`] (calls to groups), [`timers`] (the timer table), [`invariants`].

mod call;
mod established;
mod events;
mod invariants;
mod negotiation;
mod phone;
mod queue;
mod ringing;
mod routing;
mod terminal_view;
mod terminals;
mod timers;
mod transfer;

pub use terminals::RegisterError;

use super::config::SwitchConfig;
use super::message::{
    ErrorCode, Notice, NoticeBody, Output, PhoneCommand, Rejection, Request, RequestBody,
};
use super::reason::ByeReason;
use super::router::Router;
use super::types::{CallId, Msisdn, PhoneLegId, PipeKind, TerminalId};
use call::{Call, CallKey, CallState, Established, Leg, Party, Ringing};
use negotiation::{Failure, Outcome};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeSet, VecDeque};
use std::time::Instant;
use terminal_view::View;
use terminals::{Subscriber, Terminal};
use timers::{TimerKind, Timers};
// hashbrown's default hasher (foldhash, seeded at random per process) instead of std's SipHash:
// a sixth of the switch's time went to SipHash (BENCHMARKS.md), and a random seed keeps maps keyed by
// client-chosen values (call ids, numbers) safe from hash flooding. Nothing iterates these maps to
// decide anything: where order matters, keys are sorted first.
use hashbrown::HashMap;

/// The call switch. See the module docs; PROTOCOL.md is the contract.
pub struct Switch {
    config: SwitchConfig,
    terminals: HashMap<TerminalId, Terminal>,
    subscribers: HashMap<Msisdn, Subscriber>,
    calls: HashMap<CallKey, Call>,
    /// Which call each live phone leg belongs to.
    phone_legs: HashMap<PhoneLegId, CallKey>,
    timers: Timers,
    outputs: VecDeque<Output>,
    /// Where the call ids and call refs the core makes come from (UUID v4 bits).
    ids: ChaCha8Rng,
    /// The `now` of the input being handled (a timer's own deadline while it fires): set once by
    /// each public input, and read from here by everything that input does, never passed along.
    now: Instant,
    /// The sequence of the last call event (section 8).
    last_sequence: u64,
    /// The embedder's routing hook (section 5), if any.
    router: Option<Box<dyn Router>>,
    /// Calls waiting in a group's queue (section 10), oldest first.
    queue: BTreeSet<CallKey>,
    /// How many times a call joined or left a queue: a cheap test of whether the queues changed.
    queue_changes: u64,
    /// The group call each member is offered now.
    member_offers: HashMap<Msisdn, CallKey>,
    /// The member who answered each group's last call (where `round-robin` goes on from).
    last_answered: HashMap<Msisdn, Msisdn>,
    next_call: u64,
    next_phone_leg: u64,
    next_established: u64,
}

impl Switch {
    /// An empty switch at `now`: no terminal, no call. `seed` seeds the generator of the call ids
    /// the core makes (UUIDs, PROTOCOL.md section 2): a server seeds it from the operating system; a
    /// test picks one, and replays exactly. Time is an input like the seed: the switch never reads
    /// the clock, not even to be made.
    pub fn new(config: SwitchConfig, seed: u64, now: Instant) -> Self {
        Switch {
            config,
            terminals: HashMap::new(),
            subscribers: HashMap::new(),
            calls: HashMap::new(),
            phone_legs: HashMap::new(),
            timers: Timers::default(),
            outputs: VecDeque::new(),
            ids: ChaCha8Rng::seed_from_u64(seed),
            now,
            last_sequence: 0,
            router: None,
            queue: BTreeSet::new(),
            queue_changes: 0,
            member_offers: HashMap::new(),
            last_answered: HashMap::new(),
            next_call: 0,
            next_phone_leg: 0,
            next_established: 0,
        }
    }

    /// Consults `router` for every new call from now on (PROTOCOL.md section 5), in place of any
    /// router set before.
    pub fn set_router(&mut self, router: Box<dyn Router>) {
        self.router = Some(router);
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &SwitchConfig {
        &self.config
    }

    /// How many calls (ringing or established) the switch holds.
    pub fn call_count(&self) -> usize {
        self.calls.len()
    }

    /// How many terminals are registered.
    pub fn terminal_count(&self) -> usize {
        self.terminals.len()
    }

    /// The rpc a registered terminal opened, or `None` if it is not registered.
    pub fn terminal_kind(&self, terminal: TerminalId) -> Option<PipeKind> {
        self.terminals.get(&terminal).map(|t| t.kind)
    }

    /// The next output to carry out, oldest first.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The earliest armed deadline; call [`Switch::handle_timeout`] at or after it.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// One message from a registered terminal, already parsed at the edge.
    ///
    /// # Errors
    /// A [`Rejection`] when the message does not fit the call state (PROTOCOL.md section 6): send it
    /// back as `Error{code, message}` with the message's own call_id; nothing changed.
    /// Messages from an unknown terminal (already gone) are rejected with `NOT_INCALL`.
    pub fn handle_request(
        &mut self,
        now: Instant,
        terminal: TerminalId,
        request: Request,
    ) -> Result<(), Rejection> {
        self.now = now;
        let result = self.request(terminal, request);
        self.serve_queue();
        result
    }

    fn request(&mut self, terminal: TerminalId, request: Request) -> Result<(), Rejection> {
        if !self.terminals.contains_key(&terminal) {
            return Err(Rejection::new(
                ErrorCode::NotInCall,
                "the terminal is no longer registered",
            ));
        }
        match request.body {
            // A new call: Offer with a number.
            RequestBody::Offer {
                sdp,
                to: Some(to),
                context,
            } => return self.start_call(terminal, request.call_id, to, sdp, context),
            // Section 1: context belongs to a new call, never to a renegotiation or pull.
            RequestBody::Offer { ref context, .. } if !context.is_empty() => {
                return Err(Rejection::new(
                    ErrorCode::InvalidArgument,
                    "offer.data: call context is for a new call (offer.msisdn set), not for a re-offer or pull",
                ))
            }
            _ => {}
        }
        // Everything else is about an existing call.
        let key = self.call_of_request(terminal, request.call_id)?;
        let leg = Leg::Terminal(terminal);
        let not_in_call = |message: &str| Err(Rejection::new(ErrorCode::NotInCall, message));
        match request.body {
            RequestBody::Offer { sdp, to: None, .. } => self.offer_on_call(terminal, key, sdp),
            RequestBody::Offer { to: Some(_), .. } => unreachable!("handled above"),
            RequestBody::Answer { sdp } => match &self.calls[&key].state {
                CallState::Ringing(_) => match self.establish(key, leg, sdp) {
                    Ok(()) => Ok(()),
                    Err(_) => not_in_call("this terminal was not offered the call"),
                },
                CallState::Established(_) => match self.answer_negotiation(key, leg, sdp) {
                    true => Ok(()),
                    false => not_in_call("no offer is pending for this terminal on this call"),
                },
            },
            RequestBody::Ringing => match self.alert(key, leg) {
                Ok(()) => Ok(()),
                Err(_) => not_in_call("only a terminal offered a ringing call may send Ringing"),
            },
            RequestBody::Bye => match self.bye(key, leg) {
                true => Ok(()),
                false => not_in_call("this terminal is not a leg of the call"),
            },
            RequestBody::ToPhone => self.hand_over(terminal, key),
            RequestBody::Transfer { to } => self.transfer(terminal, key, to),
        }
    }

    /// The call a message about an existing call names: a MultiPipe's by its id, a Pipe's the call
    /// it is in, else the call it observes (section 3).
    fn call_of_request(
        &self,
        terminal: TerminalId,
        call_id: Option<CallId>,
    ) -> Result<CallKey, Rejection> {
        let t = &self.terminals[&terminal];
        match t.kind {
            PipeKind::MultiPipe => {
                let id = required_call_id(call_id)?;
                self.subscribers
                    .get(&t.msisdn)
                    .and_then(|s| s.calls.get(&id))
                    .copied()
                    .ok_or_else(|| {
                        Rejection::new(
                            ErrorCode::InvalidCallId,
                            format!("call_id {id} is not a call of this number"),
                        )
                    })
            }
            PipeKind::Pipe => {
                // (A view names only live calls — an invariant; a stale one must not take the
                // switch down, so a call that is gone is no call.)
                let observed = match &t.view {
                    View::Single {
                        seen: Some((key, _)),
                        ..
                    } if self.calls.contains_key(key) => Some(*key),
                    _ => None,
                };
                t.calls.first().copied().or(observed).ok_or_else(|| {
                    Rejection::new(
                        ErrorCode::NotInCall,
                        "this Pipe is in no call and its number is in no call to pull",
                    )
                })
            }
        }
    }

    /// Fires every timer due at or before `now`, earliest first: ring timeouts (caller
    /// `Bye{NO_ANSWER}`, forks `Bye{CANCELLED}`, 4.3), negotiation timeouts (4.5–4.7) and reconnect
    /// graces (4.8), group calls' queue and member ring timeouts (section 10).
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((key, kind, due)) = self.timers.pop_due(now) {
            // Each timer fires at its own deadline: events carry when it was due.
            self.now = due;
            match kind {
                TimerKind::Ring => self.end_ringing(
                    key,
                    ByeReason::Cancelled,
                    Some(ByeReason::NoAnswer),
                    "ring timeout",
                ),
                TimerKind::Negotiation => {
                    self.end_negotiation(key, Outcome::Failed(Failure::TimedOut))
                }
                TimerKind::Grace(party) => self.end_grace(key, party),
                TimerKind::MemberRing => self.member_ring_timeout(key),
            }
            self.serve_queue();
        }
    }

    /// Sends `Bye{SERVER_SHUTDOWN}` on every live leg (callers, ringing forks, active legs, pending
    /// pullers) and releases every phone leg, oldest call first (4.9); afterwards the switch holds
    /// no call. Terminals stay registered until the server ends their streams.
    pub fn shutdown(&mut self, now: Instant) {
        self.now = now;
        let reason = ByeReason::ServerShutdown;
        let mut keys: Vec<CallKey> = self.calls.keys().copied().collect();
        keys.sort();
        for key in keys {
            match &self.calls[&key].state {
                CallState::Ringing(_) => self.end_ringing(key, reason, Some(reason), "shutdown"),
                CallState::Established(_) => self.end_established(key, reason, "shutdown", None),
            }
        }
        // The calls are gone; nobody is in a call any more, so Idle would be noise at shutdown.
        for t in self.terminals.values_mut() {
            t.view = View::empty(t.kind);
        }
        self.outputs.retain(|o| {
            !matches!(
                o,
                Output::Deliver {
                    notice: Notice {
                        body: NoticeBody::Idle | NoticeBody::InCall { .. },
                        ..
                    },
                    ..
                }
            )
        });
    }

    /// Sends `body` to `leg`, which carries side `party` of call `key`: a terminal gets it with the
    /// side's id; a phone leg gets the matching phone command (a Bye releases it).
    fn send_to_leg(&mut self, key: CallKey, party: Party, leg: Leg, body: NoticeBody) {
        match leg {
            Leg::Terminal(terminal) => {
                let id = self.calls[&key].side(party).id;
                self.deliver(terminal, Some(id), body);
            }
            Leg::Phone(phone) => {
                let command = match body {
                    NoticeBody::Offer { sdp, .. } => PhoneCommand::Offer { leg: phone, sdp },
                    NoticeBody::Answer { sdp } => PhoneCommand::Answer { leg: phone, sdp },
                    NoticeBody::Bye { reason } => {
                        self.phone_legs.remove(&phone);
                        PhoneCommand::Release { leg: phone, reason }
                    }
                    NoticeBody::Ringing => PhoneCommand::Alerting { leg: phone },
                    // Only a phone's re-offer fails asynchronously (4.7).
                    NoticeBody::Error(_) => PhoneCommand::OfferFailed { leg: phone },
                    // A phone is never an observer.
                    NoticeBody::Idle | NoticeBody::InCall { .. } => return,
                };
                self.outputs.push_back(Output::Phone(command));
            }
            // Nobody carries the side during the reconnect grace: there is no one to tell.
            Leg::Vacant => {}
        }
    }

    fn deliver(&mut self, terminal: TerminalId, call_id: Option<CallId>, body: NoticeBody) {
        self.outputs.push_back(Output::Deliver {
            terminal,
            notice: Notice { call_id, body },
        });
    }

    /// A fresh call id (a version 4 UUID) from the seeded generator.
    fn next_call_id(&mut self) -> CallId {
        self.next_uuid().into()
    }

    /// A fresh version 4 UUID from the seeded generator.
    fn next_uuid(&mut self) -> uuid::Uuid {
        let mut bytes = [0u8; 16];
        self.ids.fill_bytes(&mut bytes);
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }

    fn ringing_mut(&mut self, key: CallKey) -> &mut Ringing {
        match &mut self.calls.get_mut(&key).expect("live call").state {
            CallState::Ringing(r) => r,
            CallState::Established(_) => unreachable!("call {key:?} is not ringing"),
        }
    }

    fn established_mut(&mut self, key: CallKey) -> &mut Established {
        match &mut self.calls.get_mut(&key).expect("live call").state {
            CallState::Established(e) => e,
            CallState::Ringing(_) => unreachable!("call {key:?} is not established"),
        }
    }
}

/// A MultiPipe names every call by its id (section 3): a message of one without a `call_id` is
/// refused with `INVALID_CALL_ID`, whether it starts a call or speaks of one.
fn required_call_id(call_id: Option<CallId>) -> Result<CallId, Rejection> {
    call_id.ok_or_else(|| Rejection::new(ErrorCode::InvalidCallId, "call_id is required"))
}
