//! PROTOCOL.md 4.12: blind transfer. The transferring leg ends with `Bye{TRANSFERRED}`; the side
//! belongs to the new number, vacant, until one of its terminals pulls it (or its phone comes up as
//! in a handover); the far party sees only an ordinary re-offer.

use crate::harness::*;
use std::time::Duration;
use webterminal_core::core::*;

#[test]
fn the_transferring_leg_ends_and_the_new_numbers_terminals_see_the_call() {
    let mut net = Net::new();
    let (a, b, _, b_id) = a_with_b(&mut net);
    let b2 = net.pipe(B);
    net.expect_in_call(b2, b_id, A);
    let c1 = net.multi(C);
    let c2 = net.idle_pipe(C);
    net.ok(b, Some(b_id), transfer(C));
    net.expect_bye(b, ByeReason::Transferred);
    net.expect(b2, None, NoticeBody::Idle);
    let c_id = net.expect_in_call_any(c1, A);
    assert_ne!(c_id, b_id, "C's side has a fresh id");
    net.expect_in_call(c2, c_id, A);
    net.silent(a);
    assert_eq!(net.take_events(), [], "nothing moved yet");
}

#[test]
fn the_first_terminal_to_pull_takes_the_call_and_the_far_party_sees_a_re_offer() {
    let mut net = Net::new();
    let (a, b, a_id, b_id) = a_with_b(&mut net);
    let c1 = net.multi(C);
    let c2 = net.multi(C);
    net.ok(b, Some(b_id), transfer(C));
    net.take(b);
    let c_id = net.expect_in_call_any(c1, A);
    net.expect_in_call(c2, c_id, A);
    net.ok(c1, Some(c_id), reoffer("aiortc-offer"));
    assert_eq!(
        net.refused(c2, Some(c_id), reoffer("chromium-offer")),
        ErrorCode::TryAgain,
        "the first pull wins"
    );
    net.expect_offer_of(a, a_id, C, "aiortc-offer");
    net.ok(a, Some(a_id), answer("chromium-answer"));
    net.expect_answer(c1, c_id, "chromium-answer");
    net.expect_in_call(c2, c_id, A);
    let events = net.take_full_events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        (events[0].status, events[0].reason),
        (CallStatus::Moved, Some(ByeReason::Transferred))
    );
    assert_eq!(events[0].device.as_ref().unwrap().terminal, Some(c1));
    assert_eq!(events[0].callee.as_str(), C, "the side is C's now");
    // The call is C's: its Bye ends it.
    net.ok(c1, Some(c_id), RequestBody::Bye);
    net.expect_bye(a, ByeReason::NormalClearing);
    net.expect(c2, Some(c_id), NoticeBody::Idle);
}

#[test]
fn nobody_taking_the_call_within_the_ring_timeout_ends_it_with_no_answer() {
    let mut net = Net::new();
    let (a, b, a_id, b_id) = a_with_b(&mut net);
    let c = net.multi(C);
    net.ok(b, Some(b_id), transfer(C));
    net.take(b);
    let c_id = net.expect_in_call_any(c, A);
    net.advance(Duration::from_secs(59));
    net.silent(a);
    net.advance(Duration::from_secs(1));
    net.expect(
        a,
        Some(a_id),
        NoticeBody::Bye {
            reason: ByeReason::NoAnswer,
        },
    );
    net.expect(c, Some(c_id), NoticeBody::Idle);
    assert_eq!(
        net.take_events(),
        [(CallStatus::Completed, Some(ByeReason::NoAnswer))]
    );
}

#[test]
fn a_number_with_no_device_is_unavailable_and_one_with_only_busy_terminals_busy() {
    let mut net = Net::new();
    let (a, b, a_id, b_id) = a_with_b(&mut net);
    net.ok(b, Some(b_id), transfer(C));
    net.expect_bye(b, ByeReason::Transferred);
    net.expect(
        a,
        Some(a_id),
        NoticeBody::Bye {
            reason: ByeReason::Unavailable,
        },
    );

    let mut net = Net::new();
    let (a, b, a_id, b_id) = a_with_b(&mut net);
    let c = net.idle_pipe(C);
    let d = net.multi("+4790000004");
    net.connect(c, "+4790000004", d);
    net.ok(b, Some(b_id), transfer(C));
    net.expect_bye(b, ByeReason::Transferred);
    net.expect(
        a,
        Some(a_id),
        NoticeBody::Bye {
            reason: ByeReason::Busy,
        },
    );
}

#[test]
fn a_number_with_no_terminal_takes_the_call_on_its_phone() {
    let mut net = Net::with_phones();
    let a = net.multi(A);
    let b = net.multi(B);
    let (a_id, b_id) = net.connect(a, B, b);
    net.next_phone();
    net.next_phone();
    net.take_events();
    net.ok(b, Some(b_id), transfer(C));
    net.expect_bye(b, ByeReason::Transferred);
    let phone = match net.next_phone() {
        PhoneCommand::HandOver {
            leg,
            msisdn: m,
            peer,
        } => {
            assert_eq!((m.as_str(), peer.as_str()), (C, A));
            leg
        }
        other => panic!("expected C's phone brought up, got {other:?}"),
    };
    net.phone_event(PhoneEvent::HandOverReady {
        leg: phone,
        sdp: sdp("aiortc-offer"),
    });
    net.expect_offer_of(a, a_id, C, "aiortc-offer");
    net.ok(a, Some(a_id), answer("aiortc-answer"));
    net.expect_phone_answer(phone, "aiortc-answer");
    assert_eq!(
        net.take_events(),
        [(CallStatus::Moved, Some(ByeReason::Transferred))]
    );
    net.ok(a, Some(a_id), RequestBody::Bye);
    net.expect_release(phone, ByeReason::NormalClearing);
}

#[test]
fn the_new_numbers_phone_failing_ends_the_call_unavailable() {
    let mut net = Net::with_phones();
    let a = net.multi(A);
    let b = net.multi(B);
    let (a_id, b_id) = net.connect(a, B, b);
    net.next_phone();
    net.next_phone();
    net.ok(b, Some(b_id), transfer(C));
    net.take(b);
    let PhoneCommand::HandOver { leg, .. } = net.next_phone() else {
        panic!("expected HandOver");
    };
    net.phone_event(PhoneEvent::HandOverFailed {
        leg,
        message: "unreachable".into(),
    });
    net.expect_release(leg, ByeReason::Unavailable);
    net.expect(
        a,
        Some(a_id),
        NoticeBody::Bye {
            reason: ByeReason::Unavailable,
        },
    );
    assert_eq!(net.switch.call_count(), 0);
}

#[test]
fn while_the_side_is_vacant_the_far_party_hears_nothing_and_its_re_offers_try_again() {
    let mut net = Net::new();
    let (a, b, a_id, b_id) = a_with_b(&mut net);
    let c = net.multi(C);
    net.ok(b, Some(b_id), transfer(C));
    net.take(b);
    let c_id = net.expect_in_call_any(c, A);
    assert_eq!(
        net.refused(a, Some(a_id), reoffer("chromium-hold-offer")),
        ErrorCode::TryAgain
    );
    // The far party's Bye ends the call for everyone.
    net.ok(a, Some(a_id), RequestBody::Bye);
    net.expect(c, Some(c_id), NoticeBody::Idle);
    assert_eq!(net.switch.call_count(), 0);
}

#[test]
fn transfer_errors_follow_section_6() {
    let mut net = Net::new();
    let (a, b, a_id, b_id) = a_with_b(&mut net);
    let b2 = net.multi(B);
    net.take(b2);
    assert_eq!(
        net.refused(b2, Some(b_id), transfer(C)),
        ErrorCode::NotInCall,
        "an observer may only pull"
    );
    assert_eq!(
        net.refused(b, Some(b_id), transfer(A)),
        ErrorCode::InvalidArgument
    );
    assert_eq!(
        net.refused(b, Some(b_id), transfer(B)),
        ErrorCode::InvalidArgument
    );
    net.ok(a, Some(a_id), reoffer("chromium-hold-offer"));
    assert_eq!(net.refused(b, Some(b_id), transfer(C)), ErrorCode::TryAgain);
    net.expect_offer(b);
    // A ringing call cannot be transferred.
    let c = net.multi(C);
    let d = net.multi("+4790000004");
    net.call(c, "+4790000004", "chromium-offer");
    let d_id = net.expect_offer(d);
    assert_eq!(
        net.refused(d, Some(d_id), transfer(B)),
        ErrorCode::NotInCall
    );
}

#[test]
fn a_call_from_a_phone_is_transferred_and_the_phone_sees_a_re_offer() {
    let mut net = Net::new();
    let b = net.multi(B);
    let caller = net.dial(A, B, "aiortc-offer");
    let b_id = net.expect_offer(b);
    net.ok(b, Some(b_id), answer("aiortc-answer"));
    net.next_phone();
    let c = net.multi(C);
    net.ok(b, Some(b_id), transfer(C));
    net.take(b);
    let c_id = net.expect_in_call_any(c, A);
    net.ok(c, Some(c_id), reoffer("chromium-offer"));
    net.expect_phone_offer(caller, "chromium-offer");
    net.phone_event(PhoneEvent::Answered {
        leg: caller,
        sdp: sdp("aiortc-answer"),
    });
    net.expect_answer(c, c_id, "aiortc-answer");
    net.phone_event(PhoneEvent::HungUp { leg: caller });
    net.expect_bye(c, ByeReason::NormalClearing);
}

#[test]
fn the_far_party_going_away_while_the_targets_phone_comes_up_ends_the_call() {
    // Found by the model-based test: both sides vacant at once, and nobody to wait for.
    let mut net = Net::with(SwitchConfig {
        reconnect_grace: Duration::from_secs(15),
        ..Net::config()
    });
    let b = net.idle_pipe(B);
    let a1 = net.idle_pipe(A);
    net.call(b, A, "chromium-offer");
    net.expect_offer(a1);
    let ring = net.expect_ring(A, B, "chromium-offer");
    net.ok(a1, None, answer("chromium-answer"));
    net.expect_release(ring, ByeReason::AnsweredElsewhere);
    net.ok(a1, None, transfer(C));
    net.expect_bye(a1, ByeReason::Transferred);
    let PhoneCommand::HandOver { leg, .. } = net.next_phone() else {
        panic!("expected C's phone brought up");
    };
    net.gone(b);
    net.expect_release(leg, ByeReason::NegotiationFailed);
    assert_eq!(net.switch.call_count(), 0);
}

#[test]
fn a_transferred_call_transferred_on_to_the_first_transferor_is_shown_to_it() {
    // Found by the model-based test: B calls A, A transfers B to C (C's phone takes it), then B
    // transfers C to A. A is the target of B's transfer like any other number: its terminals see
    // `InCall{C}` on a fresh id for the side, and pulling it gives A a call with C.
    let mut net = Net::with_phones();
    let b = net.idle_pipe(B);
    let a = net.idle_pipe(A);
    net.call(b, A, "chromium-offer");
    let a_first_id = net.expect_offer(a);
    let a_phone = net.expect_ring(A, B, "chromium-offer");
    net.ok(a, None, answer("chromium-answer"));
    net.expect_release(a_phone, ByeReason::AnsweredElsewhere);
    let b_id = match net.next(b) {
        Notice {
            call_id: Some(id),
            body: NoticeBody::Answer { .. },
        } => id,
        other => panic!("B: expected the Answer, got {other:?}"),
    };

    // A transfers B to C, who has no terminal: C's phone comes up and B answers its re-offer.
    net.ok(a, None, transfer(C));
    net.expect(
        a,
        Some(a_first_id),
        NoticeBody::Bye {
            reason: ByeReason::Transferred,
        },
    );
    let c_phone = match net.next_phone() {
        PhoneCommand::HandOver { leg, msisdn, peer } => {
            assert_eq!((msisdn.as_str(), peer.as_str()), (C, B));
            leg
        }
        other => panic!("expected C's phone brought up, got {other:?}"),
    };
    net.phone_event(PhoneEvent::HandOverReady {
        leg: c_phone,
        sdp: sdp("aiortc-offer"),
    });
    net.expect_offer_of(b, b_id, C, "aiortc-offer");
    net.ok(b, None, answer("aiortc-answer"));
    net.expect_phone_answer(c_phone, "aiortc-answer");
    net.silent(a);

    // B transfers its far party, C, to A: A's Pipe is shown the call with C, under a fresh id.
    net.ok(b, None, transfer(A));
    net.expect(
        b,
        Some(b_id),
        NoticeBody::Bye {
            reason: ByeReason::Transferred,
        },
    );
    let a_id = net.expect_in_call_any(a, C);
    assert_ne!(a_id, a_first_id, "A's side of this call has a fresh id");
    assert_ne!(a_id, b_id, "A never learns B's id");
    net.phone_silent();

    // A pulls it: C's phone sees an ordinary re-offer, and the call is A's with C.
    net.ok(a, None, reoffer("chromium-offer"));
    net.expect_phone_offer(c_phone, "chromium-offer");
    net.phone_event(PhoneEvent::Answered {
        leg: c_phone,
        sdp: sdp("aiortc-answer"),
    });
    net.expect_answer(a, a_id, "aiortc-answer");
    let events = net.take_full_events();
    let last = events.last().expect("a MOVED event");
    assert_eq!(
        (last.status, last.reason),
        (CallStatus::Moved, Some(ByeReason::Transferred))
    );
    assert_eq!(last.device.as_ref().unwrap().terminal, Some(a));
    let sides = [last.caller.as_str(), last.callee.as_str()];
    assert_eq!(sides, [A, C], "the call is between A and C now");
    net.ok(a, None, RequestBody::Bye);
    net.expect_release(c_phone, ByeReason::NormalClearing);
    net.silent(b);
    assert_eq!(net.switch.call_count(), 0);
}
