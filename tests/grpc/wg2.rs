//! PROTOCOL.md section 1: how WG2's own clients connect, on `Pipe` and `MultiPipe` alike. Client
//! tokens (`sub` is the client, claim `msisdns` the numbers it grants) with the subscriber named in
//! `wg2-msisdn` metadata; numbers without their leading `+` in `Offer.msisdn`, `wg2-msisdn` and
//! `msisdns`, always sent back with it; empty messages as keepalives.

use crate::for_all_transports;
use crate::support::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tonic::Code;
use webterminal_core::auth::{mint_client_token, REQUIRED_SCOPE};
use webterminal_core::core::Msisdn;
use webterminal_core::server::PhoneNetworkKind;

for_all_transports!(
    client_token_with_a_granted_wg2_msisdn_calls_and_is_called_as_that_number,
    client_token_without_wg2_msisdn_is_unauthenticated,
    wg2_msisdn_the_client_token_does_not_grant_is_permission_denied,
    subscriber_token_naming_another_number_is_permission_denied,
    subscriber_token_naming_its_own_number_is_accepted,
    malformed_wg2_msisdn_is_invalid_argument,
    client_token_without_the_scope_is_permission_denied,
    offer_to_a_number_without_its_plus_reaches_the_callee,
    wg2_msisdn_and_grants_without_their_plus_name_the_e164_number,
    keepalives_every_100ms_get_nothing_back_and_the_terminal_still_takes_a_call,
    keepalives_count_toward_the_message_rate_limit,
);

/// A client token for `voicebot` granting `msisdns`.
fn client_token(msisdns: &[&str]) -> String {
    let granted: Vec<Msisdn> = msisdns.iter().map(|m| Msisdn::parse(m).unwrap()).collect();
    mint_client_token(
        SECRET,
        "voicebot",
        &granted,
        REQUIRED_SCOPE,
        Duration::from_secs(3600),
    )
}

/// Opens a `kind` rpc with `token` and, when given, `wg2-msisdn: named`.
async fn open_naming(
    core: &TestCore,
    kind: Kind,
    token: &str,
    named: Option<&str>,
    speaks_for: &str,
) -> Result<Terminal, tonic::Status> {
    let authorization = bearer_text(token);
    let mut metadata = vec![("authorization", authorization.as_str())];
    if let Some(named) = named {
        metadata.push(("wg2-msisdn", named));
    }
    core.try_open_with_metadata(kind, speaks_for, &metadata)
        .await
}

/// Opening with `token` and `wg2-msisdn: named` fails with `code`, a message naming `needle`, and
/// registers nothing.
async fn refused(kind: Kind, token: &str, named: Option<&str>, code: Code, needle: &str) {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    match open_naming(&core, kind, token, named, A).await {
        Ok(_) => panic!("wg2-msisdn {named:?} must be refused with {code:?}"),
        Err(status) => {
            assert_eq!(status.code(), code, "wg2-msisdn {named:?}: {status:?}");
            assert!(
                status.message().contains(needle),
                "{named:?}: the message should name {needle:?}: {status:?}"
            );
        }
    }
    assert_eq!(core.stats().await.terminals, 0);
    core.assert_no_calls_left().await;
}

async fn client_token_with_a_granted_wg2_msisdn_calls_and_is_called_as_that_number(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    let token = client_token(&[C, A]);
    let mut a = open_naming(&core, kind, &token, Some(A), A)
        .await
        .expect("a granted number is accepted");
    if kind == Kind::Pipe {
        a.expect_greeting_idle().await;
    }
    let mut b = core.open_idle(Kind::Multi, B).await;
    // Its calls carry the named number as caller ID, and reach the callee.
    let (a_id, b_id) = establish(&mut a, &mut b).await;
    b.send(msg::bye(&b_id)).await;
    a.expect_bye_on(&a_id, Reason::NormalClearing).await;
    core.wait_for_stats("the call ends", |s| s.calls == 0).await;
    // And it is offered the named number's calls.
    let (b_id, a_id) = establish(&mut b, &mut a).await;
    a.send(msg::bye(&a_id)).await;
    b.expect_bye_on(&b_id, Reason::NormalClearing).await;
    core.assert_no_calls_left().await;
}

async fn client_token_without_wg2_msisdn_is_unauthenticated(kind: Kind) {
    let token = client_token(&[A]);
    refused(kind, &token, None, Code::Unauthenticated, "wg2-msisdn").await;
    // An empty value names nobody either.
    refused(kind, &token, Some(""), Code::Unauthenticated, "wg2-msisdn").await;
}

async fn wg2_msisdn_the_client_token_does_not_grant_is_permission_denied(kind: Kind) {
    refused(
        kind,
        &client_token(&[C, D]),
        Some(A),
        Code::PermissionDenied,
        "wg2-msisdn",
    )
    .await;
    refused(
        kind,
        &client_token(&[]),
        Some(A),
        Code::PermissionDenied,
        "wg2-msisdn",
    )
    .await;
}

async fn subscriber_token_naming_another_number_is_permission_denied(kind: Kind) {
    refused(
        kind,
        &TestCore::token(B),
        Some(A),
        Code::PermissionDenied,
        "wg2-msisdn",
    )
    .await;
}

async fn subscriber_token_naming_its_own_number_is_accepted(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    let mut a = open_naming(&core, kind, &TestCore::token(A), Some(A), A)
        .await
        .expect("a subscriber token may name its own number");
    if kind == Kind::Pipe {
        a.expect_greeting_idle().await;
    }
    let mut b = core.open_idle(Kind::Multi, B).await;
    establish(&mut a, &mut b).await;
    core.assert_no_calls_left().await;
}

async fn malformed_wg2_msisdn_is_invalid_argument(kind: Kind) {
    for token in [client_token(&[A]), TestCore::token(A)] {
        for bad in ["+47 9999 0001", "tel:+4799990001", "+1", "alice"] {
            refused(kind, &token, Some(bad), Code::InvalidArgument, "wg2-msisdn").await;
        }
    }
    // Given twice: an rpc speaks for one subscriber.
    let core = TestCore::new(PhoneNetworkKind::None).await;
    let authorization = bearer_text(&client_token(&[A, B]));
    let status = core
        .try_open_with_metadata(
            kind,
            A,
            &[
                ("authorization", &authorization),
                ("wg2-msisdn", A),
                ("wg2-msisdn", B),
            ],
        )
        .await
        .err()
        .expect("two wg2-msisdn values are refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    core.assert_no_calls_left().await;
}

async fn client_token_without_the_scope_is_permission_denied(kind: Kind) {
    let token = mint_client_token(
        SECRET,
        "voicebot",
        &[Msisdn::parse(A).unwrap()],
        "events.read",
        Duration::from_secs(3600),
    );
    refused(
        kind,
        &token,
        Some(A),
        Code::PermissionDenied,
        REQUIRED_SCOPE,
    )
    .await;
}

/// `number` without its leading `+`.
fn no_plus(number: &str) -> &str {
    number.strip_prefix('+').unwrap()
}

async fn offer_to_a_number_without_its_plus_reaches_the_callee(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    let mut a = core.open_idle(kind, A).await;
    let mut b = core.open_idle(kind.other(), B).await;
    let sent = a.dial(no_plus(B), &chromium_offer()).await;
    // B is offered the call, and sees the caller with the '+'.
    let b_id = b.expect_offer_of(&chromium_offer(), A).await;
    b.send(msg::ringing(&b_id)).await;
    let a_id = a.expect_ringing().await;
    a.assert_own_call_id(&sent, &a_id);
    b.send(msg::answer(&b_id, &chromium_answer())).await;
    a.expect_answer_of(&a_id, &chromium_answer()).await;
    a.send(msg::bye(&a_id)).await;
    b.expect_bye_on(&b_id, Reason::NormalClearing).await;
    core.wait_for_stats("the call ends", |s| s.calls == 0).await;
    // Its own number without the '+' is still its own number.
    let id = a.new_call_id();
    a.send(msg::offer(&id, &chromium_offer(), no_plus(A))).await;
    let text = a.expect_error(ErrCode::InvalidArgument, &id).await;
    assert!(text.contains("own number"), "{text}");
    core.assert_no_calls_left().await;
}

async fn wg2_msisdn_and_grants_without_their_plus_name_the_e164_number(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    let mut b = core.open_idle(Kind::Multi, B).await;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // As WG2's examples write them: grants without the '+' too.
    let claims = serde_json::json!({
        "sub": "wg2-voicebot",
        "msisdns": [no_plus(A), C],
        "scope": REQUIRED_SCOPE,
        "exp": now + 3600,
    });
    let unsigned = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap();
    let subscriber = TestCore::token(A);
    let granted = client_token(&[A]);
    for (token, named) in [
        (&unsigned, no_plus(A)),
        (&unsigned, A),
        (&granted, no_plus(A)),
        (&subscriber, no_plus(A)),
    ] {
        let mut a = open_naming(&core, kind, token, Some(named), A)
            .await
            .unwrap_or_else(|s| panic!("wg2-msisdn {named:?}: {s:?}"));
        if kind == Kind::Pipe {
            a.expect_greeting_idle().await;
        }
        // The terminal speaks for +4799990001: the callee sees the caller with the '+'.
        let (a_id, b_id) = establish(&mut a, &mut b).await;
        a.send(msg::bye(&a_id)).await;
        b.expect_bye_on(&b_id, Reason::NormalClearing).await;
        a.cancel();
        core.wait_for_stats("the terminal is gone", |s| s.calls == 0 && s.terminals == 1)
            .await;
    }
    core.assert_no_calls_left().await;
}

async fn keepalives_every_100ms_get_nothing_back_and_the_terminal_still_takes_a_call(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    let mut a = core.open_idle(kind, A).await;
    // As WG2's voicebot does while it has nothing to say: an empty message every 100 ms, for 2 s.
    for _ in 0..20 {
        a.send(msg::empty("")).await;
        a.expect_silent(Duration::from_millis(100)).await;
    }
    a.expect_silent(SILENCE).await;
    // Still registered and usable: it is offered a call, and answers it.
    let mut b = core.open_idle(Kind::Multi, B).await;
    let (b_id, a_id) = establish(&mut b, &mut a).await;
    // Keepalives in a call change nothing either.
    a.send(msg::empty("")).await;
    b.expect_silent(SILENCE).await;
    a.send(msg::bye(&a_id)).await;
    b.expect_bye_on(&b_id, Reason::NormalClearing).await;
    a.expect_silent(SILENCE).await;
    core.assert_no_calls_left().await;
}

async fn keepalives_count_toward_the_message_rate_limit(kind: Kind) {
    let mut config = TestCore::config(PhoneNetworkKind::None);
    // A bucket of 2 messages, refilled at one a second.
    config.messages_per_second = 1;
    let core = TestCore::start(config).await;
    let mut t = core.open_idle(kind, A).await;
    for _ in 0..4 {
        t.send(msg::empty("")).await;
    }
    // The keepalives spent the budget (the ones over it are dropped as silently): the next message
    // is refused for the rate, not for its missing oneof.
    let id = uuid();
    t.send(msg::empty(&id)).await;
    let text = t.expect_error(ErrCode::RateLimitHit, &id).await;
    assert!(text.contains("messages per second"), "{text}");
    t.expect_silent(SILENCE).await;
    core.assert_no_calls_left().await;
}
