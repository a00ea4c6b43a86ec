//! A virtual network around the sans-IO switch (after quinn-proto's `tests/util.rs` `Pair`):
//! terminals with inboxes, a phone network whose commands are recorded, and a clock moved by hand.
//! Dropping a `Net` unregisters every terminal and checks that the switch holds no call
//! (PROTOCOL.md section 6: when every terminal has gone, the core holds no call).

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};
use webterminal_core::core::*;

/// An SDP fixture from `tests/fixtures/sdp/`, validated as the edge would.
pub fn sdp(name: &str) -> Sdp {
    Sdp::parse(&fixture(name), 64 * 1024).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The raw text of an SDP fixture.
pub fn fixture(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/sdp/{name}.sdp",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn msisdn(s: &str) -> Msisdn {
    Msisdn::parse(s).unwrap()
}

pub const A: &str = "+4790000001";
pub const B: &str = "+4790000002";
pub const C: &str = "+4790000003";

pub struct Net {
    pub switch: Switch,
    pub now: Instant,
    next_terminal: u64,
    inbox: HashMap<TerminalId, VecDeque<Notice>>,
    pub phone: VecDeque<PhoneCommand>,
    /// Call events not yet looked at (`take_events`).
    pub events: VecDeque<CallEvent>,
    /// Every call's statuses so far, by call_ref, checked on drop (one final status each).
    lifecycles: HashMap<CallRef, Vec<CallStatus>>,
    last_sequence: u64,
    live: Vec<TerminalId>,
    next_dial: u64,
}

impl Net {
    /// A switch with the phone network off (numbers without terminals are unavailable) and no
    /// reconnect grace (an active leg that goes away ends its call at once).
    pub fn new() -> Self {
        Self::with(SwitchConfig {
            phone_network: false,
            ..Self::config()
        })
    }

    /// A switch with the phone network on: every call also forks to the callee's phone.
    pub fn with_phones() -> Self {
        Self::with(Self::config())
    }

    /// Phone network off, and a MultiPipe may be in at most `cap` calls at once.
    pub fn with_call_cap(cap: usize) -> Self {
        Self::with(SwitchConfig {
            phone_network: false,
            multipipe_call_cap: cap,
            ..Self::config()
        })
    }

    /// The default configuration, but with no reconnect grace: tests of other behaviours see
    /// `Bye{PEER_GONE}` at once. `reconnect_grace.rs` turns it on.
    pub fn config() -> SwitchConfig {
        SwitchConfig {
            reconnect_grace: Duration::ZERO,
            ..SwitchConfig::default()
        }
    }

    pub fn with(config: SwitchConfig) -> Self {
        let now = Instant::now();
        Net {
            switch: Switch::new(config, 1, now),
            now,
            next_terminal: 1,
            inbox: HashMap::new(),
            phone: VecDeque::new(),
            events: VecDeque::new(),
            lifecycles: HashMap::new(),
            last_sequence: 0,
            live: Vec::new(),
            next_dial: 0,
        }
    }

    pub fn try_register(
        &mut self,
        number: &str,
        kind: PipeKind,
    ) -> Result<TerminalId, RegisterError> {
        let id = TerminalId(self.next_terminal);
        self.next_terminal += 1;
        self.switch.register(self.now, id, msisdn(number), kind)?;
        self.live.push(id);
        self.inbox.entry(id).or_default();
        self.drain();
        Ok(id)
    }

    /// Opens a Pipe for `number`. Its opening InCall/Idle stays in its inbox.
    pub fn pipe(&mut self, number: &str) -> TerminalId {
        self.try_register(number, PipeKind::Pipe).unwrap()
    }

    /// Opens a MultiPipe for `number`.
    pub fn multi(&mut self, number: &str) -> TerminalId {
        self.try_register(number, PipeKind::MultiPipe).unwrap()
    }

    /// Sends a message from `t`; outputs are drained into inboxes.
    pub fn send(
        &mut self,
        t: TerminalId,
        call_id: Option<CallId>,
        body: RequestBody,
    ) -> Result<(), Rejection> {
        let result = self
            .switch
            .handle_request(self.now, t, Request { call_id, body });
        self.drain();
        result
    }

    /// Sends and expects the switch to accept.
    pub fn ok(&mut self, t: TerminalId, call_id: Option<CallId>, body: RequestBody) {
        if let Err(e) = self.send(t, call_id, body) {
            panic!("{t:?} was refused: {e}");
        }
    }

    /// Sends and returns the error code the switch answers with.
    pub fn refused(
        &mut self,
        t: TerminalId,
        call_id: Option<CallId>,
        body: RequestBody,
    ) -> ErrorCode {
        match self.send(t, call_id, body) {
            Ok(()) => panic!("{t:?}: expected a refusal"),
            Err(e) => e.code,
        }
    }

    pub fn phone_event(&mut self, event: PhoneEvent) {
        self.switch.handle_phone_event(self.now, event);
        self.drain();
    }

    pub fn half_close(&mut self, t: TerminalId) {
        self.switch.half_close(self.now, t);
        self.drain();
    }

    pub fn gone(&mut self, t: TerminalId) {
        self.switch.unregister(self.now, t);
        self.live.retain(|x| *x != t);
        self.drain();
    }

    /// Moves the clock forward by `d`, firing every timer due, in order.
    pub fn advance(&mut self, d: Duration) {
        let until = self.now + d;
        while let Some(at) = self.switch.poll_timeout() {
            if at > until {
                break;
            }
            self.now = self.now.max(at);
            self.switch.handle_timeout(self.now);
            self.drain();
        }
        self.now = until;
    }

    fn drain(&mut self) {
        while let Some(out) = self.switch.poll_output() {
            match out {
                Output::Deliver { terminal, notice } => {
                    self.inbox.entry(terminal).or_default().push_back(notice)
                }
                Output::Phone(cmd) => self.phone.push_back(cmd),
                Output::Event(event) => {
                    assert_eq!(
                        event.sequence,
                        self.last_sequence + 1,
                        "sequences grow by one"
                    );
                    self.last_sequence = event.sequence;
                    let statuses = self.lifecycles.entry(event.call_ref).or_default();
                    assert!(
                        statuses.last().is_none_or(|s| !s.is_final()),
                        "an event after the final one: {statuses:?} then {event:?}"
                    );
                    statuses.push(event.status);
                    self.events.push_back(event);
                }
            }
        }
        self.switch
            .check_invariants()
            .unwrap_or_else(|e| panic!("invariant broken: {e}"));
    }

    /// Everything `t` got since the last look.
    pub fn take(&mut self, t: TerminalId) -> Vec<Notice> {
        self.inbox
            .get_mut(&t)
            .map(|q| q.drain(..).collect())
            .unwrap_or_default()
    }

    /// The next notice of `t`; panics when there is none.
    pub fn next(&mut self, t: TerminalId) -> Notice {
        self.inbox
            .get_mut(&t)
            .and_then(|q| q.pop_front())
            .unwrap_or_else(|| panic!("{t:?} got nothing"))
    }

    /// Asserts `t` got nothing.
    pub fn silent(&mut self, t: TerminalId) {
        let got = self.take(t);
        assert!(got.is_empty(), "{t:?} should have got nothing, got {got:?}");
    }

    /// The next phone command; panics when there is none.
    pub fn next_phone(&mut self) -> PhoneCommand {
        self.phone.pop_front().expect("no phone command")
    }

    /// Places a call from `caller` to `number`; returns the caller side's id (the one the caller
    /// chose for a MultiPipe, the one the core made for a Pipe, read from the first notice it gets,
    /// or `None` for a Pipe that has got nothing yet).
    pub fn call(&mut self, caller: TerminalId, number: &str, offer: &str) -> Option<CallId> {
        let kind = self.switch.terminal_kind(caller).unwrap();
        let id = (kind == PipeKind::MultiPipe).then(CallId::random);
        self.ok(
            caller,
            id,
            RequestBody::Offer {
                sdp: sdp(offer),
                to: Some(msisdn(number)),
                context: Default::default(),
            },
        );
        id
    }

    /// Expects `t`'s next notice to be an incoming Offer; returns its call id.
    pub fn expect_offer(&mut self, t: TerminalId) -> CallId {
        match self.next(t) {
            Notice {
                call_id: Some(id),
                body: NoticeBody::Offer { .. },
            } => id,
            other => panic!("{t:?}: expected an Offer, got {other:?}"),
        }
    }

    /// Expects `t`'s next notice to be `Bye{reason}`; returns its call id.
    pub fn expect_bye(&mut self, t: TerminalId, reason: ByeReason) -> CallId {
        match self.next(t) {
            Notice {
                call_id: Some(id),
                body: NoticeBody::Bye { reason: r },
            } if r == reason => id,
            other => panic!("{t:?}: expected Bye{{{reason:?}}}, got {other:?}"),
        }
    }

    /// Expects `t`'s next notice to be exactly `body` on call `id`.
    pub fn expect(&mut self, t: TerminalId, id: Option<CallId>, body: NoticeBody) {
        let got = self.next(t);
        assert_eq!(got, Notice { call_id: id, body }, "{t:?}");
    }
}

/// `Offer{sdp=fixture, msisdn=to}`: a new call.
pub fn offer_to(number: &str, fixture: &str) -> RequestBody {
    RequestBody::Offer {
        sdp: sdp(fixture),
        to: Some(msisdn(number)),
        context: Default::default(),
    }
}

/// `Offer{sdp=fixture, msisdn=to, data=context}`: a new call with call context.
pub fn offer_with_context(number: &str, fixture: &str, context: &CallContext) -> RequestBody {
    RequestBody::Offer {
        sdp: sdp(fixture),
        to: Some(msisdn(number)),
        context: context.clone(),
    }
}

/// A call context of these entries, validated as the edge would.
pub fn context(entries: &[(&str, &str)]) -> CallContext {
    CallContext::parse(
        entries
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    )
    .unwrap()
}

/// `Offer{sdp=fixture}` with no number: a re-offer (4.7) or a pull (4.5).
pub fn reoffer(fixture: &str) -> RequestBody {
    RequestBody::Offer {
        sdp: sdp(fixture),
        to: None,
        context: Default::default(),
    }
}

/// `Answer{sdp=fixture}`.
pub fn answer(fixture: &str) -> RequestBody {
    RequestBody::Answer { sdp: sdp(fixture) }
}

/// Extensions used by the behaviour files; the functions above keep their behaviour.
impl Net {
    /// The call_id `t` puts on a message about call `id`: the id for a MultiPipe, none for a Pipe
    /// (a Pipe's call_id is ignored, PROTOCOL.md section 3).
    pub fn id_for(&self, t: TerminalId, id: CallId) -> Option<CallId> {
        match self.switch.terminal_kind(t) {
            Some(PipeKind::MultiPipe) => Some(id),
            _ => None,
        }
    }

    /// MultiPipe `caller` (of A) calls B with chromium-offer; B's phone is rung and answers with
    /// aiortc-answer, which reaches the caller. Returns (the caller side's id, the phone leg).
    pub fn call_answered_by_phone(&mut self, caller: TerminalId) -> (CallId, PhoneLegId) {
        let a_id = self.call(caller, B, "chromium-offer").unwrap();
        let leg = self.expect_ring(B, A, "chromium-offer");
        self.phone_event(PhoneEvent::Answered {
            leg,
            sdp: sdp("aiortc-answer"),
        });
        self.expect_answer(caller, a_id, "aiortc-answer");
        (a_id, leg)
    }

    /// Opens a Pipe for `number` and consumes its opening `Idle{}` (asserting it is that).
    pub fn idle_pipe(&mut self, number: &str) -> TerminalId {
        let t = self.pipe(number);
        self.expect(t, None, NoticeBody::Idle);
        t
    }

    /// `caller` calls `number` with chromium-offer; `callee` (a terminal of `number` that is
    /// offered the call) answers with chromium-answer. Every other inbox is left alone. Returns
    /// (caller side id, callee side id).
    pub fn connect(
        &mut self,
        caller: TerminalId,
        number: &str,
        callee: TerminalId,
    ) -> (CallId, CallId) {
        self.call(caller, number, "chromium-offer");
        let b_id = self.expect_offer(callee);
        let req = self.id_for(callee, b_id);
        self.ok(callee, req, answer("chromium-answer"));
        let a_id = match self.next(caller) {
            Notice {
                call_id: Some(id),
                body: NoticeBody::Answer { sdp: got },
            } => {
                assert_eq!(got.as_str(), fixture("chromium-answer"));
                id
            }
            other => panic!("{caller:?}: expected the Answer, got {other:?}"),
        };
        (a_id, b_id)
    }

    /// Expects `t`'s next notice to be an Offer on `id` from `from` whose SDP is byte-identical to
    /// fixture `fixture_name`.
    pub fn expect_offer_of(&mut self, t: TerminalId, id: CallId, from: &str, fixture_name: &str) {
        match self.next(t) {
            Notice {
                call_id: Some(got_id),
                body:
                    NoticeBody::Offer {
                        sdp: got, from: f, ..
                    },
            } => {
                assert_eq!(got_id, id, "{t:?}: offer on the wrong call id");
                assert_eq!(f, msisdn(from), "{t:?}: offer from the wrong number");
                assert_eq!(
                    got.as_str(),
                    fixture(fixture_name),
                    "{t:?}: SDP not relayed byte for byte"
                );
            }
            other => panic!("{t:?}: expected an Offer, got {other:?}"),
        }
    }

    /// Expects `t`'s next notice to be an Answer on `id` whose SDP is byte-identical to the fixture.
    pub fn expect_answer(&mut self, t: TerminalId, id: CallId, fixture_name: &str) {
        match self.next(t) {
            Notice {
                call_id: Some(got_id),
                body: NoticeBody::Answer { sdp: got },
            } => {
                assert_eq!(got_id, id, "{t:?}: answer on the wrong call id");
                assert_eq!(
                    got.as_str(),
                    fixture(fixture_name),
                    "{t:?}: SDP not relayed byte for byte"
                );
            }
            other => panic!("{t:?}: expected an Answer, got {other:?}"),
        }
    }

    /// Expects `t`'s next notice to be `InCall{peer}` on `id`.
    pub fn expect_in_call(&mut self, t: TerminalId, id: CallId, peer: &str) {
        self.expect(t, Some(id), NoticeBody::InCall { peer: msisdn(peer) });
    }

    /// Expects `t`'s next notice to be an asynchronous `Error{code}` on `id` with a message.
    pub fn expect_error(&mut self, t: TerminalId, id: CallId, code: ErrorCode) {
        match self.next(t) {
            Notice {
                call_id: Some(got_id),
                body: NoticeBody::Error(rejection),
            } if got_id == id && rejection.code == code => {
                assert!(!rejection.message.is_empty(), "an Error carries a message");
            }
            other => panic!("{t:?}: expected Error{{{code:?}}} on {id:?}, got {other:?}"),
        }
    }

    /// Expects the next phone command to be a `Ring` to `to` from `from` with fixture `offer`'s SDP;
    /// returns its leg.
    pub fn expect_ring(&mut self, to: &str, from: &str, offer: &str) -> PhoneLegId {
        match self.next_phone() {
            PhoneCommand::Ring {
                leg,
                to: t,
                from: f,
                sdp: s,
                ..
            } => {
                assert_eq!(t, msisdn(to));
                assert_eq!(f, msisdn(from));
                assert_eq!(s.as_str(), fixture(offer), "SDP not relayed byte for byte");
                leg
            }
            other => panic!("expected PhoneCommand::Ring, got {other:?}"),
        }
    }

    /// Expects the next phone command to be `Release{leg, reason}`.
    pub fn expect_release(&mut self, leg: PhoneLegId, reason: ByeReason) {
        assert_eq!(self.next_phone(), PhoneCommand::Release { leg, reason });
    }

    /// The phone of `from` calls `number` with fixture `offer` (4.11), on a leg the network numbers;
    /// returns that leg (the caller side's active leg).
    pub fn dial(&mut self, from: &str, number: &str, offer: &str) -> PhoneLegId {
        self.next_dial += 1;
        let leg = PhoneLegId::from_network(self.next_dial);
        self.phone_event(PhoneEvent::Incoming {
            leg,
            from: msisdn(from),
            to: msisdn(number),
            sdp: sdp(offer),
            context: Default::default(),
        });
        leg
    }

    /// Expects `t`'s next notice to be an incoming Offer from `from` with fixture `fixture_name`'s
    /// SDP byte for byte; returns its call id.
    pub fn expect_offer_from(&mut self, t: TerminalId, from: &str, fixture_name: &str) -> CallId {
        match self.next(t) {
            Notice {
                call_id: Some(id),
                body:
                    NoticeBody::Offer {
                        sdp: got, from: f, ..
                    },
            } => {
                assert_eq!(f, msisdn(from), "{t:?}: offer from the wrong number");
                assert_eq!(
                    got.as_str(),
                    fixture(fixture_name),
                    "SDP not relayed byte for byte"
                );
                id
            }
            other => panic!("{t:?}: expected an Offer, got {other:?}"),
        }
    }

    /// Expects `t`'s next notice to be an Offer carrying exactly call context `context`; returns
    /// its call id.
    pub fn expect_offer_with_context(&mut self, t: TerminalId, context: &CallContext) -> CallId {
        match self.next(t) {
            Notice {
                call_id: Some(id),
                body: NoticeBody::Offer { context: got, .. },
            } => {
                assert_eq!(&got, context, "{t:?}: the Offer's call context");
                id
            }
            other => panic!("{t:?}: expected an Offer, got {other:?}"),
        }
    }

    /// Expects `t`'s next notice to be `InCall{peer}` on some id; returns that id.
    pub fn expect_in_call_any(&mut self, t: TerminalId, peer: &str) -> CallId {
        match self.next(t) {
            Notice {
                call_id: Some(id),
                body: NoticeBody::InCall { peer: p },
            } if p == msisdn(peer) => id,
            other => panic!("{t:?}: expected InCall{{{peer}}}, got {other:?}"),
        }
    }

    /// Expects the next phone command to be `Answer{leg}` with fixture `fixture_name`'s SDP.
    pub fn expect_phone_answer(&mut self, leg: PhoneLegId, fixture_name: &str) {
        match self.next_phone() {
            PhoneCommand::Answer { leg: l, sdp: s } if l == leg => {
                assert_eq!(
                    s.as_str(),
                    fixture(fixture_name),
                    "SDP not relayed byte for byte"
                );
            }
            other => panic!("expected PhoneCommand::Answer on {leg:?}, got {other:?}"),
        }
    }

    /// Expects the next phone command to be a re-offer `Offer{leg}` with fixture `fixture_name`'s SDP.
    pub fn expect_phone_offer(&mut self, leg: PhoneLegId, fixture_name: &str) {
        match self.next_phone() {
            PhoneCommand::Offer { leg: l, sdp: s } if l == leg => {
                assert_eq!(
                    s.as_str(),
                    fixture(fixture_name),
                    "SDP not relayed byte for byte"
                );
            }
            other => panic!("expected PhoneCommand::Offer on {leg:?}, got {other:?}"),
        }
    }

    /// The call events since the last look, as (status, reason).
    pub fn take_events(&mut self) -> Vec<(CallStatus, Option<ByeReason>)> {
        self.events
            .drain(..)
            .map(|e| (e.status, e.reason))
            .collect()
    }

    /// The call events since the last look.
    pub fn take_full_events(&mut self) -> Vec<CallEvent> {
        self.events.drain(..).collect()
    }

    /// The operator ends `call_ref` (section 8); outputs are drained into inboxes.
    pub fn end_call(&mut self, call_ref: CallRef) -> bool {
        let ended = self.switch.end_call(self.now, call_ref);
        self.drain();
        ended
    }

    /// The server shuts down (4.9); outputs are drained into inboxes.
    pub fn shutdown(&mut self) {
        self.switch.shutdown(self.now);
        self.drain();
    }

    /// Asserts the phone network got no command.
    pub fn phone_silent(&mut self) {
        let got: Vec<PhoneCommand> = self.phone.drain(..).collect();
        assert!(
            got.is_empty(),
            "the phone network should have got nothing, got {got:?}"
        );
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        for t in std::mem::take(&mut self.live) {
            self.switch.unregister(self.now, t);
            while let Some(out) = self.switch.poll_output() {
                if let Output::Event(event) = out {
                    self.lifecycles
                        .entry(event.call_ref)
                        .or_default()
                        .push(event.status);
                }
            }
            self.switch.check_invariants().unwrap();
        }
        // Calls whose terminals went away wait out the reconnect grace (4.8), then end.
        let grace = self.switch.config().reconnect_grace;
        self.advance(grace);
        assert_eq!(
            self.switch.call_count(),
            0,
            "every terminal has gone, so the switch must hold no call"
        );
        assert_eq!(self.switch.terminal_count(), 0);
        // Section 8: every call starts with STARTED and ends with exactly one final status.
        while let Some(out) = self.switch.poll_output() {
            if let Output::Event(event) = out {
                self.lifecycles
                    .entry(event.call_ref)
                    .or_default()
                    .push(event.status);
            }
        }
        for (call, statuses) in &self.lifecycles {
            assert_eq!(
                statuses.first(),
                Some(&CallStatus::Started),
                "{call}: {statuses:?}"
            );
            let finals = statuses.iter().filter(|s| s.is_final()).count();
            assert_eq!(finals, 1, "{call}: exactly one final status: {statuses:?}");
        }
    }
}

/// `Action{Transfer{msisdn=to}}` (4.12).
pub fn transfer(to: &str) -> RequestBody {
    RequestBody::Transfer { to: msisdn(to) }
}

/// A (MultiPipe `a`) in a call with B (MultiPipe `b`), answered, inboxes and events emptied.
/// Returns (a, b, a_id, b_id).
pub fn a_with_b(net: &mut Net) -> (TerminalId, TerminalId, CallId, CallId) {
    let a = net.multi(A);
    let b = net.multi(B);
    let (a_id, b_id) = net.connect(a, B, b);
    net.take_events();
    (a, b, a_id, b_id)
}
