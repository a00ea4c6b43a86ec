//! Minting HS256 access tokens (PROTOCOL.md section 1): subscriber tokens and client tokens, for
//! the CLI's `token` command, demos and tests.

use crate::core::Msisdn;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The claims [`mint_token`] and [`mint_client_token`] write.
#[derive(Debug, Serialize)]
struct MintedClaims<'a> {
    sub: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    msisdns: Option<Vec<&'a str>>,
    scope: &'a str,
    exp: u64,
    iat: u64,
}

/// Mints an HS256 token for `msisdn` (claim `sub`) with `scope` (space-separated), valid for `ttl`
/// from now (claims `iat`, `exp`, in whole seconds). For the CLI's `token` command, demos and tests;
/// production tokens come from the operator's identity provider.
pub fn mint_token(secret: &[u8], msisdn: &Msisdn, scope: &str, ttl: Duration) -> String {
    mint(secret, msisdn.as_str(), None, scope, ttl)
}

/// Mints an HS256 client token, as an OAuth 2.0 authorization server issues one to an application
/// acting for subscribers (PROTOCOL.md section 1): claim `sub` is `client_id`, claim `msisdns` the
/// numbers it grants (with their `+`), `scope` and the validity as in [`mint_token`]. An rpc opened
/// with it names one of `msisdns` in [`MSISDN_METADATA`]. For the CLI's `token --client` command,
/// demos and tests.
///
/// [`MSISDN_METADATA`]: super::MSISDN_METADATA
pub fn mint_client_token(
    secret: &[u8],
    client_id: &str,
    msisdns: &[Msisdn],
    scope: &str,
    ttl: Duration,
) -> String {
    let granted = msisdns.iter().map(Msisdn::as_str).collect();
    mint(secret, client_id, Some(granted), scope, ttl)
}

fn mint(
    secret: &[u8],
    sub: &str,
    msisdns: Option<Vec<&str>>,
    scope: &str,
    ttl: Duration,
) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the system clock is after 1970")
        .as_secs();
    let claims = MintedClaims {
        sub,
        msisdns,
        scope,
        exp: now.saturating_add(ttl.as_secs()),
        iat: now,
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .expect("HS256 signing with an HMAC key cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::test_support::*;
    use crate::auth::{Principal, Verifier, REQUIRED_SCOPE};
    use jsonwebtoken::{DecodingKey, Validation};

    #[test]
    fn minted_client_token_has_the_client_as_sub_and_the_grants() {
        let token = client_token(&["+4799990001", "+4799990002"]);
        let data = jsonwebtoken::decode::<serde_json::Value>(
            &token,
            &DecodingKey::from_secret(SECRET),
            &Validation::new(Algorithm::HS256),
        )
        .unwrap();
        assert_eq!(data.claims["sub"], "voicebot");
        assert_eq!(
            data.claims["msisdns"],
            serde_json::json!(["+4799990001", "+4799990002"])
        );
        assert_eq!(data.claims["scope"], REQUIRED_SCOPE);
        assert_eq!(
            Verifier::hs256(SECRET).verify_token(&token),
            Ok(Principal::Client {
                client_id: "voicebot".into(),
                msisdns: vec![number("+4799990001"), number("+4799990002")],
            })
        );
        // A subscriber token has no msisdns claim.
        let subscriber = mint_token(SECRET, &msisdn(), REQUIRED_SCOPE, Duration::from_secs(60));
        let data = jsonwebtoken::decode::<serde_json::Value>(
            &subscriber,
            &DecodingKey::from_secret(SECRET),
            &Validation::new(Algorithm::HS256),
        )
        .unwrap();
        assert!(data.claims.get("msisdns").is_none(), "{:?}", data.claims);
    }
}
