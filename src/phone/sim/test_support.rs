//! What the simulated network's tests share: numbers and the switch's commands.

use crate::core::{ByeReason, Msisdn, PhoneCommand, PhoneLegId};

use super::sdp::generated_sdp;

pub(super) fn n(s: &str) -> Msisdn {
    Msisdn::parse(s).unwrap()
}

pub(super) const A: &str = "+4799990001";
pub(super) const B: &str = "+4799990002";

pub(super) fn ring(leg: u64, to: &str) -> PhoneCommand {
    PhoneCommand::Ring {
        leg: PhoneLegId(leg),
        to: n(to),
        from: n(A),
        sdp: generated_sdp(&n(A), 99),
        context: Default::default(),
    }
}

pub(super) fn hand_over(leg: u64, msisdn: &str) -> PhoneCommand {
    PhoneCommand::HandOver {
        leg: PhoneLegId(leg),
        msisdn: n(msisdn),
        peer: n(A),
    }
}

pub(super) fn release(leg: u64) -> PhoneCommand {
    PhoneCommand::Release {
        leg: PhoneLegId(leg),
        reason: ByeReason::NormalClearing,
    }
}

pub(super) fn re_offer(leg: u64) -> PhoneCommand {
    PhoneCommand::Offer {
        leg: PhoneLegId(leg),
        sdp: generated_sdp(&n(A), 7),
    }
}
