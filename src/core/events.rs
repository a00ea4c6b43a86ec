//! Call events and snapshots for operators (PROTOCOL.md section 8): what the switch tells the
//! product that embeds it about every call, as outputs ([`super::Output::Event`]) and queries
//! ([`super::Switch::live_calls`], [`super::Switch::presence`]). Times are the switch's `now`
//! (`Instant`); the server turns them into wall-clock time.

use super::context::CallContext;
use super::reason::ByeReason;
use super::types::{CallId, Msisdn, PipeKind, TerminalId};
use std::time::{Duration, Instant};

/// A call as operators and records know it: a UUID made by the core, stable through pulls,
/// handovers and transfers (section 8, `call_ref`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct CallRef(pub uuid::Uuid);

impl std::fmt::Display for CallRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// What happened to a call (`webterminal.core.v1.CallStatus`). Every call's events follow
/// `Started → (Ringing) → (Answered → (Held/Resumed/Moved)*) → exactly one of Completed /
/// Unanswered / Rejected / Failed`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum CallStatus {
    /// The call is offered (4.1, 4.11). Device: the caller's leg.
    Started,
    /// Its first leg alerts. Device: that leg.
    Ringing,
    /// A leg answered (4.2). Device: the answering leg.
    Answered,
    /// A re-offer put the offerer's media on hold (every media section `sendonly` or `inactive`),
    /// once answered. Device: the offerer's leg.
    Held,
    /// A re-offer took the offerer's media off hold, once answered. Device: the offerer's leg.
    Resumed,
    /// A side's active leg changed: pull (`PULLED`, also a terminal taking back a call left vacant
    /// by its reconnecting terminal), handover (`HANDED_TO_PHONE`). Device: the new leg.
    Moved,
    /// An answered call ended; the reason says who or what ended it.
    Completed,
    /// Ended before answer with `NO_ANSWER` or `CANCELLED`.
    Unanswered,
    /// Ended before answer with `DECLINED` or `BUSY`.
    Rejected,
    /// Ended before answer for any other reason (`UNAVAILABLE`, `NEGOTIATION_FAILED`,
    /// `SERVER_SHUTDOWN`, `PEER_GONE`, `ENDED_BY_OPERATOR`).
    Failed,
}

impl CallStatus {
    /// Every status, in the order of `webterminal.core.v1.CallStatus`.
    pub const ALL: [CallStatus; 10] = [
        CallStatus::Started,
        CallStatus::Ringing,
        CallStatus::Answered,
        CallStatus::Held,
        CallStatus::Resumed,
        CallStatus::Moved,
        CallStatus::Completed,
        CallStatus::Unanswered,
        CallStatus::Rejected,
        CallStatus::Failed,
    ];

    /// The status's name as section 8 writes it (and call records store it), e.g. `COMPLETED`.
    pub fn name(self) -> &'static str {
        match self {
            CallStatus::Started => "STARTED",
            CallStatus::Ringing => "RINGING",
            CallStatus::Answered => "ANSWERED",
            CallStatus::Held => "HELD",
            CallStatus::Resumed => "RESUMED",
            CallStatus::Moved => "MOVED",
            CallStatus::Completed => "COMPLETED",
            CallStatus::Unanswered => "UNANSWERED",
            CallStatus::Rejected => "REJECTED",
            CallStatus::Failed => "FAILED",
        }
    }

    /// The status named `name` ([`CallStatus::name`]).
    pub fn from_name(name: &str) -> Option<CallStatus> {
        CallStatus::ALL
            .into_iter()
            .find(|status| status.name() == name)
    }

    /// The final status of a call that ends with `reason`, answered or not (section 8's table).
    pub fn of_end(answered: bool, reason: ByeReason) -> CallStatus {
        match (answered, reason) {
            (true, _) => CallStatus::Completed,
            (false, ByeReason::NoAnswer | ByeReason::Cancelled) => CallStatus::Unanswered,
            (false, ByeReason::Declined | ByeReason::Busy) => CallStatus::Rejected,
            (false, _) => CallStatus::Failed,
        }
    }

    /// Whether it ends the call.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            CallStatus::Completed
                | CallStatus::Unanswered
                | CallStatus::Rejected
                | CallStatus::Failed
        )
    }
}

/// What carries (or is offered) a side of a call (`webterminal.core.v1.Device`).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Device {
    /// A terminal's rpc, or the mobile phone.
    pub kind: DeviceKind,
    /// The terminal, for a terminal (`None` for a phone).
    pub terminal: Option<TerminalId>,
    /// The number whose device it is.
    pub msisdn: Msisdn,
}

/// The kind of a [`Device`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum DeviceKind {
    /// A terminal on `Pipe`.
    Pipe,
    /// A terminal on `MultiPipe`.
    MultiPipe,
    /// A mobile phone in the phone network.
    Phone,
}

impl From<PipeKind> for DeviceKind {
    fn from(kind: PipeKind) -> Self {
        match kind {
            PipeKind::Pipe => DeviceKind::Pipe,
            PipeKind::MultiPipe => DeviceKind::MultiPipe,
        }
    }
}

/// One call event (`webterminal.core.v1.CallEvent`).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct CallEvent {
    /// One counter for the whole switch, from 1, growing by one per event.
    pub sequence: u64,
    /// When it happened (the input's `now`).
    pub at: Instant,
    /// The call.
    pub call_ref: CallRef,
    /// The calling number.
    pub caller: Msisdn,
    /// The called number.
    pub callee: Msisdn,
    /// The id the caller's terminals know the call by.
    pub caller_call_id: CallId,
    /// The id the callee's terminals know the call by.
    pub callee_call_id: CallId,
    /// What happened.
    pub status: CallStatus,
    /// The device concerned (see [`CallStatus`]); `None` for an ending.
    pub device: Option<Device>,
    /// Why, where one applies: the reason of an ending or a move.
    pub reason: Option<ByeReason>,
    /// The call context the caller attached (section 1).
    pub context: CallContext,
    /// On the `Answered` event of a call to a group: the group, the member who took it and how long
    /// the caller waited (section 10). `None` on every other event.
    pub group_answer: Option<GroupAnswer>,
}

/// How a call to a group (a hunt group, a queue: PROTOCOL.md section 10) was answered.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct GroupAnswer {
    /// The group's number, the one the caller dialled.
    pub group: Msisdn,
    /// The answering member's extension, from the routing file (`""` when it gives none).
    pub extension: String,
    /// From the call's arrival at the group to its answer.
    pub hold_time: Duration,
}

/// A live call as [`super::Switch::live_calls`] shows it (`webterminal.core.v1.Call`).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct LiveCall {
    /// The call.
    pub call_ref: CallRef,
    /// The calling number.
    pub caller: Msisdn,
    /// The called number.
    pub callee: Msisdn,
    /// The caller side's id.
    pub caller_call_id: CallId,
    /// The callee side's id.
    pub callee_call_id: CallId,
    /// `true` once answered.
    pub established: bool,
    /// When it was offered.
    pub started_at: Instant,
    /// When it was answered.
    pub answered_at: Option<Instant>,
    /// Whether a side's media is on hold.
    pub held: bool,
    /// The caller's active leg (`None` while vacant in a reconnect grace).
    pub caller_leg: Option<Device>,
    /// The callee's active leg once answered (`None` before, or while vacant).
    pub callee_leg: Option<Device>,
    /// The call context.
    pub context: CallContext,
}

/// Whether a number has a session (`webterminal.core.v1.Presence`, without the phone's state, which
/// the phone network knows).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Presence {
    /// Its registered terminals, oldest first.
    pub terminals: Vec<TerminalPresence>,
    /// Whether it is in an established call.
    pub in_call: bool,
}

/// One registered terminal of a number.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TerminalPresence {
    /// The terminal.
    pub terminal: TerminalId,
    /// Its rpc.
    pub kind: PipeKind,
    /// When it registered.
    pub since: Instant,
    /// Whether it half-closed its request stream (offered no new call, section 3).
    pub half_closed: bool,
    /// How many calls it is in (as caller, fork, active leg or puller).
    pub calls: usize,
}
