//! Blind transfer (PROTOCOL.md 4.12): the active terminal hands the far party over to another
//! number, whose device takes the call with an offer of its own — the core relays SDP and never
//! makes one, so the side is left vacant (as in the reconnect grace, 4.8) until a terminal of the
//! new number pulls it, or the new number's phone comes up as in a handover.

use super::call::{CallKey, Leg, Purpose, Side};
use super::timers::TimerKind;
use super::Switch;
use crate::core::message::{ByeReason, ErrorCode, NoticeBody, Output, PhoneCommand, Rejection};
use crate::core::types::{Msisdn, TerminalId};
use std::time::Instant;

impl Switch {
    /// `terminal`, the active leg of its side of call `key`, transfers the far party to `to`.
    ///
    /// The terminal's leg ends with `Bye{TRANSFERRED}` and its number leaves the call (its other
    /// terminals get `Idle`); the side belongs to `to` from now on, with a fresh id, and is vacant:
    /// `to`'s terminals see `InCall{far party}` and the first to pull takes the call; with no
    /// eligible terminal, `to`'s phone is brought up as in a handover. Nobody within the ring
    /// timeout: `Bye{NO_ANSWER}` to the far party; no device at all: `UNAVAILABLE` (`BUSY` when
    /// `to` has terminals but none may take a call) at once.
    ///
    /// # Errors
    /// `NOT_INCALL` from a terminal that is not the call's active leg; `TRY_AGAIN` while a
    /// negotiation is pending or the far party is reconnecting; `INVALID_ARGUMENT` for the
    /// terminal's own number or the far party's.
    pub(super) fn transfer(
        &mut self,
        now: Instant,
        terminal: TerminalId,
        key: CallKey,
        to: Msisdn,
    ) -> Result<(), Rejection> {
        let (party, established) = self.active_leg_of(terminal, key, "transfer it")?;
        let call = &self.calls[&key];
        let msisdn = call.side(party).msisdn.clone();
        let far = call.side(party.other()).msisdn.clone();
        let old_id = call.side(party).id;
        if to == msisdn || to == far {
            return Err(Rejection::new(
                ErrorCode::InvalidArgument,
                "action.transfer.msisdn is a number already in the call",
            ));
        }
        Self::may_negotiate(
            established.negotiation,
            established.legs[party.other() as usize],
        )?;
        let (eligible, busy) = self.eligible_terminals(&to);

        // The transferring leg ends; its number leaves the call.
        self.send_to_leg(
            key,
            party,
            Leg::Terminal(terminal),
            NoticeBody::Bye {
                reason: ByeReason::Transferred,
            },
        );
        self.forget_terminal_call(terminal, key);
        if let Some(subscriber) = self.subscribers.get_mut(&msisdn) {
            subscriber.calls.remove(&old_id);
        }
        let new_id = self.next_call_id();
        self.subscribers
            .entry(to.clone())
            .or_default()
            .calls
            .insert(new_id, key);
        self.calls.get_mut(&key).unwrap().sides[party as usize] = Side {
            msisdn: to.clone(),
            id: new_id,
        };
        let established = self.established_mut(key);
        established.legs[party as usize] = Leg::Vacant;
        established.transferred[party as usize] = true;
        self.timers
            .arm(key, TimerKind::Grace(party), now + self.config.ring_timeout);
        tracing::info!(?key, ?terminal, ?to, "call transferred");
        self.refresh_views(&msisdn, None);
        self.forget_subscriber_if_empty(&msisdn);

        if !eligible.is_empty() {
            self.refresh_views(&to, Some(key));
        } else if self.config.phone_network {
            // 4.12: no terminal can take it: `to`'s phone comes up as in a handover (4.6).
            self.refresh_views(&to, Some(key));
            let phone = self.new_phone_leg(key);
            let purpose = Purpose::HandOver {
                phone,
                far_offered: false,
            };
            self.begin_negotiation(now, key, party, purpose);
            self.outputs
                .push_back(Output::Phone(PhoneCommand::HandOver {
                    leg: phone,
                    msisdn: to,
                    peer: far,
                }));
        } else {
            let reason = if busy {
                ByeReason::Busy
            } else {
                ByeReason::Unavailable
            };
            self.end_established(key, reason, "transfer target has no device", None);
        }
        Ok(())
    }
}
