//! Blind transfer (PROTOCOL.md 4.12): the active terminal hands the far party over to another
//! number, whose device takes the call with an offer of its own — the core relays SDP and never
//! makes one, so the side is left vacant (as in the reconnect grace, 4.8) until a terminal of the
//! new number pulls it, or the new number's phone comes up as in a handover.

use super::call::{CallKey, CallState, Leg, Party, Side};
use super::timers::TimerKind;
use super::Switch;
use crate::core::groups::Group;
use crate::core::message::{ErrorCode, NoticeBody, Rejection};
use crate::core::reason::ByeReason;
use crate::core::router::Route;
use crate::core::types::{CallId, Msisdn, TerminalId};

impl Switch {
    /// `terminal`, the active leg of its side of call `key`, transfers the far party to `to`.
    ///
    /// The terminal's leg ends with `Bye{TRANSFERRED}` and its number leaves the call (its other
    /// terminals get `Idle`); the side belongs to `to` from now on, with a fresh id, and is vacant:
    /// `to`'s terminals see `InCall{far party}` and the first to pull takes the call; with no
    /// eligible terminal, `to`'s phone is brought up as in a handover. The routing hook decides
    /// where `to` is (section 5): to a group, the call is shown to every member's terminals (but
    /// the far party's) and the first member to pull it claims the side (section 10); members'
    /// phones are not brought up. Nobody within the ring timeout: `Bye{NO_ANSWER}` to the far
    /// party; no device at all: `UNAVAILABLE` (`BUSY` when `to` has terminals but none may take a
    /// call) at once.
    ///
    /// # Errors
    /// `NOT_INCALL` from a terminal that is not the call's active leg; `TRY_AGAIN` while a
    /// negotiation is pending or the far party is reconnecting; `INVALID_ARGUMENT` for the
    /// terminal's own number or the far party's, or a number the routing hook rejects.
    pub(super) fn transfer(
        &mut self,
        terminal: TerminalId,
        key: CallKey,
        to: Msisdn,
    ) -> Result<(), Rejection> {
        let (party, established) = self.active_leg_of(terminal, key, "transfer it")?;
        let call = &self.calls[&key];
        let msisdn = call.side(party).msisdn.clone();
        let far = call.side(party.other()).msisdn.clone();
        let old_id = call.side(party).id;
        let context = call.context.clone();
        let negotiation = established.negotiation;
        let far_leg = established.legs[party.other() as usize];
        // Section 5: the routing hook decides where a transfer goes too, a group included.
        let (to, group) = match self.router.as_mut().map(|r| r.route(&far, &to, &context)) {
            None => (to, None),
            Some(Route::Ring(routed)) => (routed, None),
            Some(Route::Group(group)) => (group.number.clone(), Some(group)),
            Some(Route::Reject(reason)) => {
                return Err(Rejection::new(
                    ErrorCode::InvalidArgument,
                    format!("action.transfer.msisdn: the routing refuses calls to it ({reason:?})"),
                ))
            }
        };
        if to == msisdn || to == far {
            return Err(Rejection::new(
                ErrorCode::InvalidArgument,
                "action.transfer.msisdn is a number already in the call",
            ));
        }
        Self::may_negotiate(negotiation, far_leg)?;
        let (eligible, busy) = match &group {
            None => self.eligible_terminals(&to),
            Some(group) => self.group_terminals(group, &far),
        };

        // The transferring leg ends; its number leaves the call.
        self.send_to_leg(
            key,
            party,
            Leg::Terminal(terminal),
            NoticeBody::Bye {
                reason: ByeReason::Transferred,
            },
        );
        self.forget_terminal_call(terminal, key);
        if let Some(subscriber) = self.subscribers.get_mut(&msisdn) {
            subscriber.calls.remove(&old_id);
        }
        let new_id = self.next_call_id();
        self.subscribers
            .entry(to.clone())
            .or_default()
            .calls
            .insert(new_id, key);
        self.calls.get_mut(&key).unwrap().sides[party as usize] = Side {
            msisdn: to.clone(),
            id: new_id,
        };
        let established = self.established_mut(key);
        established.legs[party as usize] = Leg::Vacant;
        established.transferred[party as usize] = true;
        let shown = group.as_ref().map(|g| shown_members(g, &far));
        if let Some(group) = group {
            established.offered_to_group = Some((party, group));
        }
        self.timers.arm(
            key,
            TimerKind::Grace(party),
            self.now + self.config.ring_timeout,
        );
        tracing::info!(?key, ?terminal, ?to, "call transferred");
        self.refresh_views(&msisdn, None);
        self.forget_subscriber_if_empty(&msisdn);

        if let (Some(members), false) = (&shown, eligible.is_empty()) {
            // Section 10: shown to every member's terminals; the first to pull it claims it.
            for member in members {
                self.subscribers
                    .entry(member.clone())
                    .or_default()
                    .calls
                    .insert(new_id, key);
                self.refresh_views(member, Some(key));
            }
        } else if !eligible.is_empty() {
            self.refresh_views(&to, Some(key));
        } else if self.config.phone_network && shown.is_none() {
            // 4.12: no terminal can take it: `to`'s phone comes up as in a handover (4.6).
            self.refresh_views(&to, Some(key));
            self.bring_up_phone(key, party, to, far);
        } else {
            let reason = if busy {
                ByeReason::Busy
            } else {
                ByeReason::Unavailable
            };
            self.end_established(key, reason, "transfer target has no device", None);
        }
        Ok(())
    }
}

impl Switch {
    /// The terminals of `group`'s members (but `far`, the party being transferred) that may take a
    /// call now, and whether members have terminals that may not (busy): as
    /// [`Switch::eligible_terminals`] for a number.
    fn group_terminals(&self, group: &Group, far: &Msisdn) -> (Vec<TerminalId>, bool) {
        let mut eligible = Vec::new();
        let mut busy = false;
        for member in shown_members(group, far) {
            let (terminals, member_busy) = self.eligible_terminals(&member);
            eligible.extend(terminals);
            busy |= member_busy;
        }
        (eligible, busy)
    }

    /// The side of established call `key` that `member` may claim by pulling it: the call was
    /// transferred to a group and is shown to `member`'s terminals (4.12, section 10). `None` when
    /// `member` may not claim it. Changes nothing: a pull claims the side only once it has passed
    /// every check ([`Switch::claim_group_transfer`]), so a refused pull leaves the call shown to
    /// every member.
    pub(super) fn claimable_side(&self, key: CallKey, member: &Msisdn) -> Option<Party> {
        let call = self.calls.get(&key)?;
        let CallState::Established(e) = &call.state else {
            return None;
        };
        let (party, group) = e.offered_to_group.as_ref()?;
        let far = &call.sides[party.other() as usize].msisdn;
        shown_members(group, far).contains(member).then_some(*party)
    }

    /// `member` pulls established call `key`, transferred to its group, and the pull goes through
    /// (4.12, section 10): the first claims the side, which is its number's from now on; the other
    /// members no longer see the call (`Idle`). `None` when `member` may not claim the call
    /// ([`Switch::claimable_side`]).
    pub(super) fn claim_group_transfer(&mut self, key: CallKey, member: &Msisdn) -> Option<Party> {
        self.claimable_side(key, member)?;
        let call = self.calls.get_mut(&key)?;
        let CallState::Established(e) = &mut call.state else {
            return None;
        };
        let (party, group) = e.offered_to_group.take()?;
        let far = call.sides[party.other() as usize].msisdn.clone();
        let id = call.sides[party as usize].id;
        call.sides[party as usize].msisdn = member.clone();
        tracing::info!(?key, ?member, group = ?group.number, "transferred call claimed by a member");
        if let Some(s) = self.subscribers.get_mut(&group.number) {
            s.calls.remove(&id);
        }
        self.forget_subscriber_if_empty(&group.number);
        self.forget_group_offer(id, &group, &far, Some(member));
        Some(party)
    }

    /// The members of `group` but `except` stop seeing the call whose (group) side id is `id`:
    /// their numbers no longer index it, and their terminals' views are brought up to date.
    pub(super) fn forget_group_offer(
        &mut self,
        id: CallId,
        group: &Group,
        far: &Msisdn,
        except: Option<&Msisdn>,
    ) {
        for member in shown_members(group, far) {
            if Some(&member) == except {
                continue;
            }
            if let Some(s) = self.subscribers.get_mut(&member) {
                s.calls.remove(&id);
            }
            self.refresh_views(&member, None);
            self.forget_subscriber_if_empty(&member);
        }
    }
}

/// The members of `group` a call with far party `far` is shown to: all but the far party itself.
pub(super) fn shown_members(group: &Group, far: &Msisdn) -> Vec<Msisdn> {
    group
        .members
        .iter()
        .map(|m| m.msisdn.clone())
        .filter(|m| m != far)
        .collect()
}
