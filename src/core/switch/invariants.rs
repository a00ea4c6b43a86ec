//! The switch's internal consistency, checked by the tests and the model-based test after every
//! step.

use super::call::{Call, CallKey, CallState, Leg, Party, Purpose, Queued, Ringing};
use super::terminal_view::View;
use super::timers::TimerKind;
use super::Switch;
use crate::core::groups::Strategy;
use crate::core::types::{Msisdn, PipeKind};

impl Switch {
    /// Checks the switch's internal consistency: every index agrees with the calls, every id is
    /// scoped to its msisdn, every leg and fork is a registered terminal of the right msisdn or a
    /// known phone leg, exactly the timers of live states are armed (ring while ringing, negotiation
    /// while one is pending, grace while a side is vacant), and no subscriber entry is empty.
    ///
    /// # Errors
    /// A description of the first broken invariant.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut armed = 0;
        let mut expect_timer = |key: CallKey, kind: TimerKind, what: &str| {
            armed += 1;
            match self.timers.is_armed(key, kind) {
                true => Ok(()),
                false => Err(format!("{key:?}: {what} without its timer")),
            }
        };
        for (key, call) in &self.calls {
            let key = *key;
            if call.sides[0].msisdn == call.sides[1].msisdn {
                return Err(format!("{key:?}: both sides have the same number"));
            }
            for side in &call.sides {
                let s = self
                    .subscribers
                    .get(&side.msisdn)
                    .ok_or(format!("{key:?}: side's number has no subscriber entry"))?;
                if s.calls.get(&side.id) != Some(&key) {
                    return Err(format!("{key:?}: side id not indexed under its number"));
                }
            }
            match &call.state {
                CallState::Ringing(r) => {
                    self.check_leg(r.caller_leg, &call.sides[0].msisdn, key)?;
                    expect_timer(key, TimerKind::Ring, "ringing")?;
                    if let Some(q) = &r.queued {
                        self.check_queued(key, call, r, q)?;
                        if q.group.strategy != Strategy::RingAll && !q.offered.is_empty() {
                            expect_timer(key, TimerKind::MemberRing, "a member offered")?;
                        }
                        continue;
                    }
                    if r.forks.is_empty() {
                        return Err(format!("{key:?}: ringing with no fork"));
                    }
                    for fork in &r.forks {
                        self.check_leg(*fork, &call.sides[1].msisdn, key)?;
                    }
                }
                CallState::Established(e) => {
                    for party in [Party::Caller, Party::Callee] {
                        match e.legs[party as usize] {
                            Leg::Vacant => expect_timer(key, TimerKind::Grace(party), "vacant")?,
                            leg => self.check_leg(leg, &call.side(party).msisdn, key)?,
                        }
                    }
                    if let Some((party, group)) = &e.offered_to_group {
                        let side = call.side(*party);
                        if e.legs[*party as usize] != Leg::Vacant || side.msisdn != group.number {
                            return Err(format!(
                                "{key:?}: offered to a group but not its vacant side"
                            ));
                        }
                        let far = &call.side(party.other()).msisdn;
                        for member in super::transfer::shown_members(group, far) {
                            let indexed = self
                                .subscribers
                                .get(&member)
                                .and_then(|s| s.calls.get(&side.id));
                            if indexed != Some(&key) {
                                return Err(format!(
                                    "{key:?}: member {member:?} does not see the transfer"
                                ));
                            }
                        }
                    }
                    if let Some(n) = &e.negotiation {
                        expect_timer(key, TimerKind::Negotiation, "negotiation")?;
                        if let Purpose::Pull { puller } = n.purpose {
                            let t = self
                                .terminals
                                .get(&puller)
                                .ok_or(format!("{key:?}: puller gone"))?;
                            if t.msisdn != call.sides[n.by as usize].msisdn
                                || !t.pulls.contains(&key)
                            {
                                return Err(format!("{key:?}: puller inconsistent"));
                            }
                        }
                    }
                }
            }
        }
        if armed != self.timers.len() {
            return Err(format!(
                "{} timers armed for {armed} live deadlines",
                self.timers.len()
            ));
        }
        for (msisdn, s) in &self.subscribers {
            if s.terminals.is_empty() && s.calls.is_empty() {
                return Err(format!("empty subscriber entry for {msisdn:?}"));
            }
            for t in &s.terminals {
                if self.terminals.get(t).map(|t| &t.msisdn) != Some(msisdn) {
                    return Err(format!("{t:?} listed under the wrong number"));
                }
            }
        }
        for (id, t) in &self.terminals {
            // A busy Pipe's view is paused: it keeps what it was last told, ended calls included,
            // to learn what changed once free (4.4). Every other view shows live calls only.
            let seen: Vec<CallKey> = match &t.view {
                View::Single { paused: true, .. } => Vec::new(),
                View::Single { seen, .. } => seen.iter().map(|(key, _)| *key).collect(),
                View::Multi(seen) => seen.keys().copied().collect(),
            };
            if let Some(key) = seen.iter().find(|key| !self.calls.contains_key(*key)) {
                return Err(format!("{id:?}'s view shows {key:?}, which is gone"));
            }
            if t.kind == PipeKind::Pipe && t.calls.len() > 1 {
                return Err(format!("Pipe {id:?} is in {} calls", t.calls.len()));
            }
            for key in t.calls.iter().chain(&t.pulls) {
                if !self.calls.contains_key(key) {
                    return Err(format!("{id:?} lists a call that is gone"));
                }
            }
        }
        for key in &self.queue {
            let queued = matches!(
                self.calls.get(key).map(|c| &c.state),
                Some(CallState::Ringing(r)) if r.queued.is_some()
            );
            if !queued {
                return Err(format!("{key:?}: in the queue but not a queued call"));
            }
        }
        for (member, key) in &self.member_offers {
            let offered = matches!(
                self.calls.get(key).map(|c| &c.state),
                Some(CallState::Ringing(Ringing { queued: Some(q), .. })) if q.offered.contains(member)
            );
            if !offered {
                return Err(format!(
                    "{member:?} is listed as offered {key:?} but is not"
                ));
            }
        }
        for (p, key) in &self.phone_legs {
            if !self.calls.contains_key(key) {
                return Err(format!("phone leg {p:?} of a call that is gone"));
            }
        }
        Ok(())
    }

    /// Queued call `key` (section 10): in the queue; each fork a terminal of a member offered the
    /// call; each member offered it has a fork, indexes the call under the group side's id, and is
    /// offered no other group call; no member both offered and declined it.
    fn check_queued(
        &self,
        key: CallKey,
        call: &Call,
        r: &Ringing,
        q: &Queued,
    ) -> Result<(), String> {
        if !self.queue.contains(&key) {
            return Err(format!("{key:?}: queued but not in the queue"));
        }
        if call.sides[1].msisdn != q.group.number {
            return Err(format!("{key:?}: queued, but its callee is not the group"));
        }
        for fork in &r.forks {
            let Leg::Terminal(t) = fork else {
                return Err(format!("{key:?}: a group call rings a phone"));
            };
            let member = self
                .terminals
                .get(t)
                .map(|t| t.msisdn.clone())
                .ok_or(format!("{key:?}: fork {t:?} is not registered"))?;
            if !q.offered.contains(&member) {
                return Err(format!(
                    "{key:?}: fork {t:?} of a member not offered the call"
                ));
            }
            self.check_leg(*fork, &member, key)?;
        }
        for member in &q.offered {
            let has_fork = r
                .forks
                .iter()
                .any(|f| matches!(f, Leg::Terminal(t) if self.terminals[t].msisdn == *member));
            if !has_fork {
                return Err(format!("{key:?}: {member:?} offered with no fork"));
            }
            if self
                .subscribers
                .get(member)
                .and_then(|s| s.calls.get(&call.sides[1].id))
                != Some(&key)
            {
                return Err(format!("{key:?}: {member:?} does not index the call"));
            }
            if self.member_offers.get(member) != Some(&key) {
                return Err(format!("{key:?}: {member:?} not indexed as offered it"));
            }
            if q.declined.contains(member) || q.group.member(member).is_none() {
                return Err(format!(
                    "{key:?}: {member:?} offered but declined or no member"
                ));
            }
        }
        Ok(())
    }

    /// `leg` of call `key` belongs to `msisdn` and is indexed as such.
    fn check_leg(&self, leg: Leg, msisdn: &Msisdn, key: CallKey) -> Result<(), String> {
        match leg {
            Leg::Terminal(t) => {
                let term = self
                    .terminals
                    .get(&t)
                    .ok_or(format!("{key:?}: leg {t:?} is not registered"))?;
                if term.msisdn != *msisdn {
                    return Err(format!("{key:?}: leg {t:?} belongs to another number"));
                }
                if !term.calls.contains(&key) {
                    return Err(format!("{key:?}: terminal {t:?} does not list the call"));
                }
            }
            Leg::Phone(p) => {
                if self.phone_legs.get(&p) != Some(&key) {
                    return Err(format!("{key:?}: phone leg {p:?} is not indexed"));
                }
            }
            Leg::Vacant => return Err(format!("{key:?}: a vacant leg outside a grace")),
        }
        Ok(())
    }
}
