//! What a simulated phone does when called ([`Behaviour`]), what the operator may do to it by hand
//! ([`Operation`]), and why an operator's request fails ([`SimError`]).

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
