//! PROTOCOL.md 4.3: no answer, busy, unavailable.

use crate::harness::*;
use std::time::Duration;
use webterminal_core::core::*;

#[test]
fn ring_timeout_gives_the_caller_no_answer_and_every_fork_cancelled() {
    let mut net = Net::with_phones();
    let a = net.multi(A);
    let b1 = net.multi(B);
    let b2 = net.idle_pipe(B);
    let a_id = net.call(a, B, "chromium-offer").unwrap();
    let b_id = net.expect_offer(b1);
    net.expect_offer(b2);
    let leg = net.expect_ring(B, A, "chromium-offer");
    net.ok(b1, Some(b_id), RequestBody::Ringing);
    net.expect(a, Some(a_id), NoticeBody::Ringing);
    net.advance(Duration::from_secs(60));
    assert_eq!(net.expect_bye(a, ByeReason::NoAnswer), a_id);
    assert_eq!(net.expect_bye(b1, ByeReason::Cancelled), b_id);
    assert_eq!(net.expect_bye(b2, ByeReason::Cancelled), b_id);
    net.expect_release(leg, ByeReason::Cancelled);
    assert_eq!(net.switch.call_count(), 0);
}

#[test]
fn call_still_rings_just_before_the_ring_timeout() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.multi(B);
    let a_id = net.call(a, B, "chromium-offer").unwrap();
    let b_id = net.expect_offer(b);
    net.advance(Duration::from_secs(60) - Duration::from_millis(1));
    net.silent(a);
    net.silent(b);
    net.ok(b, Some(b_id), answer("chromium-answer"));
    net.expect_answer(a, a_id, "chromium-answer");
}

#[test]
fn ring_timeout_is_configurable() {
    let mut net = Net::with(SwitchConfig {
        phone_network: false,
        ring_timeout: Duration::from_secs(5),
        ..Net::config()
    });
    let a = net.multi(A);
    let b = net.multi(B);
    let a_id = net.call(a, B, "chromium-offer").unwrap();
    net.expect_offer(b);
    net.advance(Duration::from_secs(5));
    assert_eq!(net.expect_bye(a, ByeReason::NoAnswer), a_id);
    net.expect_bye(b, ByeReason::Cancelled);
}

#[test]
fn answered_call_outlives_the_ring_timeout() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.multi(B);
    net.connect(a, B, b);
    net.advance(Duration::from_secs(3600));
    net.silent(a);
    net.silent(b);
    assert_eq!(net.switch.call_count(), 1);
}

#[test]
fn number_with_no_device_is_unavailable_when_the_phone_network_is_off() {
    let mut net = Net::new();
    let a = net.multi(A);
    let a_id = net.call(a, B, "chromium-offer").unwrap();
    assert_eq!(net.expect_bye(a, ByeReason::Unavailable), a_id);
    assert_eq!(net.switch.call_count(), 0);
}

#[test]
fn number_whose_only_pipe_is_in_a_call_is_busy() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.idle_pipe(B);
    let c = net.multi(C);
    net.connect(c, B, b);
    let a_id = net.call(a, B, "chromium-offer").unwrap();
    assert_eq!(net.expect_bye(a, ByeReason::Busy), a_id);
    net.silent(b);
}

#[test]
fn number_whose_only_multipipe_is_at_its_call_cap_is_busy() {
    let mut net = Net::with_call_cap(1);
    let a = net.multi(A);
    let b = net.multi(B);
    let c = net.multi(C);
    net.connect(c, B, b);
    let a_id = net.call(a, B, "chromium-offer").unwrap();
    assert_eq!(net.expect_bye(a, ByeReason::Busy), a_id);
    net.silent(b);
}

#[test]
fn phone_busy_with_no_terminal_gives_the_caller_busy() {
    let mut net = Net::with_phones();
    let a = net.multi(A);
    let a_id = net.call(a, B, "chromium-offer").unwrap();
    let leg = net.expect_ring(B, A, "chromium-offer");
    net.phone_event(PhoneEvent::Rejected {
        leg,
        reason: PhoneRejection::Busy,
    });
    assert_eq!(net.expect_bye(a, ByeReason::Busy), a_id);
    net.phone_silent();
    assert_eq!(net.switch.call_count(), 0);
}

#[test]
fn phone_unreachable_with_no_terminal_gives_the_caller_unavailable() {
    let mut net = Net::with_phones();
    let a = net.multi(A);
    let a_id = net.call(a, B, "chromium-offer").unwrap();
    let leg = net.expect_ring(B, A, "chromium-offer");
    net.phone_event(PhoneEvent::Rejected {
        leg,
        reason: PhoneRejection::Unreachable,
    });
    assert_eq!(net.expect_bye(a, ByeReason::Unavailable), a_id);
    net.phone_silent();
}

#[test]
fn busy_terminal_and_unreachable_phone_give_the_caller_busy() {
    let mut net = Net::with_phones();
    let a = net.multi(A);
    let b = net.idle_pipe(B);
    let c = net.multi(C);
    net.connect(c, B, b);
    net.phone.clear();
    let a_id = net.call(a, B, "chromium-offer").unwrap();
    let leg = net.expect_ring(B, A, "chromium-offer");
    net.phone_event(PhoneEvent::Rejected {
        leg,
        reason: PhoneRejection::Unreachable,
    });
    assert_eq!(net.expect_bye(a, ByeReason::Busy), a_id);
}

#[test]
fn phone_busy_while_a_terminal_rings_leaves_the_call_ringing() {
    let mut net = Net::with_phones();
    let a = net.multi(A);
    let b = net.multi(B);
    let a_id = net.call(a, B, "chromium-offer").unwrap();
    let b_id = net.expect_offer(b);
    let leg = net.expect_ring(B, A, "chromium-offer");
    net.phone_event(PhoneEvent::Rejected {
        leg,
        reason: PhoneRejection::Busy,
    });
    net.silent(a);
    net.silent(b);
    net.ok(b, Some(b_id), answer("chromium-answer"));
    net.expect_answer(a, a_id, "chromium-answer");
    // The rejected phone leg is not released again.
    net.phone_silent();
}

#[test]
fn phone_hanging_up_while_ringing_as_the_last_device_gives_the_caller_unavailable() {
    let mut net = Net::with_phones();
    let a = net.multi(A);
    let a_id = net.call(a, B, "chromium-offer").unwrap();
    let leg = net.expect_ring(B, A, "chromium-offer");
    net.phone_event(PhoneEvent::HungUp { leg });
    assert_eq!(net.expect_bye(a, ByeReason::Unavailable), a_id);
    net.phone_silent();
}
