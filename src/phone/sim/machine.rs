//! The simulated phones' state machine: every number's [`Behaviour`] and every leg on a simulated
//! phone, synchronous and clock-free; each input returns the [`PhoneEvent`]s it causes.

use super::behaviour::{Behaviour, Operation, SimError};
use super::sdp::{generated_answer_sdp, generated_sdp};
use crate::core::{CallContext, Msisdn, PhoneCommand, PhoneEvent, PhoneLegId, PhoneRejection, Sdp};
use std::collections::{BTreeMap, HashMap};

/// Where one leg on a simulated phone stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LegState {
    /// Rang after a `Ring`; `since` orders the phone's ringing legs (the operator answers the oldest).
    Ringing { since: u64 },
    /// Sent its handover offer (`HandOverReady`); waits for the switch's `Answer`.
    HandingOver,
    /// Dialled out (`Dial`, reported as `Incoming`); waits for the switch's `Answer`.
    Calling,
    /// Carries a call: answered, or a handover that was answered.
    Established,
}

/// One leg on a simulated phone.
#[derive(Clone, Debug)]
struct PhoneLeg {
    /// The number whose phone holds the leg.
    phone: Msisdn,
    state: LegState,
}

/// The state machine of the simulated phone network: every number's [`Behaviour`] and every leg on
/// a simulated phone. Synchronous and clock-free; [`SimulatedPhoneNetwork::start`](super::SimulatedPhoneNetwork::start) runs it on a task.
///
/// Every input returns the [`PhoneEvent`]s it causes, in order, for the caller to report.
#[derive(Debug, Default)]
pub struct SimulatedPhones {
    /// Numbers whose behaviour is not [`Behaviour::Ring`].
    behaviours: HashMap<Msisdn, Behaviour>,
    /// Legs by id; ordered so that a hang-up reports in a stable order.
    legs: BTreeMap<PhoneLegId, PhoneLeg>,
    /// Counts rings, to find a phone's oldest ringing leg.
    rings: u64,
    /// The `o=` session id of the next generated SDP.
    next_session: u64,
    /// Counts calls dialled, to number their legs ([`PhoneLegId::from_network`]).
    dials: u64,
}

impl SimulatedPhones {
    /// No legs, every number [`Behaviour::Ring`].
    pub fn new() -> Self {
        SimulatedPhones::default()
    }

    /// The behaviour of `msisdn`'s simulated phone.
    pub fn behaviour(&self, msisdn: &Msisdn) -> Behaviour {
        self.behaviours.get(msisdn).copied().unwrap_or_default()
    }

    /// Sets how `msisdn`'s simulated phone reacts to the next calls and handovers; its current legs
    /// are left as they are.
    pub fn set_behaviour(&mut self, msisdn: Msisdn, behaviour: Behaviour) {
        tracing::info!(?msisdn, ?behaviour, "simulated phone behaviour set");
        if behaviour == Behaviour::Ring {
            self.behaviours.remove(&msisdn);
        } else {
            self.behaviours.insert(msisdn, behaviour);
        }
    }

    /// How many legs `msisdn`'s simulated phone holds, in any state.
    pub fn legs_on(&self, msisdn: &Msisdn) -> usize {
        self.legs.values().filter(|l| &l.phone == msisdn).count()
    }

    /// Carries out one command of the switch (PROTOCOL.md section 7) and returns the events it
    /// causes:
    ///
    /// - `Ring`: by the callee's [`Behaviour`]; a ringing or answered leg is kept.
    /// - `HandOver`: `HandOverReady` with a generated offer ([`generated_sdp`]), or `HandOverFailed`
    ///   when the phone is busy or unreachable.
    /// - `Offer` (re-offer): `Answered` at once with a generated answer on an established leg;
    ///   `Rejected{Busy}` on a leg that is still ringing or handing over (a negotiation is already
    ///   under way there, as SIP's 491 Request Pending); `HungUp` on a leg the phone does not have.
    /// - `Answer`: the handover leg, or the dialled call, is established; nothing is reported
    ///   (`HungUp` for an unknown leg).
    /// - `Alerting`, `OfferFailed`: noted; nothing is reported.
    /// - `Release`: the leg is forgotten; nothing is reported.
    pub fn command(&mut self, command: PhoneCommand) -> Vec<PhoneEvent> {
        match command {
            PhoneCommand::Ring { leg, to, .. } => self.ring(leg, to),
            PhoneCommand::HandOver { leg, msisdn, .. } => self.hand_over(leg, msisdn),
            PhoneCommand::Offer { leg, .. } => self.re_offer(leg),
            PhoneCommand::Answer { leg, .. } => self.offer_answered(leg),
            PhoneCommand::Alerting { leg } => {
                tracing::debug!(?leg, "the simulated phone's callee alerts");
                Vec::new()
            }
            PhoneCommand::OfferFailed { leg } => {
                tracing::debug!(?leg, "a simulated phone's re-offer failed");
                Vec::new()
            }
            PhoneCommand::Release { leg, reason } => {
                if let Some(gone) = self.legs.remove(&leg) {
                    tracing::debug!(?leg, phone = ?gone.phone, ?reason, "simulated phone leg released");
                }
                Vec::new()
            }
        }
    }

    /// Carries out an operator's [`Operation`] on `msisdn`'s simulated phone and returns the events
    /// it causes, one per leg touched (so the count of legs touched is the length).
    ///
    /// # Errors
    /// [`SimError::NothingRinging`] for `Answer`/`Reject` when no leg rings on the phone;
    /// [`SimError::NoLegs`] for `HangUp` when the phone has no leg.
    pub fn control(
        &mut self,
        msisdn: &Msisdn,
        operation: Operation,
    ) -> Result<Vec<PhoneEvent>, SimError> {
        tracing::info!(?msisdn, ?operation, "simulated phone operated");
        match operation {
            Operation::Answer | Operation::Reject => {
                let leg = self
                    .legs
                    .iter()
                    .filter_map(|(id, l)| match l.state {
                        LegState::Ringing { since } if &l.phone == msisdn => Some((since, *id)),
                        _ => None,
                    })
                    .min()
                    .map(|(_, id)| id)
                    .ok_or(SimError::NothingRinging)?;
                if operation == Operation::Answer {
                    self.set_state(leg, LegState::Established);
                    let sdp = self.answer_sdp(msisdn);
                    Ok(vec![PhoneEvent::Answered { leg, sdp }])
                } else {
                    self.legs.remove(&leg);
                    Ok(vec![PhoneEvent::Rejected {
                        leg,
                        reason: PhoneRejection::Declined,
                    }])
                }
            }
            Operation::HangUp => {
                let gone: Vec<PhoneLegId> = self
                    .legs
                    .iter()
                    .filter(|(_, l)| &l.phone == msisdn)
                    .map(|(id, _)| *id)
                    .collect();
                if gone.is_empty() {
                    return Err(SimError::NoLegs);
                }
                Ok(gone
                    .into_iter()
                    .map(|leg| {
                        self.legs.remove(&leg);
                        PhoneEvent::HungUp { leg }
                    })
                    .collect())
            }
        }
    }

    fn ring(&mut self, leg: PhoneLegId, to: Msisdn) -> Vec<PhoneEvent> {
        let behaviour = self.behaviour(&to);
        tracing::debug!(?leg, phone = ?to, ?behaviour, "simulated phone called");
        match behaviour {
            Behaviour::Ring => {
                self.rings += 1;
                let since = self.rings;
                self.keep(leg, to, LegState::Ringing { since });
                vec![PhoneEvent::Ringing { leg }]
            }
            Behaviour::Answer => {
                let sdp = self.answer_sdp(&to);
                self.keep(leg, to, LegState::Established);
                vec![
                    PhoneEvent::Ringing { leg },
                    PhoneEvent::Answered { leg, sdp },
                ]
            }
            Behaviour::Busy => vec![PhoneEvent::Rejected {
                leg,
                reason: PhoneRejection::Busy,
            }],
            Behaviour::Unreachable => vec![PhoneEvent::Rejected {
                leg,
                reason: PhoneRejection::Unreachable,
            }],
            Behaviour::Decline => vec![
                PhoneEvent::Ringing { leg },
                PhoneEvent::Rejected {
                    leg,
                    reason: PhoneRejection::Declined,
                },
            ],
        }
    }

    fn hand_over(&mut self, leg: PhoneLegId, msisdn: Msisdn) -> Vec<PhoneEvent> {
        let behaviour = self.behaviour(&msisdn);
        tracing::debug!(?leg, phone = ?msisdn, ?behaviour, "simulated phone handover");
        let message = match behaviour {
            Behaviour::Busy => "the phone is busy",
            Behaviour::Unreachable => "the phone is unreachable",
            Behaviour::Ring | Behaviour::Answer | Behaviour::Decline => {
                let session = self.session();
                let sdp = generated_sdp(&msisdn, session);
                self.keep(leg, msisdn, LegState::HandingOver);
                return vec![PhoneEvent::HandOverReady { leg, sdp }];
            }
        };
        vec![PhoneEvent::HandOverFailed {
            leg,
            message: message.to_owned(),
        }]
    }

    fn re_offer(&mut self, leg: PhoneLegId) -> Vec<PhoneEvent> {
        let Some(known) = self.legs.get(&leg) else {
            tracing::debug!(?leg, "re-offer to a leg no simulated phone has");
            return vec![PhoneEvent::HungUp { leg }];
        };
        match known.state {
            LegState::Established => {
                let phone = known.phone.clone();
                let sdp = self.answer_sdp(&phone);
                vec![PhoneEvent::Answered { leg, sdp }]
            }
            LegState::Ringing { .. } | LegState::HandingOver | LegState::Calling => {
                tracing::warn!(?leg, state = ?known.state, "re-offer to a simulated phone leg that is not established");
                vec![PhoneEvent::Rejected {
                    leg,
                    reason: PhoneRejection::Busy,
                }]
            }
        }
    }

    /// The simulated phone of `from` calls `to` (PROTOCOL.md 4.11, section 7's `Dial`) with call
    /// `context` (e.g. a `display_name`): returns the `Incoming` event with a generated offer, on a
    /// new leg numbered by the network.
    ///
    /// # Errors
    /// [`SimError::Busy`] or [`SimError::Unreachable`] by `from`'s [`Behaviour`];
    /// [`SimError::DialsItself`] when `from` is `to`.
    pub fn dial(
        &mut self,
        from: Msisdn,
        to: Msisdn,
        context: CallContext,
    ) -> Result<Vec<PhoneEvent>, SimError> {
        tracing::info!(?from, ?to, "simulated phone dials");
        match self.behaviour(&from) {
            Behaviour::Busy => return Err(SimError::Busy),
            Behaviour::Unreachable => return Err(SimError::Unreachable),
            Behaviour::Ring | Behaviour::Answer | Behaviour::Decline => {}
        }
        if from == to {
            return Err(SimError::DialsItself);
        }
        self.dials += 1;
        let leg = PhoneLegId::from_network(self.dials);
        let session = self.session();
        let sdp = generated_sdp(&from, session);
        self.keep(leg, from.clone(), LegState::Calling);
        Ok(vec![PhoneEvent::Incoming {
            leg,
            from,
            to,
            sdp,
            context,
        }])
    }

    fn offer_answered(&mut self, leg: PhoneLegId) -> Vec<PhoneEvent> {
        match self.legs.get(&leg).map(|l| l.state) {
            None => {
                tracing::debug!(?leg, "answer to a leg no simulated phone has");
                vec![PhoneEvent::HungUp { leg }]
            }
            Some(LegState::HandingOver | LegState::Calling) => {
                self.set_state(leg, LegState::Established);
                Vec::new()
            }
            Some(state) => {
                tracing::warn!(
                    ?leg,
                    ?state,
                    "answer to a simulated phone leg that made no offer"
                );
                Vec::new()
            }
        }
    }

    /// Keeps a leg on `phone`; a leg id the switch reuses replaces the old leg.
    fn keep(&mut self, leg: PhoneLegId, phone: Msisdn, state: LegState) {
        if let Some(old) = self.legs.insert(leg, PhoneLeg { phone, state }) {
            tracing::warn!(?leg, old = ?old.state, "simulated phone leg id reused");
        }
    }

    fn set_state(&mut self, leg: PhoneLegId, state: LegState) {
        if let Some(l) = self.legs.get_mut(&leg) {
            l.state = state;
        }
    }

    fn session(&mut self) -> u64 {
        self.next_session += 1;
        self.next_session
    }

    fn answer_sdp(&mut self, msisdn: &Msisdn) -> Sdp {
        let session = self.session();
        generated_answer_sdp(msisdn, session)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    fn valid(sdp: &Sdp) {
        Sdp::parse(sdp.as_str(), 65536).expect("generated SDP parses");
    }

    /// Asserts `events` is exactly one `Answered` for `leg` with a valid SDP.
    fn assert_answered(events: &[PhoneEvent], leg: u64) {
        match events {
            [PhoneEvent::Answered { leg: l, sdp }] => {
                assert_eq!(*l, PhoneLegId(leg));
                valid(sdp);
                assert!(sdp.as_str().contains("a=setup:active\r\n"));
            }
            other => panic!("expected one Answered, got {other:?}"),
        }
    }

    #[test]
    fn default_phone_rings_and_never_answers_by_itself() {
        let mut phones = SimulatedPhones::new();
        assert_eq!(phones.behaviour(&n(B)), Behaviour::Ring);
        assert_eq!(
            phones.command(ring(1, B)),
            vec![PhoneEvent::Ringing { leg: PhoneLegId(1) }]
        );
        assert_eq!(phones.legs_on(&n(B)), 1);
    }

    #[test]
    fn answer_behaviour_rings_then_answers() {
        let mut phones = SimulatedPhones::new();
        phones.set_behaviour(n(B), Behaviour::Answer);
        let events = phones.command(ring(1, B));
        assert_eq!(events[0], PhoneEvent::Ringing { leg: PhoneLegId(1) });
        assert_answered(&events[1..], 1);
        // The answered leg is established: a re-offer is answered.
        assert_answered(&phones.command(re_offer(1)), 1);
    }

    #[test]
    fn busy_behaviour_rejects_calls_and_handovers() {
        let mut phones = SimulatedPhones::new();
        phones.set_behaviour(n(B), Behaviour::Busy);
        assert_eq!(
            phones.command(ring(1, B)),
            vec![PhoneEvent::Rejected {
                leg: PhoneLegId(1),
                reason: PhoneRejection::Busy
            }]
        );
        assert_eq!(
            phones.command(hand_over(2, B)),
            vec![PhoneEvent::HandOverFailed {
                leg: PhoneLegId(2),
                message: "the phone is busy".into()
            }]
        );
        assert_eq!(phones.legs_on(&n(B)), 0);
    }

    #[test]
    fn unreachable_behaviour_rejects_calls_and_handovers() {
        let mut phones = SimulatedPhones::new();
        phones.set_behaviour(n(B), Behaviour::Unreachable);
        assert_eq!(
            phones.command(ring(1, B)),
            vec![PhoneEvent::Rejected {
                leg: PhoneLegId(1),
                reason: PhoneRejection::Unreachable
            }]
        );
        assert_eq!(
            phones.command(hand_over(2, B)),
            vec![PhoneEvent::HandOverFailed {
                leg: PhoneLegId(2),
                message: "the phone is unreachable".into()
            }]
        );
        assert_eq!(phones.legs_on(&n(B)), 0);
    }

    #[test]
    fn decline_behaviour_rings_then_declines() {
        let mut phones = SimulatedPhones::new();
        phones.set_behaviour(n(B), Behaviour::Decline);
        assert_eq!(
            phones.command(ring(1, B)),
            vec![
                PhoneEvent::Ringing { leg: PhoneLegId(1) },
                PhoneEvent::Rejected {
                    leg: PhoneLegId(1),
                    reason: PhoneRejection::Declined
                }
            ]
        );
        assert_eq!(phones.legs_on(&n(B)), 0);
        // A handover is the subscriber's own doing: accepted.
        assert!(matches!(
            phones.command(hand_over(2, B)).as_slice(),
            [PhoneEvent::HandOverReady { .. }]
        ));
    }

    #[test]
    fn behaviour_back_to_ring_is_the_default_again() {
        let mut phones = SimulatedPhones::new();
        phones.set_behaviour(n(B), Behaviour::Busy);
        phones.set_behaviour(n(B), Behaviour::Ring);
        assert_eq!(phones.behaviour(&n(B)), Behaviour::Ring);
        assert_eq!(
            phones.command(ring(1, B)),
            vec![PhoneEvent::Ringing { leg: PhoneLegId(1) }]
        );
    }

    #[test]
    fn behaviour_is_per_number() {
        let mut phones = SimulatedPhones::new();
        phones.set_behaviour(n(B), Behaviour::Busy);
        assert_eq!(
            phones.command(ring(1, A)),
            vec![PhoneEvent::Ringing { leg: PhoneLegId(1) }]
        );
    }

    #[test]
    fn handover_is_accepted_at_once_then_established_by_answer() {
        let mut phones = SimulatedPhones::new();
        let events = phones.command(hand_over(5, A));
        match events.as_slice() {
            [PhoneEvent::HandOverReady { leg, sdp }] => {
                assert_eq!(*leg, PhoneLegId(5));
                valid(sdp);
                assert!(sdp.as_str().contains("a=setup:actpass\r\n"));
            }
            other => panic!("expected HandOverReady, got {other:?}"),
        }
        // Not yet established: a re-offer now is glare.
        assert_eq!(
            phones.command(re_offer(5)),
            vec![PhoneEvent::Rejected {
                leg: PhoneLegId(5),
                reason: PhoneRejection::Busy
            }]
        );
        let answer = PhoneCommand::Answer {
            leg: PhoneLegId(5),
            sdp: generated_answer_sdp(&n(B), 1),
        };
        assert_eq!(phones.command(answer), vec![]);
        assert_answered(&phones.command(re_offer(5)), 5);
        // The operator can hang the handed-over call up.
        assert_eq!(
            phones.control(&n(A), Operation::HangUp),
            Ok(vec![PhoneEvent::HungUp { leg: PhoneLegId(5) }])
        );
    }

    #[test]
    fn re_offer_to_an_established_leg_is_answered_at_once() {
        let mut phones = SimulatedPhones::new();
        phones.command(ring(1, B));
        phones.control(&n(B), Operation::Answer).unwrap();
        let first = phones.command(re_offer(1));
        let second = phones.command(re_offer(1));
        assert_answered(&first, 1);
        assert_answered(&second, 1);
        assert_ne!(first, second, "each answer is a new session");
    }

    #[test]
    fn re_offer_or_answer_to_an_unknown_leg_hangs_up() {
        let mut phones = SimulatedPhones::new();
        assert_eq!(
            phones.command(re_offer(9)),
            vec![PhoneEvent::HungUp { leg: PhoneLegId(9) }]
        );
        let answer = PhoneCommand::Answer {
            leg: PhoneLegId(9),
            sdp: generated_answer_sdp(&n(B), 1),
        };
        assert_eq!(
            phones.command(answer),
            vec![PhoneEvent::HungUp { leg: PhoneLegId(9) }]
        );
    }

    #[test]
    fn operator_answer_answers_the_oldest_ringing_leg() {
        let mut phones = SimulatedPhones::new();
        phones.command(ring(7, B));
        phones.command(ring(3, B));
        phones.command(ring(4, A));
        assert_answered(&phones.control(&n(B), Operation::Answer).unwrap(), 7);
        assert_answered(&phones.control(&n(B), Operation::Answer).unwrap(), 3);
        assert_eq!(
            phones.control(&n(B), Operation::Answer),
            Err(SimError::NothingRinging)
        );
        assert_eq!(phones.legs_on(&n(B)), 2);
    }

    #[test]
    fn operator_answer_with_nothing_ringing_is_not_found() {
        let mut phones = SimulatedPhones::new();
        assert_eq!(
            phones.control(&n(B), Operation::Answer),
            Err(SimError::NothingRinging)
        );
        // A handover leg does not ring.
        phones.command(hand_over(1, B));
        assert_eq!(
            phones.control(&n(B), Operation::Answer),
            Err(SimError::NothingRinging)
        );
    }

    #[test]
    fn operator_reject_declines_and_forgets_the_leg() {
        let mut phones = SimulatedPhones::new();
        phones.command(ring(1, B));
        assert_eq!(
            phones.control(&n(B), Operation::Reject),
            Ok(vec![PhoneEvent::Rejected {
                leg: PhoneLegId(1),
                reason: PhoneRejection::Declined
            }])
        );
        assert_eq!(phones.legs_on(&n(B)), 0);
        assert_eq!(
            phones.control(&n(B), Operation::Reject),
            Err(SimError::NothingRinging)
        );
    }

    #[test]
    fn operator_reject_does_not_touch_an_answered_leg() {
        let mut phones = SimulatedPhones::new();
        phones.command(ring(1, B));
        phones.control(&n(B), Operation::Answer).unwrap();
        assert_eq!(
            phones.control(&n(B), Operation::Reject),
            Err(SimError::NothingRinging)
        );
        assert_eq!(phones.legs_on(&n(B)), 1);
    }

    #[test]
    fn operator_hang_up_ends_every_leg_on_the_phone() {
        let mut phones = SimulatedPhones::new();
        phones.command(ring(1, B)); // ringing
        phones.command(ring(2, B));
        phones.control(&n(B), Operation::Answer).unwrap(); // leg 1 established
        phones.command(hand_over(3, B)); // handing over
        phones.command(ring(4, A)); // another phone
        assert_eq!(
            phones.control(&n(B), Operation::HangUp),
            Ok(vec![
                PhoneEvent::HungUp { leg: PhoneLegId(1) },
                PhoneEvent::HungUp { leg: PhoneLegId(2) },
                PhoneEvent::HungUp { leg: PhoneLegId(3) },
            ])
        );
        assert_eq!(phones.legs_on(&n(B)), 0);
        assert_eq!(phones.legs_on(&n(A)), 1);
    }

    #[test]
    fn operator_hang_up_with_no_leg_is_not_found() {
        let mut phones = SimulatedPhones::new();
        assert_eq!(
            phones.control(&n(B), Operation::HangUp),
            Err(SimError::NoLegs)
        );
    }

    #[test]
    fn release_forgets_the_leg_and_reports_nothing() {
        let mut phones = SimulatedPhones::new();
        phones.command(ring(1, B));
        assert_eq!(phones.command(release(1)), vec![]);
        assert_eq!(phones.legs_on(&n(B)), 0);
        assert_eq!(
            phones.control(&n(B), Operation::Answer),
            Err(SimError::NothingRinging)
        );
        assert_eq!(
            phones.control(&n(B), Operation::HangUp),
            Err(SimError::NoLegs)
        );
        // Releasing an unknown leg is harmless.
        assert_eq!(phones.command(release(1)), vec![]);
    }
}
