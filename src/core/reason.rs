//! Why a leg ends: the Bye reasons of PROTOCOL.md section 1, with the names the wire, the call
//! events, the call records and the metrics all write them by.

/// Why a leg ended: `wgtwo.webterminal.v0.Bye.Reason` (PROTOCOL.md section 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ByeReason {
    /// `NORMAL_CLEARING`: the other active leg sent Bye (4.1).
    NormalClearing,
    /// `BUSY`: the callee has devices but none is eligible (4.3).
    Busy,
    /// `DECLINED`: a ringing fork declined the call (4.2); to the caller.
    Declined,
    /// `DECLINED_ELSEWHERE`: another fork declined it (4.2).
    DeclinedElsewhere,
    /// `NO_ANSWER`: the ring timeout passed (4.3); to the caller.
    NoAnswer,
    /// `UNAVAILABLE`: the callee has no device, or its last one went (4.3, 4.8).
    Unavailable,
    /// `CANCELLED`: the caller cancelled, or the call stopped ringing (4.1, 4.3); to forks.
    Cancelled,
    /// `ANSWERED_ELSEWHERE`: another fork answered first (4.2).
    AnsweredElsewhere,
    /// `PULLED`: another terminal of the number pulled the call (4.5).
    Pulled,
    /// `HANDED_TO_PHONE`: the leg moved to the mobile phone (4.6); call records only.
    HandedToPhone,
    /// `PEER_GONE`: the other active leg went away (4.8).
    PeerGone,
    /// `NEGOTIATION_FAILED`: a pull was not answered in time (4.5).
    NegotiationFailed,
    /// `SERVER_SHUTDOWN`: the core is shutting down (4.9).
    ServerShutdown,
    /// `TRANSFERRED`: the leg handed the call on with a transfer (4.12).
    Transferred,
    /// `ENDED_BY_OPERATOR`: the operator ended the call (section 8, `EndCall`).
    EndedByOperator,
}

impl ByeReason {
    /// Every reason, in the order of `wgtwo.webterminal.v0.Bye.Reason`.
    pub const ALL: [ByeReason; 15] = [
        ByeReason::NormalClearing,
        ByeReason::Busy,
        ByeReason::Declined,
        ByeReason::DeclinedElsewhere,
        ByeReason::NoAnswer,
        ByeReason::Unavailable,
        ByeReason::Cancelled,
        ByeReason::AnsweredElsewhere,
        ByeReason::Pulled,
        ByeReason::HandedToPhone,
        ByeReason::PeerGone,
        ByeReason::NegotiationFailed,
        ByeReason::ServerShutdown,
        ByeReason::Transferred,
        ByeReason::EndedByOperator,
    ];

    /// The reason's wire name, e.g. `NORMAL_CLEARING`: as `wgtwo.webterminal.v0.Bye.Reason` names
    /// it, and as call events (section 8) and call records (section 9) write it.
    pub fn name(self) -> &'static str {
        match self {
            ByeReason::NormalClearing => "NORMAL_CLEARING",
            ByeReason::Busy => "BUSY",
            ByeReason::Declined => "DECLINED",
            ByeReason::DeclinedElsewhere => "DECLINED_ELSEWHERE",
            ByeReason::NoAnswer => "NO_ANSWER",
            ByeReason::Unavailable => "UNAVAILABLE",
            ByeReason::Cancelled => "CANCELLED",
            ByeReason::AnsweredElsewhere => "ANSWERED_ELSEWHERE",
            ByeReason::Pulled => "PULLED",
            ByeReason::HandedToPhone => "HANDED_TO_PHONE",
            ByeReason::PeerGone => "PEER_GONE",
            ByeReason::NegotiationFailed => "NEGOTIATION_FAILED",
            ByeReason::ServerShutdown => "SERVER_SHUTDOWN",
            ByeReason::Transferred => "TRANSFERRED",
            ByeReason::EndedByOperator => "ENDED_BY_OPERATOR",
        }
    }

    /// The reason named `name` ([`ByeReason::name`]); `None` for a name that is no reason (such as
    /// `REASON_UNSPECIFIED`).
    pub fn from_name(name: &str) -> Option<ByeReason> {
        ByeReason::ALL
            .into_iter()
            .find(|reason| reason.name() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for reason in ByeReason::ALL {
            assert_eq!(ByeReason::from_name(reason.name()), Some(reason));
        }
        assert_eq!(ByeReason::from_name("REASON_UNSPECIFIED"), None);
        assert_eq!(ByeReason::from_name("normal_clearing"), None);
    }
}
