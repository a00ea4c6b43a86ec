//! Call events → call records (PROTOCOL.md sections 8 and 9), pure and synchronous: no I/O, no
//! clock but the one it is given to turn the events' `Instant`s into wall-clock time.
//!
//! The builder follows every live call from `STARTED` to its final status: its times, the device
//! that answered, each side's current device (so that a `MOVED` says where the side moved *from*),
//! and the time on hold. Events of a call whose `STARTED` it never saw (dropped when the writer's
//! queue was full) are ignored.

use super::{to_millis, unix_ms, CallRecord, LiveCallRecord, Move, Side};
use crate::core::{ByeReason, CallEvent, CallRef, CallStatus, Device, Msisdn};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::{Duration, Instant, SystemTime};

/// What [`RecordBuilder::fold`] made of an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Built {
    /// The call is still live: its row as it would be closed now (see [`LiveCallRecord`]).
    Live(LiveCallRecord),
    /// The call ended: its record.
    Finished(CallRecord),
}

impl Built {
    /// The call it is about.
    pub fn call_ref(&self) -> CallRef {
        match self {
            Built::Live(live) => live.record.call_ref,
            Built::Finished(record) => record.call_ref,
        }
    }
}

/// Folds call events into records. Holds one entry per live call.
pub struct RecordBuilder {
    /// Turns an event's `Instant` into UTC ([`crate::clock::wall_clock`]; a fixed anchor in tests).
    clock: Box<dyn Fn(Instant) -> SystemTime + Send>,
    live: HashMap<CallRef, OpenCall>,
}

impl fmt::Debug for RecordBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordBuilder")
            .field("live", &self.live.len())
            .finish_non_exhaustive()
    }
}

/// What the builder knows of a live call.
#[derive(Debug)]
struct OpenCall {
    caller: Msisdn,
    callee: Msisdn,
    data: BTreeMap<String, String>,
    started: Instant,
    alerted: Option<Instant>,
    answered: Option<Instant>,
    answered_by: Option<Msisdn>,
    /// Each side's active device, as far as the events told: `[caller, callee]`.
    devices: [Option<Device>; 2],
    /// Which sides are on hold: `[caller, callee]`.
    held: [bool; 2],
    /// Since when some side is on hold.
    hold_since: Option<Instant>,
    /// Hold time before `hold_since`.
    hold: Duration,
    moves: Vec<OpenMove>,
    /// The last event's time.
    last: Instant,
}

/// A move as the builder holds it, at an `Instant`.
#[derive(Debug)]
struct OpenMove {
    at: Instant,
    side: Side,
    from: Option<Device>,
    to: Option<Device>,
    reason: Option<ByeReason>,
}

impl RecordBuilder {
    /// A builder turning `Instant`s into UTC with `clock`.
    pub fn new(clock: impl Fn(Instant) -> SystemTime + Send + 'static) -> Self {
        RecordBuilder {
            clock: Box::new(clock),
            live: HashMap::new(),
        }
    }

    /// How many calls are live.
    pub fn live_calls(&self) -> usize {
        self.live.len()
    }

    /// Takes in one event; returns the call's row as it now stands, or `None` for an event of a
    /// call it does not follow (its `STARTED` was never seen) or a repeated `STARTED`.
    pub fn fold(&mut self, event: &CallEvent) -> Option<Built> {
        let at = event.at;
        if event.status == CallStatus::Started {
            if self.live.contains_key(&event.call_ref) {
                return None;
            }
            self.live.insert(
                event.call_ref,
                OpenCall {
                    caller: event.caller.clone(),
                    callee: event.callee.clone(),
                    data: event
                        .context
                        .iter()
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .collect(),
                    started: at,
                    alerted: None,
                    answered: None,
                    answered_by: None,
                    devices: [event.device.clone(), None],
                    held: [false; 2],
                    hold_since: None,
                    hold: Duration::ZERO,
                    moves: Vec::new(),
                    last: at,
                },
            );
            return Some(Built::Live(self.snapshot(event.call_ref)));
        }
        if event.status.is_final() {
            let call = self.live.remove(&event.call_ref)?;
            return Some(Built::Finished(self.record(
                event.call_ref,
                &call,
                at.max(call.last),
                event.status,
                event.reason,
                false,
            )));
        }
        let call = self.live.get_mut(&event.call_ref)?;
        call.last = call.last.max(at);
        match event.status {
            CallStatus::Ringing => {
                call.alerted.get_or_insert(at);
            }
            CallStatus::Answered => {
                if call.answered.is_none() {
                    call.answered = Some(at);
                    call.answered_by = event.device.as_ref().map(|d| d.msisdn.clone());
                }
                call.devices[1] = event.device.clone();
            }
            CallStatus::Held | CallStatus::Resumed => {
                let side = call.side_of(event.device.as_ref());
                let was_held = call.held.iter().any(|h| *h);
                call.held[side as usize] = event.status == CallStatus::Held;
                let is_held = call.held.iter().any(|h| *h);
                match (was_held, is_held) {
                    (false, true) => call.hold_since = Some(at),
                    (true, false) => {
                        if let Some(since) = call.hold_since.take() {
                            call.hold += at.saturating_duration_since(since);
                        }
                    }
                    _ => {}
                }
            }
            CallStatus::Moved => {
                let side = call.side_of(event.device.as_ref());
                let from =
                    std::mem::replace(&mut call.devices[side as usize], event.device.clone());
                call.moves.push(OpenMove {
                    at,
                    side,
                    from,
                    to: event.device.clone(),
                    reason: event.reason,
                });
            }
            CallStatus::Started
            | CallStatus::Completed
            | CallStatus::Unanswered
            | CallStatus::Rejected
            | CallStatus::Failed => unreachable!("handled above"),
        }
        Some(Built::Live(self.snapshot(event.call_ref)))
    }

    /// The row of live call `call_ref`: the record it would be if the core shut down at its last
    /// event.
    fn snapshot(&self, call_ref: CallRef) -> LiveCallRecord {
        let call = &self.live[&call_ref];
        let status = CallStatus::of_end(call.answered.is_some(), ByeReason::ServerShutdown);
        LiveCallRecord {
            record: self.record(
                call_ref,
                call,
                call.last,
                status,
                Some(ByeReason::ServerShutdown),
                true,
            ),
            held: call.hold_since.is_some(),
        }
    }

    fn record(
        &self,
        call_ref: CallRef,
        call: &OpenCall,
        ended: Instant,
        status: CallStatus,
        reason: Option<ByeReason>,
        end_estimated: bool,
    ) -> CallRecord {
        let wall = |at: Instant| to_millis((self.clock)(at));
        let started_at = wall(call.started);
        let answered_at = call.answered.map(wall);
        let ended_at = wall(ended).max(started_at);
        let hold = call.hold
            + call.hold_since.map_or(Duration::ZERO, |since| {
                ended.saturating_duration_since(since)
            });
        let (setup_ms, talk_ms) = match answered_at {
            Some(answered) => (
                ms_between(started_at, answered),
                ms_between(answered, ended_at),
            ),
            None => (0, 0),
        };
        CallRecord {
            call_ref,
            caller: call.caller.clone(),
            callee: call.callee.clone(),
            answered_by: call.answered_by.clone(),
            data: call.data.clone(),
            started_at,
            alerted_at: call.alerted.map(wall),
            answered_at,
            ended_at,
            end_estimated,
            status,
            reason,
            setup_ms,
            talk_ms,
            hold_ms: u64::try_from(hold.as_millis())
                .unwrap_or(u64::MAX)
                .min(talk_ms),
            moves: call
                .moves
                .iter()
                .map(|m| Move {
                    at: wall(m.at),
                    side: m.side,
                    from: m.from.clone(),
                    to: m.to.clone(),
                    reason: m.reason,
                })
                .collect(),
        }
    }
}

impl OpenCall {
    /// The side `device` is on: the side whose current device it is, else the side of its number
    /// (a pull or handover brings another device of the same number), else the callee's.
    fn side_of(&self, device: Option<&Device>) -> Side {
        let Some(device) = device else {
            return Side::Callee;
        };
        if self.devices[0].as_ref() == Some(device) {
            Side::Caller
        } else if self.devices[1].as_ref() == Some(device) {
            Side::Callee
        } else if device.msisdn == self.caller && device.msisdn != self.callee {
            Side::Caller
        } else {
            Side::Callee
        }
    }
}

/// Whole milliseconds from `from` to `to` (0 if `to` is earlier).
fn ms_between(from: SystemTime, to: SystemTime) -> u64 {
    u64::try_from(unix_ms(to).saturating_sub(unix_ms(from))).unwrap_or(0)
}

/// Closes a call that was live when the process died (PROTOCOL.md section 9): reason
/// `SERVER_SHUTDOWN`, `COMPLETED` if it had been answered else `FAILED`, `end_estimated`, and
/// ended at the later of its last event and `alive_at` (the last time the core was known to be
/// running with it); talk and hold time run to that end.
pub fn close_abandoned(live: LiveCallRecord, alive_at: Option<SystemTime>) -> CallRecord {
    let mut record = live.record;
    let ended_at = match alive_at {
        Some(alive) if alive > record.ended_at => to_millis(alive),
        _ => record.ended_at,
    };
    let extra = ms_between(record.ended_at, ended_at);
    record.ended_at = ended_at;
    record.end_estimated = true;
    record.reason = Some(ByeReason::ServerShutdown);
    record.status = CallStatus::of_end(record.answered_at.is_some(), ByeReason::ServerShutdown);
    if let Some(answered) = record.answered_at {
        record.talk_ms = ms_between(answered, ended_at);
        if live.held {
            record.hold_ms = (record.hold_ms + extra).min(record.talk_ms);
        }
    }
    record
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{CallContext, CallId, DeviceKind, TerminalId};
    use std::time::UNIX_EPOCH;

    const A: &str = "+4799990001";
    const B: &str = "+4799990002";

    /// A hand-driven call: events at `base + ms`.
    struct Script {
        base: Instant,
        call_ref: CallRef,
        sequence: u64,
        context: CallContext,
    }

    fn wall0() -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(1_764_660_000_000)
    }

    fn builder(base: Instant) -> RecordBuilder {
        RecordBuilder::new(move |at: Instant| {
            wall0() + at.saturating_duration_since(base) - base.saturating_duration_since(at)
        })
    }

    fn m(s: &str) -> Msisdn {
        Msisdn::parse(s).unwrap()
    }

    fn terminal(msisdn: &str, id: u64) -> Device {
        Device {
            kind: DeviceKind::Pipe,
            terminal: Some(TerminalId(id)),
            msisdn: m(msisdn),
        }
    }

    fn phone(msisdn: &str) -> Device {
        Device {
            kind: DeviceKind::Phone,
            terminal: None,
            msisdn: m(msisdn),
        }
    }

    impl Script {
        fn new() -> Self {
            Script {
                base: Instant::now(),
                call_ref: CallRef(uuid::Uuid::new_v4()),
                sequence: 0,
                context: CallContext::default(),
            }
        }

        fn event(
            &mut self,
            ms: u64,
            status: CallStatus,
            device: Option<Device>,
            reason: Option<ByeReason>,
        ) -> CallEvent {
            self.sequence += 1;
            CallEvent {
                sequence: self.sequence,
                at: self.base + Duration::from_millis(ms),
                call_ref: self.call_ref,
                caller: m(A),
                callee: m(B),
                caller_call_id: CallId::random(),
                callee_call_id: CallId::random(),
                status,
                device,
                reason,
                context: self.context.clone(),
                group_answer: None,
            }
        }
    }

    fn at(ms: u64) -> SystemTime {
        wall0() + Duration::from_millis(ms)
    }

    /// Folds every event; the last must finish the call.
    fn run(script: &Script, events: &[CallEvent]) -> CallRecord {
        let mut b = builder(script.base);
        let mut last = None;
        for e in events {
            last = b.fold(e);
        }
        assert_eq!(b.live_calls(), 0, "the call is no longer live");
        match last {
            Some(Built::Finished(record)) => record,
            other => panic!("expected a finished record, got {other:?}"),
        }
    }

    #[test]
    fn answered_call_has_its_times_answerer_and_context() {
        let mut s = Script::new();
        s.context = CallContext::parse([("contact_ref".to_owned(), "T-4711".to_owned())]).unwrap();
        let events = [
            s.event(0, CallStatus::Started, Some(terminal(A, 1)), None),
            s.event(120, CallStatus::Ringing, Some(terminal(B, 2)), None),
            s.event(150, CallStatus::Ringing, Some(terminal(B, 3)), None),
            s.event(2_500, CallStatus::Answered, Some(terminal(B, 3)), None),
            s.event(
                62_500,
                CallStatus::Completed,
                None,
                Some(ByeReason::NormalClearing),
            ),
        ];
        let r = run(&s, &events);
        assert_eq!(r.call_ref, s.call_ref);
        assert_eq!((r.caller.as_str(), r.callee.as_str()), (A, B));
        assert_eq!(r.answered_by, Some(m(B)));
        assert_eq!(
            r.data.get("contact_ref").map(String::as_str),
            Some("T-4711")
        );
        assert_eq!(r.started_at, at(0));
        assert_eq!(r.alerted_at, Some(at(120)), "the first alert");
        assert_eq!(r.answered_at, Some(at(2_500)));
        assert_eq!(r.ended_at, at(62_500));
        assert!(!r.end_estimated);
        assert_eq!(r.status, CallStatus::Completed);
        assert_eq!(r.reason, Some(ByeReason::NormalClearing));
        assert_eq!((r.setup_ms, r.talk_ms, r.hold_ms), (2_500, 60_000, 0));
        assert!(r.moves.is_empty());
    }

    #[test]
    fn every_unanswered_end_keeps_the_switchs_status_and_reason() {
        for (status, reason, alerted) in [
            (CallStatus::Unanswered, ByeReason::NoAnswer, true),
            (CallStatus::Unanswered, ByeReason::Cancelled, true),
            (CallStatus::Rejected, ByeReason::Declined, true),
            (CallStatus::Rejected, ByeReason::Busy, false),
            (CallStatus::Failed, ByeReason::Unavailable, false),
            (CallStatus::Failed, ByeReason::PeerGone, true),
            (CallStatus::Failed, ByeReason::EndedByOperator, true),
            (CallStatus::Failed, ByeReason::ServerShutdown, true),
        ] {
            let mut s = Script::new();
            let mut events = vec![s.event(0, CallStatus::Started, Some(terminal(A, 1)), None)];
            if alerted {
                events.push(s.event(40, CallStatus::Ringing, Some(phone(B)), None));
            }
            events.push(s.event(60_000, status, None, Some(reason)));
            let r = run(&s, &events);
            assert_eq!((r.status, r.reason), (status, Some(reason)));
            assert_eq!(r.alerted_at, alerted.then(|| at(40)));
            assert_eq!((r.answered_at, r.answered_by.clone()), (None, None));
            assert_eq!((r.setup_ms, r.talk_ms, r.hold_ms), (0, 0, 0), "{reason:?}");
            assert_eq!(r.ended_at, at(60_000));
            assert!(!r.end_estimated);
        }
    }

    #[test]
    fn pull_moves_the_callee_from_its_answering_terminal() {
        let mut s = Script::new();
        let events = [
            s.event(0, CallStatus::Started, Some(terminal(A, 1)), None),
            s.event(1_000, CallStatus::Answered, Some(terminal(B, 2)), None),
            s.event(
                5_000,
                CallStatus::Moved,
                Some(terminal(B, 3)),
                Some(ByeReason::Pulled),
            ),
            s.event(
                7_000,
                CallStatus::Moved,
                Some(terminal(A, 4)),
                Some(ByeReason::Pulled),
            ),
            s.event(
                9_000,
                CallStatus::Completed,
                None,
                Some(ByeReason::NormalClearing),
            ),
        ];
        let r = run(&s, &events);
        assert_eq!(
            r.moves,
            vec![
                Move {
                    at: at(5_000),
                    side: Side::Callee,
                    from: Some(terminal(B, 2)),
                    to: Some(terminal(B, 3)),
                    reason: Some(ByeReason::Pulled),
                },
                Move {
                    at: at(7_000),
                    side: Side::Caller,
                    from: Some(terminal(A, 1)),
                    to: Some(terminal(A, 4)),
                    reason: Some(ByeReason::Pulled),
                },
            ]
        );
        assert_eq!(r.answered_by, Some(m(B)));
        assert_eq!(r.talk_ms, 8_000);
    }

    #[test]
    fn handover_then_pull_back_chains_the_devices() {
        let mut s = Script::new();
        let events = [
            s.event(0, CallStatus::Started, Some(terminal(A, 1)), None),
            s.event(1_000, CallStatus::Answered, Some(terminal(B, 2)), None),
            s.event(
                2_000,
                CallStatus::Moved,
                Some(phone(A)),
                Some(ByeReason::HandedToPhone),
            ),
            s.event(
                3_000,
                CallStatus::Moved,
                Some(terminal(A, 5)),
                Some(ByeReason::Pulled),
            ),
            s.event(
                4_000,
                CallStatus::Completed,
                None,
                Some(ByeReason::NormalClearing),
            ),
        ];
        let r = run(&s, &events);
        let hops: Vec<_> = r
            .moves
            .iter()
            .map(|mv| (mv.side, mv.from.clone(), mv.to.clone(), mv.reason))
            .collect();
        assert_eq!(
            hops,
            vec![
                (
                    Side::Caller,
                    Some(terminal(A, 1)),
                    Some(phone(A)),
                    Some(ByeReason::HandedToPhone)
                ),
                (
                    Side::Caller,
                    Some(phone(A)),
                    Some(terminal(A, 5)),
                    Some(ByeReason::Pulled)
                ),
            ]
        );
    }

    #[test]
    fn hold_time_counts_while_any_side_is_held_and_runs_to_the_end() {
        let mut s = Script::new();
        let events = [
            s.event(0, CallStatus::Started, Some(terminal(A, 1)), None),
            s.event(1_000, CallStatus::Answered, Some(terminal(B, 2)), None),
            // A holds 2 s.
            s.event(2_000, CallStatus::Held, Some(terminal(A, 1)), None),
            s.event(4_000, CallStatus::Resumed, Some(terminal(A, 1)), None),
            // B holds, then A too; A resumes, B still holds: one hold from 5 s to 8 s.
            s.event(5_000, CallStatus::Held, Some(terminal(B, 2)), None),
            s.event(6_000, CallStatus::Held, Some(terminal(A, 1)), None),
            s.event(7_000, CallStatus::Resumed, Some(terminal(A, 1)), None),
            s.event(8_000, CallStatus::Resumed, Some(terminal(B, 2)), None),
            // Held again until the end.
            s.event(10_000, CallStatus::Held, Some(terminal(B, 2)), None),
            s.event(
                10_500,
                CallStatus::Completed,
                None,
                Some(ByeReason::NormalClearing),
            ),
        ];
        let r = run(&s, &events);
        assert_eq!(r.hold_ms, 2_000 + 3_000 + 500);
        assert_eq!(r.talk_ms, 9_500);
    }

    #[test]
    fn graceful_shutdown_ends_are_recorded_as_the_switch_reports_them() {
        let mut s = Script::new();
        let events = [
            s.event(0, CallStatus::Started, Some(terminal(A, 1)), None),
            s.event(300, CallStatus::Answered, Some(phone(B)), None),
            s.event(
                900,
                CallStatus::Completed,
                None,
                Some(ByeReason::ServerShutdown),
            ),
        ];
        let r = run(&s, &events);
        assert_eq!(r.status, CallStatus::Completed);
        assert_eq!(r.reason, Some(ByeReason::ServerShutdown));
        assert!(!r.end_estimated, "a clean shutdown knows the end");
        assert_eq!(r.answered_by, Some(m(B)), "answered on B's phone");
    }

    #[test]
    fn live_rows_are_the_record_a_crash_would_leave() {
        let mut s = Script::new();
        let mut b = builder(s.base);
        b.fold(&s.event(0, CallStatus::Started, Some(terminal(A, 1)), None));
        let Some(Built::Live(ringing)) =
            b.fold(&s.event(100, CallStatus::Ringing, Some(phone(B)), None))
        else {
            panic!("a live row")
        };
        assert_eq!(ringing.record.status, CallStatus::Failed);
        assert_eq!(ringing.record.reason, Some(ByeReason::ServerShutdown));
        assert!(ringing.record.end_estimated);
        assert_eq!(ringing.record.ended_at, at(100));
        b.fold(&s.event(200, CallStatus::Answered, Some(phone(B)), None));
        let Some(Built::Live(held)) =
            b.fold(&s.event(1_200, CallStatus::Held, Some(terminal(A, 1)), None))
        else {
            panic!("a live row")
        };
        assert_eq!(held.record.status, CallStatus::Completed);
        assert!(held.held);
        assert_eq!(held.record.talk_ms, 1_000);

        // The process dies; the next start knows it was alive 5 s later.
        let closed = close_abandoned(held.clone(), Some(at(6_200)));
        assert_eq!(closed.ended_at, at(6_200));
        assert!(closed.end_estimated);
        assert_eq!(closed.status, CallStatus::Completed);
        assert_eq!(closed.reason, Some(ByeReason::ServerShutdown));
        assert_eq!((closed.talk_ms, closed.hold_ms), (6_000, 5_000));
        // No later sign of life: the last event is the end.
        let closed = close_abandoned(ringing, None);
        assert_eq!(closed.ended_at, at(100));
        assert_eq!(closed.status, CallStatus::Failed);
    }

    #[test]
    fn events_of_unknown_calls_are_ignored() {
        let mut s = Script::new();
        let mut b = builder(s.base);
        assert_eq!(
            b.fold(&s.event(0, CallStatus::Answered, Some(terminal(B, 2)), None)),
            None
        );
        assert_eq!(
            b.fold(&s.event(
                5,
                CallStatus::Completed,
                None,
                Some(ByeReason::NormalClearing)
            )),
            None
        );
        assert_eq!(b.live_calls(), 0);
    }
}
