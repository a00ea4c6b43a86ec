//! PROTOCOL.md 4.5: pull (transfer to self).

use crate::harness::*;
use std::time::Duration;
use webterminal_core::core::*;

/// A (MultiPipe) in an established call with B on `b1`; `b2` observes it through InCall.
/// Returns (a, b1, b2, a_id, b_id).
fn observed_call(
    net: &mut Net,
    b2_is_pipe: bool,
) -> (TerminalId, TerminalId, TerminalId, CallId, CallId) {
    let a = net.multi(A);
    let b1 = net.multi(B);
    let (a_id, b_id) = net.connect(a, B, b1);
    let b2 = if b2_is_pipe {
        net.pipe(B)
    } else {
        net.multi(B)
    };
    if b2_is_pipe {
        net.expect_in_call(b2, b_id, A);
    }
    (a, b1, b2, a_id, b_id)
}

#[test]
fn multipipe_pull_re_offers_the_far_side_with_the_pullers_number() {
    let mut net = Net::new();
    let (a, b1, b2, a_id, b_id) = observed_call(&mut net, false);
    net.ok(b2, Some(b_id), reoffer("aiortc-offer"));
    // An ordinary renegotiation Offer, with A's own id and B's number.
    net.expect_offer_of(a, a_id, B, "aiortc-offer");
    net.silent(b1);
    net.silent(b2);
}

#[test]
fn pipe_pulls_by_sending_an_offer_without_number_while_idle() {
    let mut net = Net::new();
    let (a, _b1, b2, a_id, _) = observed_call(&mut net, true);
    net.ok(b2, None, reoffer("aiortc-offer"));
    net.expect_offer_of(a, a_id, B, "aiortc-offer");
}

#[test]
fn far_sides_answer_gives_the_puller_answer_and_the_old_leg_bye_pulled_then_in_call() {
    let mut net = Net::new();
    let (a, b1, b2, a_id, b_id) = observed_call(&mut net, false);
    net.ok(b2, Some(b_id), reoffer("aiortc-offer"));
    net.expect_offer_of(a, a_id, B, "aiortc-offer");
    net.ok(a, Some(a_id), answer("aiortc-answer"));
    net.expect_answer(b2, b_id, "aiortc-answer");
    assert_eq!(net.expect_bye(b1, ByeReason::Pulled), b_id);
    net.expect_in_call(b1, b_id, A);
    net.silent(b1);
    net.silent(b2);
    net.silent(a);
}

#[test]
fn pipe_puller_gets_the_answer_and_then_carries_the_call() {
    let mut net = Net::new();
    let (a, b1, b2, a_id, b_id) = observed_call(&mut net, true);
    net.ok(b2, None, reoffer("aiortc-offer"));
    net.expect_offer(a);
    net.ok(a, Some(a_id), answer("aiortc-answer"));
    net.expect_answer(b2, b_id, "aiortc-answer");
    net.expect_bye(b1, ByeReason::Pulled);
    // The Pipe is now the active leg: its Bye ends the call.
    net.ok(b2, None, RequestBody::Bye);
    assert_eq!(net.expect_bye(a, ByeReason::NormalClearing), a_id);
    net.expect_in_call(b1, b_id, A);
    net.expect(b1, Some(b_id), NoticeBody::Idle);
}

#[test]
fn other_observers_get_in_call_again_when_the_call_is_pulled() {
    let mut net = Net::new();
    let (a, _b1, b2, a_id, b_id) = observed_call(&mut net, false);
    let b3 = net.pipe(B);
    net.expect_in_call(b3, b_id, A);
    net.ok(b2, Some(b_id), reoffer("aiortc-offer"));
    net.silent(b3);
    net.expect_offer(a);
    net.ok(a, Some(a_id), answer("aiortc-answer"));
    net.expect_in_call(b3, b_id, A);
}

#[test]
fn caller_side_can_pull_too() {
    let mut net = Net::new();
    let a1 = net.multi(A);
    let b = net.multi(B);
    let (a_id, b_id) = net.connect(a1, B, b);
    let a2 = net.pipe(A);
    net.expect_in_call(a2, a_id, B);
    net.ok(a2, None, reoffer("chromium-icerestart-offer"));
    net.expect_offer_of(b, b_id, A, "chromium-icerestart-offer");
    net.ok(b, Some(b_id), answer("chromium-answer"));
    net.expect_answer(a2, a_id, "chromium-answer");
    net.expect_bye(a1, ByeReason::Pulled);
    net.expect_in_call(a1, a_id, B);
}

#[test]
fn call_stays_on_its_old_leg_while_a_pull_is_pending() {
    let mut net = Net::new();
    let (a, b1, b2, a_id, b_id) = observed_call(&mut net, false);
    net.ok(b2, Some(b_id), reoffer("aiortc-offer"));
    net.expect_offer(a);
    // The puller is not the active leg yet; the old leg still is and may end the call.
    assert_eq!(
        net.refused(b2, Some(b_id), RequestBody::ToPhone),
        ErrorCode::NotInCall
    );
    net.ok(b1, Some(b_id), RequestBody::Bye);
    assert_eq!(net.expect_bye(a, ByeReason::NormalClearing), a_id);
    // The pending pull is answered too: a pull is answered with Answer or Bye.
    assert_eq!(net.expect_bye(b2, ByeReason::NormalClearing), b_id);
}

#[test]
fn far_side_answering_the_pull_with_bye_ends_the_call_for_all() {
    let mut net = Net::new();
    let (a, b1, b2, a_id, b_id) = observed_call(&mut net, false);
    let b3 = net.multi(B);
    net.ok(b2, Some(b_id), reoffer("aiortc-offer"));
    net.expect_offer(a);
    net.ok(a, Some(a_id), RequestBody::Bye);
    assert_eq!(net.expect_bye(b2, ByeReason::NormalClearing), b_id);
    assert_eq!(net.expect_bye(b1, ByeReason::NormalClearing), b_id);
    // b2 also observed the call: after the Bye for its pull it gets Idle like every observer.
    net.expect(b2, Some(b_id), NoticeBody::Idle);
    net.expect(b3, Some(b_id), NoticeBody::Idle);
    net.silent(a);
    assert_eq!(net.switch.call_count(), 0);
}

#[test]
fn pull_unanswered_for_the_negotiation_timeout_gives_the_puller_negotiation_failed() {
    let mut net = Net::new();
    let (a, b1, b2, _, b_id) = observed_call(&mut net, false);
    net.ok(b2, Some(b_id), reoffer("aiortc-offer"));
    net.expect_offer(a);
    net.advance(Duration::from_secs(30) - Duration::from_millis(1));
    net.silent(b2);
    net.advance(Duration::from_millis(1));
    assert_eq!(net.expect_bye(b2, ByeReason::NegotiationFailed), b_id);
    net.silent(a);
    net.silent(b1);
}

#[test]
fn call_stays_where_it_was_after_a_pull_times_out() {
    let mut net = Net::new();
    let (a, b1, b2, a_id, b_id) = observed_call(&mut net, false);
    net.ok(b2, Some(b_id), reoffer("aiortc-offer"));
    net.expect_offer(a);
    net.advance(Duration::from_secs(30));
    net.expect_bye(b2, ByeReason::NegotiationFailed);
    // The far side's late answer fits no pending offer.
    assert_eq!(
        net.refused(a, Some(a_id), answer("aiortc-answer")),
        ErrorCode::NotInCall
    );
    // b1 is still the active leg: its re-offer goes through.
    net.ok(b1, Some(b_id), reoffer("chromium-hold-offer"));
    net.expect_offer_of(a, a_id, B, "chromium-hold-offer");
    net.silent(b2);
}

#[test]
fn of_two_simultaneous_pulls_the_first_wins_and_the_second_gets_try_again() {
    let mut net = Net::new();
    let (a, b1, b2, a_id, b_id) = observed_call(&mut net, false);
    let b3 = net.pipe(B);
    net.expect_in_call(b3, b_id, A);
    net.ok(b2, Some(b_id), reoffer("aiortc-offer"));
    assert_eq!(
        net.send(b3, None, reoffer("chromium-offer"))
            .unwrap_err()
            .code,
        ErrorCode::TryAgain
    );
    net.expect_offer_of(a, a_id, B, "aiortc-offer");
    net.silent(a);
    net.ok(a, Some(a_id), answer("aiortc-answer"));
    net.expect_answer(b2, b_id, "aiortc-answer");
    net.expect_bye(b1, ByeReason::Pulled);
    net.expect_in_call(b3, b_id, A);
    net.silent(b3);
}

#[test]
fn pull_while_a_re_offer_is_pending_gets_try_again() {
    let mut net = Net::new();
    let (a, b1, b2, a_id, b_id) = observed_call(&mut net, false);
    net.ok(a, Some(a_id), reoffer("chromium-hold-offer"));
    net.expect_offer_of(b1, b_id, A, "chromium-hold-offer");
    assert_eq!(
        net.refused(b2, Some(b_id), reoffer("aiortc-offer")),
        ErrorCode::TryAgain
    );
    net.silent(a);
    // The re-offer is unaffected.
    net.ok(b1, Some(b_id), answer("chromium-hold-answer"));
    net.expect_answer(a, a_id, "chromium-hold-answer");
}

#[test]
fn re_offer_while_a_pull_is_pending_gets_try_again() {
    let mut net = Net::new();
    let (a, b1, b2, a_id, b_id) = observed_call(&mut net, false);
    net.ok(b2, Some(b_id), reoffer("aiortc-offer"));
    net.expect_offer(a);
    assert_eq!(
        net.refused(b1, Some(b_id), reoffer("chromium-hold-offer")),
        ErrorCode::TryAgain
    );
    assert_eq!(
        net.refused(a, Some(a_id), reoffer("chromium-hold-offer")),
        ErrorCode::TryAgain
    );
}

#[test]
fn pull_of_a_call_on_the_phone_releases_the_phone_leg_with_pulled() {
    let mut net = Net::with_phones();
    let a = net.multi(A);
    let b = net.multi(B);
    let a_id = net.call(a, B, "chromium-offer").unwrap();
    let b_id = net.expect_offer(b);
    let leg = net.expect_ring(B, A, "chromium-offer");
    net.phone_event(PhoneEvent::Answered {
        leg,
        sdp: sdp("aiortc-answer"),
    });
    net.expect_answer(a, a_id, "aiortc-answer");
    net.expect_bye(b, ByeReason::AnsweredElsewhere);
    net.expect_in_call(b, b_id, A);
    net.ok(b, Some(b_id), reoffer("chromium-offer"));
    net.expect_offer_of(a, a_id, B, "chromium-offer");
    net.ok(a, Some(a_id), answer("chromium-answer"));
    net.expect_answer(b, b_id, "chromium-answer");
    net.expect_release(leg, ByeReason::Pulled);
    net.phone_silent();
    // b carries the call now.
    net.ok(b, Some(b_id), RequestBody::Bye);
    net.expect_bye(a, ByeReason::NormalClearing);
}

#[test]
fn pull_toward_a_phone_on_the_far_side_re_offers_the_phone() {
    let mut net = Net::with_phones();
    let a1 = net.multi(A);
    let (a_id, leg) = net.call_answered_by_phone(a1);
    let a2 = net.pipe(A);
    net.expect_in_call(a2, a_id, B);
    net.ok(a2, None, reoffer("aiortc-offer"));
    match net.next_phone() {
        PhoneCommand::Offer { leg: l, sdp: s } => {
            assert_eq!(l, leg);
            assert_eq!(s.as_str(), fixture("aiortc-offer"));
        }
        other => panic!("{other:?}"),
    }
    net.phone_event(PhoneEvent::Answered {
        leg,
        sdp: sdp("chromium-answer"),
    });
    net.expect_answer(a2, a_id, "chromium-answer");
    net.expect_bye(a1, ByeReason::Pulled);
    net.expect_in_call(a1, a_id, B);
}

#[test]
fn phone_rejecting_a_pull_gives_the_puller_negotiation_failed() {
    let mut net = Net::with_phones();
    let a1 = net.multi(A);
    let (a_id, leg) = net.call_answered_by_phone(a1);
    let a2 = net.multi(A);
    net.ok(a2, Some(a_id), reoffer("aiortc-offer"));
    net.next_phone();
    net.phone_event(PhoneEvent::Rejected {
        leg,
        reason: PhoneRejection::Busy,
    });
    assert_eq!(net.expect_bye(a2, ByeReason::NegotiationFailed), a_id);
    net.silent(a1);
    assert_eq!(net.switch.call_count(), 1);
}

#[test]
fn pipe_with_a_pending_pull_is_not_offered_a_new_call() {
    // Section 5: a Pipe is eligible only when it is not in a call. A Pipe that is pulling a call is
    // about to carry it, and a Pipe carries one call at a time.
    let mut net = Net::new();
    let (a, _b1, b2, a_id, _) = observed_call(&mut net, true);
    let c = net.multi(C);
    net.ok(b2, None, reoffer("aiortc-offer"));
    net.expect_offer(a);
    net.call(c, B, "chromium-offer");
    net.silent(b2);
    // The pull still completes normally.
    net.ok(a, Some(a_id), answer("aiortc-answer"));
    match net.next(b2).body {
        NoticeBody::Answer { .. } => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn pipe_with_a_pending_pull_placing_a_call_gets_rate_limit_hit() {
    // A Pipe carries one call at a time (section 3); a pending pull counts as its call.
    let mut net = Net::new();
    let (a, _b1, b2, _a_id, _) = observed_call(&mut net, true);
    net.ok(b2, None, reoffer("aiortc-offer"));
    net.expect_offer(a);
    assert_eq!(
        net.refused(b2, None, offer_to(C, "chromium-offer")),
        ErrorCode::RateLimitHit
    );
}

#[test]
fn far_sides_observers_are_not_told_when_the_near_side_pulls() {
    let mut net = Net::new();
    let (a, _b1, b2, a_id, b_id) = observed_call(&mut net, false);
    let a_pipe = net.pipe(A);
    net.expect_in_call(a_pipe, a_id, B);
    net.ok(b2, Some(b_id), reoffer("aiortc-offer"));
    net.expect_offer(a);
    net.ok(a, Some(a_id), answer("aiortc-answer"));
    net.silent(a_pipe);
}

#[test]
fn pull_while_a_handover_is_pending_gets_try_again() {
    let mut net = Net::with_phones();
    let (_a, b1, b2, _, b_id) = observed_call(&mut net, false);
    net.phone.clear();
    net.ok(b1, Some(b_id), RequestBody::ToPhone);
    net.next_phone();
    assert_eq!(
        net.refused(b2, Some(b_id), reoffer("aiortc-offer")),
        ErrorCode::TryAgain
    );
}

#[test]
fn puller_may_pull_again_after_a_pull_timed_out() {
    let mut net = Net::new();
    let (a, _b1, b2, a_id, b_id) = observed_call(&mut net, false);
    net.ok(b2, Some(b_id), reoffer("aiortc-offer"));
    net.expect_offer(a);
    net.advance(Duration::from_secs(30));
    net.expect_bye(b2, ByeReason::NegotiationFailed);
    net.ok(b2, Some(b_id), reoffer("chromium-offer"));
    net.expect_offer_of(a, a_id, B, "chromium-offer");
}
