//! PROTOCOL.md 4.1: outgoing call.

use crate::for_all_transports;
use crate::support::*;
use webterminal_core::server::PhoneNetworkKind;

for_all_transports!(
    caller_gets_ringing_once_then_the_answer_byte_for_byte,
    delivering_an_offer_is_not_alerting,
    phone_ringing_alerts_the_caller_and_its_answer_is_relayed,
    caller_bye_ends_the_call_and_the_callee_gets_normal_clearing,
    callee_bye_ends_the_call_and_the_caller_gets_normal_clearing,
    caller_bye_before_answer_cancels_every_fork,
);

async fn caller_gets_ringing_once_then_the_answer_byte_for_byte(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    let mut a = core.open_idle(kind, A).await;
    let mut b1 = core.open_idle(kind, B).await;
    let mut b2 = core.open_idle(kind, B).await;
    let sent = a.dial(B, &chromium_offer()).await;
    let b_id = b1.expect_offer_of(&chromium_offer(), A).await;
    assert_eq!(
        b2.expect_offer_of(&chromium_offer(), A).await,
        b_id,
        "every fork gets B's side id"
    );
    b1.send(msg::ringing(&b_id)).await;
    let a_id = a.expect_ringing().await;
    a.assert_own_call_id(&sent, &a_id);
    assert_ne!(a_id, b_id, "the callee side gets a fresh id");
    b2.send(msg::ringing(&b_id)).await;
    a.expect_silent(SILENCE).await;
    b2.send(msg::answer(&b_id, &chromium_answer())).await;
    a.expect_answer_of(&a_id, &chromium_answer()).await;
    b1.expect_bye_on(&b_id, Reason::AnsweredElsewhere).await;
    b1.expect_in_call(&b_id, A).await;
    core.assert_no_calls_left().await;
}

async fn delivering_an_offer_is_not_alerting(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    let mut a = core.open_idle(kind, A).await;
    let mut b = core.open_idle(kind, B).await;
    let sent = a.dial(B, &aiortc_offer()).await;
    let b_id = b.expect_offer_of(&aiortc_offer(), A).await;
    a.expect_silent(SILENCE).await;
    // Answered without ever ringing: the caller gets the Answer alone.
    b.send(msg::answer(&b_id, &aiortc_answer())).await;
    let (a_id, sdp) = a.expect_answer().await;
    a.assert_own_call_id(&sent, &a_id);
    assert!(sdp == aiortc_answer(), "answer relayed byte for byte");
    core.assert_no_calls_left().await;
}

async fn phone_ringing_alerts_the_caller_and_its_answer_is_relayed(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::Sim).await;
    let mut a = core.open_idle(kind, A).await;
    let sent = a.dial(NOBODY, &chromium_offer()).await;
    let a_id = a.expect_ringing().await;
    a.assert_own_call_id(&sent, &a_id);
    core.phone_answer(NOBODY).await;
    let (id, sdp) = a.expect_answer().await;
    assert_eq!(id, a_id);
    assert!(
        sdp.starts_with("v=0\r\n") && sdp.contains("m=audio"),
        "the simulated phone answers with a generated SDP: {sdp:?}"
    );
    a.send(msg::bye(&a_id)).await;
    core.wait_for_stats("the call ends", |s| s.calls == 0).await;
    core.assert_phone_has_no_leg(NOBODY).await;
    a.expect_silent(SILENCE).await;
    core.assert_no_calls_left().await;
}

async fn caller_bye_ends_the_call_and_the_callee_gets_normal_clearing(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    let mut a = core.open_idle(kind, A).await;
    let mut b = core.open_idle(kind, B).await;
    let (a_id, b_id) = establish(&mut a, &mut b).await;
    a.send(msg::bye(&a_id)).await;
    b.expect_bye_on(&b_id, Reason::NormalClearing).await;
    a.expect_silent(SILENCE).await;
    b.expect_silent(SILENCE).await;
    core.assert_no_calls_left().await;
}

async fn callee_bye_ends_the_call_and_the_caller_gets_normal_clearing(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    let mut a = core.open_idle(kind, A).await;
    let mut b = core.open_idle(kind, B).await;
    let (a_id, b_id) = establish_with(&mut a, &mut b, &aiortc_offer(), &aiortc_answer()).await;
    b.send(msg::bye(&b_id)).await;
    a.expect_bye_on(&a_id, Reason::NormalClearing).await;
    a.expect_silent(SILENCE).await;
    b.expect_silent(SILENCE).await;
    core.wait_for_stats("the call ends", |s| s.calls == 0).await;
    core.assert_no_calls_left().await;
}

async fn caller_bye_before_answer_cancels_every_fork(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::Sim).await;
    let mut a = core.open_idle(kind, A).await;
    let mut b1 = core.open_idle(kind, B).await;
    let mut b2 = core.open_idle(kind.other(), B).await;
    a.dial(B, &chromium_offer()).await;
    let b_id = b1.expect_offer().await.call_id;
    assert_eq!(b2.expect_offer().await.call_id, b_id);
    // B's simulated phone is a fork too; it alerts.
    let a_id = a.expect_ringing().await;
    a.send(msg::bye(&a_id)).await;
    b1.expect_bye_on(&b_id, Reason::Cancelled).await;
    b2.expect_bye_on(&b_id, Reason::Cancelled).await;
    core.wait_for_stats("the call ends", |s| s.calls == 0).await;
    core.assert_phone_has_no_leg(B).await;
    a.expect_silent(SILENCE).await;
    b1.expect_silent(SILENCE).await;
    core.assert_no_calls_left().await;
}
