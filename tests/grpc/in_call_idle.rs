//! PROTOCOL.md 4.4 (InCall and Idle), section 3 "on open", and the half-close of section 3.

use crate::for_all_transports;
use crate::support::*;
use webterminal_core::server::PhoneNetworkKind;

for_all_transports!(
    other_terminals_of_both_numbers_get_in_call_when_established_and_idle_when_it_ends,
    on_open_a_pipe_gets_in_call_or_idle_and_a_multipipe_nothing,
    terminal_in_a_call_of_its_own_hears_of_another_call_of_its_number_only_on_multipipe,
    terminals_of_an_unrelated_number_hear_nothing;
    grpc_only:
    half_closed_terminals_still_get_in_call_bye_and_idle,
);

async fn other_terminals_of_both_numbers_get_in_call_when_established_and_idle_when_it_ends(
    kind: Kind,
) {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    let mut a = core.open_idle(Kind::Multi, A).await;
    let mut a2 = core.open_idle(kind, A).await;
    let mut b = core.open_idle(Kind::Multi, B).await;
    let (a_id, b_id) = establish(&mut a, &mut b).await;
    a2.expect_in_call(&a_id, B).await;
    // A terminal of B that opens now: a Pipe is told at once, a MultiPipe nothing (section 3).
    let mut b2 = core.open(kind, B).await;
    if kind == Kind::Pipe {
        b2.expect_in_call(&b_id, A).await;
    }
    a.expect_silent(SILENCE).await;
    b.expect_silent(SILENCE).await;
    b2.expect_silent(SILENCE).await;
    a.send(msg::bye(&a_id)).await;
    b.expect_bye_on(&b_id, Reason::NormalClearing).await;
    // Idle on the side's id (MultiPipe) or with no id (Pipe), including B's MultiPipe that opened
    // during the call.
    a2.expect_idle(&a_id).await;
    b2.expect_idle(&b_id).await;
    a.expect_silent(SILENCE).await;
    core.assert_no_calls_left().await;
}

async fn on_open_a_pipe_gets_in_call_or_idle_and_a_multipipe_nothing(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    let mut a = core.open_idle(Kind::Multi, A).await;
    let mut b = core.open_idle(Kind::Multi, B).await;
    // Ringing only: a Pipe of A opening now is Idle.
    let a_id = a.dial(B, &chromium_offer()).await;
    let b_id = b.expect_offer().await.call_id;
    let mut early = core.open(kind, A).await;
    if kind == Kind::Pipe {
        early.expect_greeting_idle().await;
    }
    early.expect_silent(SILENCE).await;
    b.send(msg::answer(&b_id, &chromium_answer())).await;
    a.expect_answer_of(&a_id, &chromium_answer()).await;
    early.expect_in_call(&a_id, B).await;
    // Established: a Pipe opening now is told InCall with its side's id; a MultiPipe nothing.
    let mut late_a = core.open(kind, A).await;
    let mut late_b = core.open(kind, B).await;
    if kind == Kind::Pipe {
        late_a.expect_in_call(&a_id, B).await;
        late_b.expect_in_call(&b_id, A).await;
    }
    late_a.expect_silent(SILENCE).await;
    late_b.expect_silent(SILENCE).await;
    core.assert_no_calls_left().await;
}

async fn terminal_in_a_call_of_its_own_hears_of_another_call_of_its_number_only_on_multipipe(
    kind: Kind,
) {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    let mut a = core.open_idle(Kind::Multi, A).await;
    let mut c = core.open_idle(Kind::Multi, C).await;
    let mut b = core.open_idle(kind, B).await;
    let (a_id, _) = establish(&mut a, &mut b).await;
    let mut b_multi = core.open(Kind::Multi, B).await;
    let c_sent = c.dial(B, &aiortc_offer()).await;
    let cb = b_multi.expect_offer_of(&aiortc_offer(), C).await;
    if kind == Kind::Multi {
        // A MultiPipe under its cap is offered the second call too.
        assert_eq!(b.expect_offer_of(&aiortc_offer(), C).await, cb);
    }
    b_multi.send(msg::answer(&cb, &aiortc_answer())).await;
    c.expect_answer_of(&c_sent, &aiortc_answer()).await;
    match kind {
        // A Pipe busy in a call of its own reflects only that call.
        Kind::Pipe => b.expect_silent(SILENCE).await,
        Kind::Multi => {
            b.expect_bye_on(&cb, Reason::AnsweredElsewhere).await;
            b.expect_in_call(&cb, C).await;
        }
    }
    // b's own call ends as usual.
    a.send(msg::bye(&a_id)).await;
    let b_call = b.expect_bye(Reason::NormalClearing).await;
    assert_ne!(b_call, cb);
    if kind == Kind::Pipe {
        // Free again, the Pipe reflects the call still up (as it would on open).
        b.expect_in_call(&cb, C).await;
    }
    b.expect_silent(SILENCE).await;
    core.assert_no_calls_left().await;
}

async fn half_closed_terminals_still_get_in_call_bye_and_idle(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    let mut observer = core.open_idle(kind, A).await;
    half_close_and_confirm(&core, &mut observer).await;
    let mut a = core.open_idle(kind, A).await;
    let mut b = core.open_idle(Kind::Multi, B).await;
    let (a_id, b_id) = establish(&mut a, &mut b).await;
    observer.expect_in_call(&a_id, B).await;
    // The active leg half-closes too (a MultiPipe's half-close is confirmed by probing; a Pipe in a
    // call is busy whatever it does, so the probe confirms nothing for it).
    half_close_and_confirm(&core, &mut a).await;
    b.send(msg::bye(&b_id)).await;
    a.expect_bye_on(&a_id, Reason::NormalClearing).await;
    observer.expect_idle(&a_id).await;
    // Both rpcs are still open: half-close does not unregister.
    a.expect_silent(SILENCE).await;
    observer.expect_silent(SILENCE).await;
    assert_eq!(core.stats().await.terminals, 3);
    core.assert_no_calls_left().await;
}

async fn terminals_of_an_unrelated_number_hear_nothing(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    let mut c = core.open_idle(kind, C).await;
    let mut a = core.open_idle(kind, A).await;
    let mut b = core.open_idle(kind, B).await;
    let (a_id, _) = establish(&mut a, &mut b).await;
    a.send(msg::bye(&a_id)).await;
    b.expect_bye(Reason::NormalClearing).await;
    c.expect_silent(SILENCE).await;
    core.assert_no_calls_left().await;
}

#[tokio::test]
async fn pipe_reflects_only_the_most_recent_call_and_idles_when_none_is_left() {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    let mut pipe = core.open_idle(Kind::Pipe, B).await;
    half_close_and_confirm(&core, &mut pipe).await;
    let mut a = core.open_idle(Kind::Multi, A).await;
    let mut c = core.open_idle(Kind::Multi, C).await;
    let mut b = core.open_idle(Kind::Multi, B).await;
    let (a_id, ab) = establish(&mut a, &mut b).await;
    pipe.expect_in_call(&ab, A).await;
    let (c_id, cb) = establish(&mut c, &mut b).await;
    pipe.expect_in_call(&cb, C).await;
    // The newer call ends: the Pipe reflects the one still up, not Idle.
    c.send(msg::bye(&c_id)).await;
    b.expect_bye_on(&cb, Reason::NormalClearing).await;
    pipe.expect_in_call(&ab, A).await;
    a.send(msg::bye(&a_id)).await;
    b.expect_bye_on(&ab, Reason::NormalClearing).await;
    pipe.expect_greeting_idle().await;
    pipe.expect_silent(SILENCE).await;
    core.assert_no_calls_left().await;
}

#[tokio::test]
async fn multipipe_gets_in_call_and_idle_per_call_with_each_sides_id() {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    let mut observer = core.open(Kind::Multi, B).await;
    half_close_and_confirm(&core, &mut observer).await;
    let mut a = core.open_idle(Kind::Multi, A).await;
    let mut c = core.open_idle(Kind::Multi, C).await;
    let mut b = core.open_idle(Kind::Multi, B).await;
    let (a_id, ab) = establish(&mut a, &mut b).await;
    observer.expect_in_call(&ab, A).await;
    let (c_id, cb) = establish(&mut c, &mut b).await;
    observer.expect_in_call(&cb, C).await;
    a.send(msg::bye(&a_id)).await;
    b.expect_bye_on(&ab, Reason::NormalClearing).await;
    observer.expect_idle(&ab).await;
    c.send(msg::bye(&c_id)).await;
    b.expect_bye_on(&cb, Reason::NormalClearing).await;
    observer.expect_idle(&cb).await;
    observer.expect_silent(SILENCE).await;
    core.assert_no_calls_left().await;
}
