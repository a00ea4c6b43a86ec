//! PROTOCOL.md 4.7: renegotiation (hold, ICE restart) and glare.

use crate::for_all_transports;
use crate::support::*;
use webterminal_core::server::PhoneNetworkKind;

for_all_transports!(
    hold_and_ice_restart_are_relayed_both_ways_byte_for_byte,
    glare_the_later_offer_gets_try_again,
    unanswered_re_offer_gets_try_again_and_a_late_answer_not_incall,
    re_offer_from_the_caller_before_answer_gets_try_again,
);

async fn hold_and_ice_restart_are_relayed_both_ways_byte_for_byte(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    let mut a = core.open_idle(kind, A).await;
    let mut b = core.open_idle(kind, B).await;
    let (a_id, b_id) = establish(&mut a, &mut b).await;
    // The caller puts the call on hold.
    a.send(msg::reoffer(&a_id, &sdp("chromium-hold-offer.sdp")))
        .await;
    assert_eq!(
        b.expect_offer_of(&sdp("chromium-hold-offer.sdp"), A).await,
        b_id
    );
    b.send(msg::answer(&b_id, &sdp("chromium-hold-answer.sdp")))
        .await;
    a.expect_answer_of(&a_id, &sdp("chromium-hold-answer.sdp"))
        .await;
    // The callee restarts ICE.
    b.send(msg::reoffer(&b_id, &sdp("chromium-icerestart-offer.sdp")))
        .await;
    assert_eq!(
        a.expect_offer_of(&sdp("chromium-icerestart-offer.sdp"), B)
            .await,
        a_id
    );
    a.send(msg::answer(&a_id, &chromium_answer())).await;
    b.expect_answer_of(&b_id, &chromium_answer()).await;
    // aiortc's hold keeps its o= version: relayed unchanged all the same.
    a.send(msg::reoffer(&a_id, &sdp("aiortc-hold-offer.sdp")))
        .await;
    b.expect_offer_of(&sdp("aiortc-hold-offer.sdp"), A).await;
    b.send(msg::answer(&b_id, &sdp("aiortc-hold-answer.sdp")))
        .await;
    a.expect_answer_of(&a_id, &sdp("aiortc-hold-answer.sdp"))
        .await;
    a.expect_silent(SILENCE).await;
    b.expect_silent(SILENCE).await;
    core.assert_no_calls_left().await;
}

async fn glare_the_later_offer_gets_try_again(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    let mut a = core.open_idle(kind, A).await;
    let mut b = core.open_idle(kind, B).await;
    let (a_id, b_id) = establish(&mut a, &mut b).await;
    a.send(msg::reoffer(&a_id, &sdp("chromium-hold-offer.sdp")))
        .await;
    b.expect_offer_of(&sdp("chromium-hold-offer.sdp"), A).await;
    // B's own offer crosses A's: the later one loses.
    b.send(msg::reoffer(&b_id, &sdp("chromium-icerestart-offer.sdp")))
        .await;
    b.expect_error(ErrCode::TryAgain, &b_id).await;
    // So does a second offer from A while its first is pending.
    a.send(msg::reoffer(&a_id, &aiortc_offer())).await;
    a.expect_error(ErrCode::TryAgain, &a_id).await;
    b.send(msg::answer(&b_id, &sdp("chromium-hold-answer.sdp")))
        .await;
    a.expect_answer_of(&a_id, &sdp("chromium-hold-answer.sdp"))
        .await;
    // Now B may offer.
    b.send(msg::reoffer(&b_id, &sdp("chromium-icerestart-offer.sdp")))
        .await;
    a.expect_offer_of(&sdp("chromium-icerestart-offer.sdp"), B)
        .await;
    core.assert_no_calls_left().await;
}

async fn unanswered_re_offer_gets_try_again_and_a_late_answer_not_incall(kind: Kind) {
    let core = TestCore::start(TestCore::short_negotiation(PhoneNetworkKind::None)).await;
    let mut a = core.open_idle(kind, A).await;
    let mut b = core.open_idle(kind, B).await;
    let (a_id, b_id) = establish(&mut a, &mut b).await;
    a.send(msg::reoffer(&a_id, &sdp("chromium-hold-offer.sdp")))
        .await;
    b.expect_offer_of(&sdp("chromium-hold-offer.sdp"), A).await;
    // Not answered within the negotiation timeout (300 ms): the offerer gets TRY_AGAIN.
    a.expect_error(ErrCode::TryAgain, &a_id).await;
    // The far side is told nothing; its late Answer fits no pending offer.
    b.expect_silent(SILENCE).await;
    b.send(msg::answer(&b_id, &sdp("chromium-hold-answer.sdp")))
        .await;
    b.expect_error(ErrCode::NotIncall, &b_id).await;
    a.expect_silent(SILENCE).await;
    // The call is unharmed.
    b.send(msg::bye(&b_id)).await;
    a.expect_bye_on(&a_id, Reason::NormalClearing).await;
    core.assert_no_calls_left().await;
}

async fn re_offer_from_the_caller_before_answer_gets_try_again(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    let mut a = core.open_idle(kind, A).await;
    let mut b = core.open_idle(kind, B).await;
    a.dial(B, &chromium_offer()).await;
    let b_id = b.expect_offer().await.call_id;
    b.send(msg::ringing(&b_id)).await;
    let a_id = a.expect_ringing().await;
    a.send(msg::reoffer(&a_id, &aiortc_offer())).await;
    a.expect_error(ErrCode::TryAgain, &a_id).await;
    // A ringing fork may not re-offer either.
    b.send(msg::reoffer(&b_id, &aiortc_offer())).await;
    b.expect_error(ErrCode::NotIncall, &b_id).await;
    b.send(msg::answer(&b_id, &chromium_answer())).await;
    a.expect_answer_of(&a_id, &chromium_answer()).await;
    core.assert_no_calls_left().await;
}
