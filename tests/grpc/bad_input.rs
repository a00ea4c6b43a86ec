//! PROTOCOL.md section 6: errors and bad input. Each row of the table gets its documented answer,
//! carrying the call_id of the message it answers, and the stream stays usable afterwards. What
//! makes a whole stream unusable (an oversized or undecodable message) ends that rpc alone.

use crate::for_all_transports;
use crate::support::*;
use tokio::sync::mpsc;
use webterminal_core::proto::webterminal::web_terminal_message::Message;
use webterminal_core::proto::webterminal::{Action, WebTerminalMessage};
use webterminal_core::server::PhoneNetworkKind;

for_all_transports!(
    message_with_no_oneof_set_is_invalid_argument,
    bad_e164_is_invalid_argument_naming_the_field,
    every_invalid_sdp_fixture_is_invalid_argument_in_offer_re_offer_and_answer,
    offer_to_own_number_is_invalid_argument,
    messages_core_only_sends_are_invalid_argument,
    message_about_no_call_of_the_number_is_refused,
    new_call_reusing_a_live_call_is_refused,
    answer_or_ringing_from_a_terminal_not_offered_the_call_is_not_incall,
    answer_with_no_offer_pending_is_not_incall,
    observers_bye_is_not_incall,
    to_phone_from_a_non_active_leg_is_not_incall,
    another_subscribers_call_id_is_invalid_call_id_and_leaks_nothing,
    too_many_messages_per_second_get_rate_limit_hit,
    message_over_the_max_message_size_ends_only_that_rpc,
    invalid_utf8_in_a_string_field_ends_only_that_rpc,
);

/// An id to put on a message that is not about a call of the terminal's: a fresh UUID on MultiPipe,
/// some text on a Pipe (which ignores it, but its Errors echo it).
fn some_id(kind: Kind) -> String {
    match kind {
        Kind::Pipe => "anything at all".to_owned(),
        Kind::Multi => uuid(),
    }
}

async fn message_with_no_oneof_set_is_invalid_argument(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    let mut t = core.open_idle(kind, A).await;
    let id = some_id(kind);
    t.send(msg::empty(&id)).await;
    let text = t.expect_error(ErrCode::InvalidArgument, &id).await;
    assert!(text.contains("oneof"), "{text}");
    // An Action with no action in it is the same fault one level down.
    t.send(WebTerminalMessage {
        message: Some(Message::Action(Action { message: None })),
        call_id: id.clone(),
    })
    .await;
    let text = t.expect_error(ErrCode::InvalidArgument, &id).await;
    assert!(text.contains("action"), "{text}");
    assert_still_usable(&mut t).await;
    core.assert_no_calls_left().await;
}

async fn bad_e164_is_invalid_argument_naming_the_field(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    let mut t = core.open_idle(kind, A).await;
    let mut b = core.open_idle(Kind::Multi, "+4799990002").await;
    for bad in [
        "",
        "+47 9999 0002",
        "+1",
        "+0479999",
        "+1234567890123456",
        "+47999900O2",
        "tel:+4799990002",
        // Without the '+', the same digit rules.
        "0479999",
        "1",
        "47 9999 0002",
    ] {
        let id = some_id(kind);
        t.send(msg::offer(&id, &chromium_offer(), bad)).await;
        let text = t.expect_error(ErrCode::InvalidArgument, &id).await;
        assert!(text.contains("offer.msisdn.e164"), "{bad:?}: {text}");
    }
    // A number that is E.164 but has no device is not bad input.
    b.expect_silent(SILENCE).await;
    assert_still_usable(&mut t).await;
    core.assert_no_calls_left().await;
}

const INVALID_SDP: [&str; 5] = [
    "empty.sdp",
    "garbage.sdp",
    "no-media.sdp",
    "truncated.sdp",
    "huge.sdp",
];

async fn every_invalid_sdp_fixture_is_invalid_argument_in_offer_re_offer_and_answer(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    let mut a = core.open_idle(kind, A).await;
    let mut b = core.open_idle(kind, B).await;
    // A new call with a bad SDP reaches nobody.
    for name in INVALID_SDP {
        let id = some_id(kind);
        a.send(msg::offer(&id, &sdp(name), B)).await;
        let text = a.expect_error(ErrCode::InvalidArgument, &id).await;
        assert!(text.contains("offer.sdp"), "{name}: {text}");
    }
    b.expect_silent(SILENCE).await;
    // An Answer with a bad SDP does not answer the call.
    let sent = a.dial(B, &chromium_offer()).await;
    let b_id = b.expect_offer().await.call_id;
    for name in INVALID_SDP {
        b.send(msg::answer(&b_id, &sdp(name))).await;
        let text = b.expect_error(ErrCode::InvalidArgument, &b_id).await;
        assert!(text.contains("answer.sdp"), "{name}: {text}");
    }
    a.expect_silent(SILENCE).await;
    b.send(msg::answer(&b_id, &chromium_answer())).await;
    let (a_id, answer) = a.expect_answer().await;
    a.assert_own_call_id(&sent, &a_id);
    assert!(answer == chromium_answer());
    // A re-offer with a bad SDP is not relayed.
    for name in INVALID_SDP {
        a.send(msg::reoffer(&a_id, &sdp(name))).await;
        let text = a.expect_error(ErrCode::InvalidArgument, &a_id).await;
        assert!(text.contains("offer.sdp"), "{name}: {text}");
    }
    b.expect_silent(SILENCE).await;
    a.send(msg::reoffer(&a_id, &sdp("chromium-hold-offer.sdp")))
        .await;
    b.expect_offer_of(&sdp("chromium-hold-offer.sdp"), A).await;
    core.assert_no_calls_left().await;
}

async fn offer_to_own_number_is_invalid_argument(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    let mut t = core.open_idle(kind, A).await;
    let mut other = core.open_idle(Kind::Multi, A).await;
    let id = some_id(kind);
    t.send(msg::offer(&id, &chromium_offer(), A)).await;
    let text = t.expect_error(ErrCode::InvalidArgument, &id).await;
    assert!(text.contains("offer.msisdn.e164"), "{text}");
    other.expect_silent(SILENCE).await;
    assert_still_usable(&mut t).await;
    core.assert_no_calls_left().await;
}

async fn messages_core_only_sends_are_invalid_argument(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    let mut t = core.open_idle(kind, A).await;
    for message in [
        Message::Idle(Default::default()),
        Message::InCall(Default::default()),
        Message::Error(Default::default()),
    ] {
        let id = some_id(kind);
        t.send(WebTerminalMessage {
            message: Some(message),
            call_id: id.clone(),
        })
        .await;
        t.expect_error(ErrCode::InvalidArgument, &id).await;
    }
    assert_still_usable(&mut t).await;
    core.assert_no_calls_left().await;
}

async fn message_about_no_call_of_the_number_is_refused(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    let mut t = core.open_idle(kind, A).await;
    // MultiPipe: an id the number does not have is INVALID_CALL_ID. A Pipe ignores ids; with no call
    // and nothing to pull, it is NOT_INCALL.
    let code = match kind {
        Kind::Pipe => ErrCode::NotIncall,
        Kind::Multi => ErrCode::InvalidCallId,
    };
    let id = some_id(kind);
    for message in [
        msg::bye(&id),
        msg::answer(&id, &chromium_answer()),
        msg::ringing(&id),
        msg::to_phone(&id),
        msg::reoffer(&id, &chromium_offer()),
    ] {
        t.send(message).await;
        t.expect_error(code, &id).await;
    }
    if kind == Kind::Multi {
        // The call_id format is checked first, before the oneof and the fields.
        for raw in ["", "call-1", "not-a-uuid", "0f8fad5b-d9cb-469f-a165"] {
            t.send(msg::bye(raw)).await;
            let text = t.expect_error(ErrCode::InvalidCallId, raw).await;
            assert!(text.contains("call_id"), "{text}");
            t.send(msg::empty(raw)).await;
            // No oneof and no call_id is a keepalive, answered with nothing (section 1).
            if !raw.is_empty() {
                t.expect_error(ErrCode::InvalidCallId, raw).await;
            }
            t.send(msg::offer(raw, "", "not a number")).await;
            t.expect_error(ErrCode::InvalidCallId, raw).await;
        }
    }
    assert_still_usable(&mut t).await;
    core.assert_no_calls_left().await;
}

async fn new_call_reusing_a_live_call_is_refused(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    let mut a = core.open_idle(kind, A).await;
    let mut b = core.open_idle(Kind::Multi, B).await;
    let mut c = core.open_idle(Kind::Multi, C).await;
    let sent = a.dial(B, &chromium_offer()).await;
    let b_id = b.expect_offer().await.call_id;
    // MultiPipe: reusing the id of a live call (ringing, then established) is INVALID_CALL_ID. A Pipe
    // carries one call at a time: a second call gets RATE_LIMIT_HIT ("too many calls").
    let code = match kind {
        Kind::Pipe => ErrCode::RateLimitHit,
        Kind::Multi => ErrCode::InvalidCallId,
    };
    a.send(msg::offer(&sent, &aiortc_offer(), C)).await;
    a.expect_error(code, &sent).await;
    b.send(msg::answer(&b_id, &chromium_answer())).await;
    let (a_id, _) = a.expect_answer().await;
    a.send(msg::offer(&sent, &aiortc_offer(), C)).await;
    a.expect_error(code, &sent).await;
    c.expect_silent(SILENCE).await;
    // The live call is untouched.
    a.send(msg::bye(&a_id)).await;
    b.expect_bye_on(&b_id, Reason::NormalClearing).await;
    if kind == Kind::Multi {
        // Once the call has ended, its id may be used again.
        a.send(msg::offer(&sent, &aiortc_offer(), C)).await;
        c.expect_offer_of(&aiortc_offer(), A).await;
    }
    core.assert_no_calls_left().await;
}

async fn answer_or_ringing_from_a_terminal_not_offered_the_call_is_not_incall(kind: Kind) {
    let mut config = TestCore::config(PhoneNetworkKind::None);
    config.switch.multipipe_call_cap = 1;
    let core = TestCore::start(config).await;
    // `busy` is B's terminal in a call with D, so it is not offered A's call.
    let mut d = core.open_idle(Kind::Multi, D).await;
    let mut busy = core.open_idle(kind, B).await;
    let (_, busy_id) = establish(&mut d, &mut busy).await;
    let mut b = core.open_idle(Kind::Multi, B).await;
    let mut a = core.open_idle(Kind::Multi, A).await;
    let a_id = a.dial(B, &chromium_offer()).await;
    let b_id = b.expect_offer().await.call_id;
    busy.expect_silent(SILENCE).await;
    let id = match kind {
        Kind::Pipe => busy_id.clone(),
        Kind::Multi => b_id.clone(),
    };
    busy.send(msg::answer(&id, &chromium_answer())).await;
    busy.expect_error(ErrCode::NotIncall, &id).await;
    busy.send(msg::ringing(&id)).await;
    busy.expect_error(ErrCode::NotIncall, &id).await;
    a.expect_silent(SILENCE).await;
    // Nothing changed: b answers A's call, busy's own call goes on.
    b.send(msg::answer(&b_id, &aiortc_answer())).await;
    a.expect_answer_of(&a_id, &aiortc_answer()).await;
    busy.send(msg::reoffer(&busy_id, &sdp("chromium-hold-offer.sdp")))
        .await;
    d.expect_offer_of(&sdp("chromium-hold-offer.sdp"), B).await;
    core.assert_no_calls_left().await;
}

async fn answer_with_no_offer_pending_is_not_incall(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    let mut a = core.open_idle(kind, A).await;
    let mut b = core.open_idle(kind, B).await;
    let (a_id, b_id) = establish(&mut a, &mut b).await;
    a.send(msg::answer(&a_id, &chromium_answer())).await;
    a.expect_error(ErrCode::NotIncall, &a_id).await;
    b.expect_silent(SILENCE).await;
    // The caller's own Ringing is no alerting either.
    a.send(msg::ringing(&a_id)).await;
    a.expect_error(ErrCode::NotIncall, &a_id).await;
    b.send(msg::bye(&b_id)).await;
    a.expect_bye_on(&a_id, Reason::NormalClearing).await;
    core.assert_no_calls_left().await;
}

/// A–B established; `observer`, a `kind` terminal of B, knows it from InCall.
async fn observed(core: &TestCore, kind: Kind) -> (Terminal, Terminal, Terminal, String, String) {
    let mut a = core.open_idle(Kind::Multi, A).await;
    let mut b = core.open_idle(Kind::Multi, B).await;
    let mut observer = core.open_idle(kind, B).await;
    let (a_id, b_id) = establish(&mut a, &mut b).await;
    assert_eq!(observer.expect_offer().await.call_id, b_id);
    observer
        .expect_bye_on(&b_id, Reason::AnsweredElsewhere)
        .await;
    observer.expect_in_call(&b_id, A).await;
    (a, b, observer, a_id, b_id)
}

async fn observers_bye_is_not_incall(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    let (mut a, mut b, mut observer, a_id, b_id) = observed(&core, kind).await;
    observer.send(msg::bye(&b_id)).await;
    observer.expect_error(ErrCode::NotIncall, &b_id).await;
    a.expect_silent(SILENCE).await;
    b.expect_silent(SILENCE).await;
    // The call goes on; its Idle still reaches the observer.
    a.send(msg::bye(&a_id)).await;
    b.expect_bye_on(&b_id, Reason::NormalClearing).await;
    observer.expect_idle(&b_id).await;
    assert_still_usable(&mut observer).await;
    core.assert_no_calls_left().await;
}

async fn to_phone_from_a_non_active_leg_is_not_incall(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    let (mut a, mut b, mut observer, _, b_id) = observed(&core, kind).await;
    observer.send(msg::to_phone(&b_id)).await;
    observer.expect_error(ErrCode::NotIncall, &b_id).await;
    a.expect_silent(SILENCE).await;
    b.expect_silent(SILENCE).await;
    core.assert_no_calls_left().await;
}

async fn another_subscribers_call_id_is_invalid_call_id_and_leaks_nothing(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    let mut a = core.open_idle(Kind::Multi, A).await;
    let mut b = core.open_idle(Kind::Multi, B).await;
    let (a_id, b_id) = establish(&mut a, &mut b).await;
    let mut c = core.open_idle(kind, C).await;
    let code = match kind {
        // A Pipe's ids are ignored: it has no call, so NOT_INCALL, as with any id.
        Kind::Pipe => ErrCode::NotIncall,
        Kind::Multi => ErrCode::InvalidCallId,
    };
    for id in [&a_id, &b_id] {
        for message in [
            msg::bye(id),
            msg::answer(id, &chromium_answer()),
            msg::ringing(id),
            msg::to_phone(id),
            msg::reoffer(id, &aiortc_offer()),
        ] {
            c.send(message.clone()).await;
            let text = c.expect_error(code, id).await;
            for secret in [A, B, &a_id, &b_id] {
                if secret != id {
                    assert!(!text.contains(secret), "{text:?} leaks {secret}");
                }
            }
            assert!(!text.contains("+47"), "{text:?} leaks a number");
        }
    }
    a.expect_silent(SILENCE).await;
    b.expect_silent(SILENCE).await;
    // Ids are per number: C may use the very same UUID for a call of its own.
    let reused = match kind {
        Kind::Pipe => String::new(),
        Kind::Multi => a_id.clone(),
    };
    c.send(msg::offer(&reused, &chromium_offer(), NOBODY)).await;
    let id = c.expect_bye(Reason::Unavailable).await;
    c.assert_own_call_id(&reused, &id);
    // A–B is untouched.
    a.send(msg::reoffer(&a_id, &sdp("chromium-hold-offer.sdp")))
        .await;
    assert_eq!(
        b.expect_offer_of(&sdp("chromium-hold-offer.sdp"), A).await,
        b_id
    );
    core.assert_no_calls_left().await;
}

async fn too_many_messages_per_second_get_rate_limit_hit(kind: Kind) {
    let mut config = TestCore::config(PhoneNetworkKind::None);
    config.messages_per_second = 5;
    let core = TestCore::start(config).await;
    let mut t = core.open_idle(kind, A).await;
    // Burst far over the budget (10): every message is answered, some with RATE_LIMIT_HIT.
    let id = some_id(kind);
    for _ in 0..40 {
        t.send(msg::empty(&id)).await;
    }
    let mut limited = 0;
    for _ in 0..40 {
        let m = t.recv().await;
        let Some(Message::Error(e)) = &m.message else {
            panic!("expected an Error, got {m:?}");
        };
        assert_eq!(m.call_id, id);
        if e.err == ErrCode::RateLimitHit as i32 {
            limited += 1;
        } else {
            assert_eq!(e.err, ErrCode::InvalidArgument as i32, "{m:?}");
        }
    }
    assert!(limited > 0, "40 messages at once must hit a budget of 10");
    core.assert_no_calls_left().await;
}

async fn message_over_the_max_message_size_ends_only_that_rpc(kind: Kind) {
    let mut config = TestCore::config(PhoneNetworkKind::None);
    config.max_message_bytes = 64 * 1024;
    let core = TestCore::start(config).await;
    let mut a = core.open_idle(Kind::Multi, A).await;
    let mut b = core.open_idle(Kind::Multi, B).await;
    let (a_id, b_id) = establish(&mut a, &mut b).await;
    let mut c = core.open_idle(kind, C).await;
    let id = some_id(kind);
    // huge.sdp is ~200 KiB: over the 64 KiB message limit, so it never gets to SDP validation.
    c.send(msg::offer(&id, &sdp("huge.sdp"), NOBODY)).await;
    let end = c.expect_end().await;
    let status = end.expect_err("an oversized message fails the rpc with a status");
    assert_eq!(
        status.code(),
        tonic::Code::ResourceExhausted,
        "documented in README: larger ones end the rpc with RESOURCE_EXHAUSTED; got {status:?}"
    );
    core.wait_for_stats("C gone", |s| s.terminals == 2).await;
    // Other terminals' calls are unaffected.
    a.send(msg::reoffer(&a_id, &sdp("chromium-hold-offer.sdp")))
        .await;
    assert_eq!(
        b.expect_offer_of(&sdp("chromium-hold-offer.sdp"), A).await,
        b_id
    );
    // And the number may come back.
    let mut again = core.open_idle(kind, C).await;
    assert_still_usable(&mut again).await;
    core.assert_no_calls_left().await;
}

/// `WebTerminalMessage` with `bytes` where the real schema has `string`, so that a test can put
/// invalid UTF-8 on the wire. Tags 1 and 4 are the oneof's `offer` and `bye`.
#[derive(Clone, PartialEq, prost::Message)]
struct RawMessage {
    #[prost(message, optional, tag = "1")]
    offer: Option<RawOffer>,
    #[prost(message, optional, tag = "4")]
    bye: Option<RawEmpty>,
    #[prost(bytes = "vec", tag = "10")]
    call_id: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RawOffer {
    #[prost(bytes = "vec", tag = "1")]
    sdp: Vec<u8>,
    #[prost(message, optional, tag = "2")]
    msisdn: Option<RawNumber>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RawNumber {
    #[prost(bytes = "vec", tag = "1")]
    e164: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RawEmpty {}

/// A field's name and a message with the given bad bytes in it.
type BadField = (&'static str, fn(&[u8]) -> RawMessage);

fn raw_offer(call_id: &[u8], sdp: &[u8], to: &[u8]) -> RawMessage {
    RawMessage {
        offer: Some(RawOffer {
            sdp: sdp.to_vec(),
            msisdn: Some(RawNumber { e164: to.to_vec() }),
        }),
        bye: None,
        call_id: call_id.to_vec(),
    }
}

async fn invalid_utf8_in_a_string_field_ends_only_that_rpc(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    let mut a = core.open_idle(Kind::Multi, A).await;
    let mut b = core.open_idle(Kind::Multi, B).await;
    let (a_id, b_id) = establish(&mut a, &mut b).await;
    let bad_fields: [BadField; 3] = [
        ("call_id", |bad| {
            raw_offer(bad, chromium_offer().as_bytes(), NOBODY.as_bytes())
        }),
        ("offer.sdp", |bad| {
            let mut sdp = chromium_offer().into_bytes();
            sdp.extend_from_slice(bad);
            raw_offer(uuid().as_bytes(), &sdp, NOBODY.as_bytes())
        }),
        ("offer.msisdn.e164", |bad| {
            raw_offer(uuid().as_bytes(), chromium_offer().as_bytes(), bad)
        }),
    ];
    for (field, message) in bad_fields {
        let (tx, mut c): (mpsc::Sender<RawMessage>, Terminal) = core.open_raw(kind, C).await;
        if kind == Kind::Pipe {
            c.expect_greeting_idle().await;
        }
        // The look-alike speaks the real wire format: a valid message works.
        let id = uuid();
        tx.send(raw_offer(
            id.as_bytes(),
            chromium_offer().as_bytes(),
            NOBODY.as_bytes(),
        ))
        .await
        .unwrap();
        let got = c.expect_bye(Reason::Unavailable).await;
        c.assert_own_call_id(if kind == Kind::Pipe { "" } else { &id }, &got);
        // Invalid UTF-8 in a string field cannot be decoded: the rpc fails with a status.
        tx.send(message(b"\xff\xfe\xc3(")).await.unwrap();
        let end = c.expect_end().await;
        let status = end.expect_err("an undecodable message fails the rpc with a status");
        assert_eq!(
            status.code(),
            tonic::Code::Internal,
            "{field}: prost's decode error is INTERNAL; got {status:?}"
        );
        core.wait_for_stats("C gone", |s| s.terminals == 2).await;
    }
    // Other terminals' calls are unaffected.
    b.send(msg::reoffer(&b_id, &sdp("chromium-icerestart-offer.sdp")))
        .await;
    assert_eq!(
        a.expect_offer_of(&sdp("chromium-icerestart-offer.sdp"), B)
            .await,
        a_id
    );
    core.assert_no_calls_left().await;
}

#[tokio::test]
async fn multipipe_new_call_at_its_call_cap_gets_rate_limit_hit() {
    let mut config = TestCore::config(PhoneNetworkKind::None);
    config.switch.multipipe_call_cap = 2;
    let core = TestCore::start(config).await;
    let mut a = core.open_idle(Kind::Multi, A).await;
    let mut b = core.open_idle(Kind::Multi, B).await;
    let first = a.dial(B, &chromium_offer()).await;
    b.expect_offer().await;
    a.dial(B, &chromium_offer()).await;
    b.expect_offer().await;
    let third = a.dial(B, &chromium_offer()).await;
    a.expect_error(ErrCode::RateLimitHit, &third).await;
    b.expect_silent(SILENCE).await;
    a.send(msg::bye(&first)).await;
    b.expect_bye(Reason::Cancelled).await;
    // Under the cap again.
    a.dial(B, &chromium_offer()).await;
    b.expect_offer().await;
    core.assert_no_calls_left().await;
}
