//! The switch: owns every terminal, call, side, leg, fork and timer (PROTOCOL.md sections 3–6).
//!
//! One owner, `&mut self`, no locks (str0m, quinn-proto). Each input method takes `now`; its effects
//! are queued as [`Output`]s to drain with [`Switch::poll_output`] before the next input, and the next
//! deadline is [`Switch::poll_timeout`].

use super::config::SwitchConfig;
use super::message::{
    ByeReason, ErrorCode, Notice, NoticeBody, Output, PhoneCommand, PhoneEvent, PhoneRejection,
    Rejection, Request, RequestBody,
};
use super::types::{CallId, Msisdn, PhoneLegId, PipeKind, Sdp, TerminalId};
// hashbrown's default hasher (foldhash, seeded at random per process) instead of std's SipHash:
// a sixth of the switch's time went to SipHash (BENCHMARKS.md), and a random seed keeps maps keyed by
// client-chosen values (call ids, numbers) safe from hash flooding.
use hashbrown::HashMap;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::time::Instant;

/// Why a terminal could not register: the rpc fails with RESOURCE_EXHAUSTED (PROTOCOL.md section 6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegisterError {
    /// The process already has `SwitchConfig::max_terminals` terminals.
    TooManyTerminals {
        /// The limit, in terminals.
        limit: usize,
    },
    /// The msisdn already has `SwitchConfig::max_terminals_per_msisdn` terminals.
    TooManyTerminalsForMsisdn {
        /// The limit, in terminals.
        limit: usize,
    },
}

impl fmt::Display for RegisterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegisterError::TooManyTerminals { limit } => {
                write!(f, "the core already has its maximum of {limit} terminals")
            }
            RegisterError::TooManyTerminalsForMsisdn { limit } => {
                write!(
                    f,
                    "this number already has its maximum of {limit} terminals"
                )
            }
        }
    }
}

impl std::error::Error for RegisterError {}

/// The internal handle of a call (both sides share it); never shown to terminals.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
struct CallKey(u64);

/// The two sides of a call.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Party {
    Caller = 0,
    Callee = 1,
}

impl Party {
    fn other(self) -> Party {
        match self {
            Party::Caller => Party::Callee,
            Party::Callee => Party::Caller,
        }
    }
}

/// The device carrying (or offered) a side's media.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Leg {
    Terminal(TerminalId),
    Phone(PhoneLegId),
    /// The side's active terminal went away and the reconnect grace runs (4.8): nothing carries the
    /// side until a terminal of its number pulls the call back or the grace ends. Only ever an
    /// established call's active leg.
    Vacant,
}

/// One side of a call: its msisdn and the id that msisdn's terminals know the call by.
#[derive(Clone, Debug)]
struct Side {
    msisdn: Msisdn,
    id: CallId,
}

#[derive(Debug)]
struct Call {
    sides: [Side; 2],
    state: CallState,
}

impl Call {
    fn side(&self, party: Party) -> &Side {
        &self.sides[party as usize]
    }

    /// The party whose msisdn is `msisdn` (a call never has the same msisdn on both sides).
    fn party_of(&self, msisdn: &Msisdn) -> Option<Party> {
        if self.sides[0].msisdn == *msisdn {
            Some(Party::Caller)
        } else if self.sides[1].msisdn == *msisdn {
            Some(Party::Callee)
        } else {
            None
        }
    }
}

/// A call's state, with the data that belongs to each (quinn-proto's state enums).
#[derive(Debug)]
enum CallState {
    /// Offered to the callee's devices, not answered yet (4.1–4.3).
    Ringing(Ringing),
    /// Answered: each side has exactly one active leg (4.4–4.8).
    Established(Established),
}

#[derive(Debug)]
struct Ringing {
    caller_leg: Leg,
    /// The callee's devices the call is offered to (the forks).
    forks: Vec<Leg>,
    /// The caller got `Ringing` already (it gets it once).
    alerted: bool,
    /// A device of the callee was there but not eligible (busy): the caller gets BUSY, not
    /// UNAVAILABLE, when no fork is left.
    saw_busy: bool,
    /// The caller's offer, kept to offer late-registering terminals (4.2).
    offer: Sdp,
    deadline: Instant,
}

#[derive(Debug)]
struct Established {
    /// The active leg of each side, indexed by `Party`.
    legs: [Leg; 2],
    /// When it was established, as a sequence number: a Pipe reflects the most recent call (4.4).
    since: u64,
    /// The one offer/answer exchange in flight, if any (4.5–4.7).
    negotiation: Option<Negotiation>,
    /// When each side's reconnect grace ends, while its leg is `Vacant` (4.8).
    grace: [Option<Instant>; 2],
}

#[derive(Debug)]
struct Negotiation {
    /// The side that wants new media; the other side's active leg is asked to answer.
    by: Party,
    purpose: Purpose,
    deadline: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// The active leg of `by` re-offers (4.7).
    ReOffer,
    /// A terminal of `by`'s msisdn pulls the call to itself (4.5).
    Pull { puller: TerminalId },
    /// The active leg of `by` hands over to the msisdn's phone; `far_offered` once the phone's
    /// offer went to the far side (4.6).
    HandOver {
        phone: PhoneLegId,
        far_offered: bool,
    },
}

/// What a terminal sees of the established calls of its msisdn that it is not the active leg of
/// (PROTOCOL.md 4.4): the calls it was last told `InCall` for.
#[derive(Debug)]
enum View {
    /// A MultiPipe sees every such call, by call and side id.
    Multi(BTreeMap<CallKey, CallId>),
    /// A Pipe sees at most one: the most recently established. While it is busy with a call of its
    /// own (or a pull) it is told nothing (`paused`), but `seen` keeps what it was last told, so that
    /// once free it learns what changed meanwhile (4.4).
    Single {
        seen: Option<(CallKey, CallId)>,
        paused: bool,
    },
}

impl View {
    /// The view of a terminal that has been told nothing yet.
    fn empty(kind: PipeKind) -> View {
        match kind {
            PipeKind::Pipe => View::Single {
                seen: None,
                paused: false,
            },
            PipeKind::MultiPipe => View::Multi(BTreeMap::new()),
        }
    }
}

/// One established call of a number, as that number's terminals see it (4.4).
#[derive(Debug)]
struct SeenCall {
    /// When it was established (sequence number): the most recent is what a Pipe reflects.
    since: u64,
    key: CallKey,
    /// The number's side id.
    id: CallId,
    /// The number's active leg.
    leg: Leg,
    /// The other party.
    peer: Msisdn,
}

#[derive(Debug)]
struct Terminal {
    msisdn: Msisdn,
    kind: PipeKind,
    half_closed: bool,
    /// Calls this terminal is in as caller, ringing fork or active leg.
    calls: Vec<CallKey>,
    /// Calls it is pulling (a pull pending).
    pulls: Vec<CallKey>,
    view: View,
}

impl Terminal {
    /// How many calls it is in or taking: as caller, fork, active leg or puller. A Pipe carries at
    /// most one; a MultiPipe at most its call cap (sections 3, 5).
    fn load(&self) -> usize {
        self.calls.len() + self.pulls.len()
    }
}

/// Everything the switch keeps per msisdn: its terminals and its side of each call, by side id.
#[derive(Debug, Default)]
struct Subscriber {
    terminals: Vec<TerminalId>,
    calls: HashMap<CallId, CallKey>,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum TimerKind {
    /// The ring timeout (4.3).
    Ring,
    /// The negotiation timeout (4.5–4.7).
    Negotiation,
    /// The reconnect grace of one side (4.8).
    Grace(Party),
}

/// The call switch. See the module docs; PROTOCOL.md is the contract.
pub struct Switch {
    config: SwitchConfig,
    terminals: HashMap<TerminalId, Terminal>,
    subscribers: HashMap<Msisdn, Subscriber>,
    calls: HashMap<CallKey, Call>,
    /// Which call each live phone leg belongs to.
    phone_legs: HashMap<PhoneLegId, CallKey>,
    /// The timer table (quinn-proto): every armed deadline, earliest first.
    timers: BTreeSet<(Instant, CallKey, TimerKind)>,
    outputs: VecDeque<Output>,
    next_call: u64,
    next_phone_leg: u64,
    next_established: u64,
}

impl Switch {
    /// An empty switch: no terminal, no call.
    pub fn new(config: SwitchConfig) -> Self {
        Switch {
            config,
            terminals: HashMap::new(),
            subscribers: HashMap::new(),
            calls: HashMap::new(),
            phone_legs: HashMap::new(),
            timers: BTreeSet::new(),
            outputs: VecDeque::new(),
            next_call: 0,
            next_phone_leg: 0,
            next_established: 0,
        }
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
        self.timers.first().map(|(at, _, _)| *at)
    }

    // ----------------------------------------------------------------------------------------------
    // Terminals come and go (sections 3, 4.2, 4.8)
    // ----------------------------------------------------------------------------------------------

    /// A terminal opened `Pipe` or `MultiPipe` as `msisdn` (from its token). A Pipe is told at once
    /// `InCall` for its msisdn's most recently established call, or `Idle` (section 3); any terminal
    /// that is eligible is offered the calls still ringing to its msisdn (4.2).
    ///
    /// # Errors
    /// [`RegisterError`] when a terminal limit is reached; nothing changes then.
    ///
    /// # Panics
    /// If `terminal` is already registered (the server makes ids unique).
    pub fn register(
        &mut self,
        now: Instant,
        terminal: TerminalId,
        msisdn: Msisdn,
        kind: PipeKind,
    ) -> Result<(), RegisterError> {
        let _ = now;
        assert!(
            !self.terminals.contains_key(&terminal),
            "terminal {terminal:?} registered twice"
        );
        if self.terminals.len() >= self.config.max_terminals {
            return Err(RegisterError::TooManyTerminals {
                limit: self.config.max_terminals,
            });
        }
        let subscriber = self.subscribers.entry(msisdn.clone()).or_default();
        if subscriber.terminals.len() >= self.config.max_terminals_per_msisdn {
            if subscriber.terminals.is_empty() && subscriber.calls.is_empty() {
                self.subscribers.remove(&msisdn);
            }
            return Err(RegisterError::TooManyTerminalsForMsisdn {
                limit: self.config.max_terminals_per_msisdn,
            });
        }
        subscriber.terminals.push(terminal);
        let view = View::empty(kind);
        self.terminals.insert(
            terminal,
            Terminal {
                msisdn: msisdn.clone(),
                kind,
                half_closed: false,
                calls: Vec::new(),
                pulls: Vec::new(),
                view,
            },
        );
        tracing::debug!(?terminal, ?msisdn, ?kind, "terminal registered");

        if kind == PipeKind::Pipe {
            // Section 3: on open, a Pipe learns whether its msisdn is in a call.
            match self.established_calls(&msisdn).pop() {
                Some(SeenCall { key, id, peer, .. }) => {
                    self.set_view_single(terminal, Some((key, id)));
                    self.deliver(terminal, Some(id), NoticeBody::InCall { peer });
                }
                None => self.deliver(terminal, None, NoticeBody::Idle),
            }
        } else {
            // Section 3: a MultiPipe is told nothing on open. Its view starts in step with the
            // switch all the same, so that it gets Idle when those calls end and InCall when they
            // move (4.4), like every other terminal of its number.
            // A call whose leg went away within the reconnect grace is the exception: this may be
            // that terminal reconnecting, so it is told InCall to pull the call back (4.8).
            let calls = self.established_calls(&msisdn);
            let seen = calls.iter().map(|c| (c.key, c.id)).collect();
            self.terminals.get_mut(&terminal).unwrap().view = View::Multi(seen);
            for call in calls.into_iter().filter(|c| c.leg == Leg::Vacant) {
                let peer = call.peer;
                self.deliver(terminal, Some(call.id), NoticeBody::InCall { peer });
            }
        }

        // 4.2: a terminal that registers while a call to its msisdn rings is offered it too.
        let ringing: Vec<CallKey> = self.subscribers[&msisdn]
            .calls
            .values()
            .copied()
            .filter(|key| {
                let call = &self.calls[key];
                matches!(call.state, CallState::Ringing(_))
                    && call.party_of(&msisdn) == Some(Party::Callee)
            })
            .collect();
        for key in ringing {
            if !self.is_eligible(terminal) {
                break;
            }
            self.add_terminal_fork(key, terminal);
        }
        Ok(())
    }

    /// The terminal half-closed its request stream: it keeps getting Bye, InCall and Idle for its
    /// calls but is offered no new call (section 3). Unknown terminals are ignored.
    pub fn half_close(&mut self, now: Instant, terminal: TerminalId) {
        let _ = now;
        if let Some(t) = self.terminals.get_mut(&terminal) {
            t.half_closed = true;
        }
    }

    /// The terminal's rpc ended (cancelled, connection lost, dropped as a slow consumer). Its calls
    /// end as PROTOCOL.md 4.8 says: ringing forks are withdrawn, a ringing caller cancels, an active
    /// leg's far side gets `Bye{PEER_GONE}`, a pending pull is dropped. Unknown terminals are ignored.
    pub fn unregister(&mut self, now: Instant, terminal: TerminalId) {
        let Some(t) = self.terminals.get(&terminal) else {
            return;
        };
        let msisdn = t.msisdn.clone();
        let calls = t.calls.clone();
        let pulls = t.pulls.clone();
        tracing::debug!(?terminal, ?msisdn, "terminal gone");
        // Off its number's list first: what its calls' endings tell that number's terminals
        // (InCall, Idle) is not for it any more.
        if let Some(subscriber) = self.subscribers.get_mut(&msisdn) {
            subscriber.terminals.retain(|t| *t != terminal);
        }
        for key in pulls {
            self.abandon_pull(key, terminal);
        }
        for key in calls {
            let leg = Leg::Terminal(terminal);
            let Some(call) = self.calls.get_mut(&key) else {
                continue;
            };
            match &mut call.state {
                CallState::Ringing(ringing) if ringing.caller_leg == leg => {
                    self.end_ringing(key, ByeReason::Cancelled, None, "caller gone");
                }
                CallState::Ringing(ringing) => {
                    ringing.forks.retain(|f| *f != leg);
                    self.forget_terminal_call(terminal, key);
                    self.end_if_no_fork(key, ByeReason::Unavailable);
                }
                CallState::Established(established) => {
                    let Some(party) = established.legs.iter().position(|l| *l == leg) else {
                        continue;
                    };
                    let party = if party == 0 {
                        Party::Caller
                    } else {
                        Party::Callee
                    };
                    if self.config.reconnect_grace.is_zero() {
                        self.end_established(
                            key,
                            ByeReason::PeerGone,
                            "active leg gone",
                            Some(leg),
                        );
                    } else {
                        self.park(now, key, party);
                    }
                }
            }
        }
        self.terminals.remove(&terminal);
        self.forget_subscriber_if_empty(&msisdn);
    }

    // ----------------------------------------------------------------------------------------------
    // Messages from terminals (sections 4, 6)
    // ----------------------------------------------------------------------------------------------

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
        let Some(t) = self.terminals.get(&terminal) else {
            return Err(Rejection::new(
                ErrorCode::NotInCall,
                "the terminal is no longer registered",
            ));
        };
        let msisdn = t.msisdn.clone();
        let kind = t.kind;

        // A new call: Offer with a number.
        if let RequestBody::Offer { sdp, to: Some(to) } = &request.body {
            return self.start_call(now, terminal, request.call_id, to.clone(), sdp.clone());
        }

        // Everything else is about an existing call.
        let key = match kind {
            PipeKind::MultiPipe => {
                let Some(id) = request.call_id else {
                    return Err(Rejection::new(
                        ErrorCode::InvalidCallId,
                        "call_id is required",
                    ));
                };
                match self.subscribers.get(&msisdn).and_then(|s| s.calls.get(&id)) {
                    Some(key) => *key,
                    None => {
                        return Err(Rejection::new(
                            ErrorCode::InvalidCallId,
                            format!("call_id {id} is not a call of this number"),
                        ))
                    }
                }
            }
            PipeKind::Pipe => match self.pipe_call(terminal) {
                Some(key) => key,
                None => {
                    return Err(Rejection::new(
                        ErrorCode::NotInCall,
                        "this Pipe is in no call and its number is in no call to pull",
                    ))
                }
            },
        };
        let leg = Leg::Terminal(terminal);
        match request.body {
            RequestBody::Offer { sdp, to: None } => self.offer_on_call(now, terminal, key, sdp),
            RequestBody::Offer { to: Some(_), .. } => unreachable!("handled above"),
            RequestBody::Answer { sdp } => self.answer(key, leg, sdp),
            RequestBody::Ringing => self.alert(key, leg),
            RequestBody::Bye => self.bye(key, leg),
            RequestBody::ToPhone => self.hand_over(now, terminal, key),
        }
    }

    /// The call a Pipe's message is about: the call it is in, else the call it observes.
    fn pipe_call(&self, terminal: TerminalId) -> Option<CallKey> {
        let t = &self.terminals[&terminal];
        if let Some(key) = t.calls.first() {
            return Some(*key);
        }
        match &t.view {
            View::Single {
                seen: Some((key, _)),
                ..
            } => Some(*key),
            _ => None,
        }
    }

    /// 4.1: a new call from `terminal` to `to`, routed as section 5 says.
    fn start_call(
        &mut self,
        now: Instant,
        terminal: TerminalId,
        call_id: Option<CallId>,
        to: Msisdn,
        sdp: Sdp,
    ) -> Result<(), Rejection> {
        let t = &self.terminals[&terminal];
        let from = t.msisdn.clone();
        if to == from {
            return Err(Rejection::new(
                ErrorCode::InvalidArgument,
                "offer.msisdn is the terminal's own number",
            ));
        }
        let caller_id = match t.kind {
            PipeKind::MultiPipe => {
                let Some(id) = call_id else {
                    return Err(Rejection::new(
                        ErrorCode::InvalidCallId,
                        "call_id is required",
                    ));
                };
                if self
                    .subscribers
                    .get(&from)
                    .is_some_and(|s| s.calls.contains_key(&id))
                {
                    return Err(Rejection::new(
                        ErrorCode::InvalidCallId,
                        format!("call_id {id} is already in use by a live call"),
                    ));
                }
                if t.load() >= self.config.multipipe_call_cap {
                    return Err(Rejection::new(
                        ErrorCode::RateLimitHit,
                        format!(
                            "this terminal is in {} calls, its maximum",
                            self.config.multipipe_call_cap
                        ),
                    ));
                }
                id
            }
            PipeKind::Pipe => {
                // A pending pull counts as the Pipe's one call: once it succeeds the Pipe carries
                // that call, and a Pipe never carries two (section 3).
                if t.load() > 0 {
                    return Err(Rejection::new(
                        ErrorCode::RateLimitHit,
                        "a Pipe carries one call at a time and this one is in a call",
                    ));
                }
                CallId::random()
            }
        };
        let key = CallKey(self.next_call);
        self.next_call += 1;
        let callee_id = CallId::random();

        // Section 5: the callee's devices are its terminals and its mobile phone.
        let (eligible, busy_terminals) = match self.subscribers.get(&to) {
            Some(s) => {
                let eligible: Vec<TerminalId> = s
                    .terminals
                    .iter()
                    .copied()
                    .filter(|t| self.is_eligible(*t))
                    .collect();
                let busy = eligible.len() < s.terminals.len();
                (eligible, busy)
            }
            None => (Vec::new(), false),
        };
        if eligible.is_empty() && !self.config.phone_network {
            let reason = if busy_terminals {
                ByeReason::Busy
            } else {
                ByeReason::Unavailable
            };
            tracing::info!(?from, ?to, ?reason, "call not routed");
            self.deliver(terminal, Some(caller_id), NoticeBody::Bye { reason });
            return Ok(());
        }

        let caller_leg = Leg::Terminal(terminal);
        let deadline = now + self.config.ring_timeout;
        self.calls.insert(
            key,
            Call {
                sides: [
                    Side {
                        msisdn: from.clone(),
                        id: caller_id,
                    },
                    Side {
                        msisdn: to.clone(),
                        id: callee_id,
                    },
                ],
                state: CallState::Ringing(Ringing {
                    caller_leg,
                    forks: Vec::new(),
                    alerted: false,
                    saw_busy: busy_terminals,
                    offer: sdp.clone(),
                    deadline,
                }),
            },
        );
        self.subscribers
            .entry(from.clone())
            .or_default()
            .calls
            .insert(caller_id, key);
        self.subscribers
            .entry(to.clone())
            .or_default()
            .calls
            .insert(callee_id, key);
        self.terminals.get_mut(&terminal).unwrap().calls.push(key);
        self.timers.insert((deadline, key, TimerKind::Ring));
        tracing::info!(?key, ?from, ?to, "call offered");

        for callee in eligible {
            self.add_terminal_fork(key, callee);
        }
        if self.config.phone_network {
            let leg = self.new_phone_leg(key);
            self.ringing_mut(key).forks.push(Leg::Phone(leg));
            self.outputs
                .push_back(Output::Phone(PhoneCommand::Ring { leg, to, from, sdp }));
        }
        Ok(())
    }

    /// Offers ringing call `key` to one more terminal of the callee (a fork).
    fn add_terminal_fork(&mut self, key: CallKey, terminal: TerminalId) {
        let call = &self.calls[&key];
        let CallState::Ringing(ringing) = &call.state else {
            return;
        };
        let notice = NoticeBody::Offer {
            sdp: ringing.offer.clone(),
            from: call.side(Party::Caller).msisdn.clone(),
        };
        let id = call.side(Party::Callee).id;
        self.ringing_mut(key).forks.push(Leg::Terminal(terminal));
        self.terminals.get_mut(&terminal).unwrap().calls.push(key);
        self.deliver(terminal, Some(id), notice);
    }

    /// An Offer without a number on an existing call: a re-offer from an active leg (4.7) or a pull
    /// from a terminal that observes the call (4.5).
    fn offer_on_call(
        &mut self,
        now: Instant,
        terminal: TerminalId,
        key: CallKey,
        sdp: Sdp,
    ) -> Result<(), Rejection> {
        let msisdn = self.terminals[&terminal].msisdn.clone();
        let call = &self.calls[&key];
        let party = call.party_of(&msisdn).expect("indexed call has the msisdn");
        let established = match &call.state {
            CallState::Ringing(r) if r.caller_leg == Leg::Terminal(terminal) => {
                return Err(Rejection::new(
                    ErrorCode::TryAgain,
                    "the call is not answered yet; re-offer once it is",
                ))
            }
            CallState::Ringing(_) => {
                return Err(Rejection::new(
                    ErrorCode::NotInCall,
                    "the call is not established; answer or decline the offer",
                ))
            }
            CallState::Established(e) => e,
        };
        if established.negotiation.is_some() {
            return Err(Rejection::new(
                ErrorCode::TryAgain,
                "another offer on this call is pending",
            ));
        }
        let far_leg = established.legs[party.other() as usize];
        if far_leg == Leg::Vacant {
            return Err(Rejection::new(
                ErrorCode::TryAgain,
                "the other party is reconnecting; offer again once it is back",
            ));
        }
        let purpose = if established.legs[party as usize] == Leg::Terminal(terminal) {
            Purpose::ReOffer
        } else {
            Purpose::Pull { puller: terminal }
        };
        let puller = &self.terminals[&terminal];
        if matches!(purpose, Purpose::Pull { .. })
            && puller.kind == PipeKind::MultiPipe
            && puller.load() >= self.config.multipipe_call_cap
        {
            return Err(Rejection::new(
                ErrorCode::RateLimitHit,
                format!(
                    "this terminal is in {} calls, its maximum: it cannot pull one more",
                    self.config.multipipe_call_cap
                ),
            ));
        }
        let deadline = now + self.config.negotiation_timeout;
        self.established_mut(key).negotiation = Some(Negotiation {
            by: party,
            purpose,
            deadline,
        });
        self.timers.insert((deadline, key, TimerKind::Negotiation));
        if let Purpose::Pull { .. } = purpose {
            self.terminals.get_mut(&terminal).unwrap().pulls.push(key);
            tracing::info!(?key, ?terminal, "pull offered");
        }
        self.send_to_leg(
            key,
            party.other(),
            far_leg,
            NoticeBody::Offer { sdp, from: msisdn },
        );
        Ok(())
    }

    /// An Answer from `leg`: wins a ringing call (4.2) or completes a pending negotiation (4.5–4.7).
    fn answer(&mut self, key: CallKey, leg: Leg, sdp: Sdp) -> Result<(), Rejection> {
        let call = &self.calls[&key];
        match &call.state {
            CallState::Ringing(ringing) => {
                if !ringing.forks.contains(&leg) {
                    return Err(Rejection::new(
                        ErrorCode::NotInCall,
                        "this terminal was not offered the call",
                    ));
                }
                self.establish(key, leg, sdp);
                Ok(())
            }
            CallState::Established(established) => {
                let pending = established.negotiation.as_ref().filter(|n| {
                    established.legs[n.by.other() as usize] == leg
                        && !matches!(
                            n.purpose,
                            Purpose::HandOver {
                                far_offered: false,
                                ..
                            }
                        )
                });
                let Some(negotiation) = pending else {
                    return Err(Rejection::new(
                        ErrorCode::NotInCall,
                        "no offer is pending for this terminal on this call",
                    ));
                };
                let (by, purpose, deadline) =
                    (negotiation.by, negotiation.purpose, negotiation.deadline);
                let offerer = established.legs[by as usize];
                self.timers.remove(&(deadline, key, TimerKind::Negotiation));
                self.established_mut(key).negotiation = None;
                match purpose {
                    Purpose::ReOffer => {
                        self.send_to_leg(key, by, offerer, NoticeBody::Answer { sdp });
                    }
                    Purpose::Pull { puller } => {
                        self.forget_pull(puller, key);
                        self.send_to_leg(
                            key,
                            by,
                            Leg::Terminal(puller),
                            NoticeBody::Answer { sdp },
                        );
                        self.move_active_leg(key, by, Leg::Terminal(puller), ByeReason::Pulled);
                    }
                    Purpose::HandOver { phone, .. } => {
                        self.outputs
                            .push_back(Output::Phone(PhoneCommand::Answer { leg: phone, sdp }));
                        self.move_active_leg(key, by, Leg::Phone(phone), ByeReason::HandedToPhone);
                    }
                }
                Ok(())
            }
        }
    }

    /// The active leg of side `by` moves to `to`; the old one ends with `reason` (a terminal gets
    /// `Bye{PULLED}`; a handed-over terminal gets no Bye, only InCall) and every terminal of the side
    /// is told `InCall` again (4.4–4.6).
    fn move_active_leg(&mut self, key: CallKey, by: Party, to: Leg, reason: ByeReason) {
        let old = std::mem::replace(&mut self.established_mut(key).legs[by as usize], to);
        if let Leg::Terminal(t) = to {
            self.terminals.get_mut(&t).unwrap().calls.push(key);
        }
        match old {
            Leg::Terminal(t) => {
                self.forget_terminal_call(t, key);
                if reason == ByeReason::HandedToPhone {
                    tracing::info!(?key, terminal = ?t, reason = ?reason, "leg ended");
                } else {
                    self.send_to_leg(key, by, old, NoticeBody::Bye { reason });
                }
            }
            Leg::Phone(_) => self.send_to_leg(key, by, old, NoticeBody::Bye { reason }),
            Leg::Vacant => {
                // Pulled back within the reconnect grace (4.8): the far side never saw a Bye.
                if let Some(at) = self.established_mut(key).grace[by as usize].take() {
                    self.timers.remove(&(at, key, TimerKind::Grace(by)));
                }
            }
        }
        tracing::info!(?key, ?to, "active leg moved");
        let msisdn = self.calls[&key].side(by).msisdn.clone();
        self.refresh_views(&msisdn, Some(key));
    }

    /// 4.2: `leg` answered ringing call `key`. The other forks get `Bye{ANSWERED_ELSEWHERE}`, the
    /// caller gets the answer, and both numbers' other terminals get InCall.
    fn establish(&mut self, key: CallKey, leg: Leg, sdp: Sdp) {
        let call = self.calls.get_mut(&key).unwrap();
        let CallState::Ringing(ringing) = &mut call.state else {
            unreachable!("establish on a ringing call");
        };
        let caller_leg = ringing.caller_leg;
        let losers: Vec<Leg> = ringing
            .forks
            .iter()
            .copied()
            .filter(|f| *f != leg)
            .collect();
        let deadline = ringing.deadline;
        let since = self.next_established;
        self.next_established += 1;
        call.state = CallState::Established(Established {
            legs: [caller_leg, leg],
            since,
            negotiation: None,
            grace: [None, None],
        });
        self.timers.remove(&(deadline, key, TimerKind::Ring));
        for loser in losers {
            self.drop_fork(key, loser, ByeReason::AnsweredElsewhere);
        }
        self.send_to_leg(key, Party::Caller, caller_leg, NoticeBody::Answer { sdp });
        tracing::info!(?key, ?leg, "call established");
        let [caller, callee] = self.calls[&key].sides.clone();
        self.refresh_views(&caller.msisdn, Some(key));
        self.refresh_views(&callee.msisdn, Some(key));
    }

    /// A fork `leg` is withdrawn from ringing call `key` with `Bye{reason}` (the call's state has
    /// already been changed by the caller of this function, or is changed here for Ringing).
    fn drop_fork(&mut self, key: CallKey, leg: Leg, reason: ByeReason) {
        if let CallState::Ringing(ringing) = &mut self.calls.get_mut(&key).unwrap().state {
            ringing.forks.retain(|f| *f != leg);
        }
        self.send_to_leg(key, Party::Callee, leg, NoticeBody::Bye { reason });
        self.forget_leg(key, leg);
    }

    /// Drops `leg` from the indexes that tie it to call `key`.
    fn forget_leg(&mut self, key: CallKey, leg: Leg) {
        match leg {
            Leg::Terminal(t) => self.forget_terminal_call(t, key),
            Leg::Phone(p) => {
                self.phone_legs.remove(&p);
            }
            Leg::Vacant => {}
        }
    }

    /// A `Ringing` from a fork: the caller gets `Ringing` once (4.1).
    fn alert(&mut self, key: CallKey, leg: Leg) -> Result<(), Rejection> {
        let call = self.calls.get_mut(&key).unwrap();
        match &mut call.state {
            CallState::Ringing(ringing) if ringing.forks.contains(&leg) => {
                if !ringing.alerted {
                    ringing.alerted = true;
                    let caller_leg = ringing.caller_leg;
                    self.send_to_leg(key, Party::Caller, caller_leg, NoticeBody::Ringing);
                }
                Ok(())
            }
            _ => Err(Rejection::new(
                ErrorCode::NotInCall,
                "only a terminal offered a ringing call may send Ringing",
            )),
        }
    }

    /// A Bye from `leg`: cancels (caller), declines (fork) or ends (active leg) the call (4.1, 4.2).
    fn bye(&mut self, key: CallKey, leg: Leg) -> Result<(), Rejection> {
        let call = &self.calls[&key];
        match &call.state {
            CallState::Ringing(ringing) if ringing.caller_leg == leg => {
                self.end_ringing(key, ByeReason::Cancelled, None, "cancelled by caller");
                Ok(())
            }
            CallState::Ringing(ringing) if ringing.forks.contains(&leg) => {
                self.decline(key, leg);
                Ok(())
            }
            CallState::Established(established) if established.legs.contains(&leg) => {
                self.end_established(key, ByeReason::NormalClearing, "bye", Some(leg));
                Ok(())
            }
            _ => Err(Rejection::new(
                ErrorCode::NotInCall,
                "this terminal is not a leg of the call",
            )),
        }
    }

    /// 4.2: a ringing fork declines: the caller gets `Bye{DECLINED}`, the other forks
    /// `Bye{DECLINED_ELSEWHERE}`.
    fn decline(&mut self, key: CallKey, leg: Leg) {
        let forks = &mut self.ringing_mut(key).forks;
        forks.retain(|f| *f != leg);
        self.forget_leg(key, leg);
        self.end_ringing(
            key,
            ByeReason::DeclinedElsewhere,
            Some(ByeReason::Declined),
            "declined",
        );
    }

    /// 4.6: the active terminal asks to move the call to its msisdn's mobile phone.
    fn hand_over(
        &mut self,
        now: Instant,
        terminal: TerminalId,
        key: CallKey,
    ) -> Result<(), Rejection> {
        let msisdn = self.terminals[&terminal].msisdn.clone();
        let call = &self.calls[&key];
        let party = call.party_of(&msisdn).expect("indexed call has the msisdn");
        let CallState::Established(established) = &call.state else {
            return Err(Rejection::new(
                ErrorCode::NotInCall,
                "only the active leg of an established call may hand it to the phone",
            ));
        };
        if established.legs[party as usize] != Leg::Terminal(terminal) {
            return Err(Rejection::new(
                ErrorCode::NotInCall,
                "only the active leg of an established call may hand it to the phone",
            ));
        }
        if !self.config.phone_network {
            return Err(Rejection::new(
                ErrorCode::Unknown,
                "handover failed: no phone network is attached",
            ));
        }
        if established.negotiation.is_some() {
            return Err(Rejection::new(
                ErrorCode::TryAgain,
                "another offer on this call is pending",
            ));
        }
        if established.legs[party.other() as usize] == Leg::Vacant {
            return Err(Rejection::new(
                ErrorCode::TryAgain,
                "the other party is reconnecting; hand over once it is back",
            ));
        }
        let peer = call.side(party.other()).msisdn.clone();
        let phone = self.new_phone_leg(key);
        let deadline = now + self.config.negotiation_timeout;
        self.established_mut(key).negotiation = Some(Negotiation {
            by: party,
            purpose: Purpose::HandOver {
                phone,
                far_offered: false,
            },
            deadline,
        });
        self.timers.insert((deadline, key, TimerKind::Negotiation));
        self.outputs
            .push_back(Output::Phone(PhoneCommand::HandOver {
                leg: phone,
                msisdn,
                peer,
            }));
        tracing::info!(?key, ?terminal, "handover to phone requested");
        Ok(())
    }

    // ----------------------------------------------------------------------------------------------
    // The phone network (section 7)
    // ----------------------------------------------------------------------------------------------

    /// One report from the phone network. Reports about legs the switch no longer knows are ignored
    /// (they raced with a release).
    pub fn handle_phone_event(&mut self, now: Instant, event: PhoneEvent) {
        let _ = now; // every input carries `now`; no phone event arms a timer today
        let leg_id = match &event {
            PhoneEvent::Ringing { leg }
            | PhoneEvent::Answered { leg, .. }
            | PhoneEvent::Rejected { leg, .. }
            | PhoneEvent::HandOverReady { leg, .. }
            | PhoneEvent::HandOverFailed { leg, .. }
            | PhoneEvent::HungUp { leg } => *leg,
        };
        let Some(&key) = self.phone_legs.get(&leg_id) else {
            tracing::debug!(?event, "phone event for an unknown leg ignored");
            return;
        };
        let leg = Leg::Phone(leg_id);
        let in_handover = self.pending_handover(key) == Some(leg_id);
        let result = match event {
            PhoneEvent::Ringing { .. } => self.alert(key, leg),
            PhoneEvent::Answered { sdp, .. } => self.answer(key, leg, sdp),
            PhoneEvent::HandOverReady { sdp, .. } if in_handover => {
                self.handover_ready(key, sdp);
                Ok(())
            }
            PhoneEvent::HandOverFailed { message, .. } if in_handover => {
                self.fail_handover(key, format!("handover failed: {message}"));
                Ok(())
            }
            PhoneEvent::Rejected { .. } | PhoneEvent::HungUp { .. } if in_handover => {
                self.fail_handover(
                    key,
                    "handover failed: the phone did not take the call".into(),
                );
                Ok(())
            }
            PhoneEvent::Rejected { reason, .. } => {
                self.phone_rejected(key, leg_id, reason);
                Ok(())
            }
            PhoneEvent::HungUp { .. } => self.phone_hung_up(key, leg_id),
            PhoneEvent::HandOverReady { .. } | PhoneEvent::HandOverFailed { .. } => {
                Err(Rejection::new(ErrorCode::NotInCall, "no handover pending"))
            }
        };
        if let Err(rejection) = result {
            tracing::debug!(?key, ?leg_id, %rejection, "phone event did not fit the call");
        }
    }

    /// The phone leg of the handover pending on call `key`, if any.
    fn pending_handover(&self, key: CallKey) -> Option<PhoneLegId> {
        match &self.calls.get(&key)?.state {
            CallState::Established(Established {
                negotiation:
                    Some(Negotiation {
                        purpose: Purpose::HandOver { phone, .. },
                        ..
                    }),
                ..
            }) => Some(*phone),
            _ => None,
        }
    }

    /// 4.6: the phone is up; re-offer the far side with its SDP.
    fn handover_ready(&mut self, key: CallKey, sdp: Sdp) {
        let established = self.established_mut(key);
        let Some(negotiation) = established.negotiation.as_mut() else {
            return;
        };
        if let Purpose::HandOver { far_offered, .. } = &mut negotiation.purpose {
            if *far_offered {
                return;
            }
            *far_offered = true;
        }
        let by = negotiation.by;
        let far_leg = established.legs[by.other() as usize];
        let from = self.calls[&key].side(by).msisdn.clone();
        self.send_to_leg(key, by.other(), far_leg, NoticeBody::Offer { sdp, from });
    }

    /// 4.6: the handover failed; the terminal gets `Error{UNKNOWN, message}` and the call stays.
    fn fail_handover(&mut self, key: CallKey, message: String) {
        let established = self.established_mut(key);
        let Some(negotiation) = established.negotiation.take() else {
            return;
        };
        let Purpose::HandOver { phone, .. } = negotiation.purpose else {
            established.negotiation = Some(negotiation);
            return;
        };
        let requester = established.legs[negotiation.by as usize];
        self.timers
            .remove(&(negotiation.deadline, key, TimerKind::Negotiation));
        self.phone_legs.remove(&phone);
        self.outputs.push_back(Output::Phone(PhoneCommand::Release {
            leg: phone,
            reason: ByeReason::NegotiationFailed,
        }));
        tracing::info!(?key, %message, "handover failed");
        self.send_to_leg(
            key,
            negotiation.by,
            requester,
            NoticeBody::Error(Rejection::new(ErrorCode::Unknown, message)),
        );
    }

    /// A phone refused a ring or a re-offer.
    fn phone_rejected(&mut self, key: CallKey, leg: PhoneLegId, reason: PhoneRejection) {
        match &mut self.calls.get_mut(&key).unwrap().state {
            CallState::Ringing(ringing) => match reason {
                PhoneRejection::Declined => self.decline(key, Leg::Phone(leg)),
                PhoneRejection::Busy | PhoneRejection::Unreachable => {
                    ringing.saw_busy |= reason == PhoneRejection::Busy;
                    let if_last = if ringing.saw_busy {
                        ByeReason::Busy
                    } else {
                        ByeReason::Unavailable
                    };
                    ringing.forks.retain(|f| *f != Leg::Phone(leg));
                    self.phone_legs.remove(&leg);
                    self.end_if_no_fork(key, if_last);
                }
            },
            CallState::Established(_) => {
                // A phone refused a re-offer: the negotiation fails as on a timeout.
                if self.negotiation_waits_on(key, Leg::Phone(leg)) {
                    self.fail_negotiation(key);
                }
            }
        }
    }

    /// A phone hung up: a ringing fork is withdrawn (4.8), an active leg ends the call (4.1).
    fn phone_hung_up(&mut self, key: CallKey, leg: PhoneLegId) -> Result<(), Rejection> {
        let phone = Leg::Phone(leg);
        match &mut self.calls.get_mut(&key).unwrap().state {
            CallState::Ringing(ringing) => {
                ringing.forks.retain(|f| *f != phone);
                self.phone_legs.remove(&leg);
                self.end_if_no_fork(key, ByeReason::Unavailable);
                Ok(())
            }
            CallState::Established(_) => self.bye(key, phone),
        }
    }

    // ----------------------------------------------------------------------------------------------
    // Time (4.3, 4.5–4.7)
    // ----------------------------------------------------------------------------------------------

    /// Fires every timer due at or before `now`: ring timeouts (caller `Bye{NO_ANSWER}`, forks
    /// `Bye{CANCELLED}`) and negotiation timeouts (the offer is dropped).
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(at, key, kind)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            match kind {
                TimerKind::Ring => self.end_ringing(
                    key,
                    ByeReason::Cancelled,
                    Some(ByeReason::NoAnswer),
                    "ring timeout",
                ),
                TimerKind::Negotiation => self.fail_negotiation(key),
                TimerKind::Grace(party) => self.end_grace(key, party),
            }
        }
    }

    /// Whether the negotiation on `key` waits for an answer from `leg`.
    fn negotiation_waits_on(&self, key: CallKey, leg: Leg) -> bool {
        match &self.calls[&key].state {
            CallState::Established(e) => e
                .negotiation
                .as_ref()
                .is_some_and(|n| e.legs[n.by.other() as usize] == leg),
            CallState::Ringing(_) => false,
        }
    }

    /// The pending negotiation on `key` failed (timed out, or a phone refused it): it is dropped and
    /// the far side is told nothing. A re-offerer gets `Error{TRY_AGAIN}`, a puller
    /// `Bye{NEGOTIATION_FAILED}`, a handover requester `Error{UNKNOWN}` (4.5–4.7).
    fn fail_negotiation(&mut self, key: CallKey) {
        let Some(CallState::Established(established)) = self.calls.get(&key).map(|c| &c.state)
        else {
            return;
        };
        let Some(negotiation) = &established.negotiation else {
            return;
        };
        let (by, purpose, deadline) = (negotiation.by, negotiation.purpose, negotiation.deadline);
        let offerer = established.legs[by as usize];
        match purpose {
            Purpose::HandOver { .. } => self.fail_handover(
                key,
                "handover failed: the far side did not answer in time".into(),
            ),
            Purpose::ReOffer => {
                self.timers.remove(&(deadline, key, TimerKind::Negotiation));
                self.established_mut(key).negotiation = None;
                self.send_to_leg(
                    key,
                    by,
                    offerer,
                    NoticeBody::Error(Rejection::new(
                        ErrorCode::TryAgain,
                        "the re-offer was not answered in time",
                    )),
                );
            }
            Purpose::Pull { puller } => {
                self.timers.remove(&(deadline, key, TimerKind::Negotiation));
                self.established_mut(key).negotiation = None;
                self.forget_pull(puller, key);
                let id = self.calls[&key].side(by).id;
                self.deliver(
                    puller,
                    Some(id),
                    NoticeBody::Bye {
                        reason: ByeReason::NegotiationFailed,
                    },
                );
            }
        }
    }

    /// 4.8: the active terminal of side `party` went away and a reconnect grace is configured. The
    /// side's leg becomes vacant until the grace ends; every terminal of its number (a reconnecting
    /// one included) sees `InCall` and may pull the call back, and the far side is told nothing. A
    /// negotiation that needed the gone leg fails now; a pull by the side's own terminals goes on.
    fn park(&mut self, now: Instant, key: CallKey, party: Party) {
        let deadline = now + self.config.reconnect_grace;
        let established = self.established_mut(key);
        established.legs[party as usize] = Leg::Vacant;
        established.grace[party as usize] = Some(deadline);
        let keep_negotiation = matches!(
            established.negotiation,
            Some(Negotiation { by, purpose: Purpose::Pull { .. }, .. }) if by == party
        );
        self.timers.insert((deadline, key, TimerKind::Grace(party)));
        if !keep_negotiation {
            self.fail_negotiation(key);
        }
        tracing::info!(?key, grace = ?self.config.reconnect_grace, "active leg gone; reconnect grace");
        let msisdn = self.calls[&key].side(party).msisdn.clone();
        self.refresh_views(&msisdn, Some(key));
    }

    /// 4.8: side `party`'s reconnect grace ended with nobody back: the far side gets
    /// `Bye{PEER_GONE}` (and a pending puller too) and the call ends.
    fn end_grace(&mut self, key: CallKey, party: Party) {
        let Some(CallState::Established(e)) = self.calls.get(&key).map(|c| &c.state) else {
            return;
        };
        if e.legs[party as usize] != Leg::Vacant {
            return;
        }
        self.established_mut(key).grace[party as usize] = None;
        self.end_established(key, ByeReason::PeerGone, "reconnect grace over", None);
    }

    // ----------------------------------------------------------------------------------------------
    // Shutdown (4.9)
    // ----------------------------------------------------------------------------------------------

    /// Sends `Bye{SERVER_SHUTDOWN}` on every live leg (callers, ringing forks, active legs, pending
    /// pullers) and releases every phone leg; afterwards the switch holds no call. Terminals stay
    /// registered until the server ends their streams.
    pub fn shutdown(&mut self, now: Instant) {
        let _ = now;
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

    // ----------------------------------------------------------------------------------------------
    // Ending calls
    // ----------------------------------------------------------------------------------------------

    /// Ends ringing call `key`: every fork gets `Bye{fork_reason}`, the caller `Bye{caller_reason}`
    /// when given.
    fn end_ringing(
        &mut self,
        key: CallKey,
        fork_reason: ByeReason,
        caller_reason: Option<ByeReason>,
        why: &'static str,
    ) {
        let CallState::Ringing(ringing) = &self.calls[&key].state else {
            return;
        };
        let forks = ringing.forks.clone();
        let caller_leg = ringing.caller_leg;
        for fork in forks {
            self.drop_fork(key, fork, fork_reason);
        }
        if let Some(reason) = caller_reason {
            self.send_to_leg(key, Party::Caller, caller_leg, NoticeBody::Bye { reason });
        }
        tracing::info!(?key, why, ?caller_reason, "ringing call ended");
        self.remove_call(key);
    }

    /// A fork is gone from ringing call `key`; when none is left the caller gets `Bye{reason}`
    /// (4.3, 4.8).
    fn end_if_no_fork(&mut self, key: CallKey, reason: ByeReason) {
        let CallState::Ringing(ringing) = &self.calls[&key].state else {
            return;
        };
        if ringing.forks.is_empty() {
            self.end_ringing(key, ByeReason::Cancelled, Some(reason), "no device left");
        }
    }

    /// Ends established call `key`: every active leg but `except` (the leg that ended it, if any)
    /// gets `Bye{reason}`, and so does a pending puller; a pending handover phone is released; then
    /// the call is removed and the numbers' observers get Idle.
    fn end_established(
        &mut self,
        key: CallKey,
        reason: ByeReason,
        why: &'static str,
        except: Option<Leg>,
    ) {
        let CallState::Established(established) = &self.calls[&key].state else {
            return;
        };
        let legs = established.legs;
        let negotiation = established
            .negotiation
            .as_ref()
            .map(|n| (n.by, n.purpose, n.deadline));
        if let Some((by, purpose, deadline)) = negotiation {
            self.timers.remove(&(deadline, key, TimerKind::Negotiation));
            match purpose {
                Purpose::Pull { puller } => {
                    self.forget_pull(puller, key);
                    let id = self.calls[&key].side(by).id;
                    self.deliver(puller, Some(id), NoticeBody::Bye { reason });
                }
                Purpose::HandOver { phone, .. } => {
                    self.phone_legs.remove(&phone);
                    self.outputs
                        .push_back(Output::Phone(PhoneCommand::Release { leg: phone, reason }));
                }
                Purpose::ReOffer => {}
            }
        }
        for (party, leg) in [(Party::Caller, legs[0]), (Party::Callee, legs[1])] {
            if Some(leg) != except {
                self.send_to_leg(key, party, leg, NoticeBody::Bye { reason });
            }
        }
        tracing::info!(?key, why, ?reason, "call ended");
        self.remove_call(key);
    }

    /// Removes call `key` from every index, disarms its timers, and brings both numbers' terminals'
    /// views up to date (Idle / InCall, 4.4).
    fn remove_call(&mut self, key: CallKey) {
        let Some(call) = self.calls.remove(&key) else {
            return;
        };
        let legs: Vec<Leg> = match &call.state {
            CallState::Ringing(r) => {
                self.timers.remove(&(r.deadline, key, TimerKind::Ring));
                let mut legs = r.forks.clone();
                legs.push(r.caller_leg);
                legs
            }
            CallState::Established(e) => {
                if let Some(n) = &e.negotiation {
                    self.timers
                        .remove(&(n.deadline, key, TimerKind::Negotiation));
                }
                for party in [Party::Caller, Party::Callee] {
                    if let Some(at) = e.grace[party as usize] {
                        self.timers.remove(&(at, key, TimerKind::Grace(party)));
                    }
                }
                e.legs.to_vec()
            }
        };
        for leg in legs {
            self.forget_leg(key, leg);
        }
        for side in &call.sides {
            if let Some(subscriber) = self.subscribers.get_mut(&side.msisdn) {
                subscriber.calls.remove(&side.id);
            }
        }
        for side in &call.sides {
            self.refresh_views(&side.msisdn, None);
            self.forget_subscriber_if_empty(&side.msisdn);
        }
    }

    // ----------------------------------------------------------------------------------------------
    // Views: InCall and Idle (4.4)
    // ----------------------------------------------------------------------------------------------

    /// Brings every terminal of `msisdn` in step with the switch (4.4): a terminal that is not the
    /// active leg of an established call of its msisdn gets `InCall` for it (again, if `moved` is that
    /// call: its active leg moved), and `Idle` when such a call ends. A Pipe reflects only the most
    /// recently established call, and nothing while it is in a call of its own; it gets `Idle{}` only
    /// when its msisdn is in no established call at all.
    fn refresh_views(&mut self, msisdn: &Msisdn, moved: Option<CallKey>) {
        let Some(subscriber) = self.subscribers.get(msisdn) else {
            return;
        };
        if subscriber.terminals.is_empty() {
            return;
        }
        let established = self.established_calls(msisdn);
        let terminals = subscriber.terminals.clone();
        for terminal in terminals {
            let t = self.terminals.get_mut(&terminal).unwrap();
            let mut notices: Vec<(Option<CallId>, NoticeBody)> = Vec::new();
            let load = t.load();
            match &mut t.view {
                View::Multi(seen) => {
                    let mut desired = BTreeMap::new();
                    for call in &established {
                        if call.leg == Leg::Terminal(terminal) {
                            continue;
                        }
                        desired.insert(call.key, call.id);
                        if !seen.contains_key(&call.key) || moved == Some(call.key) {
                            let peer = call.peer.clone();
                            notices.push((Some(call.id), NoticeBody::InCall { peer }));
                        }
                    }
                    for (key, id) in seen.iter() {
                        // A call that left the view because this terminal became its active leg
                        // needs no message; one that ended gets Idle.
                        let ended = !established.iter().any(|c| c.key == *key);
                        if ended && !desired.contains_key(key) {
                            notices.push((Some(*id), NoticeBody::Idle));
                        }
                    }
                    *seen = desired;
                }
                View::Single { seen, paused } => {
                    if load > 0 {
                        // Busy: told nothing now. A call it now carries itself is no longer one
                        // it observes; anything else it was told stays what it believes.
                        if seen.is_some_and(|(key, _)| t.calls.contains(&key)) {
                            *seen = None;
                        }
                        *paused = true;
                        continue;
                    }
                    // Free: the most recent established call it does not carry (it carries none).
                    let desired = established.last();
                    let resync = std::mem::take(paused);
                    match desired {
                        Some(call) => {
                            let known = seen.map(|(k, _)| k) == Some(call.key);
                            if !known || moved == Some(call.key) || resync {
                                let peer = call.peer.clone();
                                notices.push((Some(call.id), NoticeBody::InCall { peer }));
                            }
                        }
                        // Idle{} only when its number is in no established call at all.
                        None if seen.is_some() => notices.push((None, NoticeBody::Idle)),
                        None => {}
                    }
                    *seen = desired.map(|c| (c.key, c.id));
                }
            }
            for (id, body) in notices {
                self.deliver(terminal, id, body);
            }
        }
    }

    /// The established calls of `msisdn`, oldest first.
    fn established_calls(&self, msisdn: &Msisdn) -> Vec<SeenCall> {
        let Some(subscriber) = self.subscribers.get(msisdn) else {
            return Vec::new();
        };
        let mut calls: Vec<SeenCall> = subscriber
            .calls
            .values()
            .filter_map(|key| {
                let call = &self.calls[key];
                let CallState::Established(e) = &call.state else {
                    return None;
                };
                let party = call.party_of(msisdn)?;
                Some(SeenCall {
                    since: e.since,
                    key: *key,
                    id: call.side(party).id,
                    leg: e.legs[party as usize],
                    peer: call.side(party.other()).msisdn.clone(),
                })
            })
            .collect();
        calls.sort_by_key(|c| c.since);
        calls
    }

    fn set_view_single(&mut self, terminal: TerminalId, value: Option<(CallKey, CallId)>) {
        if let View::Single { seen, .. } = &mut self.terminals.get_mut(&terminal).unwrap().view {
            *seen = value;
        }
    }

    // ----------------------------------------------------------------------------------------------
    // Small pieces
    // ----------------------------------------------------------------------------------------------

    /// Section 5: a terminal may be offered a new call when it has not half-closed and is a Pipe in no
    /// call, or a MultiPipe under its call cap. A Pipe with a pull pending is about to carry that
    /// call, so it counts as in a call: were it offered (and did it answer) a new call meanwhile,
    /// the pull's success would leave the Pipe in two calls.
    fn is_eligible(&self, terminal: TerminalId) -> bool {
        let t = &self.terminals[&terminal];
        !t.half_closed
            && match t.kind {
                PipeKind::Pipe => t.load() == 0,
                PipeKind::MultiPipe => t.load() < self.config.multipipe_call_cap,
            }
    }

    /// Sends `body` to `leg`, which carries side `party` of call `key`: a terminal gets it with the
    /// side's id; a phone leg gets the matching phone command.
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
                    // A phone is never a caller here nor an observer: nothing else reaches it.
                    NoticeBody::Ringing
                    | NoticeBody::Idle
                    | NoticeBody::InCall { .. }
                    | NoticeBody::Error(_) => return,
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

    fn new_phone_leg(&mut self, key: CallKey) -> PhoneLegId {
        let leg = PhoneLegId(self.next_phone_leg);
        self.next_phone_leg += 1;
        self.phone_legs.insert(leg, key);
        leg
    }

    fn forget_terminal_call(&mut self, terminal: TerminalId, key: CallKey) {
        if let Some(t) = self.terminals.get_mut(&terminal) {
            t.calls.retain(|k| *k != key);
        }
    }

    fn forget_pull(&mut self, terminal: TerminalId, key: CallKey) {
        if let Some(t) = self.terminals.get_mut(&terminal) {
            t.pulls.retain(|k| *k != key);
        }
    }

    /// The puller went away: its pending pull is dropped; the far side is told nothing (as on a
    /// negotiation timeout, 4.7).
    fn abandon_pull(&mut self, key: CallKey, terminal: TerminalId) {
        self.forget_pull(terminal, key);
        let Some(CallState::Established(e)) = self.calls.get_mut(&key).map(|c| &mut c.state) else {
            return;
        };
        if let Some(n) = &e.negotiation {
            if n.purpose == (Purpose::Pull { puller: terminal }) {
                self.timers
                    .remove(&(n.deadline, key, TimerKind::Negotiation));
                e.negotiation = None;
            }
        }
    }

    fn forget_subscriber_if_empty(&mut self, msisdn: &Msisdn) {
        if self
            .subscribers
            .get(msisdn)
            .is_some_and(|s| s.terminals.is_empty() && s.calls.is_empty())
        {
            self.subscribers.remove(msisdn);
        }
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

    // ----------------------------------------------------------------------------------------------
    // Invariants (for tests and the model-based test)
    // ----------------------------------------------------------------------------------------------

    /// Checks the switch's internal consistency: every index agrees with the calls, every id is
    /// scoped to its msisdn, every leg and fork is a registered terminal of the right msisdn or a
    /// known phone leg, every armed timer belongs to a live state, and no subscriber entry is empty.
    ///
    /// # Errors
    /// A description of the first broken invariant.
    pub fn check_invariants(&self) -> Result<(), String> {
        let leg_ok = |leg: &Leg, msisdn: &Msisdn, key: CallKey| -> Result<(), String> {
            match leg {
                Leg::Terminal(t) => {
                    let term = self
                        .terminals
                        .get(t)
                        .ok_or(format!("{key:?}: leg {t:?} is not registered"))?;
                    if term.msisdn != *msisdn {
                        return Err(format!("{key:?}: leg {t:?} belongs to another number"));
                    }
                    if !term.calls.contains(&key) {
                        return Err(format!("{key:?}: terminal {t:?} does not list the call"));
                    }
                }
                Leg::Phone(p) => {
                    if self.phone_legs.get(p) != Some(&key) {
                        return Err(format!("{key:?}: phone leg {p:?} is not indexed"));
                    }
                }
                Leg::Vacant => return Err(format!("{key:?}: a vacant leg outside a grace")),
            }
            Ok(())
        };
        let mut armed = 0;
        for (key, call) in &self.calls {
            if call.sides[0].msisdn == call.sides[1].msisdn {
                return Err(format!("{key:?}: both sides have the same number"));
            }
            for side in &call.sides {
                let s = self
                    .subscribers
                    .get(&side.msisdn)
                    .ok_or(format!("{key:?}: side's number has no subscriber entry"))?;
                if s.calls.get(&side.id) != Some(key) {
                    return Err(format!("{key:?}: side id not indexed under its number"));
                }
            }
            match &call.state {
                CallState::Ringing(r) => {
                    leg_ok(&r.caller_leg, &call.sides[0].msisdn, *key)?;
                    if r.forks.is_empty() {
                        return Err(format!("{key:?}: ringing with no fork"));
                    }
                    for fork in &r.forks {
                        leg_ok(fork, &call.sides[1].msisdn, *key)?;
                    }
                    if !self.timers.contains(&(r.deadline, *key, TimerKind::Ring)) {
                        return Err(format!("{key:?}: ringing without a ring timer"));
                    }
                    armed += 1;
                }
                CallState::Established(e) => {
                    for party in [Party::Caller, Party::Callee] {
                        let leg = &e.legs[party as usize];
                        match (leg, e.grace[party as usize]) {
                            (Leg::Vacant, Some(at)) => {
                                if !self.timers.contains(&(at, *key, TimerKind::Grace(party))) {
                                    return Err(format!(
                                        "{key:?}: vacant leg without a grace timer"
                                    ));
                                }
                                armed += 1;
                            }
                            (_, None) => leg_ok(leg, &call.side(party).msisdn, *key)?,
                            (_, Some(_)) => {
                                return Err(format!("{key:?}: grace armed for a present leg"))
                            }
                        }
                    }
                    if let Some(n) = &e.negotiation {
                        if !self
                            .timers
                            .contains(&(n.deadline, *key, TimerKind::Negotiation))
                        {
                            return Err(format!("{key:?}: negotiation without a timer"));
                        }
                        armed += 1;
                        if let Purpose::Pull { puller } = n.purpose {
                            let t = self
                                .terminals
                                .get(&puller)
                                .ok_or(format!("{key:?}: puller gone"))?;
                            if t.msisdn != call.sides[n.by as usize].msisdn
                                || !t.pulls.contains(key)
                            {
                                return Err(format!("{key:?}: puller inconsistent"));
                            }
                        }
                    }
                }
            }
        }
        if armed != self.timers.len() {
            return Err(format!(
                "{} timers armed for {armed} live deadlines",
                self.timers.len()
            ));
        }
        for (msisdn, s) in &self.subscribers {
            if s.terminals.is_empty() && s.calls.is_empty() {
                return Err(format!("empty subscriber entry for {msisdn:?}"));
            }
            for t in &s.terminals {
                if self.terminals.get(t).map(|t| &t.msisdn) != Some(msisdn) {
                    return Err(format!("{t:?} listed under the wrong number"));
                }
            }
        }
        for (id, t) in &self.terminals {
            if t.kind == PipeKind::Pipe && t.calls.len() > 1 {
                return Err(format!("Pipe {id:?} is in {} calls", t.calls.len()));
            }
            for key in t.calls.iter().chain(&t.pulls) {
                if !self.calls.contains_key(key) {
                    return Err(format!("{id:?} lists a call that is gone"));
                }
            }
        }
        for (p, key) in &self.phone_legs {
            if !self.calls.contains_key(key) {
                return Err(format!("phone leg {p:?} of a call that is gone"));
            }
        }
        Ok(())
    }
}
