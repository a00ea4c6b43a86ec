//! PROTOCOL.md section 8: the call events the switch emits, scenario by scenario of section 4. Every
//! call's events follow `STARTED → (RINGING) → (ANSWERED → (HELD/RESUMED/MOVED)*) →` exactly one
//! final status; the harness checks that for every call of every test when it is dropped.

use crate::harness::*;
use std::time::Duration;
use webterminal_core::core::*;

use ByeReason as R;
use CallStatus as S;

#[test]
fn an_answered_call_started_rang_was_answered_and_completed() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.multi(B);
    let a_id = net.call(a, B, "chromium-offer").unwrap();
    let b_id = net.expect_offer(b);
    net.ok(b, Some(b_id), RequestBody::Ringing);
    net.advance(Duration::from_millis(1500));
    net.ok(b, Some(b_id), answer("chromium-answer"));
    net.advance(Duration::from_secs(10));
    net.ok(a, Some(a_id), RequestBody::Bye);
    let events = net.take_full_events();
    let statuses: Vec<_> = events.iter().map(|e| (e.status, e.reason)).collect();
    assert_eq!(
        statuses,
        [
            (S::Started, None),
            (S::Ringing, None),
            (S::Answered, None),
            (S::Completed, Some(R::NormalClearing)),
        ]
    );
    let call_ref = events[0].call_ref;
    assert!(events.iter().all(|e| e.call_ref == call_ref));
    assert_eq!(
        events.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    for e in &events {
        assert_eq!((e.caller.as_str(), e.callee.as_str()), (A, B));
        assert_eq!((e.caller_call_id, e.callee_call_id), (a_id, b_id));
    }
    assert_eq!(events[1].at - events[0].at, Duration::ZERO);
    assert_eq!(events[2].at - events[0].at, Duration::from_millis(1500));
    let caller = events[0].device.as_ref().unwrap();
    assert_eq!(
        (caller.kind, caller.terminal, caller.msisdn.as_str()),
        (DeviceKind::MultiPipe, Some(a), A)
    );
    let answerer = events[2].device.as_ref().unwrap();
    assert_eq!(
        (answerer.kind, answerer.terminal),
        (DeviceKind::MultiPipe, Some(b))
    );
    assert_eq!(events[3].device, None);
}

#[test]
fn every_unanswered_rejected_and_failed_end_has_its_status_and_reason() {
    // The caller cancels.
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.multi(B);
    let a_id = net.call(a, B, "chromium-offer").unwrap();
    net.expect_offer(b);
    net.ok(a, Some(a_id), RequestBody::Bye);
    net.take(b);
    assert_eq!(
        net.take_events(),
        [(S::Started, None), (S::Unanswered, Some(R::Cancelled))]
    );
    // Nobody answers.
    net.call(a, B, "chromium-offer");
    net.expect_offer(b);
    net.advance(Duration::from_secs(60));
    net.take(a);
    net.take(b);
    assert_eq!(
        net.take_events(),
        [(S::Started, None), (S::Unanswered, Some(R::NoAnswer))]
    );
    // B declines.
    net.call(a, B, "chromium-offer");
    let b_id = net.expect_offer(b);
    net.ok(b, Some(b_id), RequestBody::Bye);
    net.take(a);
    assert_eq!(
        net.take_events(),
        [(S::Started, None), (S::Rejected, Some(R::Declined))]
    );
    // C has no device.
    net.call(a, C, "chromium-offer");
    net.take(a);
    assert_eq!(
        net.take_events(),
        [(S::Started, None), (S::Failed, Some(R::Unavailable))]
    );
    // B's only terminal is busy.
    let b_pipe_net = &mut Net::new();
    let a2 = b_pipe_net.multi(A);
    let b2 = b_pipe_net.idle_pipe(B);
    let c2 = b_pipe_net.multi(C);
    b_pipe_net.connect(b2, C, c2);
    b_pipe_net.take_events();
    b_pipe_net.call(a2, B, "chromium-offer");
    assert_eq!(
        b_pipe_net.take_events(),
        [(S::Started, None), (S::Rejected, Some(R::Busy))]
    );
    // B's last device goes away while it rings.
    net.call(a, B, "chromium-offer");
    net.expect_offer(b);
    net.gone(b);
    assert_eq!(
        net.take_events(),
        [(S::Started, None), (S::Failed, Some(R::Unavailable))]
    );
}

#[test]
fn a_pull_is_a_move_to_the_puller() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.multi(B);
    let b2 = net.multi(B);
    let (_, b_id) = net.connect(a, B, b);
    net.take(b2);
    net.take_events();
    net.ok(b2, Some(b_id), reoffer("aiortc-offer"));
    let a_id = net.expect_offer(a);
    net.ok(a, Some(a_id), answer("aiortc-answer"));
    let events = net.take_full_events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        (events[0].status, events[0].reason),
        (S::Moved, Some(R::Pulled))
    );
    assert_eq!(events[0].device.as_ref().unwrap().terminal, Some(b2));
}

#[test]
fn a_handover_is_a_move_to_the_phone() {
    let mut net = Net::with_phones();
    let a = net.multi(A);
    let b = net.multi(B);
    let (a_id, b_id) = net.connect(a, B, b);
    net.next_phone();
    net.next_phone();
    net.take_events();
    net.ok(b, Some(b_id), RequestBody::ToPhone);
    let PhoneCommand::HandOver { leg, .. } = net.next_phone() else {
        panic!("expected HandOver");
    };
    net.phone_event(PhoneEvent::HandOverReady {
        leg,
        sdp: sdp("aiortc-offer"),
    });
    net.expect_offer(a);
    net.ok(a, Some(a_id), answer("aiortc-answer"));
    let events = net.take_full_events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        (events[0].status, events[0].reason),
        (S::Moved, Some(R::HandedToPhone))
    );
    let phone = events[0].device.as_ref().unwrap();
    assert_eq!((phone.kind, phone.msisdn.as_str()), (DeviceKind::Phone, B));
    net.phone_event(PhoneEvent::HungUp { leg });
    assert_eq!(net.take_events(), [(S::Completed, Some(R::NormalClearing))]);
}

#[test]
fn a_reconnect_within_the_grace_is_a_move_and_a_grace_run_out_completes_peer_gone() {
    let mut net = Net::with(SwitchConfig {
        reconnect_grace: Duration::from_secs(15),
        phone_network: false,
        ..Net::config()
    });
    let a = net.multi(A);
    let b = net.multi(B);
    let (_, b_id) = net.connect(a, B, b);
    net.take_events();
    net.gone(b);
    assert_eq!(net.take_events(), [], "going away is not an event yet");
    let b2 = net.multi(B);
    net.expect_in_call(b2, b_id, A);
    net.ok(b2, Some(b_id), reoffer("chromium-offer"));
    let a_id = net.expect_offer(a);
    net.ok(a, Some(a_id), answer("chromium-answer"));
    assert_eq!(net.take_events(), [(S::Moved, Some(R::Pulled))]);
    net.gone(b2);
    net.advance(Duration::from_secs(15));
    assert_eq!(net.take_events(), [(S::Completed, Some(R::PeerGone))]);
}

#[test]
fn hold_and_resume_are_read_from_the_re_offers_direction() {
    for (hold_offer, hold_answer) in [
        ("chromium-hold-offer", "chromium-hold-answer"),
        ("aiortc-hold-offer", "aiortc-hold-answer"),
    ] {
        let mut net = Net::new();
        let a = net.multi(A);
        let b = net.multi(B);
        let (a_id, b_id) = net.connect(a, B, b);
        net.take_events();
        net.ok(a, Some(a_id), reoffer(hold_offer));
        assert_eq!(net.take_events(), [], "{hold_offer}: held once answered");
        net.expect_offer(b);
        net.ok(b, Some(b_id), answer(hold_answer));
        let events = net.take_full_events();
        assert_eq!(events.len(), 1, "{hold_offer}: {events:?}");
        assert_eq!(events[0].status, S::Held);
        assert_eq!(events[0].device.as_ref().unwrap().terminal, Some(a));
        // Holding again changes nothing; an offer with media both ways resumes.
        net.ok(a, Some(a_id), reoffer(hold_offer));
        net.expect_offer(b);
        net.ok(b, Some(b_id), answer(hold_answer));
        assert_eq!(net.take_events(), []);
        net.ok(a, Some(a_id), reoffer("chromium-offer"));
        net.expect_offer(b);
        net.ok(b, Some(b_id), answer("chromium-answer"));
        assert_eq!(net.take_events(), [(S::Resumed, None)]);
        // An unanswered hold re-offer holds nothing.
        net.ok(a, Some(a_id), reoffer(hold_offer));
        net.advance(Duration::from_secs(30));
        assert_eq!(net.take_events(), []);
    }
}

#[test]
fn shutdown_ends_ringing_calls_failed_and_answered_ones_completed() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.multi(B);
    let c = net.multi(C);
    net.connect(a, B, b);
    net.call(a, C, "chromium-offer");
    net.expect_offer(c);
    net.take_events();
    net.shutdown();
    assert_eq!(
        net.take_events(),
        [
            (S::Completed, Some(R::ServerShutdown)),
            (S::Failed, Some(R::ServerShutdown)),
        ]
    );
}

#[test]
fn the_operator_ends_a_call_with_ended_by_operator() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.multi(B);
    let (a_id, b_id) = net.connect(a, B, b);
    let call_ref = net.take_full_events()[0].call_ref;
    assert!(net.end_call(call_ref));
    net.expect_bye(a, R::EndedByOperator);
    net.expect_bye(b, R::EndedByOperator);
    assert_eq!(
        net.take_events(),
        [(S::Completed, Some(R::EndedByOperator))]
    );
    assert!(!net.end_call(call_ref), "no longer live");
    let _ = (a_id, b_id);
    // A ringing call ended by the operator failed.
    net.call(a, B, "chromium-offer");
    net.expect_offer(b);
    let call_ref = net.take_full_events()[0].call_ref;
    assert!(net.end_call(call_ref));
    net.expect_bye(b, R::EndedByOperator);
    assert_eq!(net.take_events(), [(S::Failed, Some(R::EndedByOperator))]);
}

#[test]
fn a_call_from_a_phone_starts_on_the_phone() {
    let mut net = Net::new();
    let b = net.multi(B);
    net.dial(A, B, "aiortc-offer");
    let b_id = net.expect_offer(b);
    net.ok(b, Some(b_id), answer("aiortc-answer"));
    let events = net.take_full_events();
    let device = events[0].device.as_ref().unwrap();
    assert_eq!(
        (device.kind, device.msisdn.as_str()),
        (DeviceKind::Phone, A)
    );
    assert_eq!(events[1].status, S::Answered);
}

#[test]
fn live_calls_and_presence_reflect_the_switch_and_its_last_sequence() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.idle_pipe(B);
    let c = net.multi(C);
    net.connect(a, B, b);
    net.call(a, C, "chromium-offer");
    net.expect_offer(c);
    let calls = net.switch.live_calls(None);
    assert_eq!(calls.len(), 2);
    assert!(
        calls[0].established && !calls[1].established,
        "oldest first"
    );
    assert_eq!(calls[0].callee_leg.as_ref().unwrap().terminal, Some(b));
    assert_eq!(calls[1].callee_leg, None, "not answered yet");
    assert_eq!(net.switch.live_calls(Some(&msisdn(C))).len(), 1);
    assert_eq!(net.switch.last_sequence(), 3, "started, answered, started");
    let presence = net.switch.presence(&msisdn(B));
    assert!(presence.in_call);
    assert_eq!(presence.terminals.len(), 1);
    assert_eq!(presence.terminals[0].kind, PipeKind::Pipe);
    assert_eq!(presence.terminals[0].calls, 1);
    let nobody = net.switch.presence(&msisdn("+4790000009"));
    assert!(nobody.terminals.is_empty() && !nobody.in_call);
}
