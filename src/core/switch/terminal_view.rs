//! What a terminal sees of the calls its number is in on other devices (PROTOCOL.md 4.4): `InCall`
//! when such a call is established or its active leg moves, `Idle` when it ends.

use super::call::{CallKey, CallState, Leg};
use super::Switch;
use crate::core::message::NoticeBody;
use crate::core::types::{CallId, Msisdn, PipeKind, TerminalId};
use std::collections::BTreeMap;

/// What a terminal sees of the established calls of its msisdn that it is not the active leg of:
/// the calls it was last told `InCall` for.
#[derive(Debug)]
pub(super) enum View {
    /// A MultiPipe sees every such call, by call and side id.
    Multi(BTreeMap<CallKey, CallId>),
    /// A Pipe sees at most one: the most recently established. While it is busy with a call of its
    /// own (or a pull) it is told nothing (`paused`), but `seen` keeps what it was last told, so that
    /// once free it learns what changed meanwhile (4.4).
    Single {
        seen: Option<(CallKey, CallId)>,
        paused: bool,
    },
}

impl View {
    /// The view of a terminal that has been told nothing yet.
    pub(super) fn empty(kind: PipeKind) -> View {
        match kind {
            PipeKind::Pipe => View::Single {
                seen: None,
                paused: false,
            },
            PipeKind::MultiPipe => View::Multi(BTreeMap::new()),
        }
    }
}

/// One established call of a number, as that number's terminals see it (4.4).
#[derive(Debug)]
pub(super) struct SeenCall {
    /// When it was established (sequence number): the most recent is what a Pipe reflects.
    pub(super) since: u64,
    pub(super) key: CallKey,
    /// The number's side id.
    pub(super) id: CallId,
    /// The number's active leg.
    pub(super) leg: Leg,
    /// The other party.
    pub(super) peer: Msisdn,
}

impl Switch {
    /// Brings every terminal of `msisdn` in step with the switch (4.4): a terminal that is not the
    /// active leg of an established call of its msisdn gets `InCall` for it (again, if `moved` is that
    /// call: its active leg moved), and `Idle` when such a call ends. A Pipe reflects only the most
    /// recently established call, and nothing while it is in a call of its own; it gets `Idle{}` only
    /// when its msisdn is in no established call at all.
    pub(super) fn refresh_views(&mut self, msisdn: &Msisdn, moved: Option<CallKey>) {
        let Some(subscriber) = self.subscribers.get(msisdn) else {
            return;
        };
        if subscriber.terminals.is_empty() {
            return;
        }
        let established = self.established_calls(msisdn);
        let terminals = subscriber.terminals.clone();
        for terminal in terminals {
            let t = self.terminals.get_mut(&terminal).unwrap();
            let mut notices: Vec<(Option<CallId>, NoticeBody)> = Vec::new();
            let load = t.load();
            match &mut t.view {
                View::Multi(seen) => {
                    let mut desired = BTreeMap::new();
                    for call in &established {
                        if call.leg == Leg::Terminal(terminal) {
                            continue;
                        }
                        desired.insert(call.key, call.id);
                        if !seen.contains_key(&call.key) || moved == Some(call.key) {
                            let peer = call.peer.clone();
                            notices.push((Some(call.id), NoticeBody::InCall { peer }));
                        }
                    }
                    for (key, id) in seen.iter() {
                        // A call that left the view because this terminal became its active leg
                        // needs no message; one that ended gets Idle.
                        let ended = !established.iter().any(|c| c.key == *key);
                        if ended && !desired.contains_key(key) {
                            notices.push((Some(*id), NoticeBody::Idle));
                        }
                    }
                    *seen = desired;
                }
                View::Single { seen, paused } => {
                    if load > 0 {
                        // Busy: told nothing now. A call it now carries itself is no longer one
                        // it observes; anything else it was told stays what it believes.
                        if seen.is_some_and(|(key, _)| t.calls.contains(&key)) {
                            *seen = None;
                        }
                        *paused = true;
                        continue;
                    }
                    // Free: the most recent established call it does not carry (it carries none).
                    let desired = established.last();
                    let resync = std::mem::take(paused);
                    match desired {
                        Some(call) => {
                            let known = seen.map(|(k, _)| k) == Some(call.key);
                            if !known || moved == Some(call.key) || resync {
                                let peer = call.peer.clone();
                                notices.push((Some(call.id), NoticeBody::InCall { peer }));
                            }
                        }
                        // Idle{} only when its number is in no established call at all.
                        None if seen.is_some() => notices.push((None, NoticeBody::Idle)),
                        None => {}
                    }
                    *seen = desired.map(|c| (c.key, c.id));
                }
            }
            for (id, body) in notices {
                self.deliver(terminal, id, body);
            }
        }
    }

    /// The established calls of `msisdn`, oldest first.
    pub(super) fn established_calls(&self, msisdn: &Msisdn) -> Vec<SeenCall> {
        let Some(subscriber) = self.subscribers.get(msisdn) else {
            return Vec::new();
        };
        let mut calls: Vec<SeenCall> = subscriber
            .calls
            .values()
            .filter_map(|key| {
                let call = &self.calls[key];
                let CallState::Established(e) = &call.state else {
                    return None;
                };
                let party = call.party_of(msisdn).or_else(|| {
                    // A call transferred to a group is shown to its members (4.12, section 10).
                    let (party, group) = e.offered_to_group.as_ref()?;
                    group.member(msisdn).map(|_| *party)
                })?;
                Some(SeenCall {
                    since: e.since,
                    key: *key,
                    id: call.side(party).id,
                    leg: e.legs[party as usize],
                    peer: call.side(party.other()).msisdn.clone(),
                })
            })
            .collect();
        calls.sort_by_key(|c| c.since);
        calls
    }

    pub(super) fn set_view_single(
        &mut self,
        terminal: TerminalId,
        value: Option<(CallKey, CallId)>,
    ) {
        if let View::Single { seen, .. } = &mut self.terminals.get_mut(&terminal).unwrap().view {
            *seen = value;
        }
    }
}
