//! PROTOCOL.md 4.3: no answer, busy, unavailable.

use crate::for_all_transports;
use crate::support::*;
use std::time::Duration;
use webterminal_core::proto::simulator::Behaviour;
use webterminal_core::server::PhoneNetworkKind;

for_all_transports!(
    ring_timeout_gives_the_caller_no_answer_and_every_fork_cancelled,
    ring_timeout_on_a_ringing_phone_gives_no_answer_and_releases_it,
    callee_whose_devices_are_all_in_calls_is_busy,
    callee_with_no_device_at_all_is_unavailable,
    callee_whose_phone_is_busy_and_has_no_terminal_is_busy,
    callee_whose_phone_is_unreachable_is_unavailable;
    grpc_only:
    callee_whose_only_terminal_half_closed_is_busy,
);

async fn ring_timeout_gives_the_caller_no_answer_and_every_fork_cancelled(kind: Kind) {
    let config = TestCore::short_ring(PhoneNetworkKind::None, SHORT);
    let core = TestCore::start(config).await;
    let mut a = core.open_idle(kind, A).await;
    let mut b1 = core.open_idle(kind, B).await;
    let mut b2 = core.open_idle(kind.other(), B).await;
    let sent = a.dial(B, &chromium_offer()).await;
    let b_id = b1.expect_offer().await.call_id;
    assert_eq!(b2.expect_offer().await.call_id, b_id);
    // Nobody answers within the ring timeout (300 ms). (Nobody alerts either, so that no Ringing
    // races the timer.)
    let a_id = a.expect_bye(Reason::NoAnswer).await;
    a.assert_own_call_id(&sent, &a_id);
    b1.expect_bye_on(&b_id, Reason::Cancelled).await;
    b2.expect_bye_on(&b_id, Reason::Cancelled).await;
    a.expect_silent(SILENCE).await;
    core.assert_no_calls_left().await;
}

async fn ring_timeout_on_a_ringing_phone_gives_no_answer_and_releases_it(kind: Kind) {
    // 1 s: the simulated phone alerts within milliseconds, long before the timer.
    let config = TestCore::short_ring(PhoneNetworkKind::Sim, Duration::from_secs(1));
    let core = TestCore::start(config).await;
    let mut a = core.open_idle(kind, A).await;
    let sent = a.dial(B, &chromium_offer()).await;
    let a_id = a.expect_ringing().await;
    a.assert_own_call_id(&sent, &a_id);
    a.expect_bye_on(&a_id, Reason::NoAnswer).await;
    core.wait_for_stats("the call ends", |s| s.calls == 0).await;
    core.assert_phone_has_no_leg(B).await;
    core.assert_no_calls_left().await;
}

async fn callee_whose_devices_are_all_in_calls_is_busy(kind: Kind) {
    let mut config = TestCore::config(PhoneNetworkKind::None);
    config.switch.multipipe_call_cap = 1;
    let core = TestCore::start(config).await;
    let mut c = core.open_idle(Kind::Multi, C).await;
    let mut b = core.open_idle(kind, B).await;
    establish(&mut c, &mut b).await;
    let mut a = core.open_idle(kind, A).await;
    let sent = a.dial(B, &chromium_offer()).await;
    let a_id = a.expect_bye(Reason::Busy).await;
    a.assert_own_call_id(&sent, &a_id);
    b.expect_silent(SILENCE).await;
    core.assert_no_calls_left().await;
}

async fn callee_whose_only_terminal_half_closed_is_busy(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    let mut b = core.open_idle(kind, B).await;
    // Probes with calls until one is refused Busy: see the helper.
    half_close_and_confirm(&core, &mut b).await;
    let mut a = core.open_idle(kind, A).await;
    let sent = a.dial(B, &chromium_offer()).await;
    let a_id = a.expect_bye(Reason::Busy).await;
    a.assert_own_call_id(&sent, &a_id);
    b.expect_silent(SILENCE).await;
    core.assert_no_calls_left().await;
}

async fn callee_with_no_device_at_all_is_unavailable(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    let mut a = core.open_idle(kind, A).await;
    let sent = a.dial(NOBODY, &chromium_offer()).await;
    let a_id = a.expect_bye(Reason::Unavailable).await;
    a.assert_own_call_id(&sent, &a_id);
    a.expect_silent(SILENCE).await;
    core.assert_no_calls_left().await;
}

async fn callee_whose_phone_is_busy_and_has_no_terminal_is_busy(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::Sim).await;
    core.set_behaviour(B, Behaviour::Busy).await;
    let mut a = core.open_idle(kind, A).await;
    let sent = a.dial(B, &chromium_offer()).await;
    let a_id = a.expect_bye(Reason::Busy).await;
    a.assert_own_call_id(&sent, &a_id);
    core.assert_no_calls_left().await;
}

async fn callee_whose_phone_is_unreachable_is_unavailable(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::Sim).await;
    core.set_behaviour(B, Behaviour::Unreachable).await;
    let mut a = core.open_idle(kind, A).await;
    let sent = a.dial(B, &chromium_offer()).await;
    let a_id = a.expect_bye(Reason::Unavailable).await;
    a.assert_own_call_id(&sent, &a_id);
    core.assert_no_calls_left().await;
}
