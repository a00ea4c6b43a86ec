//! PROTOCOL.md 4.8: a terminal goes away (no reconnect grace period configured).

use crate::harness::*;
use std::time::Duration;
use webterminal_core::core::*;

#[test]
fn ringing_fork_that_goes_away_is_withdrawn_and_the_call_rings_on() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b1 = net.multi(B);
    let b2 = net.multi(B);
    let a_id = net.call(a, B, "chromium-offer").unwrap();
    let b_id = net.expect_offer(b1);
    net.expect_offer(b2);
    net.gone(b1);
    net.silent(a);
    net.silent(b2);
    net.ok(b2, Some(b_id), answer("chromium-answer"));
    net.expect_answer(a, a_id, "chromium-answer");
}

#[test]
fn last_eligible_device_going_away_gives_the_caller_unavailable() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.multi(B);
    let a_id = net.call(a, B, "chromium-offer").unwrap();
    net.expect_offer(b);
    net.gone(b);
    assert_eq!(net.expect_bye(a, ByeReason::Unavailable), a_id);
    assert_eq!(net.switch.call_count(), 0);
}

#[test]
fn terminal_fork_going_away_leaves_the_phone_fork_ringing() {
    let mut net = Net::with_phones();
    let a = net.multi(A);
    let b = net.multi(B);
    let a_id = net.call(a, B, "chromium-offer").unwrap();
    net.expect_offer(b);
    let leg = net.expect_ring(B, A, "chromium-offer");
    net.gone(b);
    net.silent(a);
    net.phone_silent();
    net.phone_event(PhoneEvent::Answered {
        leg,
        sdp: sdp("aiortc-answer"),
    });
    net.expect_answer(a, a_id, "aiortc-answer");
}

#[test]
fn caller_going_away_while_ringing_cancels_every_fork() {
    let mut net = Net::with_phones();
    let a = net.multi(A);
    let b1 = net.multi(B);
    let b2 = net.idle_pipe(B);
    net.call(a, B, "chromium-offer");
    let b_id = net.expect_offer(b1);
    net.expect_offer(b2);
    let leg = net.expect_ring(B, A, "chromium-offer");
    net.gone(a);
    assert_eq!(net.expect_bye(b1, ByeReason::Cancelled), b_id);
    assert_eq!(net.expect_bye(b2, ByeReason::Cancelled), b_id);
    net.expect_release(leg, ByeReason::Cancelled);
    assert_eq!(net.switch.call_count(), 0);
}

#[test]
fn active_leg_going_away_gives_the_far_side_peer_gone() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.multi(B);
    let (a_id, _) = net.connect(a, B, b);
    net.gone(b);
    assert_eq!(net.expect_bye(a, ByeReason::PeerGone), a_id);
    assert_eq!(net.switch.call_count(), 0);
}

#[test]
fn active_leg_going_away_gives_its_numbers_observers_idle() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.multi(B);
    let (_, b_id) = net.connect(a, B, b);
    let b_pipe = net.pipe(B);
    net.expect_in_call(b_pipe, b_id, A);
    net.gone(b);
    net.expect(b_pipe, None, NoticeBody::Idle);
}

#[test]
fn active_leg_going_away_releases_the_far_sides_phone_with_peer_gone() {
    let mut net = Net::with_phones();
    let a = net.multi(A);
    let (_, leg) = net.call_answered_by_phone(a);
    net.gone(a);
    net.expect_release(leg, ByeReason::PeerGone);
    assert_eq!(net.switch.call_count(), 0);
}

#[test]
fn puller_going_away_drops_the_pull_and_the_call_stays() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b1 = net.multi(B);
    let (a_id, b_id) = net.connect(a, B, b1);
    let b2 = net.multi(B);
    net.ok(b2, Some(b_id), reoffer("aiortc-offer"));
    net.expect_offer(a);
    net.gone(b2);
    // The far side is told nothing; its late answer fits no pending offer.
    net.silent(a);
    net.silent(b1);
    assert_eq!(
        net.refused(a, Some(a_id), answer("aiortc-answer")),
        ErrorCode::NotInCall
    );
    // No timer is left behind either.
    net.advance(Duration::from_secs(60));
    net.silent(a);
    net.silent(b1);
    assert_eq!(net.switch.call_count(), 1);
    // A new negotiation is possible at once.
    net.ok(b1, Some(b_id), reoffer("chromium-hold-offer"));
    net.expect_offer_of(a, a_id, B, "chromium-hold-offer");
}

#[test]
fn observer_going_away_changes_nothing() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.multi(B);
    net.connect(a, B, b);
    let b2 = net.pipe(B);
    net.take(b2);
    net.gone(b2);
    net.silent(a);
    net.silent(b);
    assert_eq!(net.switch.call_count(), 1);
}

#[test]
fn messages_from_a_terminal_that_has_gone_are_not_incall() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.multi(B);
    let (_, b_id) = net.connect(a, B, b);
    net.gone(b);
    net.take(a);
    assert_eq!(
        net.refused(b, Some(b_id), RequestBody::Bye),
        ErrorCode::NotInCall
    );
}

#[test]
fn last_eligible_device_going_away_gives_unavailable_even_when_another_device_is_busy() {
    // Choice: 4.8 is the specific rule for a fork that goes away ("if it was B's last eligible
    // device the caller gets UNAVAILABLE"); BUSY (4.3) is decided when the call is routed.
    let mut net = Net::new();
    let a = net.multi(A);
    let c = net.multi(C);
    let b_busy = net.idle_pipe(B);
    net.connect(c, B, b_busy);
    let b = net.multi(B);
    let a_id = net.call(a, B, "chromium-offer").unwrap();
    net.expect_offer(b);
    net.gone(b);
    assert_eq!(net.expect_bye(a, ByeReason::Unavailable), a_id);
}

#[test]
fn active_leg_going_away_while_a_pull_is_pending_ends_the_call_and_the_puller_gets_peer_gone() {
    // Choice: with no reconnect grace period, an active leg that goes away ends its call (4.8)
    // even while a pull is pending; the pull is answered with Bye like any Offer, and PEER_GONE
    // says why.
    let mut net = Net::new();
    let a = net.multi(A);
    let b1 = net.multi(B);
    let (a_id, b_id) = net.connect(a, B, b1);
    let b2 = net.multi(B);
    net.ok(b2, Some(b_id), reoffer("aiortc-offer"));
    net.expect_offer(a);
    net.gone(b1);
    assert_eq!(net.expect_bye(a, ByeReason::PeerGone), a_id);
    assert_eq!(net.expect_bye(b2, ByeReason::PeerGone), b_id);
    assert_eq!(net.switch.call_count(), 0);
}
