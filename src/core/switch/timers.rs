//! The timer table (quinn-proto `connection/timer.rs`): every armed deadline of every call, in one
//! place. Call state holds no deadline of its own; the driver polls the earliest one.

use super::call::{CallKey, Party};
use hashbrown::HashMap;
use std::collections::BTreeSet;
use std::time::Instant;

/// What a call's timer is for. A call has at most one of each armed.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub(super) enum TimerKind {
    /// The ring timeout (4.3), or a group call's queue timeout (section 10): armed while the call
    /// rings.
    Ring,
    /// The negotiation timeout (4.5–4.7): armed while a negotiation is pending.
    Negotiation,
    /// The reconnect grace of one side (4.8): armed while that side's leg is vacant.
    Grace(Party),
    /// A group call's offer to one member (`round-robin`, `longest-idle`; section 10): armed
    /// while a member is offered it.
    MemberRing,
}

impl TimerKind {
    const ALL: [TimerKind; 5] = [
        TimerKind::Ring,
        TimerKind::Negotiation,
        TimerKind::Grace(Party::Caller),
        TimerKind::Grace(Party::Callee),
        TimerKind::MemberRing,
    ];
}

/// Armed timers, by deadline (ties broken by call and kind, so firing order is deterministic) and by
/// call and kind.
#[derive(Debug, Default)]
pub(super) struct Timers {
    by_deadline: BTreeSet<(Instant, CallKey, TimerKind)>,
    armed: HashMap<(CallKey, TimerKind), Instant>,
}

impl Timers {
    /// Arms `kind` for `key` at `at`, replacing the deadline it had.
    pub(super) fn arm(&mut self, key: CallKey, kind: TimerKind, at: Instant) {
        if let Some(old) = self.armed.insert((key, kind), at) {
            self.by_deadline.remove(&(old, key, kind));
        }
        self.by_deadline.insert((at, key, kind));
    }

    /// Disarms `kind` for `key`; nothing if it was not armed.
    pub(super) fn disarm(&mut self, key: CallKey, kind: TimerKind) {
        if let Some(at) = self.armed.remove(&(key, kind)) {
            self.by_deadline.remove(&(at, key, kind));
        }
    }

    /// Disarms every timer of `key`.
    pub(super) fn disarm_call(&mut self, key: CallKey) {
        for kind in TimerKind::ALL {
            self.disarm(key, kind);
        }
    }

    /// Whether `kind` is armed for `key`.
    pub(super) fn is_armed(&self, key: CallKey, kind: TimerKind) -> bool {
        self.armed.contains_key(&(key, kind))
    }

    /// The earliest deadline.
    pub(super) fn next(&self) -> Option<Instant> {
        self.by_deadline.first().map(|(at, _, _)| *at)
    }

    /// Disarms and returns the earliest timer due at or before `now`, with its deadline.
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<(CallKey, TimerKind, Instant)> {
        let &(at, key, kind) = self.by_deadline.first()?;
        if at > now {
            return None;
        }
        self.by_deadline.pop_first();
        self.armed.remove(&(key, kind));
        Some((key, kind, at))
    }

    /// How many timers are armed.
    pub(super) fn len(&self) -> usize {
        self.armed.len()
    }
}
