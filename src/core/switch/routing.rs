//! New calls and where they ring (PROTOCOL.md 4.1, section 5): the callee's eligible terminals and
//! its mobile phone.

use super::call::{Call, CallKey, CallState, Leg, Ringing, Side};
use super::timers::TimerKind;
use super::{required_call_id, Switch};
use crate::core::context::CallContext;
use crate::core::events::{CallRef, CallStatus};
use crate::core::message::{ErrorCode, NoticeBody, Output, PhoneCommand, Rejection};
use crate::core::reason::ByeReason;
use crate::core::router::Route;
use crate::core::types::{CallId, Msisdn, PhoneLegId, PipeKind, Sdp, TerminalId};

/// The caller of a new call: who, on which leg, with which id for its side.
pub(super) struct Origin {
    pub(super) msisdn: Msisdn,
    pub(super) leg: Leg,
    pub(super) id: CallId,
}

impl Switch {
    /// 4.1: a new call from `terminal` to `to`, routed as section 5 says.
    pub(super) fn start_call(
        &mut self,
        terminal: TerminalId,
        call_id: Option<CallId>,
        to: Msisdn,
        sdp: Sdp,
        context: CallContext,
    ) -> Result<(), Rejection> {
        let t = &self.terminals[&terminal];
        let from = t.msisdn.clone();
        if to == from {
            return Err(Rejection::new(
                ErrorCode::InvalidArgument,
                "offer.msisdn.e164 is the terminal's own number: a subscriber cannot call itself",
            ));
        }
        let id = match t.kind {
            PipeKind::MultiPipe => {
                let id = required_call_id(call_id)?;
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
                Some(id)
            }
            // A Pipe's call_id is ignored: the core makes the caller side's id.
            PipeKind::Pipe => None,
        };
        if !self.has_room(t) {
            return Err(self.no_room(t.kind));
        }
        let id = id.unwrap_or_else(|| self.next_call_id());
        let origin = Origin {
            msisdn: from,
            leg: Leg::Terminal(terminal),
            id,
        };
        if let Err(reason) = self.route(origin, to, sdp, context) {
            self.deliver(terminal, Some(id), NoticeBody::Bye { reason });
        }
        Ok(())
    }

    /// Section 5: offers a new call from `origin` to every eligible device of `to` — its terminals
    /// and, when a phone network is attached, its mobile phone — with the caller's `sdp` and
    /// `context`, and arms the ring timeout.
    ///
    /// The routing hook, when one is set, decides first where the call goes (section 5).
    ///
    /// # Errors
    /// The reason to end the caller's leg with when there is nothing to ring and no call was made:
    /// the hook's rejection; `BUSY` if the number has terminals but none is eligible, else
    /// `UNAVAILABLE` (4.3).
    pub(super) fn route(
        &mut self,
        origin: Origin,
        to: Msisdn,
        sdp: Sdp,
        context: CallContext,
    ) -> Result<CallKey, ByeReason> {
        let from = origin.msisdn;
        let (to, group, rejected) =
            match self.router.as_mut().map(|r| r.route(&from, &to, &context)) {
                None => (to, None, None),
                Some(Route::Ring(routed)) if routed == from => {
                    (to, None, Some(ByeReason::Unavailable))
                }
                Some(Route::Ring(routed)) => {
                    tracing::debug!(?from, dialled = ?to, ?routed, "call routed by the hook");
                    (routed, None, None)
                }
                Some(Route::Group(group)) => {
                    // Section 10: a group none of whose members has a terminal cannot take the call.
                    let reachable = group.number != from && self.group_has_terminals(&group, &from);
                    let rejected = (!reachable).then_some(ByeReason::Unavailable);
                    (group.number.clone(), Some(group), rejected)
                }
                Some(Route::Reject(reason)) => (to, None, Some(reason)),
            };
        let (eligible, busy) = match group {
            None => self.eligible_terminals(&to),
            Some(_) => (Vec::new(), false),
        };
        let callee_id = self.next_call_id();
        let call_ref = CallRef(self.next_uuid());
        let call = Call {
            call_ref,
            context: context.clone(),
            started_at: self.now,
            answered_at: None,
            held: [false; 2],
            sides: [
                Side {
                    msisdn: from.clone(),
                    id: origin.id,
                },
                Side {
                    msisdn: to.clone(),
                    id: callee_id,
                },
            ],
            state: CallState::Ringing(Ringing {
                caller_leg: origin.leg,
                forks: Vec::new(),
                alerted: false,
                saw_busy: busy,
                offer: sdp.clone(),
                queued: None,
            }),
        };
        let device = self.device_of(&call.sides[0].msisdn, origin.leg);
        self.emit_for(&call, CallStatus::Started, device, None);
        let unroutable = group.is_none() && eligible.is_empty() && !self.config.phone_network;
        if rejected.is_some() || unroutable {
            let reason = rejected.unwrap_or(if busy {
                ByeReason::Busy
            } else {
                ByeReason::Unavailable
            });
            tracing::info!(?from, ?to, ?reason, "call not routed");
            let status = CallStatus::of_end(false, reason);
            self.emit_for(&call, status, None, Some(reason));
            return Err(reason);
        }
        let key = CallKey(self.next_call);
        self.next_call += 1;
        self.calls.insert(key, call);
        for (msisdn, id) in [(&from, origin.id), (&to, callee_id)] {
            self.subscribers
                .entry(msisdn.clone())
                .or_default()
                .calls
                .insert(id, key);
        }
        match origin.leg {
            Leg::Terminal(t) => self.terminals.get_mut(&t).unwrap().calls.push(key),
            Leg::Phone(p) => {
                self.phone_legs.insert(p, key);
            }
            Leg::Vacant => unreachable!("a call's caller is a device"),
        }
        if let Some(group) = group {
            self.enqueue(key, group);
            return Ok(key);
        }
        self.timers
            .arm(key, TimerKind::Ring, self.now + self.config.ring_timeout);
        tracing::info!(?key, ?from, ?to, ?context, "call offered");

        for callee in eligible {
            self.add_terminal_fork(key, callee);
        }
        if self.config.phone_network {
            let leg = self.new_phone_leg(key);
            self.ringing_mut(key).forks.push(Leg::Phone(leg));
            self.outputs.push_back(Output::Phone(PhoneCommand::Ring {
                leg,
                to,
                from,
                sdp,
                context,
            }));
        }
        Ok(key)
    }

    /// 4.11: the phone of `from` calls `to` on the network's new leg `leg`: routed like a terminal's
    /// call, the phone leg being the caller side's active leg and the caller side's id made by the
    /// core. Nothing to ring (or a phone calling its own number) releases the leg with the reason.
    pub(super) fn incoming_call(
        &mut self,
        leg: PhoneLegId,
        from: Msisdn,
        to: Msisdn,
        sdp: Sdp,
        context: CallContext,
    ) {
        if self.phone_legs.contains_key(&leg) {
            tracing::warn!(?leg, "incoming call on a phone leg already in use ignored");
            return;
        }
        if from == to {
            self.outputs.push_back(Output::Phone(PhoneCommand::Release {
                leg,
                reason: ByeReason::Unavailable,
            }));
            return;
        }
        let origin = Origin {
            msisdn: from,
            leg: Leg::Phone(leg),
            id: self.next_call_id(),
        };
        if let Err(reason) = self.route(origin, to, sdp, context) {
            self.outputs
                .push_back(Output::Phone(PhoneCommand::Release { leg, reason }));
        }
    }

    /// Section 5: the terminals of `msisdn` that may be offered a new call, in registration order,
    /// and whether it has terminals that may not (busy).
    pub(super) fn eligible_terminals(&self, msisdn: &Msisdn) -> (Vec<TerminalId>, bool) {
        let Some(s) = self.subscribers.get(msisdn) else {
            return (Vec::new(), false);
        };
        let eligible: Vec<TerminalId> = s
            .terminals
            .iter()
            .copied()
            .filter(|t| self.is_eligible(*t))
            .collect();
        let busy = eligible.len() < s.terminals.len();
        (eligible, busy)
    }

    /// A new phone leg of call `key`, with an id made by the switch.
    pub(super) fn new_phone_leg(&mut self, key: CallKey) -> PhoneLegId {
        let leg = PhoneLegId(self.next_phone_leg);
        self.next_phone_leg += 1;
        self.phone_legs.insert(leg, key);
        leg
    }
}
