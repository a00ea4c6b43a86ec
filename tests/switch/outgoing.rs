//! PROTOCOL.md 4.1: outgoing calls.

use crate::harness::*;
use webterminal_core::core::*;

#[test]
fn offer_ringing_answer_bye_between_two_pipes() {
    let mut net = Net::new();
    let a = net.pipe(A);
    let b = net.pipe(B);
    net.expect(a, None, NoticeBody::Idle);
    net.expect(b, None, NoticeBody::Idle);
    net.call(a, B, "chromium-offer");
    let b_id = net.expect_offer(b);
    net.silent(a);
    net.ok(b, None, RequestBody::Ringing);
    let a_id = match net.next(a) {
        Notice {
            call_id: Some(id),
            body: NoticeBody::Ringing,
        } => id,
        other => panic!("{other:?}"),
    };
    assert_ne!(a_id, b_id, "each side has its own id");
    net.ok(
        b,
        None,
        RequestBody::Answer {
            sdp: sdp("chromium-answer"),
        },
    );
    net.expect(
        a,
        Some(a_id),
        NoticeBody::Answer {
            sdp: sdp("chromium-answer"),
        },
    );
    net.ok(a, None, RequestBody::Bye);
    net.expect_bye(b, ByeReason::NormalClearing);
    net.silent(a);
    assert_eq!(net.switch.call_count(), 0);
}

#[test]
fn callee_is_offered_the_callers_sdp_byte_for_byte_with_the_callers_number() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.multi(B);
    let a_id = net.call(a, B, "aiortc-offer").unwrap();
    let got = net.next(b);
    let b_id = got.call_id.expect("an Offer carries the callee side's id");
    assert_ne!(
        a_id, b_id,
        "the callee side gets a fresh id, not the caller's"
    );
    match got.body {
        NoticeBody::Offer {
            sdp: offer, from, ..
        } => {
            assert_eq!(from, msisdn(A));
            assert_eq!(offer.as_str(), fixture("aiortc-offer"));
        }
        other => panic!("expected an Offer, got {other:?}"),
    }
}

#[test]
fn delivering_an_offer_is_not_alerting() {
    let mut net = Net::with_phones();
    let a = net.multi(A);
    let b = net.multi(B);
    net.call(a, B, "chromium-offer");
    net.expect_offer(b);
    net.expect_ring(B, A, "chromium-offer");
    net.silent(a);
}

#[test]
fn caller_gets_ringing_once_however_many_forks_alert() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b1 = net.multi(B);
    let b2 = net.multi(B);
    let a_id = net.call(a, B, "chromium-offer").unwrap();
    let b_id = net.expect_offer(b1);
    assert_eq!(
        net.expect_offer(b2),
        b_id,
        "every fork has the callee side's id"
    );
    net.ok(b1, Some(b_id), RequestBody::Ringing);
    net.expect(a, Some(a_id), NoticeBody::Ringing);
    net.ok(b2, Some(b_id), RequestBody::Ringing);
    net.ok(b1, Some(b_id), RequestBody::Ringing);
    net.silent(a);
}

#[test]
fn caller_gets_ringing_when_the_phone_reports_ringing() {
    let mut net = Net::with_phones();
    let a = net.multi(A);
    let a_id = net.call(a, B, "chromium-offer").unwrap();
    let leg = net.expect_ring(B, A, "chromium-offer");
    net.silent(a);
    net.phone_event(PhoneEvent::Ringing { leg });
    net.expect(a, Some(a_id), NoticeBody::Ringing);
}

#[test]
fn caller_gets_the_answering_legs_sdp_byte_for_byte() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.multi(B);
    let a_id = net.call(a, B, "aiortc-offer").unwrap();
    let b_id = net.expect_offer(b);
    net.ok(b, Some(b_id), answer("aiortc-answer"));
    net.expect_answer(a, a_id, "aiortc-answer");
}

#[test]
fn caller_gets_the_phones_answer_when_the_phone_answers() {
    let mut net = Net::with_phones();
    let a = net.multi(A);
    let a_id = net.call(a, B, "chromium-offer").unwrap();
    let leg = net.expect_ring(B, A, "chromium-offer");
    net.phone_event(PhoneEvent::Answered {
        leg,
        sdp: sdp("aiortc-answer"),
    });
    net.expect_answer(a, a_id, "aiortc-answer");
}

#[test]
fn callee_bye_ends_the_call_and_the_caller_gets_normal_clearing() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.multi(B);
    let (a_id, b_id) = net.connect(a, B, b);
    net.ok(b, Some(b_id), RequestBody::Bye);
    assert_eq!(net.expect_bye(a, ByeReason::NormalClearing), a_id);
    net.silent(b);
    assert_eq!(net.switch.call_count(), 0);
}

#[test]
fn caller_bye_ends_the_call_and_the_callee_gets_normal_clearing() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.multi(B);
    let (a_id, b_id) = net.connect(a, B, b);
    net.ok(a, Some(a_id), RequestBody::Bye);
    assert_eq!(net.expect_bye(b, ByeReason::NormalClearing), b_id);
    net.silent(a);
    assert_eq!(net.switch.call_count(), 0);
}

#[test]
fn caller_bye_before_answer_cancels_every_fork() {
    let mut net = Net::with_phones();
    let a = net.multi(A);
    let b1 = net.multi(B);
    let b2 = net.pipe(B);
    net.take(b2);
    let a_id = net.call(a, B, "chromium-offer").unwrap();
    let b_id = net.expect_offer(b1);
    assert_eq!(net.expect_offer(b2), b_id);
    let leg = net.expect_ring(B, A, "chromium-offer");
    net.ok(a, Some(a_id), RequestBody::Bye);
    assert_eq!(net.expect_bye(b1, ByeReason::Cancelled), b_id);
    assert_eq!(net.expect_bye(b2, ByeReason::Cancelled), b_id);
    net.expect_release(leg, ByeReason::Cancelled);
    net.silent(a);
    net.silent(b1);
    net.silent(b2);
    assert_eq!(net.switch.call_count(), 0);
}

#[test]
fn pipe_caller_gets_every_notice_with_the_one_id_the_core_made() {
    let mut net = Net::new();
    let a = net.idle_pipe(A);
    let b = net.idle_pipe(B);
    net.call(a, B, "chromium-offer");
    net.expect_offer(b);
    net.ok(b, None, RequestBody::Ringing);
    let id = match net.next(a) {
        Notice {
            call_id: Some(id),
            body: NoticeBody::Ringing,
        } => id,
        other => panic!("{other:?}"),
    };
    net.ok(b, None, answer("chromium-answer"));
    net.expect_answer(a, id, "chromium-answer");
    net.ok(b, None, RequestBody::Bye);
    assert_eq!(net.expect_bye(a, ByeReason::NormalClearing), id);
}

#[test]
fn multipipe_caller_gets_every_notice_with_the_id_it_chose() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.multi(B);
    let a_id = net.call(a, B, "chromium-offer").unwrap();
    let b_id = net.expect_offer(b);
    net.ok(b, Some(b_id), RequestBody::Ringing);
    net.expect(a, Some(a_id), NoticeBody::Ringing);
    net.ok(b, Some(b_id), answer("chromium-answer"));
    net.expect_answer(a, a_id, "chromium-answer");
    net.ok(b, Some(b_id), RequestBody::Bye);
    assert_eq!(net.expect_bye(a, ByeReason::NormalClearing), a_id);
}

#[test]
fn multipipe_carries_several_calls_at_once_each_by_its_own_id() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.multi(B);
    let c = net.multi(C);
    let (ab, b_side) = net.connect(a, B, b);
    let (ac, c_side) = net.connect(a, C, c);
    assert_ne!(ab, ac);
    net.ok(a, Some(ac), RequestBody::Bye);
    assert_eq!(net.expect_bye(c, ByeReason::NormalClearing), c_side);
    net.silent(b);
    net.ok(b, Some(b_side), RequestBody::Bye);
    assert_eq!(net.expect_bye(a, ByeReason::NormalClearing), ab);
}
