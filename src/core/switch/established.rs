//! An established call (PROTOCOL.md 4.1, 4.4–4.9): its active legs move, go away and come back
//! within the reconnect grace, and the call ends.

use super::call::{CallKey, CallState, Leg, Party};
use super::negotiation::Outcome;
use super::timers::TimerKind;
use super::Switch;
use crate::core::events::CallStatus;
use crate::core::message::NoticeBody;
use crate::core::reason::ByeReason;

impl Switch {
    /// A Bye from `leg`: cancels (caller), declines (fork) or ends (active leg) the call (4.1, 4.2).
    /// `false` when `leg` has no such part in the call.
    pub(super) fn bye(&mut self, key: CallKey, leg: Leg) -> bool {
        match &self.calls[&key].state {
            CallState::Ringing(ringing) if ringing.caller_leg == leg => {
                self.end_ringing(key, ByeReason::Cancelled, None, "cancelled by caller");
            }
            CallState::Ringing(ringing) if ringing.forks.contains(&leg) => self.decline(key, leg),
            CallState::Established(established) if established.legs.contains(&leg) => {
                self.end_established(key, ByeReason::NormalClearing, "bye", Some(leg));
            }
            _ => return false,
        }
        true
    }

    /// The active leg of side `by` moves to `to`; the old one ends with `reason` (a terminal gets
    /// `Bye{PULLED}`; a handed-over terminal gets no Bye, only InCall; a vacant side's grace ends)
    /// and every terminal of the side is told `InCall` again (4.4–4.6, 4.8).
    pub(super) fn move_active_leg(&mut self, key: CallKey, by: Party, to: Leg, reason: ByeReason) {
        let established = self.established_mut(key);
        let old = std::mem::replace(&mut established.legs[by as usize], to);
        // A side taken over after a transfer moved for that reason, whoever takes it (4.12).
        let reason = match std::mem::take(&mut established.transferred[by as usize]) {
            true => ByeReason::Transferred,
            false => reason,
        };
        if let Leg::Terminal(t) = to {
            self.terminals.get_mut(&t).unwrap().calls.push(key);
        }
        match old {
            Leg::Terminal(t) if reason == ByeReason::HandedToPhone => {
                self.forget_terminal_call(t, key);
                tracing::info!(?key, terminal = ?t, ?reason, "leg ended");
            }
            Leg::Terminal(_) | Leg::Phone(_) => {
                self.send_to_leg(key, by, old, NoticeBody::Bye { reason });
                self.forget_leg(key, old);
            }
            // Pulled back within the reconnect grace (4.8): the far side never saw a Bye.
            Leg::Vacant => self.timers.disarm(key, TimerKind::Grace(by)),
        }
        tracing::info!(?key, ?to, "active leg moved");
        let device = self.device(key, by, to);
        self.emit(key, CallStatus::Moved, device, Some(reason));
        let msisdn = self.calls[&key].side(by).msisdn.clone();
        self.refresh_views(&msisdn, Some(key));
    }

    /// 4.8: the active terminal of side `party` went away and a reconnect grace is configured. The
    /// side's leg becomes vacant until the grace ends; every terminal of its number (a reconnecting
    /// one included) sees `InCall` and may pull the call back, and the far side is told nothing. A
    /// negotiation that needed the gone leg fails now; a pull by the side's own terminals goes on.
    pub(super) fn park(&mut self, key: CallKey, party: Party) {
        let established = self.established_mut(key);
        established.legs[party as usize] = Leg::Vacant;
        let own_pull = matches!(
            established.negotiation,
            Some(n) if n.by == party && matches!(n.purpose, super::call::Purpose::Pull { .. })
        );
        self.timers.arm(
            key,
            TimerKind::Grace(party),
            self.now + self.config.reconnect_grace,
        );
        if !own_pull {
            self.end_negotiation(key, Outcome::Failed(super::negotiation::Failure::TimedOut));
            if !self.calls.contains_key(&key) {
                // The other side was vacant too, after a transfer whose target's phone was still
                // coming up: with nobody left on either side, the call has ended.
                return;
            }
        }
        tracing::info!(?key, grace = ?self.config.reconnect_grace, "active leg gone; reconnect grace");
        let msisdn = self.calls[&key].side(party).msisdn.clone();
        self.refresh_views(&msisdn, Some(key));
    }

    /// 4.8: side `party`'s reconnect grace ended with nobody back: the far side gets
    /// `Bye{PEER_GONE}` (and a pending puller too) and the call ends.
    pub(super) fn end_grace(&mut self, key: CallKey, party: Party) {
        if let Some(CallState::Established(e)) = self.calls.get(&key).map(|c| &c.state) {
            if e.legs[party as usize] == Leg::Vacant {
                match e.transferred[party as usize] {
                    true => {
                        self.end_established(key, ByeReason::NoAnswer, "transfer not taken", None)
                    }
                    false => {
                        self.end_established(key, ByeReason::PeerGone, "reconnect grace over", None)
                    }
                }
            }
        }
    }

    /// Ends established call `key`: every active leg but `except` (the leg that ended it, if any)
    /// gets `Bye{reason}`, and so does a pending puller; a pending handover phone is released; then
    /// the call is removed and the numbers' observers get Idle.
    pub(super) fn end_established(
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
        self.end_negotiation(key, Outcome::CallEnded(reason));
        for (party, leg) in [(Party::Caller, legs[0]), (Party::Callee, legs[1])] {
            if Some(leg) != except {
                self.send_to_leg(key, party, leg, NoticeBody::Bye { reason });
            }
        }
        tracing::info!(?key, why, ?reason, "call ended");
        self.emit(key, CallStatus::Completed, None, Some(reason));
        for side in &self.calls[&key].sides {
            if let Some(s) = self.subscribers.get_mut(&side.msisdn) {
                s.last_call_end = Some(self.now);
            }
        }
        self.remove_call(key);
    }

    /// Removes call `key` from every index, disarms its timers, and brings both numbers' terminals'
    /// views up to date (Idle / InCall, 4.4).
    pub(super) fn remove_call(&mut self, key: CallKey) {
        let Some(mut call) = self.calls.remove(&key) else {
            return;
        };
        self.timers.disarm_call(key);
        let mut group_offer = None;
        let mut members_offered = Vec::new();
        match &mut call.state {
            CallState::Ringing(r) => {
                if let Some(queued) = r.queued.take() {
                    self.dequeue(key, call.sides[1].id, &queued);
                    members_offered = queued.offered;
                }
            }
            CallState::Established(e) => group_offer = e.offered_to_group.take(),
        }
        let legs: Vec<Leg> = match &call.state {
            CallState::Ringing(r) => r.forks.iter().copied().chain([r.caller_leg]).collect(),
            CallState::Established(e) => e.legs.to_vec(),
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
        // Members' terminals freed of a group call's offer learn what changed meanwhile (4.4).
        for member in &members_offered {
            self.refresh_views(member, None);
        }
        if let Some((party, group)) = group_offer {
            let far = &call.side(party.other()).msisdn;
            self.forget_group_offer(call.side(party).id, &group, far, None);
        }
    }

    /// Drops `leg` from the indexes that tie it to call `key`.
    pub(super) fn forget_leg(&mut self, key: CallKey, leg: Leg) {
        match leg {
            Leg::Terminal(t) => self.forget_terminal_call(t, key),
            Leg::Phone(p) => {
                self.phone_legs.remove(&p);
            }
            Leg::Vacant => {}
        }
    }
}
