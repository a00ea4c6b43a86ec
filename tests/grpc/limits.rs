//! Limits (PROTOCOL.md section 6): the per-terminal budget of new call attempts (transfers
//! included) answered with `Error{RATE_LIMIT_HIT}` carrying the attempt's call_id, and terminal limits answered with
//! RESOURCE_EXHAUSTED when the rpc starts. (The message budget is in `bad_input.rs`; a client that
//! never reads has its own test binary, `tests/slow_consumer.rs`.)

use crate::support::*;
use tonic::Code;
use webterminal_core::server::PhoneNetworkKind;

#[tokio::test]
async fn too_many_call_attempts_get_rate_limit_hit_with_their_call_id() {
    let mut config = TestCore::config(PhoneNetworkKind::None);
    config.call_attempts_per_second = 1;
    let core = TestCore::start(config).await;
    let mut a = core.open_idle(Kind::Multi, A).await;
    let ids: Vec<String> = (0..3).map(|_| uuid()).collect();
    for id in &ids {
        a.send(msg::offer(id, &chromium_offer(), NOBODY)).await;
    }
    // The burst of 2 goes through (nobody is there: UNAVAILABLE); the third is over the budget.
    for id in &ids[..2] {
        a.expect_bye_on(id, Reason::Unavailable).await;
    }
    a.expect_error(ErrCode::RateLimitHit, &ids[2]).await;
    core.assert_no_calls_left().await;
}

#[tokio::test]
async fn a_transfer_is_a_call_attempt_for_the_rate_limits() {
    let mut config = TestCore::config(PhoneNetworkKind::None);
    config.call_attempts_per_second = 1;
    let core = TestCore::start(config).await;
    let mut a = core.open_idle(Kind::Multi, A).await;
    let mut b = core.open_idle(Kind::Multi, B).await;
    let _c = core.open_idle(Kind::Multi, C).await;
    // A's call to B is A's attempt; B spends its burst of 2 on calls to nobody.
    let (a_id, b_id) = establish(&mut a, &mut b).await;
    for _ in 0..2 {
        let id = uuid();
        b.send(msg::offer(&id, &chromium_offer(), NOBODY)).await;
        b.expect_bye_on(&id, Reason::Unavailable).await;
    }
    // B's transfer rings C's terminals (4.12): a third attempt, over the budget. The call stays.
    b.send(msg::transfer(&b_id, C)).await;
    b.expect_error(ErrCode::RateLimitHit, &b_id).await;
    b.send(msg::bye(&b_id)).await;
    a.expect_bye_on(&a_id, Reason::NormalClearing).await;
    core.assert_no_calls_left().await;
}

#[tokio::test]
async fn terminals_over_the_limits_fail_with_resource_exhausted() {
    let mut config = TestCore::config(PhoneNetworkKind::None);
    config.switch.max_terminals_per_msisdn = 2;
    config.switch.max_terminals = 3;
    let core = TestCore::start(config).await;
    let bearer = |msisdn| bearer_text(&TestCore::token(msisdn));
    let _a1 = core.open(Kind::Multi, A).await;
    let _a2 = core.open(Kind::Multi, A).await;
    let third = core
        .try_open_with(Kind::Multi, A, Some(&bearer(A)))
        .await
        .err()
        .expect("a third terminal of A is refused");
    assert_eq!(third.code(), Code::ResourceExhausted, "{third:?}");
    let _b = core.open(Kind::Pipe, B).await;
    let fourth = core
        .try_open_with(Kind::Pipe, C, Some(&bearer(C)))
        .await
        .err()
        .expect("a fourth terminal is refused");
    assert_eq!(fourth.code(), Code::ResourceExhausted, "{fourth:?}");
    core.wait_for_stats("three terminals", |s| s.terminals == 3)
        .await;
    core.assert_no_calls_left().await;
}
