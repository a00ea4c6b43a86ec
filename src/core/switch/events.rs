//! Call events, snapshots and the operator's `EndCall` (PROTOCOL.md section 8). Every status change
//! of a call goes out through [`Switch::emit`] as an [`Output::Event`], with the next sequence number
//! and the input's `now`.

use super::call::{Call, CallKey, CallState, Leg, Party};
use super::Switch;
use crate::core::events::{
    CallEvent, CallRef, CallStatus, Device, DeviceKind, GroupAnswer, LiveCall, Presence,
    TerminalPresence,
};
use crate::core::message::Output;
use crate::core::reason::ByeReason;
use crate::core::types::Msisdn;
use std::time::Instant;

impl Switch {
    /// Emits `status` for live call `key`.
    pub(super) fn emit(
        &mut self,
        key: CallKey,
        status: CallStatus,
        device: Option<Device>,
        reason: Option<ByeReason>,
    ) {
        self.last_sequence += 1;
        let event = event(
            self.last_sequence,
            self.now,
            &self.calls[&key],
            status,
            device,
            reason,
        );
        self.outputs.push_back(Output::Event(event));
    }

    /// Emits `Answered` for live call `key`, answered on `device`, with how a group call was
    /// answered (section 10).
    pub(super) fn emit_answered(
        &mut self,
        key: CallKey,
        device: Option<Device>,
        group_answer: Option<GroupAnswer>,
    ) {
        self.last_sequence += 1;
        let call = &self.calls[&key];
        let mut event = event(
            self.last_sequence,
            self.now,
            call,
            CallStatus::Answered,
            device,
            None,
        );
        event.group_answer = group_answer;
        self.outputs.push_back(Output::Event(event));
    }

    /// Emits `status` for `call`, which is not (or no longer, or not yet) among the live calls.
    pub(super) fn emit_for(
        &mut self,
        call: &Call,
        status: CallStatus,
        device: Option<Device>,
        reason: Option<ByeReason>,
    ) {
        self.last_sequence += 1;
        let event = event(self.last_sequence, self.now, call, status, device, reason);
        self.outputs.push_back(Output::Event(event));
    }

    /// The device of `leg`, which carries (or is offered) side `party` of call `key`.
    pub(super) fn device(&self, key: CallKey, party: Party, leg: Leg) -> Option<Device> {
        self.device_of(&self.calls[&key].side(party).msisdn, leg)
    }

    /// The device of `leg` of number `msisdn`; `None` for a vacant side.
    pub(super) fn device_of(&self, msisdn: &Msisdn, leg: Leg) -> Option<Device> {
        match leg {
            Leg::Terminal(t) => Some(Device {
                kind: self.terminals[&t].kind.into(),
                terminal: Some(t),
                msisdn: msisdn.clone(),
            }),
            Leg::Phone(_) => Some(Device {
                kind: DeviceKind::Phone,
                terminal: None,
                msisdn: msisdn.clone(),
            }),
            Leg::Vacant => None,
        }
    }

    /// Side `by`'s re-offer was answered: its media is now on hold or not (`HELD` / `RESUMED`
    /// when that changed).
    pub(super) fn hold_changed(&mut self, key: CallKey, by: Party, hold: bool) {
        let call = self.calls.get_mut(&key).expect("live call");
        if std::mem::replace(&mut call.held[by as usize], hold) == hold {
            return;
        }
        let CallState::Established(e) = &call.state else {
            return;
        };
        let leg = e.legs[by as usize];
        let device = self.device(key, by, leg);
        let status = if hold {
            CallStatus::Held
        } else {
            CallStatus::Resumed
        };
        self.emit(key, status, device, None);
    }

    /// The sequence of the last call event (0 before the first): a [`Switch::live_calls`] snapshot
    /// reflects every event up to it, so a watcher continues after it with no gap and no repeat.
    pub fn last_sequence(&self) -> u64 {
        self.last_sequence
    }

    /// The live calls, oldest first; only those of `msisdn` when given (section 8, `ListCalls`).
    pub fn live_calls(&self, msisdn: Option<&Msisdn>) -> Vec<LiveCall> {
        let mut keys: Vec<CallKey> = match msisdn {
            Some(m) => self
                .subscribers
                .get(m)
                .map(|s| s.calls.values().copied().collect())
                .unwrap_or_default(),
            None => self.calls.keys().copied().collect(),
        };
        keys.sort();
        keys.dedup();
        keys.into_iter()
            .map(|key| {
                let call = &self.calls[&key];
                let (established, legs) = match &call.state {
                    CallState::Ringing(r) => (false, [r.caller_leg, Leg::Vacant]),
                    CallState::Established(e) => (true, e.legs),
                };
                LiveCall {
                    call_ref: call.call_ref,
                    caller: call.sides[0].msisdn.clone(),
                    callee: call.sides[1].msisdn.clone(),
                    caller_call_id: call.sides[0].id,
                    callee_call_id: call.sides[1].id,
                    established,
                    started_at: call.started_at,
                    answered_at: call.answered_at,
                    held: call.held.iter().any(|h| *h),
                    caller_leg: self.device(key, Party::Caller, legs[0]),
                    callee_leg: self.device(key, Party::Callee, legs[1]),
                    context: call.context.clone(),
                }
            })
            .collect()
    }

    /// Whether `msisdn` has a session: its terminals and whether it is in an established call
    /// (section 8, `GetPresence`).
    pub fn presence(&self, msisdn: &Msisdn) -> Presence {
        let Some(subscriber) = self.subscribers.get(msisdn) else {
            return Presence::default();
        };
        let terminals = subscriber
            .terminals
            .iter()
            .map(|id| {
                let t = &self.terminals[id];
                TerminalPresence {
                    terminal: *id,
                    kind: t.kind,
                    since: t.since,
                    half_closed: t.half_closed,
                    calls: t.load(),
                }
            })
            .collect();
        let in_call = subscriber
            .calls
            .values()
            .any(|key| matches!(self.calls[key].state, CallState::Established(_)));
        Presence { terminals, in_call }
    }

    /// The operator ends live call `call_ref` (section 8, `EndCall`): every leg, ringing forks and a
    /// pending puller included, gets `Bye{ENDED_BY_OPERATOR}` and phone legs are released. `false`
    /// when no live call has that ref.
    pub fn end_call(&mut self, now: Instant, call_ref: CallRef) -> bool {
        self.now = now;
        let Some(key) = self
            .calls
            .iter()
            .find(|(_, call)| call.call_ref == call_ref)
            .map(|(key, _)| *key)
        else {
            return false;
        };
        let reason = ByeReason::EndedByOperator;
        match self.calls[&key].state {
            CallState::Ringing(_) => self.end_ringing(key, reason, Some(reason), "operator"),
            CallState::Established(_) => self.end_established(key, reason, "operator", None),
        }
        self.serve_queue();
        true
    }
}

/// Call event number `sequence`, at `at`, about `call`.
fn event(
    sequence: u64,
    at: Instant,
    call: &Call,
    status: CallStatus,
    device: Option<Device>,
    reason: Option<ByeReason>,
) -> CallEvent {
    tracing::debug!(sequence, call = %call.call_ref, ?status, ?reason, "call event");
    CallEvent {
        sequence,
        at,
        call_ref: call.call_ref,
        caller: call.sides[0].msisdn.clone(),
        callee: call.sides[1].msisdn.clone(),
        caller_call_id: call.sides[0].id,
        callee_call_id: call.sides[1].id,
        status,
        device,
        reason,
        context: call.context.clone(),
        group_answer: None,
    }
}
