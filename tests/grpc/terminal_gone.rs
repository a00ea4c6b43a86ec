//! PROTOCOL.md 4.8: a terminal goes away (rpc cancelled, or its connection dropped), with and
//! without a reconnect grace.

use crate::for_all_transports;
use crate::support::*;
use std::time::Duration;
use webterminal_core::server::PhoneNetworkKind;

for_all_transports!(
    last_eligible_ringing_fork_cancelled_gives_the_caller_unavailable,
    ringing_fork_whose_connection_drops_is_withdrawn_and_the_call_still_rings,
    caller_gone_while_ringing_cancels_every_fork,
    active_leg_cancelled_ends_the_call_with_peer_gone,
    active_leg_whose_connection_drops_ends_the_call_with_peer_gone,
    within_the_reconnect_grace_a_reconnecting_terminal_pulls_the_call_back,
    when_the_reconnect_grace_is_over_the_far_side_gets_peer_gone,
);

async fn last_eligible_ringing_fork_cancelled_gives_the_caller_unavailable(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    let mut a = core.open_idle(kind, A).await;
    let mut b = core.open_idle(kind, B).await;
    let sent = a.dial(B, &chromium_offer()).await;
    let b_id = b.expect_offer().await.call_id;
    b.send(msg::ringing(&b_id)).await;
    let a_id = a.expect_ringing().await;
    a.assert_own_call_id(&sent, &a_id);
    b.cancel();
    a.expect_bye_on(&a_id, Reason::Unavailable).await;
    core.assert_no_calls_left().await;
}

async fn ringing_fork_whose_connection_drops_is_withdrawn_and_the_call_still_rings(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    let mut a = core.open_idle(kind, A).await;
    let mut b1 = core.open_idle(kind, B).await;
    let mut b2 = core.open_idle(kind, B).await;
    a.dial(B, &chromium_offer()).await;
    let b_id = b1.expect_offer().await.call_id;
    assert_eq!(b2.expect_offer().await.call_id, b_id);
    b1.drop_connection();
    core.wait_for_stats("b1 gone", |s| s.terminals == 2).await;
    a.expect_silent(SILENCE).await;
    b2.send(msg::answer(&b_id, &chromium_answer())).await;
    let (_, sdp) = a.expect_answer().await;
    assert!(sdp == chromium_answer());
    core.assert_no_calls_left().await;
}

async fn caller_gone_while_ringing_cancels_every_fork(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::Sim).await;
    let a = core.open_idle(kind, A).await;
    let mut b1 = core.open_idle(kind, B).await;
    let mut b2 = core.open_idle(kind.other(), B).await;
    a.dial(B, &chromium_offer()).await;
    let b_id = b1.expect_offer().await.call_id;
    assert_eq!(b2.expect_offer().await.call_id, b_id);
    a.cancel();
    b1.expect_bye_on(&b_id, Reason::Cancelled).await;
    b2.expect_bye_on(&b_id, Reason::Cancelled).await;
    core.wait_for_stats("the call ends", |s| s.calls == 0).await;
    core.assert_phone_has_no_leg(B).await;
    core.assert_no_calls_left().await;
}

async fn active_leg_cancelled_ends_the_call_with_peer_gone(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    let mut a = core.open_idle(kind, A).await;
    let mut b = core.open_idle(kind, B).await;
    let mut b_observer = core.open_idle(Kind::Multi, B).await;
    let (a_id, b_id) = establish(&mut a, &mut b).await;
    assert_eq!(b_observer.expect_offer().await.call_id, b_id);
    b_observer
        .expect_bye_on(&b_id, Reason::AnsweredElsewhere)
        .await;
    b_observer.expect_in_call(&b_id, A).await;
    b.cancel();
    a.expect_bye_on(&a_id, Reason::PeerGone).await;
    b_observer.expect_idle(&b_id).await;
    core.assert_no_calls_left().await;
}

async fn active_leg_whose_connection_drops_ends_the_call_with_peer_gone(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    let mut a = core.open_idle(kind, A).await;
    let mut b = core.open_idle(kind, B).await;
    let (_, b_id) = establish(&mut a, &mut b).await;
    a.drop_connection();
    b.expect_bye_on(&b_id, Reason::PeerGone).await;
    core.assert_no_calls_left().await;
}

fn with_grace(grace: Duration) -> webterminal_core::server::ServerConfig {
    let mut config = TestCore::config(PhoneNetworkKind::None);
    config.switch.reconnect_grace = grace;
    config
}

async fn within_the_reconnect_grace_a_reconnecting_terminal_pulls_the_call_back(kind: Kind) {
    // A grace far longer than the test: the far side must see no Bye at all.
    let core = TestCore::start(with_grace(Duration::from_secs(60))).await;
    let mut a = core.open_idle(Kind::Multi, A).await;
    let mut b = core.open_idle(kind, B).await;
    let (a_id, b_id) = establish(&mut a, &mut b).await;
    b.drop_connection();
    core.wait_for_stats("b gone", |s| s.terminals == 1).await;
    a.expect_silent(SILENCE).await;
    // The terminal comes back (a MultiPipe is told of the vacant call on open too).
    let mut again = core.open(kind, B).await;
    again.expect_in_call(&b_id, A).await;
    again
        .send(msg::reoffer(&b_id, &sdp("chromium-icerestart-offer.sdp")))
        .await;
    a.expect_offer_of(&sdp("chromium-icerestart-offer.sdp"), B)
        .await;
    a.send(msg::answer(&a_id, &chromium_answer())).await;
    again.expect_answer_of(&b_id, &chromium_answer()).await;
    a.expect_silent(SILENCE).await;
    again.send(msg::bye(&b_id)).await;
    a.expect_bye_on(&a_id, Reason::NormalClearing).await;
    core.assert_no_calls_left().await;
}

async fn when_the_reconnect_grace_is_over_the_far_side_gets_peer_gone(kind: Kind) {
    let core = TestCore::start(with_grace(SHORT)).await;
    let mut a = core.open_idle(kind, A).await;
    let mut b = core.open_idle(kind, B).await;
    let mut b_pipe = core.open_idle(Kind::Pipe, B).await;
    let (a_id, b_id) = establish(&mut a, &mut b).await;
    b_pipe.expect_offer().await;
    b_pipe.expect_bye_on(&b_id, Reason::AnsweredElsewhere).await;
    b_pipe.expect_in_call(&b_id, A).await;
    b.cancel();
    // During the grace B's other terminals see InCall and may pull it back; nobody does.
    b_pipe.expect_in_call(&b_id, A).await;
    a.expect_bye_on(&a_id, Reason::PeerGone).await;
    b_pipe.expect_greeting_idle().await;
    core.assert_no_calls_left().await;
}
