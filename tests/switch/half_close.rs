//! PROTOCOL.md section 3: a half-closed terminal is still registered; it keeps getting Bye, InCall
//! and Idle, but is offered no new call.

use crate::harness::*;
use webterminal_core::core::*;

#[test]
fn half_closed_terminal_is_not_offered_new_calls() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b1 = net.multi(B);
    let b2 = net.multi(B);
    net.half_close(b1);
    net.call(a, B, "chromium-offer");
    net.expect_offer(b2);
    net.silent(b1);
}

#[test]
fn half_closed_pipe_that_observes_a_call_still_gets_in_call_and_idle() {
    let mut net = Net::new();
    let b_pipe = net.idle_pipe(B);
    net.half_close(b_pipe);
    let a = net.multi(A);
    let b = net.multi(B);
    let (a_id, b_id) = net.connect(a, B, b);
    net.expect_in_call(b_pipe, b_id, A);
    net.ok(a, Some(a_id), RequestBody::Bye);
    net.expect(b_pipe, None, NoticeBody::Idle);
}

#[test]
fn half_closed_active_leg_keeps_its_call_and_still_gets_bye() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.multi(B);
    let (a_id, b_id) = net.connect(a, B, b);
    net.half_close(b);
    net.silent(a);
    assert_eq!(net.switch.call_count(), 1);
    net.ok(a, Some(a_id), RequestBody::Bye);
    assert_eq!(net.expect_bye(b, ByeReason::NormalClearing), b_id);
}

#[test]
fn half_closed_ringing_fork_still_gets_the_calls_bye() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.multi(B);
    let a_id = net.call(a, B, "chromium-offer").unwrap();
    let b_id = net.expect_offer(b);
    net.half_close(b);
    net.ok(a, Some(a_id), RequestBody::Bye);
    assert_eq!(net.expect_bye(b, ByeReason::Cancelled), b_id);
}

#[test]
fn registering_another_terminal_does_not_offer_the_ringing_call_to_a_half_closed_one() {
    let mut net = Net::with_phones();
    let a = net.multi(A);
    let b1 = net.multi(B);
    net.half_close(b1);
    net.call(a, B, "chromium-offer");
    net.next_phone();
    let b2 = net.multi(B);
    net.expect_offer(b2);
    net.silent(b1);
}

#[test]
fn number_whose_only_terminal_has_half_closed_is_busy() {
    // Choice: a half-closed terminal is a device of B that is not eligible (section 5), so with
    // no other device the caller gets BUSY (4.3), not UNAVAILABLE.
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.multi(B);
    net.half_close(b);
    let a_id = net.call(a, B, "chromium-offer").unwrap();
    assert_eq!(net.expect_bye(a, ByeReason::Busy), a_id);
    net.silent(b);
}

#[test]
fn unregistering_a_half_closed_terminal_ends_its_registration() {
    let mut net = Net::new();
    let b = net.multi(B);
    net.half_close(b);
    assert_eq!(net.switch.terminal_count(), 1);
    net.gone(b);
    assert_eq!(net.switch.terminal_count(), 0);
}
