//! A virtual network around the sans-IO switch (after quinn-proto's `tests/util.rs` `Pair`):
//! terminals with inboxes, a phone network whose commands are recorded, and a clock moved by hand.
//! Dropping a `Net` unregisters every terminal and checks that the switch holds no call
//! (PROTOCOL.md section 6: when every terminal has gone, the core holds no call).

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};
use webterminal_core::core::*;

/// An SDP fixture from `../shared/fixtures/sdp/`, validated as the edge would.
pub fn sdp(name: &str) -> Sdp {
    Sdp::parse(&fixture(name), 64 * 1024).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The raw text of an SDP fixture.
pub fn fixture(name: &str) -> String {
    let path = format!(
        "{}/../shared/fixtures/sdp/{name}.sdp",
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
    live: Vec<TerminalId>,
}

impl Net {
    /// A switch with the phone network off (numbers without terminals are unavailable).
    pub fn new() -> Self {
        Self::with(SwitchConfig {
            phone_network: false,
            ..SwitchConfig::default()
        })
    }

    /// A switch with the phone network on: every call also forks to the callee's phone.
    pub fn with_phones() -> Self {
        Self::with(SwitchConfig::default())
    }

    pub fn with(config: SwitchConfig) -> Self {
        Net {
            switch: Switch::new(config),
            now: Instant::now(),
            next_terminal: 1,
            inbox: HashMap::new(),
            phone: VecDeque::new(),
            live: Vec::new(),
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

impl Drop for Net {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        for t in std::mem::take(&mut self.live) {
            self.switch.unregister(self.now, t);
            while self.switch.poll_output().is_some() {}
            self.switch.check_invariants().unwrap();
        }
        assert_eq!(
            self.switch.call_count(),
            0,
            "every terminal has gone, so the switch must hold no call"
        );
        assert_eq!(self.switch.terminal_count(), 0);
    }
}
