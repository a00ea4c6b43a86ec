//! PROTOCOL.md section 6, the rows the switch owns (call state): INVALID_ARGUMENT for an Offer to
//! one's own number, INVALID_CALL_ID, NOT_INCALL, TRY_AGAIN (see also glare.rs and pull.rs) and
//! RATE_LIMIT_HIT for too many calls. A refused message changes nothing.

use crate::harness::*;
use webterminal_core::core::*;

#[test]
fn offer_to_ones_own_number_is_invalid_argument() {
    let mut net = Net::with_phones();
    let a = net.multi(A);
    let a2 = net.multi(A);
    let err = net
        .send(a, Some(CallId::random()), offer_to(A, "chromium-offer"))
        .expect_err("own number");
    assert_eq!(err.code, ErrorCode::InvalidArgument);
    assert!(err.message.contains("msisdn"), "names the field: {err}");
    net.silent(a2);
    net.phone_silent();
    assert_eq!(net.switch.call_count(), 0);
}

#[test]
fn offer_to_ones_own_number_is_reported_before_a_reused_call_id() {
    // Section 6 order: field validity before call state.
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.multi(B);
    let a_id = net.call(a, B, "chromium-offer").unwrap();
    net.expect_offer(b);
    assert_eq!(
        net.refused(a, Some(a_id), offer_to(A, "chromium-offer")),
        ErrorCode::InvalidArgument
    );
}

#[test]
fn pipe_offer_to_its_own_number_is_invalid_argument() {
    let mut net = Net::new();
    let a = net.idle_pipe(A);
    assert_eq!(
        net.refused(a, None, offer_to(A, "chromium-offer")),
        ErrorCode::InvalidArgument
    );
}

#[test]
fn message_for_a_call_id_the_number_does_not_have_is_invalid_call_id() {
    let mut net = Net::new();
    let a = net.multi(A);
    let unknown = Some(CallId::random());
    for body in [
        RequestBody::Bye,
        RequestBody::Ringing,
        RequestBody::ToPhone,
        answer("chromium-answer"),
        reoffer("chromium-hold-offer"),
    ] {
        assert_eq!(
            net.refused(a, unknown, body.clone()),
            ErrorCode::InvalidCallId,
            "{body:?}"
        );
    }
    net.silent(a);
}

#[test]
fn message_for_a_call_that_has_ended_is_invalid_call_id() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.multi(B);
    let (a_id, _) = net.connect(a, B, b);
    net.ok(a, Some(a_id), RequestBody::Bye);
    net.take(b);
    assert_eq!(
        net.refused(a, Some(a_id), RequestBody::Bye),
        ErrorCode::InvalidCallId
    );
}

#[test]
fn new_call_reusing_a_live_id_is_invalid_call_id() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.multi(B);
    let _c = net.multi(C);
    let a_id = net.call(a, B, "chromium-offer").unwrap();
    net.expect_offer(b);
    assert_eq!(
        net.refused(a, Some(a_id), offer_to(C, "chromium-offer")),
        ErrorCode::InvalidCallId
    );
    assert_eq!(net.switch.call_count(), 1);
}

#[test]
fn new_call_reusing_a_live_id_from_another_terminal_of_the_number_is_invalid_call_id() {
    let mut net = Net::new();
    let a1 = net.multi(A);
    let a2 = net.multi(A);
    let b = net.multi(B);
    let (a_id, _) = net.connect(a1, B, b);
    net.take(a2);
    assert_eq!(
        net.refused(a2, Some(a_id), offer_to(C, "chromium-offer")),
        ErrorCode::InvalidCallId
    );
}

#[test]
fn new_call_reusing_the_id_of_an_incoming_call_is_invalid_call_id() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.multi(B);
    net.call(a, B, "chromium-offer");
    let b_id = net.expect_offer(b);
    assert_eq!(
        net.refused(b, Some(b_id), offer_to(C, "chromium-offer")),
        ErrorCode::InvalidCallId
    );
}

#[test]
fn call_id_may_be_reused_once_its_call_has_ended() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.multi(B);
    let (a_id, _) = net.connect(a, B, b);
    net.ok(a, Some(a_id), RequestBody::Bye);
    net.take(b);
    net.ok(a, Some(a_id), offer_to(B, "chromium-offer"));
    net.expect_offer(b);
}

/// B has two MultiPipes with a cap of one call: `b_full` is in a call with C, `b` is free. A calls
/// B, so only `b` is offered the call. Returns (net, a, b_full, b, B's id of A's call).
fn callee_with_a_full_terminal() -> (Net, TerminalId, TerminalId, TerminalId, CallId) {
    let mut net = Net::with_call_cap(1);
    let a = net.multi(A);
    let c = net.multi(C);
    let b_full = net.multi(B);
    net.connect(c, B, b_full);
    let b = net.multi(B);
    net.call(a, B, "chromium-offer");
    let b_id = net.expect_offer(b);
    (net, a, b_full, b, b_id)
}

#[test]
fn answer_from_a_terminal_of_the_callee_that_was_not_offered_the_call_is_not_incall() {
    // Only b is offered the call; b_full is at its cap. It learns B's id some other way.
    let (mut net, a, b_full, b, b_id) = callee_with_a_full_terminal();
    net.silent(b_full);
    assert_eq!(
        net.refused(b_full, Some(b_id), answer("chromium-answer")),
        ErrorCode::NotInCall
    );
    net.silent(a);
    net.silent(b);
}

#[test]
fn ringing_from_a_terminal_of_the_callee_that_was_not_offered_the_call_is_not_incall() {
    let (mut net, a, b_full, _, b_id) = callee_with_a_full_terminal();
    assert_eq!(
        net.refused(b_full, Some(b_id), RequestBody::Ringing),
        ErrorCode::NotInCall
    );
    net.silent(a);
}

#[test]
fn answer_from_the_callers_own_terminal_is_not_incall() {
    let mut net = Net::new();
    let a = net.multi(A);
    let a2 = net.multi(A);
    let b = net.multi(B);
    let a_id = net.call(a, B, "chromium-offer").unwrap();
    net.expect_offer(b);
    assert_eq!(
        net.refused(a, Some(a_id), answer("chromium-answer")),
        ErrorCode::NotInCall
    );
    assert_eq!(
        net.refused(a2, Some(a_id), answer("chromium-answer")),
        ErrorCode::NotInCall
    );
    assert_eq!(
        net.refused(a2, Some(a_id), RequestBody::Ringing),
        ErrorCode::NotInCall
    );
    net.silent(b);
}

#[test]
fn answer_with_no_offer_pending_is_not_incall() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.multi(B);
    let (a_id, b_id) = net.connect(a, B, b);
    assert_eq!(
        net.refused(b, Some(b_id), answer("chromium-answer")),
        ErrorCode::NotInCall
    );
    assert_eq!(
        net.refused(a, Some(a_id), answer("chromium-answer")),
        ErrorCode::NotInCall
    );
}

#[test]
fn offerer_answering_its_own_re_offer_is_not_incall() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.multi(B);
    let (a_id, _) = net.connect(a, B, b);
    net.ok(a, Some(a_id), reoffer("chromium-hold-offer"));
    net.expect_offer(b);
    assert_eq!(
        net.refused(a, Some(a_id), answer("chromium-hold-answer")),
        ErrorCode::NotInCall
    );
}

#[test]
fn ringing_on_an_established_call_is_not_incall() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.multi(B);
    let (_, b_id) = net.connect(a, B, b);
    assert_eq!(
        net.refused(b, Some(b_id), RequestBody::Ringing),
        ErrorCode::NotInCall
    );
    net.silent(a);
}

/// A (MultiPipe) in a call with B on `b`; `obs` is another MultiPipe of B that observes it.
fn with_observer(net: &mut Net) -> (TerminalId, TerminalId, TerminalId, CallId) {
    let a = net.multi(A);
    let b = net.multi(B);
    let (_, b_id) = net.connect(a, B, b);
    let obs = net.multi(B);
    (a, b, obs, b_id)
}

#[test]
fn observers_bye_is_not_incall_and_ends_nothing() {
    let mut net = Net::new();
    let (a, b, obs, b_id) = with_observer(&mut net);
    assert_eq!(
        net.refused(obs, Some(b_id), RequestBody::Bye),
        ErrorCode::NotInCall
    );
    net.silent(a);
    net.silent(b);
    assert_eq!(net.switch.call_count(), 1);
}

#[test]
fn observers_to_phone_is_not_incall() {
    let mut net = Net::with_phones();
    let (_, _, obs, b_id) = with_observer(&mut net);
    net.phone.clear();
    assert_eq!(
        net.refused(obs, Some(b_id), RequestBody::ToPhone),
        ErrorCode::NotInCall
    );
    net.phone_silent();
}

#[test]
fn observers_answer_is_not_incall() {
    let mut net = Net::new();
    let (a, _, obs, b_id) = with_observer(&mut net);
    assert_eq!(
        net.refused(obs, Some(b_id), answer("chromium-answer")),
        ErrorCode::NotInCall
    );
    net.silent(a);
}

#[test]
fn observers_answer_to_a_re_offer_meant_for_the_active_leg_is_not_incall() {
    let mut net = Net::new();
    let (a, b, obs, b_id) = with_observer(&mut net);
    let a_id = a_side_id(&mut net, a, b, b_id);
    net.ok(a, Some(a_id), reoffer("chromium-hold-offer"));
    net.expect_offer(b);
    assert_eq!(
        net.refused(obs, Some(b_id), answer("chromium-hold-answer")),
        ErrorCode::NotInCall
    );
    net.silent(a);
    // The active leg's answer still completes the re-offer.
    net.ok(b, Some(b_id), answer("chromium-hold-answer"));
    net.expect_answer(a, a_id, "chromium-hold-answer");
}

/// A's id of the call, learned from a renegotiation b starts and a answers.
fn a_side_id(net: &mut Net, a: TerminalId, b: TerminalId, b_id: CallId) -> CallId {
    net.ok(b, Some(b_id), reoffer("aiortc-hold-offer"));
    let a_id = net.expect_offer(a);
    net.ok(a, Some(a_id), answer("aiortc-hold-answer"));
    net.expect_answer(b, b_id, "aiortc-hold-answer");
    a_id
}

#[test]
fn observers_ringing_is_not_incall() {
    let mut net = Net::new();
    let (a, _, obs, b_id) = with_observer(&mut net);
    assert_eq!(
        net.refused(obs, Some(b_id), RequestBody::Ringing),
        ErrorCode::NotInCall
    );
    net.silent(a);
}

#[test]
fn pipe_in_no_call_sending_bye_is_not_incall() {
    // Choice: a Pipe's call_id is ignored, so there is no id to be invalid; a Pipe whose number
    // is in no call has nothing to act on: NOT_INCALL.
    let mut net = Net::new();
    let a = net.idle_pipe(A);
    for body in [
        RequestBody::Bye,
        RequestBody::Ringing,
        RequestBody::ToPhone,
        answer("chromium-answer"),
        reoffer("chromium-offer"),
    ] {
        assert_eq!(
            net.refused(a, None, body.clone()),
            ErrorCode::NotInCall,
            "{body:?}"
        );
    }
}

#[test]
fn multipipe_at_its_call_cap_gets_rate_limit_hit_for_a_new_call() {
    let mut net = Net::with_call_cap(2);
    let a = net.multi(A);
    let b = net.multi(B);
    let c = net.multi(C);
    net.connect(a, B, b);
    net.call(a, C, "chromium-offer");
    net.expect_offer(c);
    let err = net
        .send(a, Some(CallId::random()), offer_to(C, "aiortc-offer"))
        .expect_err("over the cap");
    assert_eq!(err.code, ErrorCode::RateLimitHit);
    net.silent(c);
    assert_eq!(net.switch.call_count(), 2);
}

#[test]
fn multipipe_under_its_cap_again_may_place_a_call() {
    let mut net = Net::with_call_cap(1);
    let a = net.multi(A);
    let b = net.multi(B);
    let (a_id, _) = net.connect(a, B, b);
    assert_eq!(
        net.refused(a, Some(CallId::random()), offer_to(C, "chromium-offer")),
        ErrorCode::RateLimitHit
    );
    net.ok(a, Some(a_id), RequestBody::Bye);
    net.take(b);
    net.call(a, B, "chromium-offer");
    net.expect_offer(b);
}

#[test]
fn pipes_second_call_gets_rate_limit_hit() {
    let mut net = Net::new();
    let a = net.idle_pipe(A);
    let b = net.multi(B);
    let c = net.multi(C);
    net.connect(a, B, b);
    assert_eq!(
        net.refused(a, None, offer_to(C, "chromium-offer")),
        ErrorCode::RateLimitHit
    );
    net.silent(c);
    assert_eq!(net.switch.call_count(), 1);
}

#[test]
fn pipe_placing_a_second_call_while_its_first_rings_gets_rate_limit_hit() {
    let mut net = Net::new();
    let a = net.idle_pipe(A);
    let b = net.multi(B);
    let _c = net.multi(C);
    net.call(a, B, "chromium-offer");
    net.expect_offer(b);
    assert_eq!(
        net.refused(a, None, offer_to(C, "chromium-offer")),
        ErrorCode::RateLimitHit
    );
}
