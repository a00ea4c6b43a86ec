//! Terminals come and go (PROTOCOL.md sections 3, 4.2, 4.8), and the one rule of how many calls a
//! terminal may carry (sections 3, 5).

use super::call::{CallKey, CallState, Leg, Party};
use super::terminal_view::{SeenCall, View};
use super::Switch;
use crate::core::message::{ErrorCode, NoticeBody, Rejection};
use crate::core::reason::ByeReason;
use crate::core::types::{CallId, Msisdn, PipeKind, TerminalId};
use hashbrown::HashMap;
use std::time::Instant;

/// Why a terminal could not register: the rpc fails with RESOURCE_EXHAUSTED (PROTOCOL.md section 6).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// The process already has `SwitchConfig::max_terminals` terminals.
    #[error("the core already has its maximum of {limit} terminals")]
    TooManyTerminals {
        /// The limit, in terminals.
        limit: usize,
    },
    /// The msisdn already has `SwitchConfig::max_terminals_per_msisdn` terminals.
    #[error("this number already has its maximum of {limit} terminals")]
    TooManyTerminalsForMsisdn {
        /// The limit, in terminals.
        limit: usize,
    },
}

#[derive(Debug)]
pub(super) struct Terminal {
    pub(super) msisdn: Msisdn,
    pub(super) kind: PipeKind,
    pub(super) half_closed: bool,
    /// Calls this terminal is in as caller, ringing fork or active leg.
    pub(super) calls: Vec<CallKey>,
    /// Calls it is pulling (a pull pending).
    pub(super) pulls: Vec<CallKey>,
    pub(super) view: View,
    /// When it registered.
    pub(super) since: Instant,
}

impl Terminal {
    /// How many calls it is in or taking: as caller, fork, active leg or puller.
    pub(super) fn load(&self) -> usize {
        self.calls.len() + self.pulls.len()
    }
}

/// Everything the switch keeps per msisdn: its terminals and its side of each call, by side id.
#[derive(Debug, Default)]
pub(super) struct Subscriber {
    pub(super) terminals: Vec<TerminalId>,
    /// Its side of each call, by side id; for a group member, also the group calls it is offered
    /// (by the group side's id, section 10).
    pub(super) calls: HashMap<CallId, CallKey>,
    /// When its last answered call ended (for `longest-idle` groups, section 10).
    pub(super) last_call_end: Option<Instant>,
}

impl Switch {
    /// A terminal opened `Pipe` or `MultiPipe` as `msisdn` (from its token). A Pipe is told at once
    /// `InCall` for its msisdn's most recently established call, or `Idle` (section 3); any terminal
    /// that is eligible is offered the calls still ringing to its msisdn, oldest first (4.2).
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
        self.now = now;
        assert!(
            !self.terminals.contains_key(&terminal),
            "terminal {terminal:?} registered twice"
        );
        if self.terminals.len() >= self.config.max_terminals {
            return Err(RegisterError::TooManyTerminals {
                limit: self.config.max_terminals,
            });
        }
        let per_msisdn = self
            .subscribers
            .get(&msisdn)
            .map_or(0, |s| s.terminals.len());
        if per_msisdn >= self.config.max_terminals_per_msisdn {
            return Err(RegisterError::TooManyTerminalsForMsisdn {
                limit: self.config.max_terminals_per_msisdn,
            });
        }
        self.subscribers
            .entry(msisdn.clone())
            .or_default()
            .terminals
            .push(terminal);
        self.terminals.insert(
            terminal,
            Terminal {
                msisdn: msisdn.clone(),
                kind,
                half_closed: false,
                calls: Vec::new(),
                pulls: Vec::new(),
                view: View::empty(kind),
                since: now,
            },
        );
        tracing::debug!(?terminal, ?msisdn, ?kind, "terminal registered");
        self.greet(terminal, &msisdn, kind);

        // 4.2: a terminal that registers while a call to its msisdn rings is offered it too.
        let mut ringing: Vec<CallKey> = self.subscribers[&msisdn]
            .calls
            .values()
            .copied()
            .filter(|key| {
                let call = &self.calls[key];
                // A group's own number has no terminals: its calls go to members (section 10).
                matches!(&call.state, CallState::Ringing(r) if r.queued.is_none())
                    && call.party_of(&msisdn) == Some(Party::Callee)
            })
            .collect();
        ringing.sort();
        for key in ringing {
            if !self.is_eligible(terminal) {
                break;
            }
            self.add_terminal_fork(key, terminal);
        }
        self.serve_queue();
        Ok(())
    }

    /// What a terminal learns on open (section 3): a Pipe `InCall` for its number's most recent
    /// established call, else `Idle`. A MultiPipe is told nothing, but its view starts in step with
    /// the switch, so it gets Idle when those calls end and InCall when they move (4.4); a call whose
    /// side is vacant within the reconnect grace is the exception: this may be its terminal
    /// reconnecting, so it is told `InCall` to pull the call back (4.8).
    fn greet(&mut self, terminal: TerminalId, msisdn: &Msisdn, kind: PipeKind) {
        let calls = self.established_calls(msisdn);
        match kind {
            PipeKind::Pipe => match calls.into_iter().next_back() {
                Some(SeenCall { key, id, peer, .. }) => {
                    self.set_view_single(terminal, Some((key, id)));
                    self.deliver(terminal, Some(id), NoticeBody::InCall { peer });
                }
                None => self.deliver(terminal, None, NoticeBody::Idle),
            },
            PipeKind::MultiPipe => {
                let seen = calls.iter().map(|c| (c.key, c.id)).collect();
                self.terminals.get_mut(&terminal).unwrap().view = View::Multi(seen);
                for call in calls.into_iter().filter(|c| c.leg == Leg::Vacant) {
                    let peer = call.peer;
                    self.deliver(terminal, Some(call.id), NoticeBody::InCall { peer });
                }
            }
        }
    }

    /// The terminal half-closed its request stream: it keeps getting Bye, InCall and Idle for its
    /// calls but is offered no new call (section 3). Unknown terminals are ignored.
    pub fn half_close(&mut self, now: Instant, terminal: TerminalId) {
        self.now = now;
        if let Some(t) = self.terminals.get_mut(&terminal) {
            t.half_closed = true;
        }
    }

    /// The terminal's rpc ended (cancelled, connection lost, dropped as a slow consumer). Its calls
    /// end as PROTOCOL.md 4.8 says: ringing forks are withdrawn, a ringing caller cancels, an active
    /// leg's side is left vacant for the reconnect grace (or the far side gets `Bye{PEER_GONE}` at
    /// once without one), a pending pull is dropped. Unknown terminals are ignored.
    pub fn unregister(&mut self, now: Instant, terminal: TerminalId) {
        self.now = now;
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
        let leg = Leg::Terminal(terminal);
        for key in calls {
            self.leg_gone(key, leg);
        }
        self.terminals.remove(&terminal);
        self.forget_subscriber_if_empty(&msisdn);
        self.serve_queue();
    }

    /// Section 5: a terminal may be offered a new call when it has not half-closed and has room.
    pub(super) fn is_eligible(&self, terminal: TerminalId) -> bool {
        let t = &self.terminals[&terminal];
        !t.half_closed && self.has_room(t)
    }

    /// The one rule of how many calls a terminal carries (sections 3, 5): a Pipe one, a MultiPipe
    /// its call cap, counting calls as caller, fork, active leg and pending pulls. A Pipe with a
    /// pull pending is about to carry that call: were it offered (and did it answer) a new call
    /// meanwhile, the pull's success would leave it in two calls.
    pub(super) fn has_room(&self, t: &Terminal) -> bool {
        t.load() < self.call_cap(t.kind)
    }

    fn call_cap(&self, kind: PipeKind) -> usize {
        match kind {
            PipeKind::Pipe => 1,
            PipeKind::MultiPipe => self.config.multipipe_call_cap,
        }
    }

    /// The `Error{RATE_LIMIT_HIT}` for a terminal without room for one more call (section 6: "too
    /// many calls").
    pub(super) fn no_room(&self, kind: PipeKind) -> Rejection {
        let message = match kind {
            PipeKind::Pipe => "a Pipe carries one call at a time and this one is in a call".into(),
            PipeKind::MultiPipe => format!(
                "this terminal is in {} calls, its maximum",
                self.config.multipipe_call_cap
            ),
        };
        Rejection::new(ErrorCode::RateLimitHit, message)
    }

    /// A leg of call `key` went away (a terminal's rpc ended): a ringing caller cancels, a ringing
    /// fork is withdrawn (the caller gets UNAVAILABLE if it was the last), an active leg's side is
    /// parked for the reconnect grace or, without one, the call ends with `Bye{PEER_GONE}` (4.8).
    pub(super) fn leg_gone(&mut self, key: CallKey, leg: Leg) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        match &call.state {
            CallState::Ringing(ringing) if ringing.caller_leg == leg => {
                self.end_ringing(key, ByeReason::Cancelled, None, "caller gone");
            }
            CallState::Ringing(_) => self.withdraw_fork(key, leg, ByeReason::Unavailable),
            CallState::Established(established) => {
                let Some(party) = established.party_of_leg(leg) else {
                    return;
                };
                if self.config.reconnect_grace.is_zero() {
                    self.end_established(key, ByeReason::PeerGone, "active leg gone", Some(leg));
                } else {
                    self.park(key, party);
                }
            }
        }
    }

    pub(super) fn forget_terminal_call(&mut self, terminal: TerminalId, key: CallKey) {
        if let Some(t) = self.terminals.get_mut(&terminal) {
            t.calls.retain(|k| *k != key);
        }
    }

    pub(super) fn forget_pull(&mut self, terminal: TerminalId, key: CallKey) {
        if let Some(t) = self.terminals.get_mut(&terminal) {
            t.pulls.retain(|k| *k != key);
        }
    }

    pub(super) fn forget_subscriber_if_empty(&mut self, msisdn: &Msisdn) {
        if self
            .subscribers
            .get(msisdn)
            .is_some_and(|s| s.terminals.is_empty() && s.calls.is_empty())
        {
            self.subscribers.remove(msisdn);
        }
    }
}
