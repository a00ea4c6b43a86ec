//! PROTOCOL.md 4.8 with a reconnect grace: an active leg that goes away leaves its side vacant; the
//! number's terminals (a reconnecting one included) see InCall and may pull the call back, and the far
//! side never sees a Bye; once the grace is over, the far side gets `Bye{PEER_GONE}`.

use crate::harness::*;
use std::time::Duration;
use webterminal_core::core::*;

const GRACE: Duration = Duration::from_secs(15);

fn net() -> Net {
    Net::with(SwitchConfig {
        phone_network: false,
        reconnect_grace: GRACE,
        ..SwitchConfig::default()
    })
}

/// A (MultiPipe) and B (MultiPipe) in an established call; inboxes empty.
fn established(net: &mut Net) -> (TerminalId, TerminalId, CallId, CallId) {
    let a = net.multi(A);
    let b = net.multi(B);
    let (a_id, b_id) = net.connect(a, B, b);
    (a, b, a_id, b_id)
}

#[test]
fn far_side_sees_no_bye_while_the_grace_runs() {
    let mut net = net();
    let (a, b, _, _) = established(&mut net);
    net.gone(b);
    net.advance(GRACE - Duration::from_millis(1));
    net.silent(a);
    assert_eq!(net.switch.call_count(), 1);
}

#[test]
fn far_side_gets_peer_gone_when_the_grace_is_over() {
    let mut net = net();
    let (a, b, a_id, _) = established(&mut net);
    net.gone(b);
    net.advance(GRACE);
    assert_eq!(net.expect_bye(a, ByeReason::PeerGone), a_id);
    assert_eq!(net.switch.call_count(), 0);
}

#[test]
fn other_terminals_of_the_number_see_in_call_when_the_leg_goes_away() {
    let mut net = net();
    let (_, b, _, b_id) = established(&mut net);
    // A Pipe opened during the call is told InCall on open (section 3).
    let b2 = net.pipe(B);
    net.expect_in_call(b2, b_id, A);
    net.gone(b);
    net.expect_in_call(b2, b_id, A);
}

#[test]
fn reconnecting_multipipe_is_told_in_call_on_open() {
    let mut net = net();
    let (_, b, _, b_id) = established(&mut net);
    net.gone(b);
    let again = net.multi(B);
    net.expect_in_call(again, b_id, A);
}

#[test]
fn reconnecting_pipe_pulls_the_call_back_and_the_far_side_never_sees_a_bye() {
    let mut net = net();
    let (a, b, a_id, b_id) = established(&mut net);
    net.gone(b);
    let again = net.pipe(B);
    net.expect_in_call(again, b_id, A);
    net.ok(again, None, reoffer("chromium-icerestart-offer"));
    // The far side sees an ordinary renegotiation.
    net.expect_offer_of(a, a_id, B, "chromium-icerestart-offer");
    net.ok(a, Some(a_id), answer("chromium-answer"));
    net.expect_answer(again, b_id, "chromium-answer");
    net.silent(again);
    // The grace timer is disarmed: nothing happens when it would have fired.
    net.advance(GRACE * 2);
    net.silent(a);
    assert_eq!(net.switch.call_count(), 1);
    // The pulled-back call is an ordinary call again.
    net.ok(again, None, RequestBody::Bye);
    net.expect_bye(a, ByeReason::NormalClearing);
}

#[test]
fn reconnecting_multipipe_pulls_the_call_back() {
    let mut net = net();
    let (a, b, a_id, b_id) = established(&mut net);
    net.gone(b);
    let again = net.multi(B);
    net.expect_in_call(again, b_id, A);
    net.ok(again, Some(b_id), reoffer("aiortc-offer"));
    net.expect_offer_of(a, a_id, B, "aiortc-offer");
    net.ok(a, Some(a_id), answer("aiortc-answer"));
    net.expect_answer(again, b_id, "aiortc-answer");
    net.advance(GRACE * 2);
    net.silent(a);
    assert_eq!(net.switch.call_count(), 1);
}

#[test]
fn pull_back_unanswered_gives_negotiation_failed_and_the_grace_still_ends_the_call() {
    let mut net = Net::with(SwitchConfig {
        phone_network: false,
        reconnect_grace: GRACE,
        negotiation_timeout: Duration::from_secs(5),
        ..SwitchConfig::default()
    });
    let (a, b, a_id, b_id) = established(&mut net);
    net.gone(b);
    let again = net.multi(B);
    net.expect_in_call(again, b_id, A);
    net.ok(again, Some(b_id), reoffer("chromium-offer"));
    net.expect_offer_of(a, a_id, B, "chromium-offer");
    net.advance(Duration::from_secs(5));
    net.expect_bye(again, ByeReason::NegotiationFailed);
    net.advance(GRACE);
    net.expect_bye(a, ByeReason::PeerGone);
    net.expect(again, Some(b_id), NoticeBody::Idle);
}

#[test]
fn far_side_bye_during_the_grace_ends_the_call() {
    let mut net = net();
    let (a, b, a_id, b_id) = established(&mut net);
    // A MultiPipe opened during the call is told nothing on open (section 3).
    let b2 = net.multi(B);
    net.gone(b);
    net.expect_in_call(b2, b_id, A);
    net.ok(a, Some(a_id), RequestBody::Bye);
    net.silent(a);
    net.expect(b2, Some(b_id), NoticeBody::Idle);
    assert_eq!(net.switch.call_count(), 0);
}

#[test]
fn far_side_re_offer_during_the_grace_gets_try_again() {
    let mut net = net();
    let (a, b, a_id, _) = established(&mut net);
    net.gone(b);
    let code = net.refused(a, Some(a_id), reoffer("chromium-hold-offer"));
    assert_eq!(code, ErrorCode::TryAgain);
}

#[test]
fn far_side_handover_during_the_grace_gets_try_again() {
    let mut net = Net::with(SwitchConfig {
        reconnect_grace: GRACE,
        ..SwitchConfig::default()
    });
    let a = net.multi(A);
    let b = net.multi(B);
    net.call(a, B, "chromium-offer");
    let _phone = net.expect_ring(B, A, "chromium-offer");
    let b_id = net.expect_offer(b);
    net.ok(b, Some(b_id), answer("chromium-answer"));
    let a_id = net.next(a).call_id.unwrap();
    net.phone.clear();
    net.gone(b);
    let code = net.refused(a, Some(a_id), RequestBody::ToPhone);
    assert_eq!(code, ErrorCode::TryAgain);
}

#[test]
fn re_offer_pending_toward_the_leg_that_went_away_fails_with_try_again() {
    let mut net = net();
    let (a, b, a_id, b_id) = established(&mut net);
    net.ok(a, Some(a_id), reoffer("chromium-hold-offer"));
    net.expect_offer_of(b, b_id, A, "chromium-hold-offer");
    net.gone(b);
    net.expect_error(a, a_id, ErrorCode::TryAgain);
}

#[test]
fn pull_pending_by_another_terminal_of_the_number_survives_the_leg_going_away() {
    let mut net = net();
    let (a, b, a_id, b_id) = established(&mut net);
    let b2 = net.multi(B);
    net.ok(b2, Some(b_id), reoffer("chromium-offer"));
    net.expect_offer_of(a, a_id, B, "chromium-offer");
    net.gone(b);
    net.expect_in_call(b2, b_id, A);
    net.ok(a, Some(a_id), answer("chromium-answer"));
    net.expect_answer(b2, b_id, "chromium-answer");
    net.advance(GRACE * 2);
    net.silent(a);
    assert_eq!(net.switch.call_count(), 1);
}

#[test]
fn both_sides_gone_end_the_call_when_the_first_grace_is_over() {
    let mut net = net();
    let (a, b, _, _) = established(&mut net);
    net.gone(a);
    net.advance(Duration::from_secs(1));
    net.gone(b);
    assert_eq!(net.switch.call_count(), 1);
    net.advance(GRACE - Duration::from_secs(1));
    assert_eq!(net.switch.call_count(), 0);
}

#[test]
fn zero_grace_ends_the_call_at_once() {
    let mut net = Net::new();
    let (a, b, a_id, _) = established(&mut net);
    net.gone(b);
    assert_eq!(net.expect_bye(a, ByeReason::PeerGone), a_id);
    assert_eq!(net.switch.call_count(), 0);
}

#[test]
fn ringing_calls_are_not_held_by_the_grace() {
    let mut net = net();
    let a = net.multi(A);
    let b = net.multi(B);
    net.call(a, B, "chromium-offer");
    net.expect_offer(b);
    net.gone(b);
    net.expect_bye(a, ByeReason::Unavailable);
    assert_eq!(net.switch.call_count(), 0);
}
