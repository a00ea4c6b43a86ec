//! What the phone network reports (PROTOCOL.md section 7): ringing, answers, rejections, handover
//! progress and hang-ups of the phone legs the switch asked for.

use super::call::{CallKey, CallState, Leg};
use super::negotiation::{Failure, Outcome};
use super::Switch;
use crate::core::message::{PhoneEvent, PhoneRejection};
use crate::core::reason::ByeReason;
use crate::core::types::PhoneLegId;
use std::time::Instant;

impl Switch {
    /// One report from the phone network. Reports about legs the switch no longer knows are ignored
    /// (they raced with a release), and so are reports that do not fit the leg's part in its call.
    pub fn handle_phone_event(&mut self, now: Instant, event: PhoneEvent) {
        self.now = now;
        self.phone_event(event);
        self.serve_queue();
    }

    fn phone_event(&mut self, event: PhoneEvent) {
        let leg_id = event.leg();
        if let PhoneEvent::Incoming {
            from,
            to,
            sdp,
            context,
            ..
        } = event
        {
            self.incoming_call(leg_id, from, to, sdp, context);
            return;
        }
        let Some(&key) = self.phone_legs.get(&leg_id) else {
            tracing::debug!(?event, "phone event for an unknown leg ignored");
            return;
        };
        let leg = Leg::Phone(leg_id);
        let in_handover = self.pending_handover(key) == Some(leg_id);
        let fitted = match event {
            PhoneEvent::Ringing { .. } => self.alert(key, leg).is_ok(),
            PhoneEvent::Answered { sdp, .. } => match &self.calls[&key].state {
                CallState::Ringing(_) => self.establish(key, leg, sdp).is_ok(),
                CallState::Established(_) => self.answer_negotiation(key, leg, sdp),
            },
            PhoneEvent::HandOverReady { sdp, .. } if in_handover => {
                self.handover_ready(key, sdp);
                true
            }
            PhoneEvent::HandOverFailed { message, .. } if in_handover => {
                self.end_negotiation(key, Outcome::Failed(Failure::HandOverFailed(message)));
                true
            }
            PhoneEvent::Rejected { .. } | PhoneEvent::HungUp { .. } if in_handover => {
                self.end_negotiation(key, Outcome::Failed(Failure::Refused));
                true
            }
            PhoneEvent::Rejected { reason, .. } => self.phone_rejected(key, leg_id, reason),
            PhoneEvent::HungUp { .. } => self.phone_hung_up(key, leg_id),
            PhoneEvent::Offer { sdp, .. } => {
                self.phone_offer(key, leg_id, sdp);
                true
            }
            PhoneEvent::HandOverReady { .. } | PhoneEvent::HandOverFailed { .. } => false,
            PhoneEvent::Incoming { .. } => unreachable!("handled above"),
        };
        if !fitted {
            tracing::debug!(?key, ?leg_id, "phone event did not fit the call");
        }
    }

    /// A phone refused a ring (a fork: declined ends the call, busy or unreachable withdraws it) or
    /// a re-offer (the negotiation fails as on a timeout).
    fn phone_rejected(&mut self, key: CallKey, leg: PhoneLegId, reason: PhoneRejection) -> bool {
        let phone = Leg::Phone(leg);
        match &mut self.calls.get_mut(&key).unwrap().state {
            CallState::Ringing(ringing) if ringing.forks.contains(&phone) => match reason {
                PhoneRejection::Declined => self.decline(key, phone),
                PhoneRejection::Busy | PhoneRejection::Unreachable => {
                    ringing.saw_busy |= reason == PhoneRejection::Busy;
                    let if_last = if ringing.saw_busy {
                        ByeReason::Busy
                    } else {
                        ByeReason::Unavailable
                    };
                    self.withdraw_fork(key, phone, if_last);
                }
            },
            CallState::Ringing(_) => return false,
            CallState::Established(_) => {
                if !self.negotiation_waits_on(key, phone) {
                    return false;
                }
                self.end_negotiation(key, Outcome::Failed(Failure::Refused));
            }
        }
        true
    }

    /// A phone hung up: a ringing fork is withdrawn (4.8), an active leg ends the call (4.1).
    fn phone_hung_up(&mut self, key: CallKey, leg: PhoneLegId) -> bool {
        let phone = Leg::Phone(leg);
        match &self.calls[&key].state {
            CallState::Ringing(ringing) if ringing.forks.contains(&phone) => {
                self.withdraw_fork(key, phone, ByeReason::Unavailable);
                true
            }
            _ => self.bye(key, phone),
        }
    }
}
