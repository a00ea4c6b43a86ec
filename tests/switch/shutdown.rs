//! PROTOCOL.md 4.9: shutdown sends Bye{SERVER_SHUTDOWN} on every live leg and leaves no call.

use crate::harness::*;
use webterminal_core::core::*;

#[test]
fn shutdown_sends_server_shutdown_to_a_ringing_caller_and_every_fork() {
    let mut net = Net::with_phones();
    let a = net.multi(A);
    let b1 = net.multi(B);
    let b2 = net.idle_pipe(B);
    let a_id = net.call(a, B, "chromium-offer").unwrap();
    let b_id = net.expect_offer(b1);
    net.expect_offer(b2);
    let leg = net.expect_ring(B, A, "chromium-offer");
    net.shutdown();
    assert_eq!(net.expect_bye(a, ByeReason::ServerShutdown), a_id);
    assert_eq!(net.expect_bye(b1, ByeReason::ServerShutdown), b_id);
    assert_eq!(net.expect_bye(b2, ByeReason::ServerShutdown), b_id);
    net.expect_release(leg, ByeReason::ServerShutdown);
    assert_eq!(net.switch.call_count(), 0);
}

#[test]
fn shutdown_sends_server_shutdown_to_both_active_legs() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.idle_pipe(B);
    let (a_id, b_id) = net.connect(a, B, b);
    net.shutdown();
    assert_eq!(net.expect_bye(a, ByeReason::ServerShutdown), a_id);
    assert_eq!(net.expect_bye(b, ByeReason::ServerShutdown), b_id);
    net.silent(a);
    net.silent(b);
    assert_eq!(net.switch.call_count(), 0);
}

#[test]
fn shutdown_releases_an_active_phone_leg() {
    let mut net = Net::with_phones();
    let a = net.multi(A);
    let (a_id, leg) = net.call_answered_by_phone(a);
    net.shutdown();
    assert_eq!(net.expect_bye(a, ByeReason::ServerShutdown), a_id);
    net.expect_release(leg, ByeReason::ServerShutdown);
    assert_eq!(net.switch.call_count(), 0);
}

#[test]
fn shutdown_sends_server_shutdown_to_a_pending_puller() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b1 = net.multi(B);
    let (_, b_id) = net.connect(a, B, b1);
    let b2 = net.multi(B);
    net.ok(b2, Some(b_id), reoffer("aiortc-offer"));
    net.expect_offer(a);
    net.shutdown();
    assert_eq!(net.expect_bye(b2, ByeReason::ServerShutdown), b_id);
    net.expect_bye(b1, ByeReason::ServerShutdown);
    net.expect_bye(a, ByeReason::ServerShutdown);
}

#[test]
fn shutdown_releases_a_phone_brought_up_for_a_pending_handover() {
    let mut net = Net::with_phones();
    let a = net.multi(A);
    let b = net.multi(B);
    let (_, b_id) = net.connect(a, B, b);
    net.phone.clear();
    net.ok(b, Some(b_id), RequestBody::ToPhone);
    let leg = match net.next_phone() {
        PhoneCommand::HandOver { leg, .. } => leg,
        other => panic!("{other:?}"),
    };
    net.shutdown();
    net.expect_release(leg, ByeReason::ServerShutdown);
    net.expect_bye(a, ByeReason::ServerShutdown);
    net.expect_bye(b, ByeReason::ServerShutdown);
}

#[test]
fn shutdown_sends_observers_no_idle() {
    // Choice: at shutdown the stream itself ends right after; an Idle per observed call would be
    // noise, so observers get nothing before their stream ends.
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.multi(B);
    let (a_id, _) = net.connect(a, B, b);
    let a_pipe = net.pipe(A);
    net.expect_in_call(a_pipe, a_id, B);
    let a_multi = net.multi(A);
    net.shutdown();
    net.silent(a_pipe);
    net.silent(a_multi);
}

#[test]
fn shutdown_with_several_calls_leaves_no_call_and_no_timer() {
    let mut net = Net::with_phones();
    let a = net.multi(A);
    let b = net.multi(B);
    let c = net.multi(C);
    let (a_id, _) = net.connect(a, B, b);
    net.call(c, A, "aiortc-offer");
    net.ok(a, Some(a_id), reoffer("chromium-hold-offer"));
    net.shutdown();
    assert_eq!(net.switch.call_count(), 0);
    assert_eq!(net.switch.poll_timeout(), None);
}
