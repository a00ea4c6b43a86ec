//! PROTOCOL.md 4.6: hand over to the mobile phone.

use crate::harness::*;
use std::time::Duration;
use webterminal_core::core::*;

/// A (MultiPipe `a`) in an established call with B (MultiPipe `b`), phones on, the callee's phone
/// fork already released. Returns (a, b, a_id, b_id).
fn call_with_phones(net: &mut Net) -> (TerminalId, TerminalId, CallId, CallId) {
    let a = net.multi(A);
    let b = net.multi(B);
    let (a_id, b_id) = net.connect(a, B, b);
    let ring = net.expect_ring(B, A, "chromium-offer");
    net.expect_release(ring, ByeReason::AnsweredElsewhere);
    (a, b, a_id, b_id)
}

/// `b` asks to hand over; returns the phone leg of the HandOver command.
fn to_phone(net: &mut Net, b: TerminalId, b_id: CallId) -> PhoneLegId {
    net.ok(b, Some(b_id), RequestBody::ToPhone);
    match net.next_phone() {
        PhoneCommand::HandOver {
            leg,
            msisdn: m,
            peer,
        } => {
            assert_eq!(m, msisdn(B), "the msisdn's own phone is brought up");
            assert_eq!(peer, msisdn(A));
            leg
        }
        other => panic!("expected HandOver, got {other:?}"),
    }
}

/// `b` hands the call over; the phone comes up with aiortc-offer, `a` answers with aiortc-answer,
/// and the phone gets that answer (its command consumed). Returns the phone leg.
fn handed_over(
    net: &mut Net,
    a: TerminalId,
    a_id: CallId,
    b: TerminalId,
    b_id: CallId,
) -> PhoneLegId {
    let leg = to_phone(net, b, b_id);
    net.phone_event(PhoneEvent::HandOverReady {
        leg,
        sdp: sdp("aiortc-offer"),
    });
    net.expect_offer(a);
    net.ok(a, Some(a_id), answer("aiortc-answer"));
    net.next_phone();
    leg
}

#[test]
fn to_phone_asks_the_phone_network_to_bring_up_the_numbers_phone() {
    let mut net = Net::with_phones();
    let (a, b, _, b_id) = call_with_phones(&mut net);
    to_phone(&mut net, b, b_id);
    // Nothing reaches the far side until the phone is up.
    net.silent(a);
    net.silent(b);
}

#[test]
fn phone_ready_re_offers_the_far_side_with_the_phones_sdp() {
    let mut net = Net::with_phones();
    let (a, b, a_id, b_id) = call_with_phones(&mut net);
    let leg = to_phone(&mut net, b, b_id);
    net.phone_event(PhoneEvent::HandOverReady {
        leg,
        sdp: sdp("aiortc-offer"),
    });
    net.expect_offer_of(a, a_id, B, "aiortc-offer");
    net.silent(b);
}

#[test]
fn far_sides_answer_goes_to_the_phone_and_the_terminal_gets_in_call_not_bye() {
    let mut net = Net::with_phones();
    let (a, b, a_id, b_id) = call_with_phones(&mut net);
    let leg = to_phone(&mut net, b, b_id);
    net.phone_event(PhoneEvent::HandOverReady {
        leg,
        sdp: sdp("aiortc-offer"),
    });
    net.expect_offer(a);
    net.ok(a, Some(a_id), answer("aiortc-answer"));
    match net.next_phone() {
        PhoneCommand::Answer { leg: l, sdp: s } => {
            assert_eq!(l, leg);
            assert_eq!(s.as_str(), fixture("aiortc-answer"));
        }
        other => panic!("expected PhoneCommand::Answer, got {other:?}"),
    }
    net.expect_in_call(b, b_id, A);
    net.silent(b);
    net.silent(a);
    net.phone_silent();
}

#[test]
fn handed_over_terminal_gets_idle_when_the_call_ends() {
    let mut net = Net::with_phones();
    let (a, b, a_id, b_id) = call_with_phones(&mut net);
    let leg = handed_over(&mut net, a, a_id, b, b_id);
    net.expect_in_call(b, b_id, A);
    net.phone_event(PhoneEvent::HungUp { leg });
    assert_eq!(net.expect_bye(a, ByeReason::NormalClearing), a_id);
    net.expect(b, Some(b_id), NoticeBody::Idle);
    net.silent(b);
}

#[test]
fn far_side_ending_a_handed_over_call_releases_the_phone() {
    let mut net = Net::with_phones();
    let (a, b, a_id, b_id) = call_with_phones(&mut net);
    let leg = handed_over(&mut net, a, a_id, b, b_id);
    net.ok(a, Some(a_id), RequestBody::Bye);
    net.expect_release(leg, ByeReason::NormalClearing);
    net.expect_in_call(b, b_id, A);
    net.expect(b, Some(b_id), NoticeBody::Idle);
}

#[test]
fn pipe_hands_over_and_gets_in_call_then_idle() {
    let mut net = Net::with_phones();
    let a = net.multi(A);
    let b = net.idle_pipe(B);
    let (a_id, b_id) = net.connect(a, B, b);
    net.phone.clear();
    net.ok(b, None, RequestBody::ToPhone);
    let leg = match net.next_phone() {
        PhoneCommand::HandOver { leg, .. } => leg,
        other => panic!("{other:?}"),
    };
    net.phone_event(PhoneEvent::HandOverReady {
        leg,
        sdp: sdp("aiortc-offer"),
    });
    net.expect_offer_of(a, a_id, B, "aiortc-offer");
    net.ok(a, Some(a_id), answer("aiortc-answer"));
    net.expect_in_call(b, b_id, A);
    net.ok(a, Some(a_id), RequestBody::Bye);
    net.expect(b, None, NoticeBody::Idle);
}

#[test]
fn handover_failure_gives_error_unknown_and_the_call_stays() {
    let mut net = Net::with_phones();
    let (a, b, a_id, b_id) = call_with_phones(&mut net);
    let leg = to_phone(&mut net, b, b_id);
    net.phone_event(PhoneEvent::HandOverFailed {
        leg,
        message: "the phone is switched off".into(),
    });
    net.expect_error(b, b_id, ErrorCode::Unknown);
    net.silent(a);
    assert_eq!(net.switch.call_count(), 1);
    // b is still the active leg.
    net.ok(b, Some(b_id), reoffer("chromium-hold-offer"));
    net.expect_offer_of(a, a_id, B, "chromium-hold-offer");
}

#[test]
fn handover_phone_unreachable_gives_error_unknown_and_the_call_stays() {
    let mut net = Net::with_phones();
    let (a, b, a_id, b_id) = call_with_phones(&mut net);
    let leg = to_phone(&mut net, b, b_id);
    net.phone_event(PhoneEvent::Rejected {
        leg,
        reason: PhoneRejection::Unreachable,
    });
    net.expect_error(b, b_id, ErrorCode::Unknown);
    net.silent(a);
    net.ok(b, Some(b_id), RequestBody::Bye);
    assert_eq!(net.expect_bye(a, ByeReason::NormalClearing), a_id);
}

#[test]
fn to_phone_with_the_phone_network_off_is_error_unknown() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.multi(B);
    let (_, b_id) = net.connect(a, B, b);
    let err = net
        .send(b, Some(b_id), RequestBody::ToPhone)
        .expect_err("no phone network");
    assert_eq!(err.code, ErrorCode::Unknown);
    assert!(!err.message.is_empty());
    net.silent(a);
    assert_eq!(net.switch.call_count(), 1);
}

#[test]
fn to_phone_from_an_observer_is_not_incall() {
    let mut net = Net::with_phones();
    let (_, _, _, b_id) = call_with_phones(&mut net);
    let b2 = net.multi(B);
    assert_eq!(
        net.refused(b2, Some(b_id), RequestBody::ToPhone),
        ErrorCode::NotInCall
    );
    net.phone_silent();
}

#[test]
fn to_phone_from_a_ringing_fork_is_not_incall() {
    let mut net = Net::with_phones();
    let a = net.multi(A);
    let b = net.multi(B);
    net.call(a, B, "chromium-offer");
    let b_id = net.expect_offer(b);
    net.next_phone();
    assert_eq!(
        net.refused(b, Some(b_id), RequestBody::ToPhone),
        ErrorCode::NotInCall
    );
    net.phone_silent();
}

#[test]
fn handover_unanswered_by_the_far_side_gives_error_unknown_and_releases_the_phone() {
    let mut net = Net::with_phones();
    let (a, b, a_id, b_id) = call_with_phones(&mut net);
    let leg = to_phone(&mut net, b, b_id);
    net.phone_event(PhoneEvent::HandOverReady {
        leg,
        sdp: sdp("aiortc-offer"),
    });
    net.expect_offer(a);
    net.advance(Duration::from_secs(30));
    net.expect_error(b, b_id, ErrorCode::Unknown);
    net.expect_release(leg, ByeReason::NegotiationFailed);
    // The far side's late answer fits nothing.
    assert_eq!(
        net.refused(a, Some(a_id), answer("aiortc-answer")),
        ErrorCode::NotInCall
    );
    net.phone_silent();
}

#[test]
fn to_phone_while_a_re_offer_is_pending_gets_try_again() {
    let mut net = Net::with_phones();
    let (a, b, a_id, b_id) = call_with_phones(&mut net);
    net.ok(a, Some(a_id), reoffer("chromium-hold-offer"));
    net.expect_offer(b);
    assert_eq!(
        net.refused(b, Some(b_id), RequestBody::ToPhone),
        ErrorCode::TryAgain
    );
    net.phone_silent();
}

#[test]
fn far_side_cannot_answer_before_the_phone_is_up() {
    let mut net = Net::with_phones();
    let (a, b, a_id, b_id) = call_with_phones(&mut net);
    to_phone(&mut net, b, b_id);
    assert_eq!(
        net.refused(a, Some(a_id), answer("aiortc-answer")),
        ErrorCode::NotInCall
    );
}

#[test]
fn terminal_pulls_a_handed_over_call_back_from_the_phone() {
    let mut net = Net::with_phones();
    let (a, b, a_id, b_id) = call_with_phones(&mut net);
    let leg = handed_over(&mut net, a, a_id, b, b_id);
    net.expect_in_call(b, b_id, A);
    net.ok(b, Some(b_id), reoffer("chromium-offer"));
    net.expect_offer_of(a, a_id, B, "chromium-offer");
    net.ok(a, Some(a_id), answer("chromium-answer"));
    net.expect_answer(b, b_id, "chromium-answer");
    net.expect_release(leg, ByeReason::Pulled);
}

#[test]
fn the_sides_other_observers_get_in_call_again_when_the_call_moves_to_the_phone() {
    let mut net = Net::with_phones();
    let (a, b, a_id, b_id) = call_with_phones(&mut net);
    let b_pipe = net.pipe(B);
    net.expect_in_call(b_pipe, b_id, A);
    let a_pipe = net.pipe(A);
    net.expect_in_call(a_pipe, a_id, B);
    let leg = to_phone(&mut net, b, b_id);
    net.phone_event(PhoneEvent::HandOverReady {
        leg,
        sdp: sdp("aiortc-offer"),
    });
    net.expect_offer(a);
    net.ok(a, Some(a_id), answer("aiortc-answer"));
    net.expect_in_call(b_pipe, b_id, A);
    // A's leg did not move: A's observers are told nothing.
    net.silent(a_pipe);
}

#[test]
fn call_handed_over_to_phones_on_both_sides_outlives_the_terminal() {
    // Choice: once a call runs phone to phone, it no longer depends on any terminal; closing the
    // browser that handed it over must not cut the subscribers off. It ends when a phone hangs up
    // (or at shutdown). Section 6's "when every terminal has gone, the core holds no call" is
    // read as: no call that a terminal carries, or rings, or waits on.
    let mut net = Net::with_phones();
    let a = net.multi(A);
    let a_id = net.call(a, B, "chromium-offer").unwrap();
    let b_phone = net.expect_ring(B, A, "chromium-offer");
    net.phone_event(PhoneEvent::Answered {
        leg: b_phone,
        sdp: sdp("aiortc-answer"),
    });
    net.expect_answer(a, a_id, "aiortc-answer");
    net.ok(a, Some(a_id), RequestBody::ToPhone);
    let a_phone = match net.next_phone() {
        PhoneCommand::HandOver { leg, .. } => leg,
        other => panic!("{other:?}"),
    };
    net.phone_event(PhoneEvent::HandOverReady {
        leg: a_phone,
        sdp: sdp("chromium-offer"),
    });
    assert!(matches!(
        net.next_phone(),
        PhoneCommand::Offer { leg, .. } if leg == b_phone
    ));
    net.phone_event(PhoneEvent::Answered {
        leg: b_phone,
        sdp: sdp("chromium-answer"),
    });
    assert!(matches!(
        net.next_phone(),
        PhoneCommand::Answer { leg, .. } if leg == a_phone
    ));
    net.expect_in_call(a, a_id, B);
    net.gone(a);
    net.phone_silent();
    assert_eq!(net.switch.call_count(), 1);
    net.phone_event(PhoneEvent::HungUp { leg: b_phone });
    net.expect_release(a_phone, ByeReason::NormalClearing);
    assert_eq!(net.switch.call_count(), 0);
}
