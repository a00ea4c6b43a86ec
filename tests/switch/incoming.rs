//! PROTOCOL.md 4.2: incoming calls, forks, answered elsewhere, decline, late registration; and the
//! mobile phone as one of the forks (sections 5, 7).

use crate::harness::*;
use webterminal_core::core::*;

#[test]
fn every_eligible_device_is_offered_the_call_with_the_callee_sides_id() {
    let mut net = Net::with_phones();
    let a = net.multi(A);
    let b1 = net.multi(B);
    let b2 = net.idle_pipe(B);
    let a_id = net.call(a, B, "chromium-offer").unwrap();
    let b_id = net.expect_offer(b1);
    assert_ne!(b_id, a_id);
    net.expect_offer_of(b2, b_id, A, "chromium-offer");
    net.expect_ring(B, A, "chromium-offer");
}

#[test]
fn first_answer_wins_and_the_other_forks_get_answered_elsewhere() {
    let mut net = Net::with_phones();
    let a = net.multi(A);
    let b1 = net.multi(B);
    let b2 = net.multi(B);
    let a_id = net.call(a, B, "chromium-offer").unwrap();
    let b_id = net.expect_offer(b1);
    net.expect_offer(b2);
    let leg = net.expect_ring(B, A, "chromium-offer");
    net.ok(b2, Some(b_id), answer("chromium-answer"));
    net.expect_answer(a, a_id, "chromium-answer");
    assert_eq!(net.expect_bye(b1, ByeReason::AnsweredElsewhere), b_id);
    net.expect_release(leg, ByeReason::AnsweredElsewhere);
    net.silent(b2);
}

#[test]
fn forks_that_lost_get_in_call_after_answered_elsewhere() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b1 = net.multi(B);
    let b2 = net.idle_pipe(B);
    let b3 = net.multi(B);
    net.call(a, B, "chromium-offer");
    let b_id = net.expect_offer(b1);
    net.expect_offer(b2);
    net.expect_offer(b3);
    net.ok(b3, Some(b_id), answer("chromium-answer"));
    for loser in [b1, b2] {
        net.expect_bye(loser, ByeReason::AnsweredElsewhere);
        net.expect_in_call(loser, b_id, A);
        net.silent(loser);
    }
}

#[test]
fn fork_that_lost_the_race_gets_not_incall_for_its_late_answer() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b1 = net.multi(B);
    let b2 = net.multi(B);
    let a_id = net.call(a, B, "chromium-offer").unwrap();
    let b_id = net.expect_offer(b1);
    net.expect_offer(b2);
    net.ok(b1, Some(b_id), answer("chromium-answer"));
    net.expect_answer(a, a_id, "chromium-answer");
    assert_eq!(
        net.refused(b2, Some(b_id), answer("aiortc-answer")),
        ErrorCode::NotInCall
    );
    net.silent(a);
}

#[test]
fn bye_from_a_ringing_fork_declines_the_call_for_every_device() {
    let mut net = Net::with_phones();
    let a = net.multi(A);
    let b1 = net.multi(B);
    let b2 = net.idle_pipe(B);
    let a_id = net.call(a, B, "chromium-offer").unwrap();
    let b_id = net.expect_offer(b1);
    net.expect_offer(b2);
    let leg = net.expect_ring(B, A, "chromium-offer");
    net.ok(b1, Some(b_id), RequestBody::Bye);
    assert_eq!(net.expect_bye(a, ByeReason::Declined), a_id);
    assert_eq!(net.expect_bye(b2, ByeReason::DeclinedElsewhere), b_id);
    net.expect_release(leg, ByeReason::DeclinedElsewhere);
    net.silent(b1);
    net.silent(b2);
    assert_eq!(net.switch.call_count(), 0);
}

#[test]
fn pipe_that_registers_while_a_call_rings_is_offered_it() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b1 = net.multi(B);
    let a_id = net.call(a, B, "chromium-offer").unwrap();
    let b_id = net.expect_offer(b1);
    let late = net.pipe(B);
    net.expect(late, None, NoticeBody::Idle);
    net.expect_offer_of(late, b_id, A, "chromium-offer");
    // The late fork is a full fork: it may answer.
    net.ok(late, None, answer("chromium-answer"));
    net.expect_answer(a, a_id, "chromium-answer");
    net.expect_bye(b1, ByeReason::AnsweredElsewhere);
}

#[test]
fn multipipe_that_registers_while_a_call_rings_is_offered_it() {
    let mut net = Net::with_phones();
    let a = net.multi(A);
    // B has only its phone when the call starts.
    let a_id = net.call(a, B, "chromium-offer").unwrap();
    let leg = net.expect_ring(B, A, "chromium-offer");
    let late = net.multi(B);
    let b_id = net.expect_offer(late);
    net.ok(late, Some(b_id), answer("chromium-answer"));
    net.expect_answer(a, a_id, "chromium-answer");
    net.expect_release(leg, ByeReason::AnsweredElsewhere);
}

#[test]
fn terminal_of_the_caller_that_registers_while_ringing_is_not_offered_the_call() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.multi(B);
    net.call(a, B, "chromium-offer");
    net.expect_offer(b);
    let a2 = net.multi(A);
    net.silent(a2);
}

#[test]
fn phone_answering_during_ringing_wins_and_terminal_forks_get_answered_elsewhere() {
    let mut net = Net::with_phones();
    let a = net.multi(A);
    let b1 = net.multi(B);
    let b2 = net.idle_pipe(B);
    let a_id = net.call(a, B, "chromium-offer").unwrap();
    let b_id = net.expect_offer(b1);
    net.expect_offer(b2);
    let leg = net.expect_ring(B, A, "chromium-offer");
    net.phone_event(PhoneEvent::Answered {
        leg,
        sdp: sdp("aiortc-answer"),
    });
    net.expect_answer(a, a_id, "aiortc-answer");
    for fork in [b1, b2] {
        net.expect_bye(fork, ByeReason::AnsweredElsewhere);
        net.expect_in_call(fork, b_id, A);
    }
    net.phone_silent();
}

#[test]
fn phone_decline_declines_the_call_for_every_device() {
    let mut net = Net::with_phones();
    let a = net.multi(A);
    let b = net.multi(B);
    let a_id = net.call(a, B, "chromium-offer").unwrap();
    let b_id = net.expect_offer(b);
    let leg = net.expect_ring(B, A, "chromium-offer");
    net.phone_event(PhoneEvent::Rejected {
        leg,
        reason: PhoneRejection::Declined,
    });
    assert_eq!(net.expect_bye(a, ByeReason::Declined), a_id);
    assert_eq!(net.expect_bye(b, ByeReason::DeclinedElsewhere), b_id);
    // The phone declined by itself: it is not released again.
    net.phone_silent();
    assert_eq!(net.switch.call_count(), 0);
}

#[test]
fn phone_hanging_up_an_established_call_gives_the_far_side_normal_clearing() {
    let mut net = Net::with_phones();
    let a = net.multi(A);
    let (a_id, leg) = net.call_answered_by_phone(a);
    net.phone_event(PhoneEvent::HungUp { leg });
    assert_eq!(net.expect_bye(a, ByeReason::NormalClearing), a_id);
    net.phone_silent();
    assert_eq!(net.switch.call_count(), 0);
}

#[test]
fn terminal_bye_on_a_call_the_phone_answered_releases_the_phone_with_normal_clearing() {
    let mut net = Net::with_phones();
    let a = net.multi(A);
    let (a_id, leg) = net.call_answered_by_phone(a);
    net.ok(a, Some(a_id), RequestBody::Bye);
    net.expect_release(leg, ByeReason::NormalClearing);
    net.silent(a);
}

#[test]
fn phone_events_for_a_released_leg_are_ignored() {
    let mut net = Net::with_phones();
    let a = net.multi(A);
    let b = net.multi(B);
    let (a_id, _) = net.connect(a, B, b);
    let leg = match net.next_phone() {
        PhoneCommand::Ring { leg, .. } => leg,
        other => panic!("{other:?}"),
    };
    net.expect_release(leg, ByeReason::AnsweredElsewhere);
    // A late answer and hang-up from the released phone change nothing.
    net.phone_event(PhoneEvent::Answered {
        leg,
        sdp: sdp("aiortc-answer"),
    });
    net.phone_event(PhoneEvent::HungUp { leg });
    net.silent(a);
    net.silent(b);
    assert_eq!(net.switch.call_count(), 1);
    net.ok(a, Some(a_id), RequestBody::Bye);
}
