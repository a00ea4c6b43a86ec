//! A ringing call (PROTOCOL.md 4.1–4.3): forks alert, answer, decline or go away; the caller
//! cancels; the ring timeout ends it.

use super::call::{CallKey, CallState, Established, Leg, Party};
use super::timers::TimerKind;
use super::Switch;
use crate::core::events::CallStatus;
use crate::core::message::NoticeBody;
use crate::core::reason::ByeReason;
use crate::core::types::{Sdp, TerminalId};

impl Switch {
    /// Offers ringing call `key` to one more terminal of the callee (a fork).
    pub(super) fn add_terminal_fork(&mut self, key: CallKey, terminal: TerminalId) {
        let call = &self.calls[&key];
        let CallState::Ringing(ringing) = &call.state else {
            return;
        };
        let notice = NoticeBody::Offer {
            sdp: ringing.offer.clone(),
            from: call.side(Party::Caller).msisdn.clone(),
            context: call.context.clone(),
        };
        let id = call.side(Party::Callee).id;
        self.ringing_mut(key).forks.push(Leg::Terminal(terminal));
        self.terminals.get_mut(&terminal).unwrap().calls.push(key);
        self.deliver(terminal, Some(id), notice);
    }

    /// A `Ringing` from a fork: the caller gets `Ringing` once (4.1).
    pub(super) fn alert(&mut self, key: CallKey, leg: Leg) -> Result<(), NotAFork> {
        let CallState::Ringing(ringing) = &mut self.calls.get_mut(&key).unwrap().state else {
            return Err(NotAFork);
        };
        if !ringing.forks.contains(&leg) {
            return Err(NotAFork);
        }
        if !std::mem::replace(&mut ringing.alerted, true) {
            let caller_leg = ringing.caller_leg;
            self.send_to_leg(key, Party::Caller, caller_leg, NoticeBody::Ringing);
            let device = self.device(key, Party::Callee, leg);
            self.emit(key, CallStatus::Ringing, device, None);
        }
        Ok(())
    }

    /// 4.2: fork `leg` answered ringing call `key`. The other forks get `Bye{ANSWERED_ELSEWHERE}`,
    /// the caller gets the answer, and both numbers' other terminals get InCall.
    pub(super) fn establish(&mut self, key: CallKey, leg: Leg, sdp: Sdp) -> Result<(), NotAFork> {
        let call = self.calls.get_mut(&key).unwrap();
        let CallState::Ringing(ringing) = &call.state else {
            return Err(NotAFork);
        };
        if !ringing.forks.contains(&leg) {
            return Err(NotAFork);
        }
        let caller_leg = ringing.caller_leg;
        let queued = ringing.queued.is_some();
        let losers: Vec<Leg> = ringing
            .forks
            .iter()
            .copied()
            .filter(|f| *f != leg)
            .collect();
        // Section 10: a group call becomes the caller's and the answering member's.
        let (group_answer, other_members) = match (queued, leg) {
            (true, Leg::Terminal(t)) => {
                let member = self.terminals[&t].msisdn.clone();
                let (answer, others) = self.answered_by_member(key, &member);
                (Some(answer), others)
            }
            _ => (None, Vec::new()),
        };
        let call = self.calls.get_mut(&key).unwrap();
        let since = self.next_established;
        self.next_established += 1;
        call.answered_at = Some(self.now);
        call.state = CallState::Established(Established {
            legs: [caller_leg, leg],
            since,
            negotiation: None,
            transferred: [false; 2],
            offered_to_group: None,
        });
        self.timers.disarm(key, TimerKind::Ring);
        for loser in losers {
            self.send_to_leg(
                key,
                Party::Callee,
                loser,
                NoticeBody::Bye {
                    reason: ByeReason::AnsweredElsewhere,
                },
            );
            self.forget_leg(key, loser);
        }
        self.send_to_leg(key, Party::Caller, caller_leg, NoticeBody::Answer { sdp });
        tracing::info!(?key, ?leg, "call established");
        let device = self.device(key, Party::Callee, leg);
        self.emit_answered(key, device, group_answer);
        let [caller, callee] = self.calls[&key].sides.clone();
        self.refresh_views(&caller.msisdn, Some(key));
        self.refresh_views(&callee.msisdn, Some(key));
        for member in other_members {
            self.refresh_views(&member, None);
        }
        Ok(())
    }

    /// 4.2: a ringing fork declines: the caller gets `Bye{DECLINED}`, the other forks
    /// `Bye{DECLINED_ELSEWHERE}`.
    /// A group call's fork declining passes the member over instead (section 10).
    pub(super) fn decline(&mut self, key: CallKey, leg: Leg) {
        if self.ringing_mut(key).queued.is_some() {
            return self.member_declined(key, leg);
        }
        self.ringing_mut(key).forks.retain(|f| *f != leg);
        self.forget_leg(key, leg);
        self.end_ringing(
            key,
            ByeReason::DeclinedElsewhere,
            Some(ByeReason::Declined),
            "declined",
        );
    }

    /// Fork `leg` is gone from ringing call `key` without a word (its terminal went away, its phone
    /// was busy, unreachable or hung up): when no fork is left the caller gets `Bye{if_last}`
    /// (4.3, 4.8). A group call stays queued (section 10).
    pub(super) fn withdraw_fork(&mut self, key: CallKey, leg: Leg, if_last: ByeReason) {
        if self.ringing_mut(key).queued.is_some() {
            return self.member_fork_gone(key, leg);
        }
        let ringing = self.ringing_mut(key);
        ringing.forks.retain(|f| *f != leg);
        let none_left = ringing.forks.is_empty();
        self.forget_leg(key, leg);
        if none_left {
            self.end_ringing(key, ByeReason::Cancelled, Some(if_last), "no device left");
        }
    }

    /// Ends ringing call `key`: every fork gets `Bye{fork_reason}`, the caller `Bye{caller_reason}`
    /// when given (not when the caller itself cancelled or went away).
    pub(super) fn end_ringing(
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
            self.send_to_leg(
                key,
                Party::Callee,
                fork,
                NoticeBody::Bye {
                    reason: fork_reason,
                },
            );
        }
        if let Some(reason) = caller_reason {
            self.send_to_leg(key, Party::Caller, caller_leg, NoticeBody::Bye { reason });
        }
        tracing::info!(?key, why, ?caller_reason, "ringing call ended");
        let reason = caller_reason.unwrap_or(fork_reason);
        self.emit(key, CallStatus::of_end(false, reason), None, Some(reason));
        self.remove_call(key);
    }
}

/// The leg is not a fork of a ringing call, so it cannot alert or answer it.
#[derive(Debug)]
pub(super) struct NotAFork;
