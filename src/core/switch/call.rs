//! A call and its state: two sides, their legs, the forks while ringing, the one negotiation in
//! flight once established (PROTOCOL.md section 2). State is an enum with data per state
//! (quinn-proto's `connection/state`); deadlines live in the timer table, not here.

use super::super::context::CallContext;
use super::super::events::CallRef;
use super::super::groups::Group;
use super::super::types::{CallId, Msisdn, PhoneLegId, Sdp, TerminalId};
use std::sync::Arc;
use std::time::Instant;

/// The internal handle of a call (both sides share it); never shown to terminals. Made in order, so
/// sorting by key is sorting by age.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub(super) struct CallKey(pub(super) u64);

/// The two sides of a call.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub(super) enum Party {
    Caller = 0,
    Callee = 1,
}

impl Party {
    pub(super) fn other(self) -> Party {
        match self {
            Party::Caller => Party::Callee,
            Party::Callee => Party::Caller,
        }
    }
}

/// The device carrying (or offered) a side's media.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Leg {
    Terminal(TerminalId),
    Phone(PhoneLegId),
    /// Nothing carries the side: its active terminal went away within the reconnect grace (4.8).
    /// Only ever an established call's active leg, and only while that side's grace timer is armed.
    Vacant,
}

/// One side of a call: its msisdn and the id that msisdn's terminals know the call by.
#[derive(Clone, Debug)]
pub(super) struct Side {
    pub(super) msisdn: Msisdn,
    pub(super) id: CallId,
}

#[derive(Debug)]
pub(super) struct Call {
    /// Names the call for operators and records (section 8).
    pub(super) call_ref: CallRef,
    /// Indexed by `Party`.
    pub(super) sides: [Side; 2],
    pub(super) state: CallState,
    /// The caller's call context (section 1).
    pub(super) context: CallContext,
    pub(super) started_at: Instant,
    pub(super) answered_at: Option<Instant>,
    /// Whether each side's media is on hold (its last answered re-offer was a hold), by `Party`.
    pub(super) held: [bool; 2],
}

impl Call {
    pub(super) fn side(&self, party: Party) -> &Side {
        &self.sides[party as usize]
    }

    /// The party whose msisdn is `msisdn` (a call never has the same msisdn on both sides).
    pub(super) fn party_of(&self, msisdn: &Msisdn) -> Option<Party> {
        if self.sides[0].msisdn == *msisdn {
            Some(Party::Caller)
        } else if self.sides[1].msisdn == *msisdn {
            Some(Party::Callee)
        } else {
            None
        }
    }
}

/// A call's state, with the data that belongs to each.
#[derive(Debug)]
pub(super) enum CallState {
    /// Offered to the callee's devices, not answered yet (4.1–4.3). Its ring timer is armed.
    Ringing(Ringing),
    /// Answered: each side has exactly one active leg (4.4–4.8).
    Established(Established),
}

#[derive(Debug)]
pub(super) struct Ringing {
    /// A terminal, or a phone for a call from the phone network (4.11).
    pub(super) caller_leg: Leg,
    /// The callee's devices the call is offered to (the forks).
    pub(super) forks: Vec<Leg>,
    /// The caller got `Ringing` already (it gets it once).
    pub(super) alerted: bool,
    /// A device of the callee was there but not eligible (busy): the caller gets BUSY, not
    /// UNAVAILABLE, when no fork is left.
    pub(super) saw_busy: bool,
    /// The caller's offer, kept to offer late-registering terminals (4.2).
    pub(super) offer: Sdp,
    /// For a call to a group (section 10): the queue's state. The callee side is then the group's
    /// number, and the forks are terminals of the members in `offered`.
    pub(super) queued: Option<Queued>,
}

/// A call to a group, waiting in its queue for a member to answer (PROTOCOL.md section 10). Its
/// ring timer is the group's queue timeout; while a member of a `round-robin` or `longest-idle`
/// group is offered it, its member ring timer is armed too.
#[derive(Debug)]
pub(super) struct Queued {
    pub(super) group: Arc<Group>,
    /// Members offered the call now: each has at least one fork, and indexes the callee side's id
    /// under its own number, so that its terminals' answers and declines find the call.
    pub(super) offered: Vec<Msisdn>,
    /// Members passed over in this round (no answer in time): offered it again only once every
    /// other member who may take it has had it.
    pub(super) passed: Vec<Msisdn>,
    /// Members who declined it: never offered it again.
    pub(super) declined: Vec<Msisdn>,
}

#[derive(Debug)]
pub(super) struct Established {
    /// The active leg of each side, indexed by `Party`.
    pub(super) legs: [Leg; 2],
    /// When it was established, as a sequence number: a Pipe reflects the most recent call (4.4).
    pub(super) since: u64,
    /// The one offer/answer exchange in flight, if any (4.5–4.7); its timer is armed while it is.
    pub(super) negotiation: Option<Negotiation>,
    /// By `Party`: the side is vacant because its terminal transferred the call (4.12), not because
    /// it went away (4.8): nobody taking it ends the call with `NO_ANSWER`, and the taker's move is
    /// `TRANSFERRED`.
    pub(super) transferred: [bool; 2],
    /// A side transferred to a group (4.12, section 10), vacant and shown to the group's members
    /// until the first of them to pull it claims it: the side's number is the group's until then.
    pub(super) offered_to_group: Option<(Party, Arc<Group>)>,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Negotiation {
    /// The side that wants new media; the other side's active leg is asked to answer.
    pub(super) by: Party,
    pub(super) purpose: Purpose,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Purpose {
    /// The active leg of `by` re-offers (4.7); `hold` when the offer puts its media on hold.
    ReOffer { hold: bool },
    /// A terminal of `by`'s msisdn pulls the call to itself (4.5).
    Pull { puller: TerminalId },
    /// The active leg of `by` hands over to the msisdn's phone; `far_offered` once the phone's
    /// offer went to the far side (4.6).
    HandOver {
        phone: PhoneLegId,
        far_offered: bool,
    },
}

impl Established {
    /// The party whose active leg is `leg`.
    pub(super) fn party_of_leg(&self, leg: Leg) -> Option<Party> {
        [Party::Caller, Party::Callee]
            .into_iter()
            .find(|p| self.legs[*p as usize] == leg)
    }
}
