//! PROTOCOL.md 4.6: hand over to the mobile phone, with the simulated phone network driven through
//! its operator API.

use crate::for_all_transports;
use crate::support::*;
use webterminal_core::proto::simulator::Behaviour;
use webterminal_core::server::PhoneNetworkKind;

for_all_transports!(
    to_phone_moves_the_call_to_the_phone_and_the_terminal_gets_in_call_then_idle,
    far_side_ending_a_handed_over_call_releases_the_phone,
    handover_to_a_busy_or_unreachable_phone_gets_error_unknown_and_the_call_stays,
    handover_without_a_phone_network_gets_error_unknown,
    handover_the_far_side_does_not_answer_gets_error_unknown_and_the_call_stays,
    to_phone_from_a_terminal_that_is_not_the_active_leg_gets_not_incall,
);

/// A (MultiPipe) calls B's `kind` terminal, which answers; B's phone fork is withdrawn.
async fn call(core: &TestCore, kind: Kind) -> (Terminal, Terminal, String, String) {
    let mut a = core.open_idle(Kind::Multi, A).await;
    let mut b = core.open_idle(kind, B).await;
    let (a_id, b_id) = establish(&mut a, &mut b).await;
    core.wait_for_stats("established", |s| s.calls == 1).await;
    (a, b, a_id, b_id)
}

/// The far side `a` is re-offered the phone's generated SDP with B's number; returns it.
async fn far_side_offered_the_phone(a: &mut Terminal, a_id: &str) -> String {
    let offered = a.expect_offer().await;
    assert_eq!(offered.call_id, a_id);
    assert_eq!(offered.from, B);
    assert!(
        offered.sdp.contains("simulated phone (no media)"),
        "the phone's SDP is generated and says so: {}",
        offered.sdp
    );
    offered.sdp
}

async fn to_phone_moves_the_call_to_the_phone_and_the_terminal_gets_in_call_then_idle(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::Sim).await;
    let (mut a, mut b, a_id, b_id) = call(&core, kind).await;
    b.send(msg::to_phone(&b_id)).await;
    far_side_offered_the_phone(&mut a, &a_id).await;
    b.expect_silent(SILENCE).await;
    a.send(msg::answer(&a_id, &chromium_answer())).await;
    // The leg moved: InCall, no Bye.
    b.expect_in_call(&b_id, A).await;
    b.expect_silent(SILENCE).await;
    a.expect_silent(SILENCE).await;
    // The phone carries the call; its hang-up ends it.
    assert_eq!(core.phone_hang_up(B).await, 1);
    a.expect_bye_on(&a_id, Reason::NormalClearing).await;
    b.expect_idle(&b_id).await;
    core.assert_no_calls_left().await;
}

async fn far_side_ending_a_handed_over_call_releases_the_phone(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::Sim).await;
    let (mut a, mut b, a_id, b_id) = call(&core, kind).await;
    b.send(msg::to_phone(&b_id)).await;
    far_side_offered_the_phone(&mut a, &a_id).await;
    a.send(msg::answer(&a_id, &aiortc_answer())).await;
    b.expect_in_call(&b_id, A).await;
    a.send(msg::bye(&a_id)).await;
    b.expect_idle(&b_id).await;
    core.wait_for_stats("the call ends", |s| s.calls == 0).await;
    core.assert_phone_has_no_leg(B).await;
    core.assert_no_calls_left().await;
}

async fn handover_to_a_busy_or_unreachable_phone_gets_error_unknown_and_the_call_stays(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::Sim).await;
    let (mut a, mut b, a_id, b_id) = call(&core, kind).await;
    for behaviour in [Behaviour::Busy, Behaviour::Unreachable] {
        core.set_behaviour(B, behaviour).await;
        b.send(msg::to_phone(&b_id)).await;
        let text = b.expect_error(ErrCode::Unknown, &b_id).await;
        assert!(text.contains("phone"), "{behaviour:?}: {text}");
        a.expect_silent(SILENCE).await;
    }
    // The call stays where it was: b still carries it.
    b.send(msg::reoffer(&b_id, &sdp("chromium-hold-offer.sdp")))
        .await;
    a.expect_offer_of(&sdp("chromium-hold-offer.sdp"), B).await;
    a.send(msg::answer(&a_id, &sdp("chromium-hold-answer.sdp")))
        .await;
    b.expect_answer_of(&b_id, &sdp("chromium-hold-answer.sdp"))
        .await;
    b.send(msg::bye(&b_id)).await;
    a.expect_bye_on(&a_id, Reason::NormalClearing).await;
    core.assert_no_calls_left().await;
}

async fn handover_without_a_phone_network_gets_error_unknown(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    let (mut a, mut b, a_id, b_id) = call(&core, kind).await;
    b.send(msg::to_phone(&b_id)).await;
    b.expect_error(ErrCode::Unknown, &b_id).await;
    a.expect_silent(SILENCE).await;
    b.send(msg::bye(&b_id)).await;
    a.expect_bye_on(&a_id, Reason::NormalClearing).await;
    core.assert_no_calls_left().await;
}

async fn handover_the_far_side_does_not_answer_gets_error_unknown_and_the_call_stays(kind: Kind) {
    let core = TestCore::start(TestCore::short_negotiation(PhoneNetworkKind::Sim)).await;
    let (mut a, mut b, a_id, b_id) = call(&core, kind).await;
    b.send(msg::to_phone(&b_id)).await;
    far_side_offered_the_phone(&mut a, &a_id).await;
    // No answer within the negotiation timeout (300 ms).
    b.expect_error(ErrCode::Unknown, &b_id).await;
    core.assert_phone_has_no_leg(B).await;
    a.send(msg::answer(&a_id, &chromium_answer())).await;
    a.expect_error(ErrCode::NotIncall, &a_id).await;
    b.send(msg::bye(&b_id)).await;
    a.expect_bye_on(&a_id, Reason::NormalClearing).await;
    core.assert_no_calls_left().await;
}

async fn to_phone_from_a_terminal_that_is_not_the_active_leg_gets_not_incall(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::Sim).await;
    // A ringing fork may not hand over.
    let mut a = core.open_idle(Kind::Multi, A).await;
    let mut b = core.open_idle(kind, B).await;
    a.dial(B, &chromium_offer()).await;
    let ringing_id = b.expect_offer().await.call_id;
    b.send(msg::to_phone(&ringing_id)).await;
    b.expect_error(ErrCode::NotIncall, &ringing_id).await;
    b.send(msg::answer(&ringing_id, &chromium_answer())).await;
    let (a_id, _) = loop {
        // B's phone may have alerted first.
        let m = a.recv().await;
        if let Some(webterminal_core::proto::webterminal::web_terminal_message::Message::Answer(
            answer,
        )) = m.message
        {
            break (m.call_id, answer.sdp);
        }
    };
    let b_id = ringing_id;
    // An observer of B (a Pipe opened during the call, told InCall) may not hand over either.
    let mut observer = core.open(Kind::Pipe, B).await;
    observer.expect_in_call(&b_id, A).await;
    let sent = match kind {
        Kind::Pipe => String::new(),
        Kind::Multi => b_id.clone(),
    };
    observer.send(msg::to_phone(&sent)).await;
    observer.expect_error(ErrCode::NotIncall, &sent).await;
    a.expect_silent(SILENCE).await;
    b.expect_silent(SILENCE).await;
    b.send(msg::bye(&b_id)).await;
    a.expect_bye_on(&a_id, Reason::NormalClearing).await;
    core.assert_no_calls_left().await;
}
