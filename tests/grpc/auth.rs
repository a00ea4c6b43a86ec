//! PROTOCOL.md sections 1 and 6: access tokens. A refused token fails the rpc with the exact status
//! before any message, on `Pipe` and `MultiPipe` alike, and registers nothing.

use crate::for_all_transports;
use crate::support::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tonic::Code;
use webterminal_core::auth::{mint_token, REQUIRED_SCOPE};
use webterminal_core::core::Msisdn;
use webterminal_core::server::PhoneNetworkKind;

for_all_transports!(
    no_authorization_metadata_is_unauthenticated,
    authorization_that_is_not_bearer_is_unauthenticated,
    garbage_token_is_unauthenticated,
    token_signed_with_another_secret_is_unauthenticated,
    token_signed_with_another_algorithm_or_none_is_unauthenticated,
    token_expired_beyond_the_leeway_is_unauthenticated,
    token_expired_within_the_leeway_is_accepted,
    token_without_exp_is_unauthenticated,
    token_whose_sub_is_not_e164_is_unauthenticated,
    token_without_the_scope_is_permission_denied,
    valid_token_registers_and_the_terminal_speaks_for_its_sub,
);

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn signed(claims: serde_json::Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

/// Opening with `authorization` fails with `code` before any message; nothing is registered.
async fn refused(kind: Kind, authorization: Option<&str>, code: Code) {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    match core.try_open_with(kind, A, authorization).await {
        Ok(_) => panic!("{authorization:?} must be refused with {code:?}"),
        Err(status) => {
            assert_eq!(status.code(), code, "{authorization:?}: {status:?}");
            assert!(!status.message().is_empty());
        }
    }
    assert_eq!(core.stats().await.terminals, 0);
    core.assert_no_calls_left().await;
}

async fn no_authorization_metadata_is_unauthenticated(kind: Kind) {
    refused(kind, None, Code::Unauthenticated).await;
}

async fn authorization_that_is_not_bearer_is_unauthenticated(kind: Kind) {
    let token = TestCore::token(A);
    for value in [
        "Basic dXNlcjpwYXNz".to_owned(),
        "Bearer".to_owned(),
        token.clone(),
        format!("Token {token}"),
    ] {
        refused(kind, Some(&value), Code::Unauthenticated).await;
    }
}

async fn garbage_token_is_unauthenticated(kind: Kind) {
    for token in ["not.a.jwt", "garbage", "a.b.c.d", "...."] {
        refused(kind, Some(&bearer_text(token)), Code::Unauthenticated).await;
    }
}

async fn token_signed_with_another_secret_is_unauthenticated(kind: Kind) {
    let token = mint_token(
        b"some other secret",
        &Msisdn::parse(A).unwrap(),
        REQUIRED_SCOPE,
        Duration::from_secs(3600),
    );
    refused(kind, Some(&bearer_text(&token)), Code::Unauthenticated).await;
}

/// base64url without padding (RFC 7515), for a hand-made `alg: none` token.
fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

async fn token_signed_with_another_algorithm_or_none_is_unauthenticated(kind: Kind) {
    let claims = serde_json::json!({ "sub": A, "scope": REQUIRED_SCOPE, "exp": now() + 3600 });
    let hs512 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS512),
        &claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap();
    refused(kind, Some(&bearer_text(&hs512)), Code::Unauthenticated).await;
    let none = format!(
        "{}.{}.",
        b64url(br#"{"alg":"none","typ":"JWT"}"#),
        b64url(claims.to_string().as_bytes())
    );
    refused(kind, Some(&bearer_text(&none)), Code::Unauthenticated).await;
}

async fn token_expired_beyond_the_leeway_is_unauthenticated(kind: Kind) {
    let token =
        signed(serde_json::json!({ "sub": A, "scope": REQUIRED_SCOPE, "exp": now() - 120 }));
    refused(kind, Some(&bearer_text(&token)), Code::Unauthenticated).await;
}

async fn token_expired_within_the_leeway_is_accepted(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    let token = signed(serde_json::json!({ "sub": A, "scope": REQUIRED_SCOPE, "exp": now() - 30 }));
    let mut t = core
        .try_open_with(kind, A, Some(&bearer_text(&token)))
        .await
        .expect("60 s of clock skew are allowed");
    if kind == Kind::Pipe {
        t.expect_greeting_idle().await;
    }
    assert_still_usable(&mut t).await;
    core.assert_no_calls_left().await;
}

async fn token_without_exp_is_unauthenticated(kind: Kind) {
    let token = signed(serde_json::json!({ "sub": A, "scope": REQUIRED_SCOPE }));
    refused(kind, Some(&bearer_text(&token)), Code::Unauthenticated).await;
}

async fn token_whose_sub_is_not_e164_is_unauthenticated(kind: Kind) {
    for sub in [
        serde_json::json!("4799990001"),
        serde_json::json!("+47 9999 0001"),
        serde_json::json!("alice"),
        serde_json::json!(""),
        serde_json::json!(4799990001u64),
    ] {
        let token =
            signed(serde_json::json!({ "sub": sub, "scope": REQUIRED_SCOPE, "exp": now() + 3600 }));
        refused(kind, Some(&bearer_text(&token)), Code::Unauthenticated).await;
    }
    let no_sub = signed(serde_json::json!({ "scope": REQUIRED_SCOPE, "exp": now() + 3600 }));
    refused(kind, Some(&bearer_text(&no_sub)), Code::Unauthenticated).await;
}

async fn token_without_the_scope_is_permission_denied(kind: Kind) {
    for scope in [
        Some("events.read"),
        Some("call.control.answer_and_initiate_extra"),
        Some(""),
        None,
    ] {
        let mut claims = serde_json::json!({ "sub": A, "exp": now() + 3600 });
        if let Some(scope) = scope {
            claims["scope"] = scope.into();
        }
        refused(
            kind,
            Some(&bearer_text(&signed(claims))),
            Code::PermissionDenied,
        )
        .await;
    }
}

async fn valid_token_registers_and_the_terminal_speaks_for_its_sub(kind: Kind) {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    // Other scopes around the required one, and a lower-case scheme, are fine.
    let token = mint_token(
        SECRET,
        &Msisdn::parse(A).unwrap(),
        &format!("events.read {REQUIRED_SCOPE} sms.send"),
        Duration::from_secs(3600),
    );
    let mut a = core
        .try_open_with(kind, A, Some(&format!("bearer {token}")))
        .await
        .expect("accepted");
    if kind == Kind::Pipe {
        a.expect_greeting_idle().await;
    }
    let mut b = core.open_idle(Kind::Multi, B).await;
    // The caller ID is the token's sub.
    a.dial(B, &chromium_offer()).await;
    assert_eq!(b.expect_offer().await.from, A);
    assert_eq!(core.stats().await.terminals, 2);
    core.assert_no_calls_left().await;
}
