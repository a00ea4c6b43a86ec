//! PROTOCOL.md 4.12 over real gRPC: a blind transfer to a number with terminals (the first pull
//! takes the call) and to one with only its simulated phone (it comes up as in a handover).

use crate::for_all_transports;
use crate::support::*;
use webterminal_core::server::PhoneNetworkKind;

for_all_transports!(
    a_transferred_call_is_pulled_by_the_targets_terminal,
    a_transferred_call_is_taken_by_the_targets_phone,
);

async fn a_transferred_call_is_pulled_by_the_targets_terminal(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    let mut a = core.open_idle(Kind::Multi, A).await;
    let mut b = core.open_idle(kind, B).await;
    let mut c = core.open_idle(Kind::Multi, C).await;
    let (a_id, b_id) = establish(&mut a, &mut b).await;
    // Without the '+', as WG2 clients write numbers.
    b.send(msg::transfer(&b_id, C.trim_start_matches('+')))
        .await;
    b.expect_bye_on(&b_id, Reason::Transferred).await;
    let c_id = c.expect_any_in_call(A).await;
    assert_ne!(c_id, b_id, "C's side has an id of its own");
    c.send(msg::reoffer(&c_id, &aiortc_offer())).await;
    let reoffered = a.expect_offer().await;
    assert_eq!(
        (reoffered.call_id.as_str(), reoffered.from.as_str()),
        (a_id.as_str(), C)
    );
    a.send(msg::answer(&a_id, &aiortc_answer())).await;
    c.expect_answer_of(&c_id, &aiortc_answer()).await;
    c.send(msg::bye(&c_id)).await;
    a.expect_bye_on(&a_id, Reason::NormalClearing).await;
    core.assert_no_calls_left().await;
}

async fn a_transferred_call_is_taken_by_the_targets_phone(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::Sim).await;
    let mut a = core.open_idle(Kind::Multi, A).await;
    let mut b = core.open_idle(kind, B).await;
    let (a_id, b_id) = establish(&mut a, &mut b).await;
    b.send(msg::transfer(&b_id, C)).await;
    b.expect_bye_on(&b_id, Reason::Transferred).await;
    // C's simulated phone comes up at once with a generated offer, relayed to A.
    let reoffered = a.expect_offer().await;
    assert_eq!(reoffered.from, C);
    assert!(reoffered.sdp.contains("simulated phone (no media)"));
    a.send(msg::answer(&a_id, &aiortc_answer())).await;
    a.expect_silent(SILENCE).await;
    assert_eq!(core.phone_hang_up(C).await, 1, "the call is on C's phone");
    a.expect_bye_on(&a_id, Reason::NormalClearing).await;
    core.assert_no_calls_left().await;
}

#[tokio::test]
async fn transfer_to_a_number_already_in_the_call_is_invalid_argument() {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    let mut a = core.open_idle(Kind::Multi, A).await;
    let mut b = core.open_idle(Kind::Multi, B).await;
    let (a_id, b_id) = establish(&mut a, &mut b).await;
    b.send(msg::transfer(&b_id, A)).await;
    b.expect_error(ErrCode::InvalidArgument, &b_id).await;
    b.send(msg::transfer(&b_id, B)).await;
    b.expect_error(ErrCode::InvalidArgument, &b_id).await;
    b.send(msg::transfer(&b_id, "not a number")).await;
    b.expect_error(ErrCode::InvalidArgument, &b_id).await;
    a.send(msg::bye(&a_id)).await;
    core.assert_no_calls_left().await;
}
