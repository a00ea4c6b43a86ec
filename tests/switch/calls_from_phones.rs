//! PROTOCOL.md 4.11: calls from the phone network. A phone calls a subscriber; the call is routed as
//! a terminal's call would be (4.2, section 5), the calling phone's leg being the caller side's
//! active leg, and everything of 4.4–4.10 applies.

use crate::harness::*;
use std::time::Duration;
use webterminal_core::core::*;

/// A's phone calls B, who has MultiPipe `b` (and, phones on, its own phone). Returns (b, b's side
/// id, the calling leg, B's own phone leg).
fn phone_calls_b(net: &mut Net) -> (TerminalId, CallId, PhoneLegId, PhoneLegId) {
    let b = net.multi(B);
    let caller = net.dial(A, B, "aiortc-offer");
    let b_id = net.expect_offer_from(b, A, "aiortc-offer");
    let ring = net.expect_ring(B, A, "aiortc-offer");
    (b, b_id, caller, ring)
}

/// A's phone calls B; `b` answers with aiortc-answer; the calling phone gets that answer and B's
/// own phone fork is released. Returns (b, b_id, caller leg).
fn answered_on_b(net: &mut Net) -> (TerminalId, CallId, PhoneLegId) {
    let (b, b_id, caller, ring) = phone_calls_b(net);
    net.ok(b, Some(b_id), answer("aiortc-answer"));
    net.expect_release(ring, ByeReason::AnsweredElsewhere);
    net.expect_phone_answer(caller, "aiortc-answer");
    net.phone_silent();
    (b, b_id, caller)
}

#[test]
fn a_phone_call_rings_every_terminal_of_the_callee_and_its_phone() {
    let mut net = Net::with_phones();
    let b1 = net.multi(B);
    let b2 = net.idle_pipe(B);
    let caller = net.dial(A, B, "aiortc-offer");
    let id1 = net.expect_offer(b1);
    let id2 = net.expect_offer(b2);
    assert_eq!(id1, id2, "one id for B's side, on every device");
    let ring = net.expect_ring(B, A, "aiortc-offer");
    net.phone_silent();
    // B's terminals leave; the call still rings B's phone, a call between phones.
    net.gone(b1);
    net.gone(b2);
    assert_eq!(net.switch.call_count(), 1);
    net.phone_event(PhoneEvent::HungUp { leg: caller });
    net.expect_release(ring, ByeReason::Cancelled);
}

#[test]
fn the_offer_carries_the_calling_phones_number_and_sdp_byte_for_byte() {
    let mut net = Net::new();
    let b = net.multi(B);
    net.dial(A, B, "aiortc-offer");
    net.expect_offer_from(b, A, "aiortc-offer");
}

#[test]
fn callee_alerting_is_reported_to_the_calling_phone_once() {
    let mut net = Net::new();
    let b1 = net.multi(B);
    let b2 = net.multi(B);
    let caller = net.dial(A, B, "aiortc-offer");
    let id = net.expect_offer(b1);
    net.expect_offer(b2);
    net.ok(b1, Some(id), RequestBody::Ringing);
    net.ok(b2, Some(id), RequestBody::Ringing);
    assert_eq!(net.next_phone(), PhoneCommand::Alerting { leg: caller });
    net.phone_silent();
}

#[test]
fn answer_on_a_terminal_goes_to_the_calling_phone_and_ends_the_other_forks() {
    let mut net = Net::with_phones();
    let b1 = net.multi(B);
    let b2 = net.multi(B);
    let caller = net.dial(A, B, "aiortc-offer");
    let id = net.expect_offer(b1);
    net.expect_offer(b2);
    let ring = net.expect_ring(B, A, "aiortc-offer");
    net.ok(b1, Some(id), answer("aiortc-answer"));
    net.expect_bye(b2, ByeReason::AnsweredElsewhere);
    net.expect_in_call(b2, id, A);
    net.expect_release(ring, ByeReason::AnsweredElsewhere);
    net.expect_phone_answer(caller, "aiortc-answer");
    net.silent(b1);
}

#[test]
fn answer_on_the_callees_phone_connects_phone_to_phone_and_the_terminals_see_in_call() {
    let mut net = Net::with_phones();
    let b = net.multi(B);
    let caller = net.dial(A, B, "aiortc-offer");
    let id = net.expect_offer(b);
    let ring = net.expect_ring(B, A, "aiortc-offer");
    net.phone_event(PhoneEvent::Answered {
        leg: ring,
        sdp: sdp("aiortc-answer"),
    });
    net.expect_phone_answer(caller, "aiortc-answer");
    net.expect_bye(b, ByeReason::AnsweredElsewhere);
    net.expect_in_call(b, id, A);
    // Carried phone to phone: it ends when a phone hangs up.
    net.phone_event(PhoneEvent::HungUp { leg: caller });
    net.expect_release(ring, ByeReason::NormalClearing);
    net.expect(b, Some(id), NoticeBody::Idle);
    assert_eq!(net.switch.call_count(), 0);
}

#[test]
fn a_terminal_declining_releases_the_calling_phone_with_declined() {
    let mut net = Net::with_phones();
    let b1 = net.multi(B);
    let b2 = net.multi(B);
    let caller = net.dial(A, B, "aiortc-offer");
    let id = net.expect_offer(b1);
    net.expect_offer(b2);
    let ring = net.expect_ring(B, A, "aiortc-offer");
    net.ok(b1, Some(id), RequestBody::Bye);
    net.expect_bye(b2, ByeReason::DeclinedElsewhere);
    net.expect_release(ring, ByeReason::DeclinedElsewhere);
    net.expect_release(caller, ByeReason::Declined);
    assert_eq!(net.switch.call_count(), 0);
}

#[test]
fn ring_timeout_releases_the_calling_phone_with_no_answer() {
    let mut net = Net::new();
    let b = net.multi(B);
    let caller = net.dial(A, B, "aiortc-offer");
    net.expect_offer(b);
    net.advance(Duration::from_secs(59));
    net.silent(b);
    net.phone_silent();
    net.advance(Duration::from_secs(1));
    net.expect_bye(b, ByeReason::Cancelled);
    net.expect_release(caller, ByeReason::NoAnswer);
}

#[test]
fn calling_phone_hanging_up_before_answer_cancels_every_fork() {
    let mut net = Net::with_phones();
    let b = net.multi(B);
    let caller = net.dial(A, B, "aiortc-offer");
    net.expect_offer(b);
    let ring = net.expect_ring(B, A, "aiortc-offer");
    net.phone_event(PhoneEvent::HungUp { leg: caller });
    net.expect_bye(b, ByeReason::Cancelled);
    net.expect_release(ring, ByeReason::Cancelled);
    net.phone_silent();
    assert_eq!(net.switch.call_count(), 0);
}

#[test]
fn calling_phone_hanging_up_after_answer_clears_the_active_leg() {
    let mut net = Net::with_phones();
    let b2 = net.multi(B);
    let (b, b_id, caller) = answered_on_b(&mut net);
    net.take(b2);
    net.phone_event(PhoneEvent::HungUp { leg: caller });
    net.expect_bye(b, ByeReason::NormalClearing);
    net.expect(b2, Some(b_id), NoticeBody::Idle);
    net.phone_silent();
}

#[test]
fn callee_hanging_up_releases_the_calling_phone() {
    let mut net = Net::with_phones();
    let (b, b_id, caller) = answered_on_b(&mut net);
    net.ok(b, Some(b_id), RequestBody::Bye);
    net.expect_release(caller, ByeReason::NormalClearing);
    assert_eq!(net.switch.call_count(), 0);
}

#[test]
fn nothing_to_ring_releases_the_calling_phone_unavailable_or_busy() {
    let mut net = Net::new();
    let caller = net.dial(A, B, "aiortc-offer");
    net.expect_release(caller, ByeReason::Unavailable);
    let b = net.idle_pipe(B);
    let c = net.multi(C);
    net.connect(b, C, c);
    let caller = net.dial(A, B, "aiortc-offer");
    net.expect_release(caller, ByeReason::Busy);
    assert_eq!(net.switch.call_count(), 1, "only B's call with C");
}

#[test]
fn a_phone_calling_its_own_number_is_released() {
    let mut net = Net::with_phones();
    let a = net.multi(A);
    let caller = net.dial(A, A, "aiortc-offer");
    net.expect_release(caller, ByeReason::Unavailable);
    net.silent(a);
    assert_eq!(net.switch.call_count(), 0);
}

#[test]
fn an_incoming_call_on_a_leg_already_in_use_is_ignored() {
    let mut net = Net::new();
    let b = net.multi(B);
    let c = net.multi(C);
    let caller = net.dial(A, B, "aiortc-offer");
    net.expect_offer(b);
    net.phone_event(PhoneEvent::Incoming {
        leg: caller,
        from: msisdn(A),
        to: msisdn(C),
        sdp: sdp("chromium-offer"),
        context: Default::default(),
    });
    net.silent(c);
    net.phone_silent();
    assert_eq!(net.switch.call_count(), 1);
}

#[test]
fn a_terminal_registering_while_a_phone_call_rings_is_offered_it() {
    let mut net = Net::new();
    let b1 = net.multi(B);
    net.dial(A, B, "aiortc-offer");
    let id = net.expect_offer(b1);
    let b2 = net.multi(B);
    let id2 = net.expect_offer_from(b2, A, "aiortc-offer");
    assert_eq!(id, id2);
}

#[test]
fn the_callers_terminals_see_the_call_in_progress_on_the_phone_then_idle() {
    let mut net = Net::with_phones();
    let a = net.multi(A);
    let a_pipe = net.idle_pipe(A);
    let (b, b_id, caller) = answered_on_b(&mut net);
    let a_id = match net.next(a) {
        Notice {
            call_id: Some(id),
            body: NoticeBody::InCall { peer },
        } => {
            assert_eq!(peer, msisdn(B), "InCall names the other party");
            id
        }
        other => panic!("expected InCall, got {other:?}"),
    };
    assert_ne!(a_id, b_id, "each side has its own id");
    net.expect_in_call(a_pipe, a_id, B);
    net.ok(b, Some(b_id), RequestBody::Bye);
    net.expect_release(caller, ByeReason::NormalClearing);
    net.expect(a, Some(a_id), NoticeBody::Idle);
    net.expect(a_pipe, None, NoticeBody::Idle);
}

#[test]
fn a_terminal_of_the_callers_number_pulls_the_call_from_the_phone() {
    let mut net = Net::with_phones();
    let a = net.multi(A);
    let (b, b_id, caller) = answered_on_b(&mut net);
    let a_id = net.expect_in_call_any(a, B);
    net.ok(a, Some(a_id), reoffer("chromium-offer"));
    net.expect_offer_of(b, b_id, A, "chromium-offer");
    net.phone_silent();
    net.ok(b, Some(b_id), answer("chromium-answer"));
    net.expect_answer(a, a_id, "chromium-answer");
    net.expect_release(caller, ByeReason::Pulled);
    net.silent(b);
    // a now carries the call: its Bye ends it.
    net.ok(a, Some(a_id), RequestBody::Bye);
    net.expect_bye(b, ByeReason::NormalClearing);
}

#[test]
fn a_terminal_of_the_callees_number_pulls_the_call_from_its_phone() {
    let mut net = Net::with_phones();
    let b = net.multi(B);
    let caller = net.dial(A, B, "aiortc-offer");
    let b_id = net.expect_offer(b);
    let ring = net.expect_ring(B, A, "aiortc-offer");
    net.phone_event(PhoneEvent::Answered {
        leg: ring,
        sdp: sdp("aiortc-answer"),
    });
    net.expect_phone_answer(caller, "aiortc-answer");
    net.expect_bye(b, ByeReason::AnsweredElsewhere);
    net.expect_in_call(b, b_id, A);
    net.ok(b, Some(b_id), reoffer("chromium-offer"));
    net.expect_phone_offer(caller, "chromium-offer");
    net.phone_event(PhoneEvent::Answered {
        leg: caller,
        sdp: sdp("aiortc-answer"),
    });
    net.expect_answer(b, b_id, "aiortc-answer");
    net.expect_release(ring, ByeReason::Pulled);
    net.ok(b, Some(b_id), RequestBody::Bye);
    net.expect_release(caller, ByeReason::NormalClearing);
}

#[test]
fn a_pulled_call_is_handed_back_to_the_callers_phone() {
    let mut net = Net::with_phones();
    let a = net.multi(A);
    let (b, b_id, caller) = answered_on_b(&mut net);
    let a_id = net.expect_in_call_any(a, B);
    net.ok(a, Some(a_id), reoffer("chromium-offer"));
    net.expect_offer(b);
    net.ok(b, Some(b_id), answer("chromium-answer"));
    net.expect_answer(a, a_id, "chromium-answer");
    net.expect_release(caller, ByeReason::Pulled);
    // Back to A's phone (4.6), with a fresh phone leg.
    net.ok(a, Some(a_id), RequestBody::ToPhone);
    let phone = match net.next_phone() {
        PhoneCommand::HandOver { leg, msisdn: m, .. } if m == msisdn(A) => leg,
        other => panic!("expected HandOver for A, got {other:?}"),
    };
    net.phone_event(PhoneEvent::HandOverReady {
        leg: phone,
        sdp: sdp("aiortc-offer"),
    });
    net.expect_offer_of(b, b_id, A, "aiortc-offer");
    net.ok(b, Some(b_id), answer("aiortc-answer"));
    net.expect_phone_answer(phone, "aiortc-answer");
    net.expect_in_call(a, a_id, B);
    net.ok(b, Some(b_id), RequestBody::Bye);
    net.expect_release(phone, ByeReason::NormalClearing);
    net.expect(a, Some(a_id), NoticeBody::Idle);
}

#[test]
fn a_terminals_re_offer_is_relayed_to_the_calling_phone_and_its_answer_back() {
    let mut net = Net::with_phones();
    let (b, b_id, caller) = answered_on_b(&mut net);
    net.ok(b, Some(b_id), reoffer("chromium-hold-offer"));
    net.expect_phone_offer(caller, "chromium-hold-offer");
    net.phone_event(PhoneEvent::Answered {
        leg: caller,
        sdp: sdp("aiortc-hold-answer"),
    });
    net.expect_answer(b, b_id, "aiortc-hold-answer");
}

#[test]
fn the_phones_re_offer_is_relayed_to_the_terminal_and_its_answer_back() {
    let mut net = Net::with_phones();
    let (b, b_id, caller) = answered_on_b(&mut net);
    net.phone_event(PhoneEvent::Offer {
        leg: caller,
        sdp: sdp("aiortc-hold-offer"),
    });
    net.expect_offer_of(b, b_id, A, "aiortc-hold-offer");
    net.ok(b, Some(b_id), answer("chromium-hold-answer"));
    net.expect_phone_answer(caller, "chromium-hold-answer");
}

#[test]
fn the_phones_re_offer_during_a_pending_negotiation_fails_and_the_call_goes_on() {
    let mut net = Net::with_phones();
    let (b, b_id, caller) = answered_on_b(&mut net);
    net.ok(b, Some(b_id), reoffer("chromium-hold-offer"));
    net.expect_phone_offer(caller, "chromium-hold-offer");
    net.phone_event(PhoneEvent::Offer {
        leg: caller,
        sdp: sdp("aiortc-hold-offer"),
    });
    assert_eq!(net.next_phone(), PhoneCommand::OfferFailed { leg: caller });
    net.silent(b);
    net.phone_event(PhoneEvent::Answered {
        leg: caller,
        sdp: sdp("aiortc-hold-answer"),
    });
    net.expect_answer(b, b_id, "aiortc-hold-answer");
}

#[test]
fn the_phones_unanswered_re_offer_fails_after_the_negotiation_timeout() {
    let mut net = Net::with_phones();
    let (b, b_id, caller) = answered_on_b(&mut net);
    net.phone_event(PhoneEvent::Offer {
        leg: caller,
        sdp: sdp("aiortc-hold-offer"),
    });
    net.expect_offer(b);
    net.advance(Duration::from_secs(30));
    assert_eq!(net.next_phone(), PhoneCommand::OfferFailed { leg: caller });
    assert_eq!(
        net.refused(b, Some(b_id), answer("chromium-hold-answer")),
        ErrorCode::NotInCall
    );
}

#[test]
fn the_phones_re_offer_before_answer_fails() {
    let mut net = Net::new();
    let b = net.multi(B);
    let caller = net.dial(A, B, "aiortc-offer");
    net.expect_offer(b);
    net.phone_event(PhoneEvent::Offer {
        leg: caller,
        sdp: sdp("aiortc-hold-offer"),
    });
    assert_eq!(net.next_phone(), PhoneCommand::OfferFailed { leg: caller });
    net.silent(b);
}

#[test]
fn callee_terminal_gone_within_the_grace_is_pulled_back_and_the_phone_sees_a_re_offer() {
    let mut net = Net::with(SwitchConfig {
        reconnect_grace: Duration::from_secs(15),
        ..Net::config()
    });
    let (b, b_id, caller) = answered_on_b(&mut net);
    net.gone(b);
    net.phone_silent();
    let b2 = net.multi(B);
    net.expect_in_call(b2, b_id, A);
    net.ok(b2, Some(b_id), reoffer("chromium-offer"));
    net.expect_phone_offer(caller, "chromium-offer");
    net.phone_event(PhoneEvent::Answered {
        leg: caller,
        sdp: sdp("aiortc-answer"),
    });
    net.expect_answer(b2, b_id, "aiortc-answer");
    net.phone_silent();
}

#[test]
fn callee_terminal_gone_without_grace_releases_the_phone_peer_gone() {
    let mut net = Net::with_phones();
    let (b, _, caller) = answered_on_b(&mut net);
    net.gone(b);
    net.expect_release(caller, ByeReason::PeerGone);
    assert_eq!(net.switch.call_count(), 0);
}

#[test]
fn shutdown_releases_the_calling_phone_with_server_shutdown() {
    let mut net = Net::with_phones();
    let (b, _, caller) = answered_on_b(&mut net);
    net.shutdown();
    net.expect_bye(b, ByeReason::ServerShutdown);
    net.expect_release(caller, ByeReason::ServerShutdown);
}
