//! PROTOCOL.md 4.5 (pull) and 4.10 (observers may pull and nothing else).

use crate::for_all_transports;
use crate::support::*;
use webterminal_core::proto::webterminal::web_terminal_message::Message;
use webterminal_core::proto::webterminal::WebTerminalMessage;
use webterminal_core::server::PhoneNetworkKind;

for_all_transports!(
    pull_moves_the_call,
    far_side_answering_the_pull_with_bye_ends_the_call_for_all,
    unanswered_pull_gets_negotiation_failed_and_the_call_stays,
    pull_while_a_negotiation_is_pending_gets_try_again,
    of_two_simultaneous_pulls_exactly_one_wins,
    pull_of_a_call_on_the_phone_releases_the_phone_leg,
    observer_may_pull_but_its_bye_to_phone_answer_and_ringing_get_not_incall,
);

/// An established call A (MultiPipe `a`) – B (MultiPipe `b1`), observed by `p`, a `kind` terminal of
/// B that knows the call from InCall: a Pipe opened during the call, or a MultiPipe that lost the
/// call as a fork. Returns (a, b1, p, a_id, b_id).
async fn observed_call(
    core: &TestCore,
    kind: Kind,
) -> (Terminal, Terminal, Terminal, String, String) {
    let (a, b1, mut observers, a_id, b_id) = observed_by(core, kind, 1).await;
    (a, b1, observers.pop().unwrap(), a_id, b_id)
}

/// As [`observed_call`], with `n` observers.
async fn observed_by(
    core: &TestCore,
    kind: Kind,
    n: usize,
) -> (Terminal, Terminal, Vec<Terminal>, String, String) {
    let mut a = core.open_idle(Kind::Multi, A).await;
    let mut b1 = core.open_idle(Kind::Multi, B).await;
    let mut forks = Vec::new();
    if kind == Kind::Multi {
        for _ in 0..n {
            forks.push(core.open(Kind::Multi, B).await);
        }
    }
    let (a_id, b_id) = establish(&mut a, &mut b1).await;
    let mut observers = Vec::new();
    for mut p in forks {
        assert_eq!(p.expect_offer().await.call_id, b_id);
        p.expect_bye_on(&b_id, Reason::AnsweredElsewhere).await;
        p.expect_in_call(&b_id, A).await;
        observers.push(p);
    }
    if kind == Kind::Pipe {
        for _ in 0..n {
            let mut p = core.open(Kind::Pipe, B).await;
            p.expect_in_call(&b_id, A).await;
            observers.push(p);
        }
    }
    (a, b1, observers, a_id, b_id)
}

/// The call_id `t` puts on a pull of the call its number knows as `b_id`: that id on MultiPipe, none
/// on a Pipe (it just sends Offer without a number while idle).
fn pull_id(t: &Terminal, b_id: &str) -> String {
    match t.kind {
        Kind::Pipe => String::new(),
        Kind::Multi => b_id.to_owned(),
    }
}

async fn pull_moves_the_call(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    let (mut a, mut b1, mut p, a_id, b_id) = observed_call(&core, kind).await;
    p.send(msg::reoffer(&pull_id(&p, &b_id), &aiortc_offer()))
        .await;
    // The far side sees an ordinary renegotiation Offer, with B's number.
    assert_eq!(a.expect_offer_of(&aiortc_offer(), B).await, a_id);
    // The call stays on b1 until the pull succeeds.
    b1.expect_silent(SILENCE).await;
    a.send(msg::answer(&a_id, &aiortc_answer())).await;
    p.expect_answer_of(&b_id, &aiortc_answer()).await;
    b1.expect_bye_on(&b_id, Reason::Pulled).await;
    b1.expect_in_call(&b_id, A).await;
    a.expect_silent(SILENCE).await;
    // p carries the call now: its Bye ends it.
    p.send(msg::bye(&pull_id(&p, &b_id))).await;
    a.expect_bye_on(&a_id, Reason::NormalClearing).await;
    b1.expect_idle(&b_id).await;
    p.expect_silent(SILENCE).await;
    core.assert_no_calls_left().await;
}

async fn far_side_answering_the_pull_with_bye_ends_the_call_for_all(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    let (mut a, mut b1, mut p, a_id, b_id) = observed_call(&core, kind).await;
    p.send(msg::reoffer(&pull_id(&p, &b_id), &chromium_offer()))
        .await;
    a.expect_offer_of(&chromium_offer(), B).await;
    a.send(msg::bye(&a_id)).await;
    // A pull is answered with Answer or Bye.
    p.expect_bye_on(&b_id, Reason::NormalClearing).await;
    b1.expect_bye_on(&b_id, Reason::NormalClearing).await;
    a.expect_silent(SILENCE).await;
    core.wait_for_stats("the call ends", |s| s.calls == 0).await;
    core.assert_no_calls_left().await;
}

async fn unanswered_pull_gets_negotiation_failed_and_the_call_stays(kind: Kind) {
    let core = TestCore::start(TestCore::short_negotiation(PhoneNetworkKind::None)).await;
    let (mut a, mut b1, mut p, a_id, b_id) = observed_call(&core, kind).await;
    p.send(msg::reoffer(&pull_id(&p, &b_id), &aiortc_offer()))
        .await;
    a.expect_offer_of(&aiortc_offer(), B).await;
    // Not answered within the negotiation timeout (300 ms).
    p.expect_bye_on(&b_id, Reason::NegotiationFailed).await;
    b1.expect_silent(SILENCE).await;
    // The far side's late answer fits no pending offer.
    a.send(msg::answer(&a_id, &aiortc_answer())).await;
    a.expect_error(ErrCode::NotIncall, &a_id).await;
    // b1 still carries the call: its re-offer goes through.
    b1.send(msg::reoffer(&b_id, &sdp("chromium-hold-offer.sdp")))
        .await;
    a.expect_offer_of(&sdp("chromium-hold-offer.sdp"), B).await;
    a.send(msg::answer(&a_id, &sdp("chromium-hold-answer.sdp")))
        .await;
    b1.expect_answer_of(&b_id, &sdp("chromium-hold-answer.sdp"))
        .await;
    p.expect_silent(SILENCE).await;
    core.assert_no_calls_left().await;
}

async fn pull_while_a_negotiation_is_pending_gets_try_again(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    let (mut a, mut b1, mut p, a_id, b_id) = observed_call(&core, kind).await;
    a.send(msg::reoffer(&a_id, &sdp("chromium-hold-offer.sdp")))
        .await;
    b1.expect_offer_of(&sdp("chromium-hold-offer.sdp"), A).await;
    let sent = pull_id(&p, &b_id);
    p.send(msg::reoffer(&sent, &aiortc_offer())).await;
    p.expect_error(ErrCode::TryAgain, &sent).await;
    a.expect_silent(SILENCE).await;
    // The pending re-offer is unaffected.
    b1.send(msg::answer(&b_id, &sdp("chromium-hold-answer.sdp")))
        .await;
    a.expect_answer_of(&a_id, &sdp("chromium-hold-answer.sdp"))
        .await;
    core.assert_no_calls_left().await;
}

async fn of_two_simultaneous_pulls_exactly_one_wins(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    let (mut a, mut b1, mut observers, a_id, b_id) = observed_by(&core, kind, 2).await;
    let mut p2 = observers.pop().unwrap();
    let mut p1 = observers.pop().unwrap();
    let (sdp1, sdp2) = (aiortc_offer(), sdp("chromium-icerestart-offer.sdp"));
    let (id1, id2) = (pull_id(&p1, &b_id), pull_id(&p2, &b_id));
    tokio::join!(
        p1.send(msg::reoffer(&id1, &sdp1)),
        p2.send(msg::reoffer(&id2, &sdp2))
    );
    // Exactly one of them is refused.
    let loser = tokio::select! {
        m = p1.recv() => { assert_try_again(&m, &id1); 1 }
        m = p2.recv() => { assert_try_again(&m, &id2); 2 }
    };
    let offered = a.expect_offer().await;
    assert_eq!(offered.call_id, a_id);
    assert_eq!(offered.from, B);
    a.expect_silent(SILENCE).await;
    let (winner, other, winner_sdp) = if loser == 1 {
        (&mut p2, &mut p1, sdp2)
    } else {
        (&mut p1, &mut p2, sdp1)
    };
    assert!(
        offered.sdp == winner_sdp,
        "the far side is offered the winner's SDP byte for byte"
    );
    other.expect_silent(SILENCE).await;
    a.send(msg::answer(&a_id, &aiortc_answer())).await;
    winner.expect_answer_of(&b_id, &aiortc_answer()).await;
    b1.expect_bye_on(&b_id, Reason::Pulled).await;
    b1.expect_in_call(&b_id, A).await;
    other.expect_in_call(&b_id, A).await;
    core.assert_no_calls_left().await;
}

fn assert_try_again(m: &WebTerminalMessage, call_id: &str) {
    match &m.message {
        Some(Message::Error(e)) => assert_eq!(e.err, ErrCode::TryAgain as i32, "{m:?}"),
        _ => panic!("expected Error{{TRY_AGAIN}} for the losing pull, got {m:?}"),
    }
    assert_eq!(m.call_id, call_id);
}

async fn pull_of_a_call_on_the_phone_releases_the_phone_leg(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::Sim).await;
    let mut a = core.open_idle(Kind::Multi, A).await;
    let mut p = core.open_idle(kind, B).await;
    let a_id = a.dial(B, &chromium_offer()).await;
    let b_id = p.expect_offer().await.call_id;
    assert_eq!(a.expect_ringing().await, a_id);
    core.phone_answer(B).await;
    let (_, phone_sdp) = a.expect_answer().await;
    assert!(phone_sdp.contains("simulated phone"));
    p.expect_bye_on(&b_id, Reason::AnsweredElsewhere).await;
    p.expect_in_call(&b_id, A).await;
    p.send(msg::reoffer(&pull_id(&p, &b_id), &chromium_offer()))
        .await;
    a.expect_offer_of(&chromium_offer(), B).await;
    a.send(msg::answer(&a_id, &chromium_answer())).await;
    p.expect_answer_of(&b_id, &chromium_answer()).await;
    // The phone leg is released.
    core.assert_phone_has_no_leg(B).await;
    p.send(msg::bye(&pull_id(&p, &b_id))).await;
    a.expect_bye_on(&a_id, Reason::NormalClearing).await;
    core.assert_no_calls_left().await;
}

async fn observer_may_pull_but_its_bye_to_phone_answer_and_ringing_get_not_incall(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    let (mut a, mut b1, mut p, a_id, b_id) = observed_call(&core, kind).await;
    let id = pull_id(&p, &b_id);
    for message in [
        msg::bye(&id),
        msg::to_phone(&id),
        msg::answer(&id, &chromium_answer()),
        msg::ringing(&id),
    ] {
        p.send(message.clone()).await;
        let text = p.expect_error(ErrCode::NotIncall, &id).await;
        assert!(!text.is_empty(), "{message:?}");
    }
    a.expect_silent(SILENCE).await;
    b1.expect_silent(SILENCE).await;
    // The call is untouched, and the observer may still pull it.
    p.send(msg::reoffer(&id, &aiortc_offer())).await;
    a.expect_offer_of(&aiortc_offer(), B).await;
    a.send(msg::answer(&a_id, &aiortc_answer())).await;
    p.expect_answer_of(&b_id, &aiortc_answer()).await;
    b1.expect_bye_on(&b_id, Reason::Pulled).await;
    core.assert_no_calls_left().await;
}
