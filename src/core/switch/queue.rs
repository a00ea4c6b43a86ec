//! Calls to groups (PROTOCOL.md section 10): the caller waits in the group's queue and hears
//! `Ringing` at once; members are offered the call as the group's strategy says; a member who does
//! not answer in time or declines is passed over; the first answer wins and the call is then the
//! caller's and that member's; nobody within the queue timeout: `Bye{NO_ANSWER}`.
//!
//! A member may be offered a group call when it has a terminal that may be offered a new call
//! (section 5), is in no answered call, is not offered another group call, and is not the caller;
//! a member who answers another call while offered one is passed over at once.
//! Queued calls are served oldest first after every input ([`Switch::serve_queue`]), so a call
//! waits exactly as long as no member may take it: a member registering or ending a call is
//! offered the oldest waiting call at once.

use super::call::{CallKey, CallState, Leg, Party, Queued};
use super::timers::TimerKind;
use super::Switch;
use crate::core::events::{CallStatus, GroupAnswer};
use crate::core::groups::{Group, Strategy};
use crate::core::message::NoticeBody;
use crate::core::reason::ByeReason;
use crate::core::types::{CallId, Msisdn};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

impl Switch {
    /// Puts new call `key`, to `group`, in the group's queue: the caller hears `Ringing` now, the
    /// queue timeout is armed, and the next [`Switch::serve_queue`] offers it to members.
    pub(super) fn enqueue(&mut self, key: CallKey, group: Arc<Group>) {
        self.timers
            .arm(key, TimerKind::Ring, self.now + group.queue_timeout);
        tracing::info!(?key, group = ?group.number, "call queued");
        let ringing = self.ringing_mut(key);
        ringing.alerted = true;
        let caller_leg = ringing.caller_leg;
        ringing.queued = Some(Queued {
            group,
            offered: Vec::new(),
            passed: Vec::new(),
            declined: Vec::new(),
        });
        self.join_queue(key);
        self.send_to_leg(key, Party::Caller, caller_leg, NoticeBody::Ringing);
        self.emit(key, CallStatus::Ringing, None, None);
    }

    /// How many calls wait in group queues, offered to no member or ringing members but not yet
    /// answered.
    pub fn queued_call_count(&self) -> usize {
        self.queue.len()
    }

    /// How many calls wait in each group's queue (groups with none left out), by group number.
    /// Costs a walk of the queues: call it when [`Switch::queue_changes`] moved.
    pub fn queued_calls_by_group(&self) -> BTreeMap<Msisdn, usize> {
        let mut counts = BTreeMap::new();
        for key in &self.queue {
            *counts
                .entry(self.queued(*key).group.number.clone())
                .or_default() += 1;
        }
        counts
    }

    /// How many times a call joined or left a queue since the switch began: while it stays the
    /// same, so do [`Switch::queued_calls_by_group`]'s counts.
    pub fn queue_changes(&self) -> u64 {
        self.queue_changes
    }

    fn join_queue(&mut self, key: CallKey) {
        self.queue.insert(key);
        self.queue_changes += 1;
    }

    fn leave_queue(&mut self, key: CallKey) {
        if self.queue.remove(&key) {
            self.queue_changes += 1;
        }
    }

    /// Whether any member of `group` but `caller` has a terminal at all (section 10: a group
    /// whose members have none is `UNAVAILABLE`).
    pub(super) fn group_has_terminals(&self, group: &Group, caller: &Msisdn) -> bool {
        group.members.iter().any(|m| {
            m.msisdn != *caller
                && self
                    .subscribers
                    .get(&m.msisdn)
                    .is_some_and(|s| !s.terminals.is_empty())
        })
    }

    /// Offers every queued call, oldest first, to the members who may take it now. Run after every
    /// input: whatever freed a member (a registration, a call's end, a member passed over) is then
    /// followed by the offer. Costs nothing while no call waits.
    pub(super) fn serve_queue(&mut self) {
        if self.queue.is_empty() {
            return;
        }
        let keys: Vec<CallKey> = self.queue.iter().copied().collect();
        for key in keys {
            self.offer_to_members(key);
        }
    }

    /// Offers queued call `key` to the members its strategy picks among those who may take it, and
    /// to new eligible terminals of the members already offered it (4.2's late registration). A
    /// member offered it who has since answered another call is busy: passed over at once, its
    /// forks get `Bye{CANCELLED}` (and a `ring-all` group offers it again once the member is free).
    fn offer_to_members(&mut self, key: CallKey) {
        let queued = self.queued(key);
        let group = queued.group.clone();
        for member in queued.offered.clone() {
            if self.in_answered_call(&member) {
                tracing::debug!(?key, ?member, "group member passed over: busy");
                self.withdraw_member(key, &member, ByeReason::Cancelled);
                self.queued_mut(key).passed.push(member);
                continue;
            }
            let (eligible, _) = self.eligible_terminals(&member);
            for t in eligible {
                if !self.terminals[&t].calls.contains(&key) {
                    self.add_terminal_fork(key, t);
                }
            }
        }
        match group.strategy {
            Strategy::RingAll => {
                for member in &group.members {
                    if self.may_offer(key, &member.msisdn, false) {
                        self.offer_member(key, &member.msisdn);
                    }
                }
            }
            Strategy::RoundRobin | Strategy::LongestIdle => {
                if !self.queued(key).offered.is_empty() {
                    return;
                }
                let next = self.next_member(key, &group).or_else(|| {
                    // Everyone who may take it has had it in this round: the next round begins.
                    self.queued_mut(key).passed.clear();
                    self.next_member(key, &group)
                });
                if let Some(member) = next {
                    self.offer_member(key, &member);
                }
            }
        }
    }

    /// The member a `round-robin` or `longest-idle` group offers call `key` to next, if any may
    /// take it and has not had it in this round.
    fn next_member(&self, key: CallKey, group: &Group) -> Option<Msisdn> {
        let members = &group.members;
        match group.strategy {
            Strategy::RoundRobin => {
                let start = self
                    .last_answered
                    .get(&group.number)
                    .and_then(|last| members.iter().position(|m| m.msisdn == *last))
                    .map_or(0, |i| i + 1);
                (0..members.len())
                    .map(|i| &members[(start + i) % members.len()].msisdn)
                    .find(|m| self.may_offer(key, m, true))
                    .cloned()
            }
            Strategy::LongestIdle => members
                .iter()
                .map(|m| &m.msisdn)
                .filter(|m| self.may_offer(key, m, true))
                // `min_by_key` keeps the first of equals: ties go in the file's order.
                .min_by_key(|m| self.idle_since(m))
                .cloned(),
            Strategy::RingAll => None,
        }
    }

    /// Since when `msisdn` has been idle: the end of its last answered call, or its oldest
    /// terminal's registration if later (or if it has had no call).
    fn idle_since(&self, msisdn: &Msisdn) -> Option<Instant> {
        let s = self.subscribers.get(msisdn)?;
        let registered = s.terminals.iter().map(|t| self.terminals[t].since).min();
        registered.max(s.last_call_end)
    }

    /// Whether `member` may be offered queued call `key` now: not the caller, not offered it
    /// already, not declined it (nor, with `this_round`, passed over in this round), offered no
    /// other group call, in no answered call, and with a terminal that may take a new call.
    fn may_offer(&self, key: CallKey, member: &Msisdn, this_round: bool) -> bool {
        let call = &self.calls[&key];
        let queued = self.queued(key);
        if call.side(Party::Caller).msisdn == *member
            || queued.offered.contains(member)
            || queued.declined.contains(member)
            || (this_round && queued.passed.contains(member))
            || self.member_offers.contains_key(member)
        {
            return false;
        }
        let Some(s) = self.subscribers.get(member) else {
            return false;
        };
        // A member's own call may use the id the group call is offered under (a MultiPipe chose
        // it once the member was passed over): the two must not share it.
        let id = call.side(Party::Callee).id;
        if s.calls.get(&id).is_some_and(|k| *k != key) {
            return false;
        }
        !self.in_answered_call(member) && s.terminals.iter().any(|t| self.is_eligible(*t))
    }

    /// Whether `msisdn` is a side of an answered call.
    fn in_answered_call(&self, msisdn: &Msisdn) -> bool {
        self.subscribers.get(msisdn).is_some_and(|s| {
            s.calls.values().any(|k| {
                matches!(self.calls[k].state, CallState::Established(_))
                    && self.calls[k].party_of(msisdn).is_some()
            })
        })
    }

    /// Offers queued call `key` to every eligible terminal of `member`, and arms the member ring
    /// timer of a one-at-a-time strategy.
    fn offer_member(&mut self, key: CallKey, member: &Msisdn) {
        let (eligible, _) = self.eligible_terminals(member);
        let id = self.calls[&key].side(Party::Callee).id;
        self.subscribers
            .get_mut(member)
            .expect("a member who may be offered a call has terminals")
            .calls
            .insert(id, key);
        self.member_offers.insert(member.clone(), key);
        let queued = self.queued_mut(key);
        queued.offered.push(member.clone());
        let group = queued.group.clone();
        tracing::debug!(?key, ?member, "group call offered to a member");
        for t in eligible {
            self.add_terminal_fork(key, t);
        }
        if group.strategy != Strategy::RingAll {
            self.timers.arm(
                key,
                TimerKind::MemberRing,
                self.now + group.member_ring_timeout,
            );
        }
    }

    /// Takes queued call `key` back from `member`: its forks get `Bye{reason}` (none when it has
    /// none left), and its number no longer indexes the call.
    fn withdraw_member(&mut self, key: CallKey, member: &Msisdn, reason: ByeReason) {
        let forks = self.member_forks(key, member);
        self.ringing_mut(key).forks.retain(|f| !forks.contains(f));
        for fork in forks {
            self.send_to_leg(key, Party::Callee, fork, NoticeBody::Bye { reason });
            self.forget_leg(key, fork);
        }
        let id = self.calls[&key].side(Party::Callee).id;
        self.forget_member_offer(key, id, member);
        self.queued_mut(key).offered.retain(|m| m != member);
        if self.queued(key).group.strategy != Strategy::RingAll {
            self.timers.disarm(key, TimerKind::MemberRing);
        }
        // A Pipe freed of the offer learns what changed meanwhile (4.4).
        self.refresh_views(member, None);
    }

    /// The forks of queued call `key` that are terminals of `member`.
    fn member_forks(&self, key: CallKey, member: &Msisdn) -> Vec<Leg> {
        let CallState::Ringing(ringing) = &self.calls[&key].state else {
            return Vec::new();
        };
        ringing
            .forks
            .iter()
            .copied()
            .filter(|f| matches!(f, Leg::Terminal(t) if self.terminals[t].msisdn == *member))
            .collect()
    }

    /// `member`'s number stops indexing queued call `key`, whose group side's id is `id`.
    fn forget_member_offer(&mut self, key: CallKey, id: CallId, member: &Msisdn) {
        if let Some(s) = self.subscribers.get_mut(member) {
            s.calls.remove(&id);
        }
        if self.member_offers.get(member) == Some(&key) {
            self.member_offers.remove(member);
        }
        self.forget_subscriber_if_empty(member);
    }

    /// The member ring timer of queued call `key` fired: the member offered it is passed over, its
    /// forks get `Bye{CANCELLED}` (section 10); the next member is offered it by the next
    /// [`Switch::serve_queue`].
    pub(super) fn member_ring_timeout(&mut self, key: CallKey) {
        for member in self.queued(key).offered.clone() {
            tracing::debug!(?key, ?member, "group member passed over: no answer");
            self.withdraw_member(key, &member, ByeReason::Cancelled);
            self.queued_mut(key).passed.push(member);
        }
    }

    /// A member's terminal declined queued call `key` (section 10: a decline does not end a group
    /// call): the member's other forks get `Bye{DECLINED_ELSEWHERE}`, and the member is never
    /// offered the call again.
    pub(super) fn member_declined(&mut self, key: CallKey, leg: Leg) {
        let member = self.leg_member(leg);
        self.ringing_mut(key).forks.retain(|f| *f != leg);
        self.forget_leg(key, leg);
        tracing::debug!(?key, ?member, "group member declined");
        self.withdraw_member(key, &member, ByeReason::DeclinedElsewhere);
        self.queued_mut(key).declined.push(member);
    }

    /// A member's fork of queued call `key` went away without a word (its terminal is gone): the
    /// call stays queued; a member with no fork left is no longer offered it (and may be again).
    pub(super) fn member_fork_gone(&mut self, key: CallKey, leg: Leg) {
        let member = self.leg_member(leg);
        self.ringing_mut(key).forks.retain(|f| *f != leg);
        self.forget_leg(key, leg);
        if self.member_forks(key, &member).is_empty() {
            self.withdraw_member(key, &member, ByeReason::Cancelled);
        }
    }

    /// Queued call `key` is answered by `member`: the call leaves the queue and becomes the
    /// caller's and the member's (the callee side's number is now the member's, its id unchanged);
    /// the other members' numbers no longer index it. Returns what the `Answered` event tells.
    /// The other members offered it are returned: once their forks are gone, their views are to be
    /// brought up to date.
    pub(super) fn answered_by_member(
        &mut self,
        key: CallKey,
        member: &Msisdn,
    ) -> (GroupAnswer, Vec<Msisdn>) {
        let CallState::Ringing(ringing) = &mut self.calls.get_mut(&key).unwrap().state else {
            unreachable!("a queued call rings");
        };
        let queued = ringing.queued.take().expect("a queued call");
        self.leave_queue(key);
        self.timers.disarm(key, TimerKind::MemberRing);
        let id = self.calls[&key].side(Party::Callee).id;
        for other in queued.offered.iter().filter(|m| *m != member) {
            self.forget_member_offer(key, id, other);
        }
        self.member_offers.remove(member);
        let group = &queued.group;
        let call = self.calls.get_mut(&key).unwrap();
        call.sides[Party::Callee as usize].msisdn = member.clone();
        let hold_time = self.now.saturating_duration_since(call.started_at);
        if let Some(s) = self.subscribers.get_mut(&group.number) {
            s.calls.remove(&id);
        }
        self.forget_subscriber_if_empty(&group.number);
        self.last_answered
            .insert(group.number.clone(), member.clone());
        let answer = GroupAnswer {
            group: group.number.clone(),
            extension: group
                .member(member)
                .map(|m| m.extension.clone())
                .unwrap_or_default(),
            hold_time,
        };
        let others = queued.offered.into_iter().filter(|m| m != member).collect();
        (answer, others)
    }

    /// Queued call `key`, whose group side's id is `id`, is gone: the members offered it no longer
    /// index it, and it leaves the queue. (Its forks were told by whoever ended it.)
    pub(super) fn dequeue(&mut self, key: CallKey, id: CallId, queued: &Queued) {
        for member in &queued.offered {
            self.forget_member_offer(key, id, member);
        }
        self.leave_queue(key);
    }

    /// The member whose terminal `leg` is.
    fn leg_member(&self, leg: Leg) -> Msisdn {
        match leg {
            Leg::Terminal(t) => self.terminals[&t].msisdn.clone(),
            _ => unreachable!("group calls ring members' terminals only"),
        }
    }

    fn queued(&self, key: CallKey) -> &Queued {
        match &self.calls[&key].state {
            CallState::Ringing(r) => r.queued.as_ref().expect("a queued call"),
            CallState::Established(_) => unreachable!("a queued call rings"),
        }
    }

    fn queued_mut(&mut self, key: CallKey) -> &mut Queued {
        self.ringing_mut(key)
            .queued
            .as_mut()
            .expect("a queued call")
    }
}
