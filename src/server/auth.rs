//! Access tokens: who a terminal is (PROTOCOL.md sections 1, 2 and 6).
//!
//! A client sends `authorization: Bearer <JWT>` metadata when it opens `Pipe` or `MultiPipe`. The
//! token's `sub` claim is the terminal's msisdn (E.164), its space-separated `scope` claim must hold
//! [`REQUIRED_SCOPE`], and `exp` is required, checked with [`LEEWAY`] of clock skew. The rpc fails with
//! `UNAUTHENTICATED` (no, invalid or expired token, bad `sub`) or `PERMISSION_DENIED` (no scope) before
//! any message.
//!
//! Today tokens are HS256 with a shared secret. [`Verifier`] holds a list of [`VerifyingKey`]s so that
//! RS256, ES256 or keys fetched from a JWKS endpoint can be added as new variants without touching its
//! callers.

use crate::core::{Msisdn, MsisdnError};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tonic::metadata::MetadataMap;
use tonic::Status;

/// The OAuth scope a token needs to use the WebTerminal API (PROTOCOL.md section 1).
pub const REQUIRED_SCOPE: &str = "call.control.answer_and_initiate";

/// Clock skew allowed on `exp` (and `nbf`, when present): 60 s (PROTOCOL.md section 6).
pub const LEEWAY: Duration = Duration::from_secs(60);

/// Why a token was refused. [`AuthError::status`] maps it to the gRPC status that fails the rpc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// No `authorization` metadata.
    MissingToken,
    /// `authorization` is not `Bearer <token>` in ASCII.
    NotBearer,
    /// The token is malformed, has a bad signature or algorithm, or lacks `exp`; the text says which.
    Invalid(String),
    /// `exp` is more than [`LEEWAY`] in the past.
    Expired,
    /// `sub` is not an E.164 number.
    BadSubject(MsisdnError),
    /// `scope` does not contain [`REQUIRED_SCOPE`].
    MissingScope,
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::MissingToken => {
                f.write_str("missing 'authorization: Bearer <token>' metadata")
            }
            AuthError::NotBearer => {
                f.write_str("the authorization metadata must be 'Bearer <token>'")
            }
            AuthError::Invalid(why) => write!(f, "invalid access token: {why}"),
            AuthError::Expired => f.write_str("the access token has expired"),
            AuthError::BadSubject(e) => write!(
                f,
                "the access token's sub claim {e}: it must be the subscriber's E.164 msisdn"
            ),
            AuthError::MissingScope => {
                write!(f, "the access token lacks the scope {REQUIRED_SCOPE}")
            }
        }
    }
}

impl std::error::Error for AuthError {}

impl AuthError {
    /// The gRPC status that fails the rpc: `PERMISSION_DENIED` for a missing scope, `UNAUTHENTICATED`
    /// for everything else (PROTOCOL.md section 6).
    pub fn status(&self) -> Status {
        match self {
            AuthError::MissingScope => Status::permission_denied(self.to_string()),
            _ => Status::unauthenticated(self.to_string()),
        }
    }
}

impl From<AuthError> for Status {
    fn from(e: AuthError) -> Status {
        e.status()
    }
}

/// One key a token may be signed with. Only HMAC today; asymmetric keys (RS256, ES256, a JWKS set)
/// become further variants.
#[derive(Clone)]
pub enum VerifyingKey {
    /// HS256 with a shared secret (any length; 32 random bytes recommended).
    Hs256(DecodingKey),
}

impl VerifyingKey {
    fn algorithm(&self) -> Algorithm {
        match self {
            VerifyingKey::Hs256(_) => Algorithm::HS256,
        }
    }

    fn decoding_key(&self) -> &DecodingKey {
        match self {
            VerifyingKey::Hs256(key) => key,
        }
    }
}

impl fmt::Debug for VerifyingKey {
    /// Never prints key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyingKey::Hs256(_) => f.write_str("Hs256(..)"),
        }
    }
}

/// Verifies access tokens and yields the terminal's msisdn. Cheap to share behind an `Arc`; holds no
/// mutable state.
#[derive(Debug, Clone)]
pub struct Verifier {
    keys: Vec<VerifyingKey>,
}

/// The claims this core reads and writes.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<u64>,
}

impl Verifier {
    /// A verifier for HS256 tokens signed with `secret`.
    pub fn hs256(secret: &[u8]) -> Self {
        Verifier {
            keys: vec![VerifyingKey::Hs256(DecodingKey::from_secret(secret))],
        }
    }

    /// Reads `authorization: Bearer <token>` from the rpc's metadata and verifies the token
    /// (PROTOCOL.md section 6).
    ///
    /// # Errors
    /// An [`AuthError`]; turn it into the rpc's status with [`AuthError::status`].
    pub fn authenticate(&self, metadata: &MetadataMap) -> Result<Msisdn, AuthError> {
        let value = metadata
            .get("authorization")
            .ok_or(AuthError::MissingToken)?;
        let value = value.to_str().map_err(|_| AuthError::NotBearer)?;
        let (scheme, token) = value.trim().split_once(' ').ok_or(AuthError::NotBearer)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(AuthError::NotBearer);
        }
        self.verify(token.trim())
    }

    /// Verifies one compact JWT: signature with one of the keys, `exp` (required, [`LEEWAY`] of skew),
    /// `sub` an E.164 msisdn, `scope` containing [`REQUIRED_SCOPE`]. `aud` is not checked (no audience
    /// is configured). Returns the subscriber the token speaks for.
    ///
    /// # Errors
    /// An [`AuthError`] naming the first fault.
    pub fn verify(&self, token: &str) -> Result<Msisdn, AuthError> {
        let mut last = AuthError::Invalid("no verifying key is configured".into());
        for key in &self.keys {
            let mut validation = Validation::new(key.algorithm());
            validation.leeway = LEEWAY.as_secs();
            validation.validate_aud = false;
            validation.set_required_spec_claims(&["exp"]);
            match jsonwebtoken::decode::<Claims>(token, key.decoding_key(), &validation) {
                Ok(data) => return check_claims(data.claims),
                Err(e) => last = map_jwt_error(e),
            }
        }
        Err(last)
    }
}

fn check_claims(claims: Claims) -> Result<Msisdn, AuthError> {
    let msisdn = Msisdn::parse(&claims.sub).map_err(AuthError::BadSubject)?;
    let scoped = claims
        .scope
        .as_deref()
        .is_some_and(|s| s.split_ascii_whitespace().any(|s| s == REQUIRED_SCOPE));
    if !scoped {
        return Err(AuthError::MissingScope);
    }
    Ok(msisdn)
}

fn map_jwt_error(e: jsonwebtoken::errors::Error) -> AuthError {
    use jsonwebtoken::errors::ErrorKind;
    match e.kind() {
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::MissingRequiredClaim(claim) => {
            AuthError::Invalid(format!("the {claim} claim is required"))
        }
        ErrorKind::InvalidSignature => AuthError::Invalid("bad signature".into()),
        ErrorKind::InvalidAlgorithm => AuthError::Invalid("unexpected signing algorithm".into()),
        ErrorKind::ImmatureSignature => {
            AuthError::Invalid("the token is not valid yet (nbf)".into())
        }
        ErrorKind::Json(_) | ErrorKind::InvalidClaimFormat(_) => {
            AuthError::Invalid("the claims are malformed (sub and exp are required)".into())
        }
        _ => AuthError::Invalid("malformed token".into()),
    }
}

/// Mints an HS256 token for `msisdn` (claim `sub`) with `scope` (space-separated), valid for `ttl`
/// from now (claims `iat`, `exp`, in whole seconds). For the CLI's `token` command, demos and tests;
/// production tokens come from the operator's identity provider.
pub fn mint_token(secret: &[u8], msisdn: &Msisdn, scope: &str, ttl: Duration) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the system clock is after 1970")
        .as_secs();
    let claims = Claims {
        sub: msisdn.as_str().to_owned(),
        scope: Some(scope.to_owned()),
        exp: now.saturating_add(ttl.as_secs()),
        iat: Some(now),
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
    use tonic::Code;

    const SECRET: &[u8] = b"test secret, 32 bytes long......";

    fn msisdn() -> Msisdn {
        Msisdn::parse("+4799990001").unwrap()
    }

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn raw_token(claims: serde_json::Value) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap()
    }

    fn metadata(value: &str) -> MetadataMap {
        let mut map = MetadataMap::new();
        map.insert("authorization", value.parse().unwrap());
        map
    }

    fn code_of(result: Result<Msisdn, AuthError>) -> Code {
        result.expect_err("must be refused").status().code()
    }

    #[test]
    fn minted_token_authenticates() {
        let token = mint_token(SECRET, &msisdn(), REQUIRED_SCOPE, Duration::from_secs(60));
        let verifier = Verifier::hs256(SECRET);
        assert_eq!(
            verifier.authenticate(&metadata(&format!("Bearer {token}"))),
            Ok(msisdn())
        );
        assert_eq!(
            verifier.authenticate(&metadata(&format!("bearer {token}"))),
            Ok(msisdn())
        );
    }

    #[test]
    fn scope_may_hold_other_scopes() {
        let token = mint_token(
            SECRET,
            &msisdn(),
            &format!("events.read {REQUIRED_SCOPE} sms.send"),
            Duration::from_secs(60),
        );
        assert_eq!(Verifier::hs256(SECRET).verify(&token), Ok(msisdn()));
    }

    #[test]
    fn missing_metadata_is_unauthenticated() {
        let verifier = Verifier::hs256(SECRET);
        assert_eq!(
            verifier.authenticate(&MetadataMap::new()),
            Err(AuthError::MissingToken)
        );
        assert_eq!(
            code_of(verifier.authenticate(&MetadataMap::new())),
            Code::Unauthenticated
        );
    }

    #[test]
    fn non_bearer_is_unauthenticated() {
        let verifier = Verifier::hs256(SECRET);
        for value in ["Basic dXNlcjpwYXNz", "Bearer", "token"] {
            assert_eq!(
                verifier.authenticate(&metadata(value)),
                Err(AuthError::NotBearer),
                "{value}"
            );
        }
    }

    #[test]
    fn garbage_token_is_unauthenticated() {
        let verifier = Verifier::hs256(SECRET);
        assert_eq!(
            code_of(verifier.authenticate(&metadata("Bearer not.a.jwt"))),
            Code::Unauthenticated
        );
    }

    #[test]
    fn wrong_secret_is_unauthenticated() {
        let token = mint_token(
            b"another secret",
            &msisdn(),
            REQUIRED_SCOPE,
            Duration::from_secs(60),
        );
        let result = Verifier::hs256(SECRET).verify(&token);
        assert!(matches!(result, Err(AuthError::Invalid(_))), "{result:?}");
        assert_eq!(code_of(result), Code::Unauthenticated);
    }

    #[test]
    fn expired_token_is_unauthenticated_after_the_leeway() {
        let verifier = Verifier::hs256(SECRET);
        let expired = raw_token(serde_json::json!({
            "sub": "+4799990001", "scope": REQUIRED_SCOPE, "exp": now() - 120,
        }));
        assert_eq!(verifier.verify(&expired), Err(AuthError::Expired));
        assert_eq!(code_of(verifier.verify(&expired)), Code::Unauthenticated);
        // 30 s ago is within the 60 s of allowed clock skew.
        let skewed = raw_token(serde_json::json!({
            "sub": "+4799990001", "scope": REQUIRED_SCOPE, "exp": now() - 30,
        }));
        assert_eq!(verifier.verify(&skewed), Ok(msisdn()));
    }

    #[test]
    fn missing_exp_is_unauthenticated() {
        let token = raw_token(serde_json::json!({
            "sub": "+4799990001", "scope": REQUIRED_SCOPE,
        }));
        let result = Verifier::hs256(SECRET).verify(&token);
        assert!(matches!(result, Err(AuthError::Invalid(_))), "{result:?}");
        assert_eq!(code_of(result), Code::Unauthenticated);
    }

    #[test]
    fn bad_sub_is_unauthenticated() {
        let verifier = Verifier::hs256(SECRET);
        let token = raw_token(serde_json::json!({
            "sub": "4799990001", "scope": REQUIRED_SCOPE, "exp": now() + 60,
        }));
        assert_eq!(
            verifier.verify(&token),
            Err(AuthError::BadSubject(MsisdnError::NoPlus))
        );
        assert_eq!(code_of(verifier.verify(&token)), Code::Unauthenticated);
        let no_sub = raw_token(serde_json::json!({
            "scope": REQUIRED_SCOPE, "exp": now() + 60,
        }));
        assert_eq!(code_of(verifier.verify(&no_sub)), Code::Unauthenticated);
    }

    #[test]
    fn missing_scope_is_permission_denied() {
        let verifier = Verifier::hs256(SECRET);
        let other = mint_token(SECRET, &msisdn(), "events.read", Duration::from_secs(60));
        assert_eq!(verifier.verify(&other), Err(AuthError::MissingScope));
        assert_eq!(code_of(verifier.verify(&other)), Code::PermissionDenied);
        // A scope that merely contains the required one as a substring does not count.
        let prefix = mint_token(
            SECRET,
            &msisdn(),
            "call.control.answer_and_initiate_extra",
            Duration::from_secs(60),
        );
        assert_eq!(verifier.verify(&prefix), Err(AuthError::MissingScope));
        let none = raw_token(serde_json::json!({ "sub": "+4799990001", "exp": now() + 60 }));
        assert_eq!(code_of(verifier.verify(&none)), Code::PermissionDenied);
    }

    #[test]
    fn other_algorithms_are_refused() {
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &serde_json::json!({ "sub": "+4799990001", "scope": REQUIRED_SCOPE, "exp": now() + 60 }),
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        assert_eq!(
            code_of(Verifier::hs256(SECRET).verify(&token)),
            Code::Unauthenticated
        );
    }
}
