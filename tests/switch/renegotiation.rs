//! PROTOCOL.md 4.7: renegotiation (hold, ICE restart, new media) in both directions, and its
//! timeout.

use crate::harness::*;
use std::time::Duration;
use webterminal_core::core::*;

#[test]
fn callers_re_offer_reaches_the_callee_with_the_callers_number_and_the_callees_id() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.multi(B);
    let (a_id, b_id) = net.connect(a, B, b);
    net.ok(a, Some(a_id), reoffer("chromium-hold-offer"));
    net.expect_offer_of(b, b_id, A, "chromium-hold-offer");
    net.silent(a);
}

#[test]
fn callees_answer_to_a_re_offer_is_relayed_back_with_the_callers_id() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.multi(B);
    let (a_id, b_id) = net.connect(a, B, b);
    net.ok(a, Some(a_id), reoffer("chromium-hold-offer"));
    net.expect_offer(b);
    net.ok(b, Some(b_id), answer("chromium-hold-answer"));
    net.expect_answer(a, a_id, "chromium-hold-answer");
    net.silent(b);
}

#[test]
fn callees_re_offer_reaches_the_caller_with_the_callees_number_and_the_callers_id() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.multi(B);
    let (a_id, b_id) = net.connect(a, B, b);
    net.ok(b, Some(b_id), reoffer("chromium-icerestart-offer"));
    net.expect_offer_of(a, a_id, B, "chromium-icerestart-offer");
    net.ok(a, Some(a_id), answer("chromium-hold-answer"));
    net.expect_answer(b, b_id, "chromium-hold-answer");
}

#[test]
fn re_offer_between_pipes_needs_no_call_id() {
    let mut net = Net::new();
    let a = net.idle_pipe(A);
    let b = net.idle_pipe(B);
    let (a_id, b_id) = net.connect(a, B, b);
    net.ok(b, None, reoffer("aiortc-hold-offer"));
    net.expect_offer_of(a, a_id, B, "aiortc-hold-offer");
    net.ok(a, None, answer("aiortc-hold-answer"));
    net.expect_answer(b, b_id, "aiortc-hold-answer");
}

#[test]
fn a_second_renegotiation_is_accepted_once_the_first_is_answered() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.multi(B);
    let (a_id, b_id) = net.connect(a, B, b);
    net.ok(a, Some(a_id), reoffer("chromium-hold-offer"));
    net.expect_offer(b);
    net.ok(b, Some(b_id), answer("chromium-hold-answer"));
    net.expect_answer(a, a_id, "chromium-hold-answer");
    net.ok(a, Some(a_id), reoffer("chromium-icerestart-offer"));
    net.expect_offer_of(b, b_id, A, "chromium-icerestart-offer");
}

#[test]
fn re_offer_to_a_phone_leg_goes_to_the_phone_and_its_answer_comes_back() {
    let mut net = Net::with_phones();
    let a = net.multi(A);
    let (a_id, leg) = net.call_answered_by_phone(a);
    net.ok(a, Some(a_id), reoffer("chromium-hold-offer"));
    match net.next_phone() {
        PhoneCommand::Offer { leg: l, sdp: s } => {
            assert_eq!(l, leg);
            assert_eq!(s.as_str(), fixture("chromium-hold-offer"));
        }
        other => panic!("expected PhoneCommand::Offer, got {other:?}"),
    }
    net.phone_event(PhoneEvent::Answered {
        leg,
        sdp: sdp("chromium-hold-answer"),
    });
    net.expect_answer(a, a_id, "chromium-hold-answer");
}

#[test]
fn unanswered_re_offer_times_out_with_try_again_to_the_offerer_only() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.multi(B);
    let (a_id, b_id) = net.connect(a, B, b);
    net.ok(a, Some(a_id), reoffer("chromium-hold-offer"));
    net.expect_offer_of(b, b_id, A, "chromium-hold-offer");
    net.advance(Duration::from_secs(30) - Duration::from_millis(1));
    net.silent(a);
    net.advance(Duration::from_millis(1));
    net.expect_error(a, a_id, ErrorCode::TryAgain);
    net.silent(a);
    net.silent(b);
    assert_eq!(net.switch.call_count(), 1);
}

#[test]
fn far_sides_answer_after_the_re_offer_timed_out_is_not_incall() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.multi(B);
    let (a_id, b_id) = net.connect(a, B, b);
    net.ok(a, Some(a_id), reoffer("chromium-hold-offer"));
    net.expect_offer(b);
    net.advance(Duration::from_secs(30));
    net.expect_error(a, a_id, ErrorCode::TryAgain);
    assert_eq!(
        net.refused(b, Some(b_id), answer("chromium-hold-answer")),
        ErrorCode::NotInCall
    );
    net.silent(a);
}

#[test]
fn negotiation_timeout_is_configurable() {
    let mut net = Net::with(SwitchConfig {
        phone_network: false,
        negotiation_timeout: Duration::from_secs(2),
        ..Net::config()
    });
    let a = net.multi(A);
    let b = net.multi(B);
    let (a_id, _) = net.connect(a, B, b);
    net.ok(a, Some(a_id), reoffer("chromium-hold-offer"));
    net.advance(Duration::from_secs(2));
    net.expect_error(a, a_id, ErrorCode::TryAgain);
}

#[test]
fn offerer_may_re_offer_again_after_a_timeout() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.multi(B);
    let (a_id, b_id) = net.connect(a, B, b);
    net.ok(a, Some(a_id), reoffer("chromium-hold-offer"));
    net.expect_offer(b);
    net.advance(Duration::from_secs(30));
    net.expect_error(a, a_id, ErrorCode::TryAgain);
    net.ok(a, Some(a_id), reoffer("chromium-icerestart-offer"));
    net.expect_offer_of(b, b_id, A, "chromium-icerestart-offer");
}

#[test]
fn phone_refusing_a_re_offer_gives_the_offerer_try_again() {
    let mut net = Net::with_phones();
    let a = net.multi(A);
    let (a_id, leg) = net.call_answered_by_phone(a);
    net.ok(a, Some(a_id), reoffer("chromium-hold-offer"));
    net.next_phone();
    net.phone_event(PhoneEvent::Rejected {
        leg,
        reason: PhoneRejection::Declined,
    });
    net.expect_error(a, a_id, ErrorCode::TryAgain);
    assert_eq!(net.switch.call_count(), 1);
}
