//! Offer/answer on an established call (PROTOCOL.md 4.5–4.7): re-offers, pulls and handovers, one
//! at a time per call, each ended in one place ([`Switch::end_negotiation`]).

use super::call::{CallKey, CallState, Established, Leg, Negotiation, Party, Purpose};
use super::timers::TimerKind;
use super::Switch;
use crate::core::context::CallContext;
use crate::core::message::{ErrorCode, NoticeBody, Output, PhoneCommand, Rejection};
use crate::core::reason::ByeReason;
use crate::core::types::{Msisdn, PhoneLegId, Sdp, TerminalId};

/// How a pending negotiation ends.
#[derive(Debug)]
pub(super) enum Outcome {
    /// The far side answered with this SDP: the offerer gets it, a pull or handover moves the leg.
    Answered(Sdp),
    /// It failed; the call stays where it was. A re-offerer gets `Error{TRY_AGAIN}`, a puller
    /// `Bye{NEGOTIATION_FAILED}`, a handover requester `Error{UNKNOWN}`; the far side is told nothing.
    Failed(Failure),
    /// The call ends with this reason: a puller gets that Bye, a handover phone is released.
    CallEnded(ByeReason),
    /// The puller went away: the pull is dropped and nobody is told.
    PullerGone,
}

/// Why a negotiation failed.
#[derive(Debug)]
pub(super) enum Failure {
    /// No answer within the negotiation timeout, or the leg that had to answer went away.
    TimedOut,
    /// A phone refused it (a re-offer rejected, the handover phone rejected or hung up).
    Refused,
    /// The phone network could not bring the phone up, with its reason.
    HandOverFailed(String),
}

impl Failure {
    fn explain(&self, purpose: Purpose) -> String {
        let handover = matches!(purpose, Purpose::HandOver { .. });
        match (self, handover) {
            (Failure::TimedOut, false) => "the re-offer was not answered in time".into(),
            (Failure::Refused, false) => "the other party's phone refused the re-offer".into(),
            (Failure::TimedOut, true) => {
                "handover failed: the far side did not answer in time".into()
            }
            (Failure::Refused, true) => "handover failed: the phone did not take the call".into(),
            (Failure::HandOverFailed(why), _) => format!("handover failed: {why}"),
        }
    }
}

impl Switch {
    /// An Offer without a number on an existing call: a re-offer from an active leg (4.7) or a pull
    /// from a terminal that observes the call (4.5).
    pub(super) fn offer_on_call(
        &mut self,
        terminal: TerminalId,
        key: CallKey,
        sdp: Sdp,
    ) -> Result<(), Rejection> {
        let msisdn = self.terminals[&terminal].msisdn.clone();
        // 4.12, section 10: a member may pull a call transferred to its group, and claims it
        // once its pull has passed every check below.
        let own_side = self.calls[&key].party_of(&msisdn);
        let party = match own_side.or_else(|| self.claimable_side(key, &msisdn)) {
            Some(party) => party,
            None => {
                return Err(Rejection::new(
                    ErrorCode::NotInCall,
                    "the call is not established; answer or decline the offer",
                ))
            }
        };
        let t = &self.terminals[&terminal];
        let call = &self.calls[&key];
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
        Self::may_negotiate(
            established.negotiation,
            established.legs[party.other() as usize],
        )?;
        let purpose = if established.legs[party as usize] == Leg::Terminal(terminal) {
            Purpose::ReOffer {
                hold: sdp.is_hold(),
            }
        } else {
            if !self.has_room(t) {
                return Err(self.no_room(t.kind));
            }
            Purpose::Pull { puller: terminal }
        };
        if let Purpose::Pull { .. } = purpose {
            if own_side.is_none() {
                let claimed = self.claim_group_transfer(key, &msisdn);
                debug_assert_eq!(claimed, Some(party), "claimable a moment ago");
            }
            self.terminals.get_mut(&terminal).unwrap().pulls.push(key);
            tracing::info!(?key, ?terminal, "pull offered");
        }
        self.offer_far_side(key, party, purpose, sdp);
        Ok(())
    }

    /// A phone re-offers on its established call (4.7, 4.11): relayed to the other party like a
    /// terminal's re-offer; when that cannot be now (another negotiation pending, the other party
    /// reconnecting, or the leg is not an active leg) the network is told `OfferFailed`.
    pub(super) fn phone_offer(&mut self, key: CallKey, leg: PhoneLegId, sdp: Sdp) {
        let may = match &self.calls[&key].state {
            CallState::Established(e) => e.party_of_leg(Leg::Phone(leg)).filter(|party| {
                Self::may_negotiate(e.negotiation, e.legs[party.other() as usize]).is_ok()
            }),
            CallState::Ringing(_) => None,
        };
        match may {
            Some(party) => {
                let purpose = Purpose::ReOffer {
                    hold: sdp.is_hold(),
                };
                self.offer_far_side(key, party, purpose, sdp)
            }
            None => self
                .outputs
                .push_back(Output::Phone(PhoneCommand::OfferFailed { leg })),
        }
    }

    /// Starts a negotiation by side `by` and sends its offer to the other side's active leg, from
    /// `by`'s number.
    fn offer_far_side(&mut self, key: CallKey, by: Party, purpose: Purpose, sdp: Sdp) {
        self.begin_negotiation(key, by, purpose);
        let call = &self.calls[&key];
        let from = call.side(by).msisdn.clone();
        let CallState::Established(e) = &call.state else {
            unreachable!("negotiations are on established calls");
        };
        let far_leg = e.legs[by.other() as usize];
        let offer = NoticeBody::Offer {
            sdp,
            from,
            context: CallContext::default(),
        };
        self.send_to_leg(key, by.other(), far_leg, offer);
    }

    /// 4.6: the active terminal asks to move the call to its msisdn's mobile phone.
    pub(super) fn hand_over(
        &mut self,
        terminal: TerminalId,
        key: CallKey,
    ) -> Result<(), Rejection> {
        let (party, established) = self.active_leg_of(terminal, key, "hand it to the phone")?;
        let call = &self.calls[&key];
        let msisdn = call.side(party).msisdn.clone();
        if !self.config.phone_network {
            return Err(Rejection::new(
                ErrorCode::Unknown,
                "handover failed: no phone network is attached",
            ));
        }
        Self::may_negotiate(
            established.negotiation,
            established.legs[party.other() as usize],
        )?;
        let peer = call.side(party.other()).msisdn.clone();
        self.bring_up_phone(key, party, msisdn, peer);
        tracing::info!(?key, ?terminal, "handover to phone requested");
        Ok(())
    }

    /// `party`'s side of established call `key` moves to `msisdn`'s mobile phone as in a handover
    /// (4.6): a new phone leg, a handover negotiation, and the network asked to bring the phone up
    /// with `peer` as the far party. A transfer with no terminal to take it ends the same way (4.12).
    pub(super) fn bring_up_phone(
        &mut self,
        key: CallKey,
        party: Party,
        msisdn: Msisdn,
        peer: Msisdn,
    ) {
        let phone = self.new_phone_leg(key);
        let purpose = Purpose::HandOver {
            phone,
            far_offered: false,
        };
        self.begin_negotiation(key, party, purpose);
        self.outputs
            .push_back(Output::Phone(PhoneCommand::HandOver {
                leg: phone,
                msisdn,
                peer,
            }));
    }

    /// The party of established call `key` whose active leg is `terminal`, with the call's state.
    ///
    /// # Errors
    /// `NOT_INCALL` (sections 4.6, 4.10, 4.12) when the call is not established or `terminal` is not
    /// its active leg: only the active leg may `action` it.
    pub(super) fn active_leg_of(
        &self,
        terminal: TerminalId,
        key: CallKey,
        action: &str,
    ) -> Result<(Party, &Established), Rejection> {
        let call = &self.calls[&key];
        let msisdn = &self.terminals[&terminal].msisdn;
        // A group member offered a call, or shown a call transferred to its group, has no side
        // in it yet (section 10).
        let party = call.party_of(msisdn);
        match (&call.state, party) {
            (CallState::Established(e), Some(party))
                if e.legs[party as usize] == Leg::Terminal(terminal) =>
            {
                Ok((party, e))
            }
            _ => Err(Rejection::new(
                ErrorCode::NotInCall,
                format!("only the active leg of an established call may {action}"),
            )),
        }
    }

    /// One negotiation at a time (4.7, glare: the later offer loses), and none while the far side
    /// is vacant (4.8: nobody could answer it).
    pub(super) fn may_negotiate(
        pending: Option<Negotiation>,
        far_leg: Leg,
    ) -> Result<(), Rejection> {
        if pending.is_some() {
            return Err(Rejection::new(
                ErrorCode::TryAgain,
                "another offer on this call is pending",
            ));
        }
        if far_leg == Leg::Vacant {
            return Err(Rejection::new(
                ErrorCode::TryAgain,
                "the other party is reconnecting; offer again once it is back",
            ));
        }
        Ok(())
    }

    pub(super) fn begin_negotiation(&mut self, key: CallKey, by: Party, purpose: Purpose) {
        self.established_mut(key).negotiation = Some(Negotiation { by, purpose });
        self.timers.arm(
            key,
            TimerKind::Negotiation,
            self.now + self.config.negotiation_timeout,
        );
    }

    /// An Answer from `leg` to the negotiation pending on `key`; `false` when none waits on it.
    pub(super) fn answer_negotiation(&mut self, key: CallKey, leg: Leg, sdp: Sdp) -> bool {
        if !self.negotiation_waits_on(key, leg) {
            return false;
        }
        self.end_negotiation(key, Outcome::Answered(sdp));
        true
    }

    /// Whether the negotiation on `key` waits for an answer from `leg` (a handover waits on nobody
    /// until the phone's offer went to the far side).
    pub(super) fn negotiation_waits_on(&self, key: CallKey, leg: Leg) -> bool {
        let Some(CallState::Established(e)) = self.calls.get(&key).map(|c| &c.state) else {
            return false;
        };
        e.negotiation.is_some_and(|n| {
            e.legs[n.by.other() as usize] == leg
                && !matches!(
                    n.purpose,
                    Purpose::HandOver {
                        far_offered: false,
                        ..
                    }
                )
        })
    }

    /// The phone leg of the handover pending on call `key`, if any.
    pub(super) fn pending_handover(&self, key: CallKey) -> Option<PhoneLegId> {
        match &self.calls.get(&key)?.state {
            CallState::Established(e) => match e.negotiation?.purpose {
                Purpose::HandOver { phone, .. } => Some(phone),
                _ => None,
            },
            CallState::Ringing(_) => None,
        }
    }

    /// 4.6: the handover phone is up; re-offer the far side with its SDP (once).
    pub(super) fn handover_ready(&mut self, key: CallKey, sdp: Sdp) {
        let established = self.established_mut(key);
        let Some(Negotiation {
            by,
            purpose: Purpose::HandOver { far_offered, .. },
        }) = established.negotiation.as_mut()
        else {
            return;
        };
        if std::mem::replace(far_offered, true) {
            return;
        }
        let by = *by;
        let far_leg = established.legs[by.other() as usize];
        let from = self.calls[&key].side(by).msisdn.clone();
        let offer = NoticeBody::Offer {
            sdp,
            from,
            context: CallContext::default(),
        };
        self.send_to_leg(key, by.other(), far_leg, offer);
    }

    /// Releases phone leg `phone` (the network reports nothing more for it).
    pub(super) fn release_phone(&mut self, phone: PhoneLegId, reason: ByeReason) {
        self.phone_legs.remove(&phone);
        self.outputs
            .push_back(Output::Phone(PhoneCommand::Release { leg: phone, reason }));
    }

    /// The puller went away: its pending pull is dropped; the far side is told nothing (as on a
    /// negotiation timeout, 4.7).
    pub(super) fn abandon_pull(&mut self, key: CallKey, terminal: TerminalId) {
        self.forget_pull(terminal, key);
        let pulling = matches!(
            self.calls.get(&key).map(|c| &c.state),
            Some(CallState::Established(e))
                if e.negotiation.is_some_and(|n| n.purpose == Purpose::Pull { puller: terminal })
        );
        if pulling {
            self.end_negotiation(key, Outcome::PullerGone);
        }
    }

    /// The one place a negotiation ends: disarms its timer, and tells the offerer (and moves the
    /// leg, releases the phone) as `outcome` says. Nothing when no negotiation is pending.
    pub(super) fn end_negotiation(&mut self, key: CallKey, outcome: Outcome) {
        let Some(CallState::Established(e)) = self.calls.get_mut(&key).map(|c| &mut c.state) else {
            return;
        };
        let Some(Negotiation { by, purpose }) = e.negotiation.take() else {
            return;
        };
        let offerer = e.legs[by as usize];
        self.timers.disarm(key, TimerKind::Negotiation);
        match purpose {
            Purpose::ReOffer { hold } => {
                let body = match outcome {
                    Outcome::Answered(sdp) => {
                        self.hold_changed(key, by, hold);
                        NoticeBody::Answer { sdp }
                    }
                    Outcome::Failed(failure) => NoticeBody::Error(Rejection::new(
                        ErrorCode::TryAgain,
                        failure.explain(purpose),
                    )),
                    Outcome::CallEnded(_) | Outcome::PullerGone => return,
                };
                self.send_to_leg(key, by, offerer, body);
            }
            Purpose::Pull { puller } => {
                self.forget_pull(puller, key);
                let id = self.calls[&key].side(by).id;
                let reason = match outcome {
                    Outcome::Answered(sdp) => {
                        self.deliver(puller, Some(id), NoticeBody::Answer { sdp });
                        let to = Leg::Terminal(puller);
                        self.move_active_leg(key, by, to, ByeReason::Pulled);
                        return;
                    }
                    Outcome::Failed(_) => ByeReason::NegotiationFailed,
                    Outcome::CallEnded(reason) => reason,
                    Outcome::PullerGone => return,
                };
                self.deliver(puller, Some(id), NoticeBody::Bye { reason });
            }
            Purpose::HandOver { phone, .. } => {
                let message = match outcome {
                    Outcome::Answered(sdp) => {
                        self.outputs
                            .push_back(Output::Phone(PhoneCommand::Answer { leg: phone, sdp }));
                        let to = Leg::Phone(phone);
                        self.move_active_leg(key, by, to, ByeReason::HandedToPhone);
                        return;
                    }
                    Outcome::Failed(failure) => {
                        if offerer == Leg::Vacant && vacant_after_transfer(self, key, by) {
                            // The transfer target's phone did not take the call (4.12).
                            let reason = match failure {
                                Failure::TimedOut => ByeReason::NegotiationFailed,
                                _ => ByeReason::Unavailable,
                            };
                            self.release_phone(phone, reason);
                            self.end_established(key, reason, "transfer target unreachable", None);
                            return;
                        }
                        failure.explain(purpose)
                    }
                    Outcome::CallEnded(reason) => {
                        self.release_phone(phone, reason);
                        return;
                    }
                    Outcome::PullerGone => unreachable!("a handover has no puller"),
                };
                tracing::info!(?key, %message, "handover failed");
                self.release_phone(phone, ByeReason::NegotiationFailed);
                let error = Rejection::new(ErrorCode::Unknown, message);
                self.send_to_leg(key, by, offerer, NoticeBody::Error(error));
            }
        }
    }
}

/// Whether side `by` of established call `key` is vacant after a transfer.
fn vacant_after_transfer(switch: &Switch, key: CallKey, by: Party) -> bool {
    matches!(&switch.calls[&key].state, CallState::Established(e) if e.transferred[by as usize])
}
