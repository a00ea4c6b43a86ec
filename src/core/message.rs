//! What terminals and the phone network say to the switch, and what it says back.
//!
//! These are the typed forms of `wgtwo.webterminal.v0.WebTerminalMessage` (PROTOCOL.md section 1);
//! `crate::server::wire` converts between them and the protobuf messages in one place.

use super::types::{CallId, Msisdn, PhoneLegId, Sdp, TerminalId};
use std::fmt;

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
    Offer { sdp: Sdp, to: Option<Msisdn> },
    /// Answers an offered call (4.2) or a pending re-offer (4.7).
    Answer { sdp: Sdp },
    /// A ringing fork alerts (4.1).
    Ringing,
    /// Ends, cancels or declines the call (4.1, 4.2).
    Bye,
    /// `Action{ToPhone}`: hand the call over to the msisdn's mobile phone (4.6).
    ToPhone,
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
    Offer { sdp: Sdp, from: Msisdn },
    /// The other party's answer to this terminal's offer.
    Answer { sdp: Sdp },
    /// The callee's first device alerts.
    Ringing,
    /// This terminal's leg ended, and why.
    Bye { reason: ByeReason },
    /// The call this terminal observed has ended; for a Pipe, its msisdn is in no established call.
    Idle,
    /// The msisdn is in this established call on another device; `peer` is the other party.
    InCall { peer: Msisdn },
    /// An asynchronous failure of something this terminal asked (a re-offer that timed out, a failed
    /// handover).
    Error(Rejection),
}

/// Why a leg ended: `wgtwo.webterminal.v0.Bye.Reason` (PROTOCOL.md section 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ByeReason {
    NormalClearing,
    Busy,
    Declined,
    DeclinedElsewhere,
    NoAnswer,
    Unavailable,
    Cancelled,
    AnsweredElsewhere,
    Pulled,
    HandedToPhone,
    PeerGone,
    NegotiationFailed,
    ServerShutdown,
}

/// The `wgtwo.webterminal.v0.Error.Code` a rejection is reported with (PROTOCOL.md section 6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    Unknown,
    NotInCall,
    TryAgain,
    InvalidCallId,
    RateLimitHit,
    InvalidArgument,
}

/// A terminal's message that the switch (or the edge) refused: sent back as
/// `Error{code, message}` with the message's own call_id, and the stream stays open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
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

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)
    }
}

impl std::error::Error for Rejection {}

/// What the switch asks of the phone network (PROTOCOL.md section 7). Each command names the leg; the
/// network answers with [`PhoneEvent`]s for that leg.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PhoneCommand {
    /// Ring the phone of `to` with a call from `from`. Expected answers: `Ringing`, `Answered`,
    /// `Rejected`, `HungUp`.
    Ring {
        leg: PhoneLegId,
        to: Msisdn,
        from: Msisdn,
        sdp: Sdp,
    },
    /// Bring up `msisdn`'s own phone to take over its call with `peer` (handover, 4.6). Expected
    /// answers: `HandOverReady` with the phone's offer, or `HandOverFailed`.
    HandOver {
        leg: PhoneLegId,
        msisdn: Msisdn,
        peer: Msisdn,
    },
    /// A re-offer to an established phone leg. Expected answer: `Answered` (or `Rejected`).
    Offer { leg: PhoneLegId, sdp: Sdp },
    /// The answer to the phone's handover offer: the leg now carries the call.
    Answer { leg: PhoneLegId, sdp: Sdp },
    /// Release the leg; the network reports nothing more for it.
    Release { leg: PhoneLegId, reason: ByeReason },
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
    Ringing { leg: PhoneLegId },
    /// The phone answered a `Ring` or an `Offer` with this SDP.
    Answered { leg: PhoneLegId, sdp: Sdp },
    /// The phone refused a `Ring` or an `Offer`.
    Rejected {
        leg: PhoneLegId,
        reason: PhoneRejection,
    },
    /// The phone is up for a handover, with its SDP offer.
    HandOverReady { leg: PhoneLegId, sdp: Sdp },
    /// The handover could not be done; `message` says why, for the terminal.
    HandOverFailed { leg: PhoneLegId, message: String },
    /// The phone hung up.
    HungUp { leg: PhoneLegId },
}

/// One output of the switch, drained with `Switch::poll_output` after every input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Send `notice` to `terminal`.
    Deliver {
        terminal: TerminalId,
        notice: Notice,
    },
    /// Hand `command` to the phone network.
    Phone(PhoneCommand),
}
