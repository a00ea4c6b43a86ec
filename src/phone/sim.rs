//! The simulated phone network (PROTOCOL.md section 7), on by default so that every scenario can be
//! tried on one machine.
//!
//! Every E.164 number has a simulated phone. By default it rings when called and never answers by
//! itself; it accepts a handover at once; it answers a re-offer at once. Per number, the operator API
//! (`webterminal.core.v1.SimulatedPhoneNetwork`, served by `crate::operator::simulator`) or the
//! configuration can make it answer, decline, be busy or be unreachable ([`Behaviour`]), and can
//! answer, reject or hang up its calls by hand ([`Operation`]).
//!
//! **Simulated phones carry no media.** Their SDPs ([`generated_sdp`], [`generated_answer_sdp`]) are
//! generated: syntactically valid WebRTC audio descriptions with no reachable address behind them, so a
//! browser that talks to a simulated phone negotiates but never hears anything.
//!
//! Shape: the state machine is the plain, synchronous [`SimulatedPhones`] (tested without tokio); one
//! task spawned by [`SimulatedPhoneNetwork::start`] owns it and is fed by an unbounded channel from the
//! [`SimulatedPhoneNetwork`] (the switch's commands) and from any number of [`SimulatorControl`]s (the
//! operator's requests). No locks: one owner, `&mut self`.

use super::{PhoneNetwork, PhoneReports};
use crate::core::{CallContext, Msisdn, PhoneCommand, PhoneEvent, PhoneLegId, PhoneRejection, Sdp};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fmt::Write as _;
use tokio::sync::{mpsc, oneshot};

/// How a number's simulated phone reacts to the next calls and handovers (PROTOCOL.md section 7;
/// `webterminal.core.v1.Behaviour`). Changing it does not touch legs the phone already has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Behaviour {
    /// Rings (`Ringing`) and never answers by itself; the operator answers, rejects or hangs up.
    /// Accepts handovers. The default of every number.
    #[default]
    Ring,
    /// Rings, then answers at once with a generated SDP (`Ringing`, `Answered`). Accepts handovers.
    Answer,
    /// In another call: calls get `Rejected{Busy}` and handovers `HandOverFailed` ("the phone is
    /// busy"), so the phone is not an eligible device (PROTOCOL.md section 5).
    Busy,
    /// Off or out of coverage: calls get `Rejected{Unreachable}` and handovers `HandOverFailed` ("the
    /// phone is unreachable").
    Unreachable,
    /// Rings, then the subscriber declines at once (`Ringing`, `Rejected{Declined}`). A handover is
    /// the subscriber's own doing, so it is still accepted.
    Decline,
}

/// What the operator does by hand on a number's simulated phone (PROTOCOL.md section 7; the
/// `Answer`, `Reject` and `HangUp` rpcs of `webterminal.core.v1.SimulatedPhoneNetwork`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Answer the call that has rung longest on the phone, with a generated SDP (`Answered`).
    Answer,
    /// Decline the call that has rung longest on the phone (`Rejected{Declined}`).
    Reject,
    /// Hang up every leg on the phone, ringing, handing over or established (`HungUp` for each).
    HangUp,
}

/// Why an operator request to the simulated phone network failed. The operator API maps it to a gRPC
/// status in `crate::operator::simulator`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum SimError {
    /// [`Operation::Answer`] or [`Operation::Reject`] on a phone where nothing rings (`NOT_FOUND`).
    #[error("nothing rings on that simulated phone")]
    NothingRinging,
    /// [`Operation::HangUp`] on a phone with no call leg (`NOT_FOUND`).
    #[error("that simulated phone has no call leg")]
    NoLegs,
    /// `Dial` from a phone that is busy ([`Behaviour::Busy`]) (`FAILED_PRECONDITION`).
    #[error("that simulated phone is busy")]
    Busy,
    /// `Dial` from a phone that is unreachable ([`Behaviour::Unreachable`]) (`FAILED_PRECONDITION`).
    #[error("that simulated phone is unreachable")]
    Unreachable,
    /// `Dial` from a number to itself (`INVALID_ARGUMENT`).
    #[error("a simulated phone cannot dial its own number (from equals to)")]
    DialsItself,
    /// The simulator task has stopped: the runtime is shutting down (`UNAVAILABLE`).
    #[error("the simulated phone network has stopped")]
    Stopped,
}

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
/// a simulated phone. Synchronous and clock-free; [`SimulatedPhoneNetwork::start`] runs it on a task.
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

/// A generated SDP offer (RFC 8866, WebRTC/JSEP style) for `msisdn`'s simulated phone: one audio
/// section, opus, BUNDLE'd, `a=setup:actpass`, CRLF line endings. It is what a simulated phone offers
/// for a handover (PROTOCOL.md section 4.6).
///
/// **It carries no media**: the address is `0.0.0.0`, there are no ICE candidates, and the ICE
/// credentials and DTLS fingerprint are derived from `msisdn` and `session_id` (the `o=` session id),
/// not from any real key. It passes `Sdp::parse` and is returned as `Sdp::trusted`. The number itself
/// does not appear in the text.
pub fn generated_sdp(msisdn: &Msisdn, session_id: u64) -> Sdp {
    sdp_text(msisdn, session_id, "actpass")
}

/// A generated SDP answer for `msisdn`'s simulated phone: as [`generated_sdp`] but with
/// `a=setup:active`, since an answerer must pick its DTLS role (RFC 5763 section 5; browsers refuse
/// an answer with `actpass`). It is what a simulated phone answers a call or a re-offer with.
///
/// **It carries no media** (see [`generated_sdp`]). It has a single audio section with `a=mid:0`, so
/// it matches an offer of one audio section.
pub fn generated_answer_sdp(msisdn: &Msisdn, session_id: u64) -> Sdp {
    sdp_text(msisdn, session_id, "active")
}

fn sdp_text(msisdn: &Msisdn, session_id: u64, setup: &str) -> Sdp {
    // Not cryptographic: the values only need to look like, and be shaped like, real ones.
    let mut seed = mix(session_id);
    for b in msisdn.as_str().bytes() {
        seed = mix(seed ^ u64::from(b));
    }
    let mut words = std::iter::successors(Some(seed), |s| Some(mix(*s))).skip(1);
    let mut next = || words.next().unwrap_or_default();
    let ufrag = format!("{:08x}", next() as u32);
    let pwd = format!("{:016x}{:08x}", next(), next() as u32);
    let mut fingerprint = String::with_capacity(32 * 3);
    for _ in 0..4 {
        for byte in next().to_be_bytes() {
            if !fingerprint.is_empty() {
                fingerprint.push(':');
            }
            let _ = write!(fingerprint, "{byte:02X}");
        }
    }
    let lines = [
        "v=0".to_owned(),
        format!("o=- {session_id} 1 IN IP4 0.0.0.0"),
        "s=webterminal-core simulated phone (no media)".to_owned(),
        "t=0 0".to_owned(),
        "a=group:BUNDLE 0".to_owned(),
        "m=audio 9 UDP/TLS/RTP/SAVPF 111".to_owned(),
        "c=IN IP4 0.0.0.0".to_owned(),
        "a=mid:0".to_owned(),
        format!("a=ice-ufrag:{ufrag}"),
        format!("a=ice-pwd:{pwd}"),
        format!("a=fingerprint:sha-256 {fingerprint}"),
        format!("a=setup:{setup}"),
        "a=rtcp-mux".to_owned(),
        "a=sendrecv".to_owned(),
        "a=rtpmap:111 opus/48000/2".to_owned(),
    ];
    let mut text = lines.join("\r\n");
    text.push_str("\r\n");
    Sdp::trusted(text)
}

/// splitmix64's finaliser: spreads a 64-bit value over all bits.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One request to the simulator task.
enum Request {
    Command(PhoneCommand),
    SetBehaviour(Msisdn, Behaviour, oneshot::Sender<()>),
    Control(Msisdn, Operation, oneshot::Sender<Result<u32, SimError>>),
    Dial(
        Msisdn,
        Msisdn,
        CallContext,
        oneshot::Sender<Result<(), SimError>>,
    ),
    Behaviour(Msisdn, oneshot::Sender<Behaviour>),
}

/// The simulated phone network as the switch's driver sees it: a [`PhoneNetwork`] that queues each
/// command to the simulator task and returns at once (PROTOCOL.md section 7). Made by
/// [`SimulatedPhoneNetwork::start`].
#[derive(Debug)]
pub struct SimulatedPhoneNetwork {
    requests: mpsc::UnboundedSender<Request>,
}

impl SimulatedPhoneNetwork {
    /// Starts the simulated phone network (PROTOCOL.md section 7): spawns the one task that owns every
    /// simulated phone and reports their events to `reports`. Returns the [`PhoneNetwork`] to give the
    /// driver and the operator's [`SimulatorControl`]. The task ends when both (and every clone of the
    /// control) are dropped.
    ///
    /// # Panics
    /// Outside a tokio runtime (it calls `tokio::spawn`).
    pub fn start(reports: PhoneReports) -> (SimulatedPhoneNetwork, SimulatorControl) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut phones = SimulatedPhones::new();
            while let Some(request) = rx.recv().await {
                let events = match request {
                    Request::Command(command) => phones.command(command),
                    Request::SetBehaviour(msisdn, behaviour, reply) => {
                        phones.set_behaviour(msisdn, behaviour);
                        let _ = reply.send(());
                        continue;
                    }
                    Request::Control(msisdn, operation, reply) => {
                        match phones.control(&msisdn, operation) {
                            Ok(events) => {
                                // Report before replying, so the operator's caller sees the events
                                // queued to the core by the time its request returns.
                                let legs = u32::try_from(events.len()).unwrap_or(u32::MAX);
                                for event in events {
                                    reports.report(event);
                                }
                                let _ = reply.send(Ok(legs));
                            }
                            Err(e) => {
                                let _ = reply.send(Err(e));
                            }
                        }
                        continue;
                    }
                    Request::Behaviour(msisdn, reply) => {
                        let _ = reply.send(phones.behaviour(&msisdn));
                        continue;
                    }
                    Request::Dial(from, to, context, reply) => match phones.dial(from, to, context)
                    {
                        Ok(events) => {
                            // Reported before the reply, as for Control.
                            for event in events {
                                reports.report(event);
                            }
                            let _ = reply.send(Ok(()));
                            continue;
                        }
                        Err(e) => {
                            let _ = reply.send(Err(e));
                            continue;
                        }
                    },
                };
                for event in events {
                    reports.report(event);
                }
            }
            tracing::debug!("simulated phone network stopped");
        });
        (
            SimulatedPhoneNetwork {
                requests: tx.clone(),
            },
            SimulatorControl { requests: tx },
        )
    }
}

impl PhoneNetwork for SimulatedPhoneNetwork {
    /// Queues `command`; the simulator task reports its events. Dropped with a debug log if the task
    /// has stopped (the runtime is shutting down).
    fn send(&mut self, command: PhoneCommand) {
        if self.requests.send(Request::Command(command)).is_err() {
            tracing::debug!("simulated phone network stopped; phone command dropped");
        }
    }
}

/// The operator's handle on the simulated phone network (PROTOCOL.md section 7): what the
/// `webterminal.core.v1.SimulatedPhoneNetwork` service and the configuration call. Cheap to clone;
/// every method is a request to the simulator task with a oneshot reply.
#[derive(Clone, Debug)]
pub struct SimulatorControl {
    requests: mpsc::UnboundedSender<Request>,
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Request::Command(c) => f.debug_tuple("Command").field(c).finish(),
            Request::SetBehaviour(m, b, _) => {
                f.debug_tuple("SetBehaviour").field(m).field(b).finish()
            }
            Request::Control(m, o, _) => f.debug_tuple("Control").field(m).field(o).finish(),
            Request::Behaviour(m, _) => f.debug_tuple("Behaviour").field(m).finish(),
            Request::Dial(from, to, context, _) => f
                .debug_tuple("Dial")
                .field(from)
                .field(to)
                .field(context)
                .finish(),
        }
    }
}

impl SimulatorControl {
    /// Sets how `msisdn`'s simulated phone reacts to the next calls and handovers.
    ///
    /// # Errors
    /// [`SimError::Stopped`] when the simulator task has stopped.
    pub async fn set_behaviour(
        &self,
        msisdn: Msisdn,
        behaviour: Behaviour,
    ) -> Result<(), SimError> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(Request::SetBehaviour(msisdn, behaviour, tx))
            .map_err(|_| SimError::Stopped)?;
        rx.await.map_err(|_| SimError::Stopped)
    }

    /// How `msisdn`'s simulated phone behaves now (what presence reports of it, PROTOCOL.md
    /// section 8).
    ///
    /// # Errors
    /// [`SimError::Stopped`].
    pub async fn behaviour(&self, msisdn: Msisdn) -> Result<Behaviour, SimError> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(Request::Behaviour(msisdn, tx))
            .map_err(|_| SimError::Stopped)?;
        rx.await.map_err(|_| SimError::Stopped)
    }

    /// Answers the call that has rung longest on `msisdn`'s simulated phone, with a generated SDP.
    /// Returns the number of legs touched (1).
    ///
    /// # Errors
    /// [`SimError::NothingRinging`]; [`SimError::Stopped`].
    pub async fn answer(&self, msisdn: Msisdn) -> Result<u32, SimError> {
        self.control(msisdn, Operation::Answer).await
    }

    /// Declines the call that has rung longest on `msisdn`'s simulated phone (`Rejected{Declined}`).
    /// Returns the number of legs touched (1).
    ///
    /// # Errors
    /// [`SimError::NothingRinging`]; [`SimError::Stopped`].
    pub async fn reject(&self, msisdn: Msisdn) -> Result<u32, SimError> {
        self.control(msisdn, Operation::Reject).await
    }

    /// `from`'s simulated phone calls `to` with a generated offer and call `context` (PROTOCOL.md
    /// 4.11); the call is reported to the core before this returns. `hang_up(from)` ends it from the
    /// phone.
    ///
    /// # Errors
    /// [`SimError::Busy`], [`SimError::Unreachable`], [`SimError::DialsItself`];
    /// [`SimError::Stopped`].
    pub async fn dial(
        &self,
        from: Msisdn,
        to: Msisdn,
        context: CallContext,
    ) -> Result<(), SimError> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(Request::Dial(from, to, context, tx))
            .map_err(|_| SimError::Stopped)?;
        rx.await.map_err(|_| SimError::Stopped)?
    }

    /// Hangs up every leg on `msisdn`'s simulated phone (`HungUp` for each). Returns how many.
    ///
    /// # Errors
    /// [`SimError::NoLegs`]; [`SimError::Stopped`].
    pub async fn hang_up(&self, msisdn: Msisdn) -> Result<u32, SimError> {
        self.control(msisdn, Operation::HangUp).await
    }

    /// Carries out `operation` on `msisdn`'s simulated phone; returns the number of legs touched.
    ///
    /// # Errors
    /// As [`SimulatedPhones::control`], and [`SimError::Stopped`].
    pub async fn control(&self, msisdn: Msisdn, operation: Operation) -> Result<u32, SimError> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(Request::Control(msisdn, operation, tx))
            .map_err(|_| SimError::Stopped)?;
        rx.await.map_err(|_| SimError::Stopped)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::ByeReason;

    fn n(s: &str) -> Msisdn {
        Msisdn::parse(s).unwrap()
    }

    const A: &str = "+4799990001";
    const B: &str = "+4799990002";

    fn ring(leg: u64, to: &str) -> PhoneCommand {
        PhoneCommand::Ring {
            leg: PhoneLegId(leg),
            to: n(to),
            from: n(A),
            sdp: generated_sdp(&n(A), 99),
            context: Default::default(),
        }
    }

    fn hand_over(leg: u64, msisdn: &str) -> PhoneCommand {
        PhoneCommand::HandOver {
            leg: PhoneLegId(leg),
            msisdn: n(msisdn),
            peer: n(A),
        }
    }

    fn release(leg: u64) -> PhoneCommand {
        PhoneCommand::Release {
            leg: PhoneLegId(leg),
            reason: ByeReason::NormalClearing,
        }
    }

    fn re_offer(leg: u64) -> PhoneCommand {
        PhoneCommand::Offer {
            leg: PhoneLegId(leg),
            sdp: generated_sdp(&n(A), 7),
        }
    }

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

    #[test]
    fn generated_sdp_validates_and_says_it_has_no_media() {
        for session in [0, 1, u64::MAX] {
            for setup in [
                generated_sdp(&n(A), session),
                generated_answer_sdp(&n(B), session),
            ] {
                let text = setup.as_str();
                Sdp::parse(text, 65536).expect("generated SDP parses");
                assert!(text.starts_with("v=0\r\n"));
                assert!(text.ends_with("\r\n"));
                assert!(!text.replace("\r\n", "").contains('\n'), "CRLF only");
                assert!(text.contains("s=webterminal-core simulated phone (no media)\r\n"));
                assert!(text.contains(&format!("o=- {session} 1 IN IP4")));
                assert!(text.contains("m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"));
                assert!(text.contains("a=rtpmap:111 opus/48000/2\r\n"));
                let fingerprint = text
                    .lines()
                    .find_map(|l| l.strip_prefix("a=fingerprint:sha-256 "))
                    .unwrap();
                assert_eq!(fingerprint.split(':').count(), 32);
                assert!(fingerprint
                    .split(':')
                    .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit())));
                assert!(
                    !text.contains(A) && !text.contains(B),
                    "no phone number in SDP"
                );
            }
        }
        assert_ne!(
            generated_sdp(&n(A), 1).as_str(),
            generated_sdp(&n(A), 2).as_str()
        );
        assert_ne!(
            generated_sdp(&n(A), 1).as_str(),
            generated_sdp(&n(B), 1).as_str()
        );
    }

    #[tokio::test]
    async fn the_task_reports_commands_and_operator_requests() {
        let (reports, mut events) = PhoneReports::channel();
        let (mut network, control) = SimulatedPhoneNetwork::start(reports);
        network.send(ring(1, B));
        assert_eq!(
            events.recv().await,
            Some(PhoneEvent::Ringing { leg: PhoneLegId(1) })
        );
        assert_eq!(control.answer(n(B)).await, Ok(1));
        assert!(matches!(
            events.try_recv(),
            Ok(PhoneEvent::Answered {
                leg: PhoneLegId(1),
                ..
            })
        ));
        assert_eq!(control.reject(n(B)).await, Err(SimError::NothingRinging));
        control
            .set_behaviour(n(A), Behaviour::Unreachable)
            .await
            .unwrap();
        network.send(hand_over(2, A));
        assert_eq!(
            events.recv().await,
            Some(PhoneEvent::HandOverFailed {
                leg: PhoneLegId(2),
                message: "the phone is unreachable".into()
            })
        );
        assert_eq!(control.hang_up(n(B)).await, Ok(1));
        assert_eq!(
            events.try_recv(),
            Ok(PhoneEvent::HungUp { leg: PhoneLegId(1) })
        );
        assert_eq!(control.hang_up(n(B)).await, Err(SimError::NoLegs));
    }
}
