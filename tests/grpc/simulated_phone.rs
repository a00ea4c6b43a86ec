//! PROTOCOL.md section 7: the simulated phone network, driven through its operator API
//! `webterminal.core.v1.SimulatedPhoneNetwork` over gRPC.

use crate::for_all_transports;
use crate::support::*;
use tonic::Code;
use webterminal_core::proto::simulator::{Behaviour, PhoneRequest, SetBehaviourRequest};
use webterminal_core::server::PhoneNetworkKind;

for_all_transports!(
    phone_set_to_answer_answers_at_once_with_a_generated_sdp,
    phone_set_to_decline_declines,
    phone_set_back_to_ring_rings_and_never_answers_by_itself,
    re_offer_toward_a_phone_is_answered_by_it_at_once,
    phone_hanging_up_an_established_call_ends_it,
);

async fn phone_set_to_answer_answers_at_once_with_a_generated_sdp(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::Sim).await;
    core.set_behaviour(B, Behaviour::Answer).await;
    let mut a = core.open_idle(kind, A).await;
    let sent = a.dial(B, &chromium_offer()).await;
    let a_id = a.expect_ringing().await;
    a.assert_own_call_id(&sent, &a_id);
    let (id, sdp) = a.expect_answer().await;
    assert_eq!(id, a_id);
    assert!(
        sdp.contains("s=webterminal-core simulated phone (no media)")
            && sdp.contains("a=setup:active"),
        "a generated answer that says it carries no media: {sdp}"
    );
    a.send(msg::bye(&a_id)).await;
    core.wait_for_stats("the call ends", |s| s.calls == 0).await;
    core.assert_phone_has_no_leg(B).await;
    core.assert_no_calls_left().await;
}

async fn phone_set_to_decline_declines(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::Sim).await;
    core.set_behaviour(B, Behaviour::Decline).await;
    let mut a = core.open_idle(kind, A).await;
    let sent = a.dial(B, &chromium_offer()).await;
    let a_id = a.expect_ringing().await;
    a.assert_own_call_id(&sent, &a_id);
    a.expect_bye_on(&a_id, Reason::Declined).await;
    core.assert_no_calls_left().await;
}

async fn phone_set_back_to_ring_rings_and_never_answers_by_itself(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::Sim).await;
    core.set_behaviour(B, Behaviour::Answer).await;
    core.set_behaviour(B, Behaviour::Ring).await;
    let mut a = core.open_idle(kind, A).await;
    a.dial(B, &chromium_offer()).await;
    let a_id = a.expect_ringing().await;
    a.expect_silent(SILENCE).await;
    // The operator rejects it by hand.
    let legs = core
        .simulator()
        .await
        .reject(PhoneRequest { msisdn: B.into() })
        .await
        .expect("Reject")
        .into_inner()
        .legs;
    assert_eq!(legs, 1);
    a.expect_bye_on(&a_id, Reason::Declined).await;
    core.assert_no_calls_left().await;
}

async fn re_offer_toward_a_phone_is_answered_by_it_at_once(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::Sim).await;
    let mut a = core.open_idle(kind, A).await;
    a.dial(B, &chromium_offer()).await;
    let a_id = a.expect_ringing().await;
    core.phone_answer(B).await;
    let (_, first) = a.expect_answer().await;
    a.send(msg::reoffer(&a_id, &sdp("chromium-hold-offer.sdp")))
        .await;
    let (id, again) = a.expect_answer().await;
    assert_eq!(id, a_id);
    assert!(again.contains("simulated phone (no media)"), "{again}");
    assert_ne!(again, first, "each generated SDP is a new session");
    a.send(msg::bye(&a_id)).await;
    core.assert_no_calls_left().await;
}

async fn phone_hanging_up_an_established_call_ends_it(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::Sim).await;
    let mut a = core.open_idle(kind, A).await;
    let mut a_observer = core.open(Kind::Pipe, A).await;
    a_observer.expect_greeting_idle().await;
    a.dial(B, &aiortc_offer()).await;
    let a_id = a.expect_ringing().await;
    core.phone_answer(B).await;
    a.expect_answer().await;
    a_observer.expect_in_call(&a_id, B).await;
    assert_eq!(core.phone_hang_up(B).await, 1);
    a.expect_bye_on(&a_id, Reason::NormalClearing).await;
    a_observer.expect_greeting_idle().await;
    core.assert_no_calls_left().await;
}

#[tokio::test]
async fn operator_api_answers_not_found_and_invalid_argument() {
    let core = TestCore::new(PhoneNetworkKind::Sim).await;
    let mut sim = core.simulator().await;
    let phone = |m: &str| PhoneRequest { msisdn: m.into() };
    let answer = sim.answer(phone(B)).await.expect_err("nothing rings");
    assert_eq!(answer.code(), Code::NotFound, "{answer:?}");
    let reject = sim.reject(phone(B)).await.expect_err("nothing rings");
    assert_eq!(reject.code(), Code::NotFound, "{reject:?}");
    let hang_up = sim.hang_up(phone(B)).await.expect_err("no legs");
    assert_eq!(hang_up.code(), Code::NotFound, "{hang_up:?}");
    for bad in ["4799990002", "", "+47 99"] {
        let status = sim.answer(phone(bad)).await.expect_err("not E.164");
        assert_eq!(status.code(), Code::InvalidArgument, "{bad:?}: {status:?}");
        assert!(status.message().contains("msisdn"), "{status:?}");
        let status = sim
            .set_behaviour(SetBehaviourRequest {
                msisdn: bad.into(),
                behaviour: Behaviour::Busy as i32,
            })
            .await
            .expect_err("not E.164");
        assert_eq!(status.code(), Code::InvalidArgument, "{bad:?}: {status:?}");
    }
    let status = sim
        .set_behaviour(SetBehaviourRequest {
            msisdn: B.into(),
            behaviour: 42,
        })
        .await
        .expect_err("no such behaviour");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    core.assert_no_calls_left().await;
}

#[tokio::test]
async fn operator_api_is_not_served_without_the_simulated_network() {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    let status = core
        .simulator()
        .await
        .answer(PhoneRequest { msisdn: B.into() })
        .await
        .expect_err("no simulator");
    assert_eq!(status.code(), Code::Unimplemented, "{status:?}");
    core.assert_no_calls_left().await;
}
