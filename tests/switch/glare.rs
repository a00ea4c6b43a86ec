//! PROTOCOL.md 4.7: one negotiation at a time per call; the later offer loses (glare).

use crate::harness::*;
use webterminal_core::core::*;

#[test]
fn far_sides_offer_while_a_re_offer_is_pending_gets_try_again() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.multi(B);
    let (a_id, b_id) = net.connect(a, B, b);
    net.ok(a, Some(a_id), reoffer("chromium-hold-offer"));
    net.expect_offer(b);
    assert_eq!(
        net.refused(b, Some(b_id), reoffer("chromium-icerestart-offer")),
        ErrorCode::TryAgain
    );
    net.silent(a);
}

#[test]
fn first_offer_survives_glare_and_completes() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.multi(B);
    let (a_id, b_id) = net.connect(a, B, b);
    net.ok(a, Some(a_id), reoffer("chromium-hold-offer"));
    net.expect_offer(b);
    net.refused(b, Some(b_id), reoffer("chromium-icerestart-offer"));
    net.ok(b, Some(b_id), answer("chromium-hold-answer"));
    net.expect_answer(a, a_id, "chromium-hold-answer");
}

#[test]
fn second_offer_from_the_same_side_while_one_is_pending_gets_try_again() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.multi(B);
    let (a_id, _) = net.connect(a, B, b);
    net.ok(a, Some(a_id), reoffer("chromium-hold-offer"));
    net.expect_offer(b);
    assert_eq!(
        net.refused(a, Some(a_id), reoffer("chromium-icerestart-offer")),
        ErrorCode::TryAgain
    );
    net.silent(b);
}

#[test]
fn callers_re_offer_before_the_call_is_answered_gets_try_again() {
    // Choice: the caller's own offer is still pending, so a second one is "negotiation pending".
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.multi(B);
    let a_id = net.call(a, B, "chromium-offer").unwrap();
    net.expect_offer(b);
    assert_eq!(
        net.refused(a, Some(a_id), reoffer("chromium-hold-offer")),
        ErrorCode::TryAgain
    );
    net.silent(b);
}

#[test]
fn ringing_forks_offer_without_number_is_not_incall() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.multi(B);
    net.call(a, B, "chromium-offer");
    let b_id = net.expect_offer(b);
    assert_eq!(
        net.refused(b, Some(b_id), reoffer("aiortc-offer")),
        ErrorCode::NotInCall
    );
    net.silent(a);
}
