//! PROTOCOL.md section 5 (routing, eligibility) and section 2/6 (ids are scoped per msisdn:
//! nothing a client sends can touch or learn another subscriber's call).

use crate::harness::*;
use webterminal_core::core::*;

#[test]
fn pipe_in_a_call_is_not_offered_an_incoming_call() {
    let mut net = Net::new();
    let a = net.multi(A);
    let c = net.multi(C);
    let b_pipe = net.idle_pipe(B);
    let b_multi = net.multi(B);
    net.connect(c, B, b_pipe);
    net.take(b_multi);
    net.call(a, B, "chromium-offer");
    net.expect_offer(b_multi);
    net.silent(b_pipe);
}

#[test]
fn pipe_whose_call_is_ringing_out_is_not_offered_an_incoming_call() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b_pipe = net.idle_pipe(B);
    let b_multi = net.multi(B);
    let _c = net.multi(C);
    net.call(b_pipe, C, "chromium-offer");
    net.call(a, B, "aiortc-offer");
    net.expect_offer(b_multi);
    net.silent(b_pipe);
}

#[test]
fn multipipe_under_its_cap_is_offered_another_call() {
    let mut net = Net::new();
    let a = net.multi(A);
    let c = net.multi(C);
    let b = net.multi(B);
    net.connect(a, B, b);
    net.call(c, B, "aiortc-offer");
    net.expect_offer(b);
}

#[test]
fn multipipe_at_its_cap_is_not_offered_another_call() {
    let mut net = Net::with(SwitchConfig {
        phone_network: false,
        multipipe_call_cap: 1,
        ..Net::config()
    });
    let a = net.multi(A);
    let c = net.multi(C);
    let b_full = net.multi(B);
    let b_free = net.multi(B);
    net.connect(a, B, b_full);
    net.take(b_free);
    net.call(c, B, "aiortc-offer");
    net.expect_offer(b_free);
    net.silent(b_full);
}

#[test]
fn phone_is_one_of_the_forks_when_the_phone_network_is_on() {
    let mut net = Net::with_phones();
    let a = net.multi(A);
    let b = net.multi(B);
    net.call(a, B, "chromium-offer");
    net.expect_offer(b);
    net.expect_ring(B, A, "chromium-offer");
    net.phone_silent();
}

#[test]
fn number_without_terminals_rings_its_phone_when_the_phone_network_is_on() {
    let mut net = Net::with_phones();
    let a = net.multi(A);
    net.call(a, B, "chromium-offer");
    net.expect_ring(B, A, "chromium-offer");
    net.silent(a);
    assert_eq!(net.switch.call_count(), 1);
}

#[test]
fn no_phone_is_rung_when_the_phone_network_is_off() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.multi(B);
    net.call(a, B, "chromium-offer");
    net.expect_offer(b);
    net.phone_silent();
}

#[test]
fn another_numbers_terminal_cannot_address_a_call_by_either_sides_id() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.multi(B);
    let c = net.multi(C);
    let (a_id, b_id) = net.connect(a, B, b);
    for id in [a_id, b_id] {
        for body in [
            RequestBody::Bye,
            RequestBody::Ringing,
            RequestBody::ToPhone,
            answer("chromium-answer"),
            reoffer("chromium-hold-offer"),
        ] {
            assert_eq!(
                net.refused(c, Some(id), body.clone()),
                ErrorCode::InvalidCallId,
                "{body:?}"
            );
        }
    }
    net.silent(a);
    net.silent(b);
    assert_eq!(net.switch.call_count(), 1);
}

#[test]
fn another_numbers_terminal_cannot_answer_or_decline_a_ringing_call() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.multi(B);
    let c = net.multi(C);
    let a_id = net.call(a, B, "chromium-offer").unwrap();
    let b_id = net.expect_offer(b);
    for id in [a_id, b_id] {
        assert_eq!(
            net.refused(c, Some(id), answer("chromium-answer")),
            ErrorCode::InvalidCallId
        );
        assert_eq!(
            net.refused(c, Some(id), RequestBody::Bye),
            ErrorCode::InvalidCallId
        );
    }
    net.silent(a);
    net.silent(b);
}

#[test]
fn callees_terminal_cannot_use_the_callers_id() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.multi(B);
    let a_id = net.call(a, B, "chromium-offer").unwrap();
    let b_id = net.expect_offer(b);
    assert_ne!(a_id, b_id, "B is never shown A's id");
    assert_eq!(
        net.refused(b, Some(a_id), answer("chromium-answer")),
        ErrorCode::InvalidCallId
    );
    net.silent(a);
}

#[test]
fn callers_terminal_cannot_use_the_callees_id() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.multi(B);
    let (_, b_id) = net.connect(a, B, b);
    assert_eq!(
        net.refused(a, Some(b_id), RequestBody::Bye),
        ErrorCode::InvalidCallId
    );
    net.silent(b);
}

#[test]
fn another_number_reusing_an_id_gets_a_call_of_its_own() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.multi(B);
    let c = net.multi(C);
    let (a_id, _) = net.connect(a, B, b);
    // C picks, by chance or on purpose, the id A uses: ids are per number, so this is C's own call.
    net.ok(c, Some(a_id), offer_to(B, "aiortc-offer"));
    let cb = net.expect_offer(b);
    net.ok(b, Some(cb), RequestBody::Bye);
    assert_eq!(net.expect_bye(c, ByeReason::Declined), a_id);
    net.silent(a);
    assert_eq!(net.switch.call_count(), 1);
}

#[test]
fn pipe_of_another_number_cannot_act_on_a_call() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.multi(B);
    let c = net.idle_pipe(C);
    net.connect(a, B, b);
    assert_eq!(net.refused(c, None, RequestBody::Bye), ErrorCode::NotInCall);
    assert_eq!(
        net.refused(c, None, reoffer("chromium-offer")),
        ErrorCode::NotInCall
    );
    net.silent(a);
    net.silent(b);
}

#[test]
fn call_between_a_and_b_is_offered_to_b_only() {
    let mut net = Net::with_phones();
    let a = net.multi(A);
    let a2 = net.multi(A);
    let b = net.multi(B);
    let c = net.multi(C);
    net.call(a, B, "chromium-offer");
    net.expect_offer(b);
    net.expect_ring(B, A, "chromium-offer");
    net.silent(a2);
    net.silent(c);
    net.phone_silent();
}
