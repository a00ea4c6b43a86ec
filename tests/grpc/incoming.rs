//! PROTOCOL.md 4.2: incoming call.

use crate::for_all_transports;
use crate::support::*;
use webterminal_core::server::PhoneNetworkKind;

for_all_transports!(
    every_eligible_device_gets_the_offer_with_the_callers_sdp_and_number,
    first_answer_wins_and_the_other_forks_get_answered_elsewhere_then_in_call,
    bye_from_a_ringing_fork_declines_the_whole_call,
    terminal_registering_while_the_call_rings_is_offered_it_too,
    phone_answering_first_wins_over_the_terminals,
    phone_declining_declines_the_whole_call,
);

async fn every_eligible_device_gets_the_offer_with_the_callers_sdp_and_number(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::Sim).await;
    let mut a = core.open_idle(Kind::Multi, A).await;
    let mut b1 = core.open_idle(kind, B).await;
    let mut b2 = core.open_idle(kind, B).await;
    let mut c = core.open_idle(kind, C).await;
    let a_id = a.dial(B, &aiortc_offer()).await;
    let b_id = b1.expect_offer_of(&aiortc_offer(), A).await;
    assert_eq!(b2.expect_offer_of(&aiortc_offer(), A).await, b_id);
    assert_ne!(b_id, a_id, "the callee side gets a fresh UUID of the core");
    // B's phone is the third fork: it alerts.
    assert_eq!(a.expect_ringing().await, a_id);
    c.expect_silent(SILENCE).await;
    core.assert_no_calls_left().await;
}

async fn first_answer_wins_and_the_other_forks_get_answered_elsewhere_then_in_call(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    let mut a = core.open_idle(Kind::Multi, A).await;
    let mut b1 = core.open_idle(kind, B).await;
    let mut b2 = core.open_idle(kind.other(), B).await;
    let mut b3 = core.open_idle(kind, B).await;
    let a_id = a.dial(B, &chromium_offer()).await;
    let b_id = b1.expect_offer().await.call_id;
    assert_eq!(b2.expect_offer().await.call_id, b_id);
    assert_eq!(b3.expect_offer().await.call_id, b_id);
    b3.send(msg::ringing(&b_id)).await;
    assert_eq!(a.expect_ringing().await, a_id);
    b2.send(msg::answer(&b_id, &chromium_answer())).await;
    a.expect_answer_of(&a_id, &chromium_answer()).await;
    for loser in [&mut b1, &mut b3] {
        loser.expect_bye_on(&b_id, Reason::AnsweredElsewhere).await;
        loser.expect_in_call(&b_id, A).await;
    }
    // A late Answer from a losing fork is refused.
    b1.send(msg::answer(&b_id, &chromium_answer())).await;
    b1.expect_error(ErrCode::NotIncall, &b_id).await;
    a.expect_silent(SILENCE).await;
    b2.expect_silent(SILENCE).await;
    core.assert_no_calls_left().await;
}

async fn bye_from_a_ringing_fork_declines_the_whole_call(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::Sim).await;
    let mut a = core.open_idle(kind, A).await;
    let mut b1 = core.open_idle(kind, B).await;
    let mut b2 = core.open_idle(kind.other(), B).await;
    let sent = a.dial(B, &chromium_offer()).await;
    let b_id = b1.expect_offer().await.call_id;
    assert_eq!(b2.expect_offer().await.call_id, b_id);
    let a_id = a.expect_ringing().await; // B's phone rings
    a.assert_own_call_id(&sent, &a_id);
    b1.send(msg::ringing(&b_id)).await;
    b1.send(msg::bye(&b_id)).await;
    a.expect_bye_on(&a_id, Reason::Declined).await;
    b2.expect_bye_on(&b_id, Reason::DeclinedElsewhere).await;
    b1.expect_silent(SILENCE).await;
    core.wait_for_stats("the call ends", |s| s.calls == 0).await;
    core.assert_phone_has_no_leg(B).await;
    core.assert_no_calls_left().await;
}

async fn terminal_registering_while_the_call_rings_is_offered_it_too(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    let mut a = core.open_idle(Kind::Multi, A).await;
    let mut b1 = core.open_idle(Kind::Multi, B).await;
    let a_id = a.dial(B, &chromium_offer()).await;
    let b_id = b1.expect_offer().await.call_id;
    // A Pipe that opens while its number's call only rings is Idle, then is offered the call.
    let mut late = core.open_idle(kind, B).await;
    assert_eq!(late.expect_offer_of(&chromium_offer(), A).await, b_id);
    late.send(msg::answer(&b_id, &aiortc_answer())).await;
    a.expect_answer_of(&a_id, &aiortc_answer()).await;
    b1.expect_bye_on(&b_id, Reason::AnsweredElsewhere).await;
    b1.expect_in_call(&b_id, A).await;
    core.assert_no_calls_left().await;
}

async fn phone_answering_first_wins_over_the_terminals(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::Sim).await;
    let mut a = core.open_idle(kind, A).await;
    let mut b = core.open_idle(kind, B).await;
    a.dial(B, &chromium_offer()).await;
    let b_id = b.expect_offer().await.call_id;
    let a_id = a.expect_ringing().await;
    core.phone_answer(B).await;
    let (id, sdp) = a.expect_answer().await;
    assert_eq!(id, a_id);
    assert!(sdp.contains("simulated phone"), "{sdp}");
    b.expect_bye_on(&b_id, Reason::AnsweredElsewhere).await;
    b.expect_in_call(&b_id, A).await;
    // The phone hangs up: the call ends for all.
    assert_eq!(core.phone_hang_up(B).await, 1);
    a.expect_bye_on(&a_id, Reason::NormalClearing).await;
    b.expect_idle(&b_id).await;
    core.assert_no_calls_left().await;
}

async fn phone_declining_declines_the_whole_call(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::Sim).await;
    let mut a = core.open_idle(kind, A).await;
    let mut b = core.open_idle(kind, B).await;
    a.dial(B, &chromium_offer()).await;
    let b_id = b.expect_offer().await.call_id;
    let a_id = a.expect_ringing().await;
    let rejected = core
        .simulator()
        .await
        .reject(webterminal_core::proto::simulator::PhoneRequest { msisdn: B.into() })
        .await
        .expect("Reject")
        .into_inner();
    assert_eq!(rejected.legs, 1);
    a.expect_bye_on(&a_id, Reason::Declined).await;
    b.expect_bye_on(&b_id, Reason::DeclinedElsewhere).await;
    core.assert_no_calls_left().await;
}
