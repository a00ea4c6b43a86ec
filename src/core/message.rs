//! What terminals and the phone network say to the switch, and what it says back.
//!
//! These are the typed forms of `wgtwo.webterminal.v0.WebTerminalMessage` (PROTOCOL.md section 1);
//! `crate::wire` converts between them and the protobuf messages in one place.

use super::context::CallContext;
use super::events::CallEvent;
use super::reason::ByeReason;
use super::types::{CallId, Msisdn, PhoneLegId, Sdp, TerminalId};

/// A message from a terminal, already parsed and validated at the edge (PROTOCOL.md section 6 order:
/// call_id format, a oneof set, field validity). Call state is checked by the switch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The id the message is about: always `Some` from a MultiPipe, always `None` from a Pipe (whose
    /// `call_id` is ignored: every message is about its current call).
    pub call_id: Option<CallId>,
    /// What the terminal asks.
    pub body: RequestBody,
}

/// The body of a terminal's message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestBody {
    /// `to` set: a new call to that number (4.1). `to` unset: a re-offer on an established call
    /// (4.7) or, from a terminal that only observes the call, a pull (4.5).
    Offer {
        /// The offer (RFC 3264), relayed byte for byte.
        sdp: Sdp,
        /// The number called, or `None` for a re-offer or pull.
        to: Option<Msisdn>,
        /// The call context of a new call (`Offer.data`, PROTOCOL.md section 1); a re-offer or pull
        /// with one is refused with `INVALID_ARGUMENT`.
        context: CallContext,
    },
    /// Answers an offered call (4.2) or a pending re-offer (4.7).
    Answer {
        /// The answer (RFC 3264), relayed byte for byte.
        sdp: Sdp,
    },
    /// A ringing fork alerts (4.1).
    Ringing,
    /// Ends, cancels or declines the call (4.1, 4.2).
    Bye,
    /// `Action{ToPhone}`: hand the call over to the msisdn's mobile phone (4.6).
    ToPhone,
    /// `Action{Transfer}`: a blind transfer of the far party to `to` (4.12).
    Transfer {
        /// The number that takes the call over.
        to: Msisdn,
    },
}

impl RequestBody {
    /// The `WebTerminalMessage` oneof field it came in: `offer`, `answer`, `ringing`, `bye` or
    /// `action`.
    pub fn kind(&self) -> &'static str {
        match self {
            RequestBody::Offer { .. } => "offer",
            RequestBody::Answer { .. } => "answer",
            RequestBody::Ringing => "ringing",
            RequestBody::Bye => "bye",
            RequestBody::ToPhone | RequestBody::Transfer { .. } => "action",
        }
    }
}

/// A message from the switch to one terminal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// The side's call id; `None` only for a Pipe's `Idle` (PROTOCOL.md section 3).
    pub call_id: Option<CallId>,
    /// What happened.
    pub body: NoticeBody,
}

/// The body of a message to a terminal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NoticeBody {
    /// An incoming call, or a re-offer from the other party; `from` is the other party.
    Offer {
        /// The other party's offer, byte for byte.
        sdp: Sdp,
        /// The other party's number (the caller, or the re-offering side).
        from: Msisdn,
        /// The caller's call context on the Offer of a new call; empty on a re-offer or pull.
        context: CallContext,
    },
    /// The other party's answer to this terminal's offer.
    Answer {
        /// The answering leg's SDP, byte for byte.
        sdp: Sdp,
    },
    /// The callee's first device alerts.
    Ringing,
    /// This terminal's leg ended, and why.
    Bye {
        /// Why (PROTOCOL.md section 1, `Bye.Reason`).
        reason: ByeReason,
    },
    /// The call this terminal observed has ended; for a Pipe, its msisdn is in no established call.
    Idle,
    /// The msisdn is in this established call on another device; `peer` is the other party.
    InCall {
        /// The other party of that call.
        peer: Msisdn,
    },
    /// An asynchronous failure of something this terminal asked (a re-offer that timed out, a failed
    /// handover).
    Error(Rejection),
}

/// The `wgtwo.webterminal.v0.Error.Code` a rejection is reported with (PROTOCOL.md section 6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// `UNKNOWN`: a failure with no better code, explained in the message (a failed handover, 4.6).
    Unknown,
    /// `NOT_INCALL`: the terminal has no part in the call that allows this (section 6, 4.10).
    NotInCall,
    /// `TRY_AGAIN`: another negotiation is pending (glare, pull race; 4.5, 4.7).
    TryAgain,
    /// `INVALID_CALL_ID`: missing, malformed, unknown or reused call id (section 6).
    InvalidCallId,
    /// `RATE_LIMIT_HIT`: too many messages, call attempts or calls (section 6).
    RateLimitHit,
    /// `INVALID_ARGUMENT`: a malformed message (section 6).
    InvalidArgument,
}

/// A terminal's message that the switch (or the edge) refused: sent back as
/// `Error{code, message}` with the message's own call_id, and the stream stays open.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct Rejection {
    /// The code of the `Error` message.
    pub code: ErrorCode,
    /// Human-readable, names the offending field; never holds another subscriber's data.
    pub message: String,
}

impl Rejection {
    /// A rejection with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Rejection {
            code,
            message: message.into(),
        }
    }
}

/// What the switch asks of the phone network (PROTOCOL.md section 7). Each command names the leg; the
/// network answers with [`PhoneEvent`]s for that leg. Non-exhaustive: later versions may ask more,
/// so an embedder's `match` needs a `_` arm (ignoring a command it does not know is safe: the call
/// goes on, or ends on its timers).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PhoneCommand {
    /// Ring the phone of `to` with a call from `from`. Expected answers: `Ringing`, `Answered`,
    /// `Rejected`, `HungUp`.
    Ring {
        /// The new leg, chosen by the switch.
        leg: PhoneLegId,
        /// The number whose phone rings.
        to: Msisdn,
        /// The caller, shown as caller ID.
        from: Msisdn,
        /// The caller's offer.
        sdp: Sdp,
        /// The caller's call context (a network may show its `display_name`).
        context: CallContext,
    },
    /// Bring up `msisdn`'s own phone to take over its call with `peer` (handover, 4.6). Expected
    /// answers: `HandOverReady` with the phone's offer, or `HandOverFailed`.
    HandOver {
        /// The new leg, chosen by the switch.
        leg: PhoneLegId,
        /// The subscriber whose phone takes the call.
        msisdn: Msisdn,
        /// The other party of the call.
        peer: Msisdn,
    },
    /// A re-offer to an established phone leg. Expected answer: `Answered` (or `Rejected`).
    Offer {
        /// The phone leg.
        leg: PhoneLegId,
        /// The other party's new offer.
        sdp: Sdp,
    },
    /// An answer to the phone's offer: its handover offer (the leg now carries the call), its
    /// incoming call (the callee answered with this SDP, 4.11), or its re-offer.
    Answer {
        /// The phone leg.
        leg: PhoneLegId,
        /// The other party's answer.
        sdp: Sdp,
    },
    /// The callee of the phone's incoming call alerts (4.1, 4.11): the caller hears ringback.
    Alerting {
        /// The calling phone's leg.
        leg: PhoneLegId,
    },
    /// The phone's re-offer failed: another negotiation on the call is pending (glare: the later
    /// offer loses, 4.7), the other party is reconnecting, or it did not answer in time. The call
    /// goes on with the media it had, as after SIP's 491 Request Pending.
    OfferFailed {
        /// The phone leg.
        leg: PhoneLegId,
    },
    /// Release the leg; the network reports nothing more for it.
    Release {
        /// The phone leg.
        leg: PhoneLegId,
        /// Why it ends.
        reason: ByeReason,
    },
}

/// Why a phone refused a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PhoneRejection {
    /// The phone is in another call (it counts as an ineligible device: the caller may get `BUSY`).
    Busy,
    /// The subscriber declined: the whole call is declined, as a ringing fork's Bye.
    Declined,
    /// The phone is off or out of coverage: no device there.
    Unreachable,
}

/// What the phone network reports about a leg (PROTOCOL.md section 7). Events for legs the switch no
/// longer knows are ignored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PhoneEvent {
    /// The phone alerts.
    Ringing {
        /// The phone leg.
        leg: PhoneLegId,
    },
    /// The phone answered a `Ring` or an `Offer` with this SDP.
    Answered {
        /// The phone leg.
        leg: PhoneLegId,
        /// The phone's answer.
        sdp: Sdp,
    },
    /// The phone refused a `Ring` or an `Offer`.
    Rejected {
        /// The phone leg.
        leg: PhoneLegId,
        /// Why.
        reason: PhoneRejection,
    },
    /// The phone is up for a handover, with its SDP offer.
    HandOverReady {
        /// The phone leg.
        leg: PhoneLegId,
        /// The phone's offer, relayed to the other party.
        sdp: Sdp,
    },
    /// The handover could not be done.
    HandOverFailed {
        /// The phone leg.
        leg: PhoneLegId,
        /// Why, for the terminal that asked (sent in `Error.message`).
        message: String,
    },
    /// The phone hung up.
    HungUp {
        /// The phone leg.
        leg: PhoneLegId,
    },
    /// A phone calls a subscriber (4.11): routed like a terminal's call, with this leg as the
    /// caller's active leg. Expected answers: `Alerting`, `Answer` (the callee's SDP), `Release`
    /// (with the reason the call did not connect or ended).
    Incoming {
        /// The new leg, made with [`PhoneLegId::from_network`]; an id already in use is ignored.
        leg: PhoneLegId,
        /// The calling number (caller ID).
        from: Msisdn,
        /// The number called.
        to: Msisdn,
        /// The calling phone's offer.
        sdp: Sdp,
        /// Call context from the network, relayed to the callee's devices like a terminal caller's
        /// (`display_name`: the caller's name as the network knows it). Build it with
        /// [`CallContext::parse`] from what the network got from outside.
        context: CallContext,
    },
    /// The phone re-offers on its established call (4.7): relayed to the other party, whose answer
    /// comes back as `Answer`; or `OfferFailed`.
    Offer {
        /// The phone leg.
        leg: PhoneLegId,
        /// The phone's new offer.
        sdp: Sdp,
    },
}

impl PhoneEvent {
    /// The phone leg the event is about.
    pub fn leg(&self) -> PhoneLegId {
        match self {
            PhoneEvent::Ringing { leg }
            | PhoneEvent::Answered { leg, .. }
            | PhoneEvent::Rejected { leg, .. }
            | PhoneEvent::HandOverReady { leg, .. }
            | PhoneEvent::HandOverFailed { leg, .. }
            | PhoneEvent::HungUp { leg }
            | PhoneEvent::Incoming { leg, .. }
            | PhoneEvent::Offer { leg, .. } => *leg,
        }
    }
}

/// One output of the switch, drained with `Switch::poll_output` after every input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Send `notice` to `terminal`.
    Deliver {
        /// The registered terminal it is for.
        terminal: TerminalId,
        /// What to send, with the call id as that terminal knows the call.
        notice: Notice,
    },
    /// Hand `command` to the phone network.
    Phone(PhoneCommand),
    /// A call event for operators (PROTOCOL.md section 8).
    Event(CallEvent),
}
