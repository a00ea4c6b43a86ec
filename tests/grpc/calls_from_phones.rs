//! PROTOCOL.md 4.11 over real gRPC: the simulated phone network's `Dial` calls a subscriber, whose
//! terminals ring like a mobile phone; a call dialled on the mobile phone moves to the browser.

use crate::for_all_transports;
use crate::support::*;
use tonic::Code;
use webterminal_core::proto::simulator::Behaviour;
use webterminal_core::server::PhoneNetworkKind;

for_all_transports!(
    a_dialled_phone_rings_the_terminal_which_answers_then_the_phone_hangs_up,
    a_phone_hanging_up_while_ringing_cancels_the_terminals_offer,
    a_terminal_declining_a_phone_call_frees_the_phone,
    a_call_dialled_on_the_mobile_phone_is_pulled_to_a_terminal,
);

async fn a_dialled_phone_rings_the_terminal_which_answers_then_the_phone_hangs_up(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::Sim).await;
    let mut b = core.open_idle(kind, B).await;
    core.dial_from_phone(A, B).await;
    let offered = b.expect_offer().await;
    assert_eq!(
        offered.from, A,
        "the Offer names the calling phone's number"
    );
    assert!(
        offered.sdp.contains("simulated phone (no media)"),
        "the phone's generated offer: {}",
        offered.sdp
    );
    b.send(msg::ringing(&offered.call_id)).await;
    b.send(msg::answer(&offered.call_id, &chromium_answer()))
        .await;
    b.expect_silent(SILENCE).await;
    // B's own phone was rung too, and released when the terminal answered.
    core.assert_phone_has_no_leg(B).await;
    assert_eq!(core.phone_hang_up(A).await, 1, "the calling phone's leg");
    b.expect_bye_on(&offered.call_id, Reason::NormalClearing)
        .await;
    core.assert_no_calls_left().await;
}

async fn a_phone_hanging_up_while_ringing_cancels_the_terminals_offer(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::Sim).await;
    let mut b = core.open_idle(kind, B).await;
    core.dial_from_phone(A, B).await;
    let offered = b.expect_offer().await;
    assert_eq!(core.phone_hang_up(A).await, 1);
    b.expect_bye_on(&offered.call_id, Reason::Cancelled).await;
    core.assert_phone_has_no_leg(B).await;
    core.assert_no_calls_left().await;
}

async fn a_terminal_declining_a_phone_call_frees_the_phone(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::Sim).await;
    let mut b = core.open_idle(kind, B).await;
    core.dial_from_phone(A, B).await;
    let offered = b.expect_offer().await;
    b.send(msg::bye(&offered.call_id)).await;
    core.wait_for_stats("the call ends", |s| s.calls == 0).await;
    core.assert_phone_has_no_leg(A).await;
    core.assert_phone_has_no_leg(B).await;
    core.assert_no_calls_left().await;
}

async fn a_call_dialled_on_the_mobile_phone_is_pulled_to_a_terminal(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::Sim).await;
    let mut a = core.open_idle(kind, A).await;
    core.dial_from_phone(A, B).await;
    core.phone_answer(B).await;
    // A's terminal sees its number in a call with B on another device: the mobile phone.
    let a_id = a.expect_any_in_call(B).await;
    a.send(msg::reoffer(&a_id, &chromium_offer())).await;
    // B's simulated phone answers the re-offer at once; the call is now on A's terminal.
    let (id, sdp) = a.expect_answer().await;
    assert_eq!(id, a_id);
    assert!(sdp.contains("simulated phone (no media)"), "{sdp}");
    core.assert_phone_has_no_leg(A).await;
    a.send(msg::bye(&a_id)).await;
    core.wait_for_stats("the call ends", |s| s.calls == 0).await;
    core.assert_phone_has_no_leg(B).await;
    core.assert_no_calls_left().await;
}

#[tokio::test]
async fn dial_from_a_busy_or_unreachable_phone_is_failed_precondition() {
    let core = TestCore::new(PhoneNetworkKind::Sim).await;
    for behaviour in [Behaviour::Busy, Behaviour::Unreachable] {
        core.set_behaviour(A, behaviour).await;
        let status = core
            .try_dial_from_phone(A, B)
            .await
            .expect_err("the phone cannot dial");
        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    }
    core.assert_no_calls_left().await;
}

#[tokio::test]
async fn dial_with_a_bad_number_or_to_itself_is_invalid_argument() {
    let core = TestCore::new(PhoneNetworkKind::Sim).await;
    for (from, to, field) in [("4799990001", B, "from"), (A, "", "to"), (A, A, "own")] {
        let status = core
            .try_dial_from_phone(from, to)
            .await
            .expect_err("refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(status.message().contains(field), "{status:?}");
    }
    core.assert_no_calls_left().await;
}

#[tokio::test]
async fn a_phone_calling_a_number_with_no_terminal_rings_its_phone() {
    let core = TestCore::new(PhoneNetworkKind::Sim).await;
    core.try_dial_from_phone(A, C).await.expect("Dial");
    core.phone_answer(C).await;
    core.wait_for_stats("the call is up", |s| s.calls == 1)
        .await;
    assert_eq!(core.phone_hang_up(C).await, 1);
    core.wait_for_stats("the call ends", |s| s.calls == 0).await;
    core.assert_phone_has_no_leg(A).await;
    core.assert_no_calls_left().await;
}
