//! Access tokens: who a terminal is (PROTOCOL.md sections 1, 2 and 6).
//!
//! A client sends `authorization: Bearer <JWT>` metadata when it opens `Pipe` or `MultiPipe`. Its
//! `scope` claim (space-separated, or a JSON array of scopes) must hold [`REQUIRED_SCOPE`], and `exp`
//! is required, checked with [`LEEWAY`] of clock skew (as is `nbf` when present). Two kinds of token
//! are accepted ([`Principal`]):
//! - a **subscriber token**: its `sub` claim is the terminal's msisdn (E.164, with its `+`);
//! - a **client token** (it has an `msisdns` claim): `sub` is the client, and `msisdns` a JSON array
//!   of the numbers it grants (E.164, with or without `+`). The rpc names the subscriber in
//!   [`MSISDN_METADATA`] (`wg2-msisdn`, with or without `+`), which the token must grant.
//!
//! The rpc fails before any message ([`AuthError::status`]) with `UNAUTHENTICATED` (no, invalid or
//! expired token, unknown `kid`, wrong `iss` or `aud`, bad `sub` or `msisdns`, a client token without
//! `wg2-msisdn`), `PERMISSION_DENIED` (no scope, a `wg2-msisdn` the token does not grant) or
//! `INVALID_ARGUMENT` (a malformed `wg2-msisdn`).
//!
//! Accepted signatures ([`Verifier::from_policy`]):
//! - HS256 with the shared secret (the server's `jwt_secret`; an empty secret
//!   accepts no HS256 token);
//! - RS256 and ES256 (P-256) with PEM public keys ([`TokenPolicy::public_keys`]), the
//!   algorithm following from the key's type;
//! - RS256 and ES256 with the signing keys of a JWKS file (RFC 7517,
//!   [`TokenPolicy::jwks`]), chosen by the token header's `kid`. A token without `kid`
//!   is tried against every key of its algorithm; a token whose `kid` no key has is tried against
//!   the keys without a `kid` (the secret, PEM keys) and, failing those, refused as naming an
//!   unknown key.
//!
//! The `alg` of a token must be the algorithm of the key that verifies it (no algorithm confusion).
//! When an issuer or audience is configured, `iss` must equal it and `aud` (a string or an array)
//! must contain it. OAuth 2.0 access tokens as RFC 9068 describes them (header `typ: at+jwt`, claims
//! `iss`, `exp`, `aud`, `sub`, `client_id`, `iat`, `jti`, `scope`) are accepted; a `typ` other than
//! `JWT`, `at+jwt` or `application/at+jwt` is refused, so that other kinds of JWT (logout tokens,
//! DPoP proofs, ...) cannot stand in for an access token.

mod keys;
mod mint;
#[cfg(test)]
mod test_support;

pub use keys::{JwkRefusal, KeyError, VerifyingKey};
pub use mint::{mint_client_token, mint_token};

use crate::core::{Msisdn, MsisdnError};
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use std::time::Duration;
use tonic::metadata::MetadataMap;
use tonic::Status;

/// The OAuth scope a token needs to use the WebTerminal API (PROTOCOL.md section 1).
pub const REQUIRED_SCOPE: &str = "call.control.answer_and_initiate";

/// The metadata key an rpc names its subscriber with: required with a client token, optional with a
/// subscriber token (which may name only its own number). PROTOCOL.md section 1.
pub const MSISDN_METADATA: &str = "wg2-msisdn";

/// The scope an operator's token must hold for `webterminal.core.v1.Operator` (PROTOCOL.md
/// section 8).
pub const OPERATOR_SCOPE: &str = "webterminal.operator";

/// Clock skew allowed on `exp` (and `nbf`, when present): 60 s (PROTOCOL.md section 6).
pub const LEEWAY: Duration = Duration::from_secs(60);

/// The smallest RSA modulus accepted for RS256, in bits (RFC 7518 section 3.3).
pub const MIN_RSA_BITS: usize = 2048;

/// Why a token was refused. [`AuthError::status`] maps it to the gRPC status that fails the rpc.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `authorization` metadata.
    #[error("missing 'authorization: Bearer <token>' metadata")]
    MissingToken,
    /// `authorization` is not `Bearer <token>` in ASCII.
    #[error("the authorization metadata must be 'Bearer <token>'")]
    NotBearer,
    /// The token is malformed, has a bad signature, an algorithm no key is configured for, an
    /// unaccepted `typ`, or lacks a required claim; the text says which.
    #[error("invalid access token: {0}")]
    Invalid(String),
    /// `exp` is more than [`LEEWAY`] in the past.
    #[error("the access token has expired")]
    Expired,
    /// The token names a key (`kid` header) that no configured key of its algorithm has.
    #[error("the access token's key id (kid) {0:?} is not in the JWKS: no configured key has it")]
    UnknownKeyId(String),
    /// `iss` is not the configured issuer.
    #[error("the access token's iss claim is not the expected issuer")]
    WrongIssuer,
    /// `aud` does not contain the configured audience.
    #[error("the access token's aud claim does not contain the expected audience")]
    WrongAudience,
    /// `sub` is not an E.164 number.
    #[error("the access token's sub claim {0}: it must be the subscriber's E.164 msisdn")]
    BadSubject(MsisdnError),
    /// `scope` does not contain [`REQUIRED_SCOPE`].
    #[error("the access token lacks the scope {REQUIRED_SCOPE}")]
    MissingScope,
    /// An operator rpc's token lacks [`OPERATOR_SCOPE`].
    #[error("the access token lacks the scope {OPERATOR_SCOPE}")]
    MissingOperatorScope,
    /// A client token, and the rpc has no [`MSISDN_METADATA`] naming the subscriber it acts for.
    #[error(
        "{MSISDN_METADATA} is required with a client token: metadata naming the subscriber the \
         rpc acts for, one of the token's msisdns"
    )]
    MsisdnRequired,
    /// [`MSISDN_METADATA`] names a number the token does not grant (a client token's `msisdns`, or
    /// a subscriber token's own `sub`).
    #[error("the access token does not grant the number in {MSISDN_METADATA}")]
    NotGranted,
    /// [`MSISDN_METADATA`] is given more than once, is not visible ASCII, or is not an E.164
    /// number (with or without its `+`).
    #[error("{MSISDN_METADATA} metadata {0}")]
    BadMsisdnMetadata(String),
}

impl AuthError {
    /// The gRPC status that fails the rpc (PROTOCOL.md section 6): `PERMISSION_DENIED` for a
    /// missing scope or a number the token does not grant, `INVALID_ARGUMENT` for a malformed
    /// [`MSISDN_METADATA`], `UNAUTHENTICATED` for everything else (a client token without
    /// [`MSISDN_METADATA`] included).
    pub fn status(&self) -> Status {
        match self {
            AuthError::MissingScope | AuthError::MissingOperatorScope | AuthError::NotGranted => {
                Status::permission_denied(self.to_string())
            }
            AuthError::BadMsisdnMetadata(_) => Status::invalid_argument(self.to_string()),
            _ => Status::unauthenticated(self.to_string()),
        }
    }
}

impl From<AuthError> for Status {
    fn from(e: AuthError) -> Status {
        e.status()
    }
}

/// Token verification besides the HS256 secret (`ServerConfig::jwt_secret`): the keys and claims
/// [`Verifier::from_policy`] builds a verifier from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TokenPolicy {
    /// PEM public keys (RSA for RS256, P-256 EC for ES256) tokens may be signed with.
    pub public_keys: Vec<std::path::PathBuf>,
    /// A JWKS file (RFC 7517) whose keys tokens may be signed with, chosen by the token's `kid`.
    pub jwks: Option<std::path::PathBuf>,
    /// When set, a token's `iss` must equal it.
    pub issuer: Option<String>,
    /// When set, a token's `aud` must contain it.
    pub audience: Option<String>,
}

/// Verifies access tokens and yields the terminal's msisdn. Cheap to share behind an `Arc`; holds no
/// mutable state.
#[derive(Debug, Clone)]
pub struct Verifier {
    keys: Vec<VerifyingKey>,
    issuer: Option<String>,
    audience: Option<String>,
}

/// Who a verified token speaks for (PROTOCOL.md sections 1 and 2). A token with an `msisdns` claim
/// is a client token; any other is a subscriber token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A subscriber token: the number in its `sub`.
    Subscriber(Msisdn),
    /// A client token, as an OAuth 2.0 authorization server issues it to an application acting for
    /// subscribers (client-credentials grant): the rpc names the subscriber in [`MSISDN_METADATA`].
    Client {
        /// The client: the token's `sub` (not a number).
        client_id: String,
        /// The numbers the token grants: its `msisdns` claim, each read as E.164 with or without
        /// its `+`.
        msisdns: Vec<Msisdn>,
    },
}

impl Principal {
    /// The subscriber an rpc opened with this token speaks for, given the number its
    /// [`MSISDN_METADATA`] names (`None` when it has none): a subscriber token's `sub`, which
    /// [`MSISDN_METADATA`] may repeat but not contradict; or the number [`MSISDN_METADATA`] names,
    /// when a client token grants it.
    ///
    /// # Errors
    /// [`AuthError::MsisdnRequired`] for a client token without a named number;
    /// [`AuthError::NotGranted`] for a number the token does not grant.
    pub fn subscriber(self, named: Option<Msisdn>) -> Result<Msisdn, AuthError> {
        match (self, named) {
            (Principal::Subscriber(own), None) => Ok(own),
            (Principal::Subscriber(own), Some(named)) if named == own => Ok(own),
            (Principal::Subscriber(_), Some(_)) => Err(AuthError::NotGranted),
            (Principal::Client { .. }, None) => Err(AuthError::MsisdnRequired),
            (Principal::Client { msisdns, .. }, Some(named)) if msisdns.contains(&named) => {
                Ok(named)
            }
            (Principal::Client { .. }, Some(_)) => Err(AuthError::NotGranted),
        }
    }
}

/// The claims this core reads from a verified token; the others (`iss`, `aud`, `exp`, `nbf` are
/// checked by the validation; `client_id`, `jti`, `iat`, ...) are ignored.
#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    scope: Option<Scopes>,
    /// Present on a client token only: the numbers it grants.
    #[serde(default)]
    msisdns: Option<Vec<String>>,
}

/// `scope`: space-separated (RFC 8693, RFC 9068) or, as some issuers write it, a JSON array.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Scopes {
    Text(String),
    List(Vec<String>),
}

impl Scopes {
    fn contains(&self, wanted: &str) -> bool {
        match self {
            Scopes::Text(text) => text.split_ascii_whitespace().any(|s| s == wanted),
            Scopes::List(list) => list.iter().any(|s| s == wanted),
        }
    }
}

/// Token `typ` header values accepted (case-insensitively), besides none at all.
const ACCEPTED_TYPES: [&str; 3] = ["JWT", "at+jwt", "application/at+jwt"];

impl Verifier {
    /// A verifier for HS256 tokens signed with `secret`, with no issuer or audience check.
    pub fn hs256(secret: &[u8]) -> Self {
        Verifier::new(vec![VerifyingKey::hs256(secret)], None, None)
    }

    /// A verifier with these keys: a token must be signed by one of them and, when `issuer` or
    /// `audience` is given, have that `iss` and an `aud` containing that audience.
    pub fn new(keys: Vec<VerifyingKey>, issuer: Option<String>, audience: Option<String>) -> Self {
        Verifier {
            keys,
            issuer,
            audience,
        }
    }

    // `Verifier::from_policy`, which reads the configured key files, is in `keys`.

    /// The keys tokens are verified with.
    pub fn keys(&self) -> &[VerifyingKey] {
        &self.keys
    }

    /// Reads `authorization: Bearer <token>` and [`MSISDN_METADATA`] from the rpc's metadata,
    /// verifies the token and returns the subscriber the rpc speaks for (PROTOCOL.md sections 1, 2
    /// and 6). Checked in this order, the first fault being the one reported: the token
    /// ([`Verifier::verify_token`]: `UNAUTHENTICATED`, or `PERMISSION_DENIED` without the scope);
    /// [`MSISDN_METADATA`] well-formed when present (`INVALID_ARGUMENT`); then
    /// [`Principal::subscriber`] (a client token without [`MSISDN_METADATA`]: `UNAUTHENTICATED`; a
    /// number the token does not grant: `PERMISSION_DENIED`).
    ///
    /// # Errors
    /// An [`AuthError`]; turn it into the rpc's status with [`AuthError::status`].
    pub fn authenticate(&self, metadata: &MetadataMap) -> Result<Msisdn, AuthError> {
        let principal = self.verify_token(bearer(metadata)?)?;
        let named = named_msisdn(metadata)?;
        if let Principal::Client { client_id, .. } = &principal {
            tracing::debug!(client = %shorten(client_id), "client token");
        }
        principal.subscriber(named)
    }

    /// Reads `authorization: Bearer <token>` from an operator rpc's metadata and verifies the token
    /// as [`Verifier::verify_token`] does (signature, time, issuer, audience), but whatever its
    /// subject: it must hold [`OPERATOR_SCOPE`] (PROTOCOL.md section 8).
    ///
    /// # Errors
    /// An [`AuthError`] (`UNAUTHENTICATED`), or [`AuthError::MissingOperatorScope`]
    /// (`PERMISSION_DENIED`) for a valid token without the scope.
    pub fn authorize_operator(&self, metadata: &MetadataMap) -> Result<(), AuthError> {
        let claims = self.verified_claims(bearer(metadata)?)?;
        match claims.scope.is_some_and(|s| s.contains(OPERATOR_SCOPE)) {
            true => Ok(()),
            false => Err(AuthError::MissingOperatorScope),
        }
    }

    /// Verifies one compact JWT as [`Verifier::verify_token`] does and returns the subscriber it
    /// speaks for as an rpc without [`MSISDN_METADATA`] would: a subscriber token's `sub`.
    ///
    /// # Errors
    /// An [`AuthError`] naming the first fault; [`AuthError::MsisdnRequired`] for a client token.
    pub fn verify(&self, token: &str) -> Result<Msisdn, AuthError> {
        self.verify_token(token)?.subscriber(None)
    }

    /// Verifies one compact JWT: `typ` (when present) `JWT` or `at+jwt`; the signature with a key of
    /// the header's `alg` (the one named by `kid` when a key has it, else every key of that algorithm
    /// without a `kid`); `exp` (required) and `nbf` with [`LEEWAY`] of skew; `iss` and `aud` when
    /// configured; then, for a client token (one with an `msisdns` claim), every entry of `msisdns`
    /// an E.164 number with or without its `+`, else `sub` an E.164 msisdn with its `+`; and
    /// `scope` containing [`REQUIRED_SCOPE`]. Returns whom the token speaks for.
    ///
    /// # Errors
    /// An [`AuthError`] naming the first fault.
    pub fn verify_token(&self, token: &str) -> Result<Principal, AuthError> {
        check_claims(self.verified_claims(token)?)
    }

    /// The claims of a token whose header, signature, time, issuer and audience check out.
    fn verified_claims(&self, token: &str) -> Result<Claims, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| {
            AuthError::Invalid("malformed token or header (an unknown alg, such as none?)".into())
        })?;
        if let Some(typ) = &header.typ {
            if !ACCEPTED_TYPES.iter().any(|t| typ.eq_ignore_ascii_case(t)) {
                return Err(AuthError::Invalid(format!(
                    "typ {:?} is not an access token (JWT or at+jwt)",
                    shorten(typ)
                )));
            }
        }
        if header.crit.is_some() {
            return Err(AuthError::Invalid(
                "critical header parameters (crit) are not supported".into(),
            ));
        }
        let (candidates, unknown_kid) = self.candidates(header.alg, header.kid.as_deref())?;
        let validation = self.validation(header.alg);
        let mut mismatch = None;
        for key in candidates {
            match jsonwebtoken::decode::<Claims>(token, &key.key, &validation) {
                Ok(data) => return Ok(data.claims),
                // This key did not sign it: another one may have.
                Err(e) if is_key_mismatch(&e) => mismatch = Some(map_jwt_error(e)),
                // The signature checked out, the claims did not (or the token is malformed).
                Err(e) => return Err(map_jwt_error(e)),
            }
        }
        // A kid that no key has, and no key without a kid verified the token: the kid is what the
        // operator needs to hear about (a key rotated into the issuer's JWKS but not into the file).
        Err(match unknown_kid {
            Some(kid) => AuthError::UnknownKeyId(kid),
            None => mismatch.unwrap_or_else(|| AuthError::Invalid("bad signature".into())),
        })
    }

    /// The keys a token with header `alg` and `kid` may be signed with: every key of that algorithm
    /// for a token without `kid`; the keys of that algorithm with that `kid`; when none has it, those
    /// of that algorithm without a `kid` (the secret, PEM keys), and the unknown kid to report if
    /// none of them verifies the token.
    ///
    /// # Errors
    /// No key of the algorithm, or an unknown kid and no key without a kid.
    fn candidates(
        &self,
        alg: Algorithm,
        kid: Option<&str>,
    ) -> Result<(Vec<&VerifyingKey>, Option<String>), AuthError> {
        let of_alg: Vec<&VerifyingKey> = self.keys.iter().filter(|k| k.algorithm == alg).collect();
        if of_alg.is_empty() {
            return Err(AuthError::Invalid(format!(
                "no key is configured for the signing algorithm {alg:?}"
            )));
        }
        let Some(kid) = kid else {
            return Ok((of_alg, None));
        };
        let named: Vec<&VerifyingKey> = of_alg
            .iter()
            .copied()
            .filter(|k| k.kid.as_deref() == Some(kid))
            .collect();
        if !named.is_empty() {
            return Ok((named, None));
        }
        let unnamed: Vec<&VerifyingKey> = of_alg.into_iter().filter(|k| k.kid.is_none()).collect();
        if unnamed.is_empty() {
            return Err(AuthError::UnknownKeyId(shorten(kid)));
        }
        Ok((unnamed, Some(shorten(kid))))
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut validation = Validation::new(alg);
        validation.leeway = LEEWAY.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        let mut required = vec!["exp"];
        match &self.issuer {
            Some(issuer) => {
                validation.set_issuer(&[issuer]);
                required.push("iss");
            }
            None => validation.iss = None,
        }
        match &self.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            // No audience is configured: an `aud` claim is not checked (an OAuth access token always
            // has one; without --audience any is accepted).
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        validation
    }
}

/// A client-supplied header value for an error message: at most 64 characters.
fn shorten(text: &str) -> String {
    text.chars().take(64).collect()
}

/// The token of `authorization: Bearer <token>`.
fn bearer(metadata: &MetadataMap) -> Result<&str, AuthError> {
    let value = metadata
        .get("authorization")
        .ok_or(AuthError::MissingToken)?;
    let value = value.to_str().map_err(|_| AuthError::NotBearer)?;
    let (scheme, token) = value.trim().split_once(' ').ok_or(AuthError::NotBearer)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::NotBearer);
    }
    Ok(token.trim())
}

fn check_claims(claims: Claims) -> Result<Principal, AuthError> {
    let principal = match claims.msisdns {
        None => Principal::Subscriber(Msisdn::parse(&claims.sub).map_err(AuthError::BadSubject)?),
        Some(granted) => Principal::Client {
            client_id: claims.sub,
            msisdns: granted
                .iter()
                .enumerate()
                .map(|(index, number)| {
                    Msisdn::parse_lenient(number).map_err(|e| {
                        AuthError::Invalid(format!(
                            "the msisdns claim's entry {index} {e}: a client token grants E.164 numbers"
                        ))
                    })
                })
                .collect::<Result<_, _>>()?,
        },
    };
    let scoped = claims
        .scope
        .as_ref()
        .is_some_and(|s| s.contains(REQUIRED_SCOPE));
    if !scoped {
        return Err(AuthError::MissingScope);
    }
    Ok(principal)
}

/// The number [`MSISDN_METADATA`] names, read as E.164 with or without its `+`; `None` when the
/// metadata is absent or empty.
fn named_msisdn(metadata: &MetadataMap) -> Result<Option<Msisdn>, AuthError> {
    let mut values = metadata.get_all(MSISDN_METADATA).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthError::BadMsisdnMetadata(
            "is given more than once: an rpc speaks for one subscriber".into(),
        ));
    }
    let text = value
        .to_str()
        .map_err(|_| {
            AuthError::BadMsisdnMetadata("is not visible ASCII: it must be an E.164 number".into())
        })?
        .trim();
    if text.is_empty() {
        return Ok(None);
    }
    Msisdn::parse_lenient(text).map(Some).map_err(|e| {
        AuthError::BadMsisdnMetadata(format!(
            "{e}: it must be an E.164 number, with or without its '+'"
        ))
    })
}

/// Whether `e` says that this key did not verify the signature (so another key may).
fn is_key_mismatch(e: &jsonwebtoken::errors::Error) -> bool {
    use jsonwebtoken::errors::ErrorKind;
    matches!(
        e.kind(),
        ErrorKind::InvalidSignature
            | ErrorKind::InvalidEcdsaKey
            | ErrorKind::InvalidRsaKey(_)
            | ErrorKind::InvalidKeyFormat
    )
}

fn map_jwt_error(e: jsonwebtoken::errors::Error) -> AuthError {
    use jsonwebtoken::errors::ErrorKind;
    match e.kind() {
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
        ErrorKind::InvalidAudience => AuthError::WrongAudience,
        ErrorKind::MissingRequiredClaim(claim) => {
            AuthError::Invalid(format!("the {claim} claim is required"))
        }
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat => AuthError::Invalid("bad signature".into()),
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

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use tonic::Code;

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

    // --- key selection, issuer, audience, typ -------------------------------------------------

    #[test]
    fn kid_selects_the_named_key() {
        let verifier = Verifier::new(
            vec![hs_key(b"key one", Some("a")), hs_key(b"key two", Some("b"))],
            None,
            None,
        );
        let by_b = signed(with_kid("b"), &claims(), b"key two");
        assert_eq!(verifier.verify(&by_b), Ok(msisdn()));
        // Named "a" but signed by b's key: only "a" is tried.
        let mislabelled = signed(with_kid("a"), &claims(), b"key two");
        assert_eq!(
            verifier.verify(&mislabelled),
            Err(AuthError::Invalid("bad signature".into()))
        );
        // No kid: every key of the algorithm is tried.
        let anonymous = signed(Header::new(Algorithm::HS256), &claims(), b"key two");
        assert_eq!(verifier.verify(&anonymous), Ok(msisdn()));
    }

    #[test]
    fn unknown_kid_is_unauthenticated_and_says_so() {
        let verifier = Verifier::new(
            vec![hs_key(b"key one", Some("a")), hs_key(b"key two", Some("b"))],
            None,
            None,
        );
        let token = signed(with_kid("rotated-away"), &claims(), b"key two");
        let result = verifier.verify(&token);
        assert_eq!(result, Err(AuthError::UnknownKeyId("rotated-away".into())));
        let status = result.unwrap_err().status();
        assert_eq!(status.code(), Code::Unauthenticated);
        assert!(
            status.message().contains("\"rotated-away\"") && status.message().contains("kid"),
            "{}",
            status.message()
        );
        // A hostile kid is cut short in the message.
        let long = signed(with_kid(&"k".repeat(5000)), &claims(), b"key two");
        let Err(AuthError::UnknownKeyId(kid)) = verifier.verify(&long) else {
            panic!("unknown kid")
        };
        assert_eq!(kid.len(), 64);
    }

    #[test]
    fn a_kid_no_key_has_falls_back_to_keys_without_kid() {
        // The HS256 secret and PEM keys have no kid; a token naming some other kid may still be
        // signed by them.
        let verifier = Verifier::new(
            vec![hs_key(b"jwks key", Some("a")), hs_key(SECRET, None)],
            None,
            None,
        );
        let token = signed(with_kid("whatever"), &claims(), SECRET);
        assert_eq!(verifier.verify(&token), Ok(msisdn()));
        let named = signed(with_kid("a"), &claims(), b"jwks key");
        assert_eq!(verifier.verify(&named), Ok(msisdn()));
        // Signed by none of them: the unknown kid is the fault reported.
        let stranger = signed(with_kid("new"), &claims(), b"a rotated key");
        assert_eq!(
            verifier.verify(&stranger),
            Err(AuthError::UnknownKeyId("new".into()))
        );
    }

    #[test]
    fn the_key_that_verifies_reports_the_claims_fault() {
        // Two keys without kid: the second signed it, and its token has expired. The first key's
        // bad signature must not hide that.
        let verifier = Verifier::new(
            vec![hs_key(b"other", None), hs_key(SECRET, None)],
            None,
            None,
        );
        let expired = raw_token(serde_json::json!({
            "sub": "+4799990001", "scope": REQUIRED_SCOPE, "exp": now() - 600,
        }));
        assert_eq!(verifier.verify(&expired), Err(AuthError::Expired));
    }

    #[test]
    fn issuer_and_audience_are_checked_when_configured() {
        let verifier = Verifier::new(
            vec![VerifyingKey::hs256(SECRET)],
            Some("https://idp.example".into()),
            Some("webterminal".into()),
        );
        let token = |iss: Option<&str>, aud: serde_json::Value| {
            let mut claims = claims();
            if let Some(iss) = iss {
                claims["iss"] = iss.into();
            }
            if !aud.is_null() {
                claims["aud"] = aud;
            }
            raw_token(claims)
        };
        let good = "https://idp.example";
        assert_eq!(
            verifier.verify(&token(Some(good), "webterminal".into())),
            Ok(msisdn())
        );
        assert_eq!(
            verifier.verify(&token(
                Some(good),
                serde_json::json!(["billing", "webterminal"])
            )),
            Ok(msisdn())
        );
        let wrong_iss = verifier.verify(&token(Some("https://evil.example"), "webterminal".into()));
        assert_eq!(wrong_iss, Err(AuthError::WrongIssuer));
        assert_eq!(code_of(wrong_iss), Code::Unauthenticated);
        let wrong_aud = verifier.verify(&token(Some(good), "billing".into()));
        assert_eq!(wrong_aud, Err(AuthError::WrongAudience));
        assert_eq!(code_of(wrong_aud), Code::Unauthenticated);
        assert_eq!(
            verifier.verify(&token(None, "webterminal".into())),
            Err(AuthError::Invalid("the iss claim is required".into()))
        );
        assert_eq!(
            verifier.verify(&token(Some(good), serde_json::Value::Null)),
            Err(AuthError::Invalid("the aud claim is required".into()))
        );
    }

    #[test]
    fn without_configured_audience_any_aud_and_iss_pass() {
        let mut claims = claims();
        claims["aud"] = "somebody".into();
        claims["iss"] = "anybody".into();
        assert_eq!(
            Verifier::hs256(SECRET).verify(&raw_token(claims)),
            Ok(msisdn())
        );
    }

    #[test]
    fn access_token_types_pass_and_other_types_do_not() {
        let verifier = Verifier::hs256(SECRET);
        let typed = |typ: Option<&str>| {
            let header = Header {
                typ: typ.map(str::to_owned),
                ..Header::new(Algorithm::HS256)
            };
            signed(header, &claims(), SECRET)
        };
        for typ in [
            None,
            Some("JWT"),
            Some("at+jwt"),
            Some("application/at+JWT"),
        ] {
            assert_eq!(verifier.verify(&typed(typ)), Ok(msisdn()), "{typ:?}");
        }
        for typ in ["logout+jwt", "dpop+jwt"] {
            assert_eq!(
                code_of(verifier.verify(&typed(Some(typ)))),
                Code::Unauthenticated
            );
        }
    }

    #[test]
    fn scope_may_be_a_json_array_and_nbf_is_checked() {
        let verifier = Verifier::hs256(SECRET);
        let mut claims = claims();
        claims["scope"] = serde_json::json!(["events.read", REQUIRED_SCOPE]);
        assert_eq!(verifier.verify(&raw_token(claims.clone())), Ok(msisdn()));
        claims["nbf"] = (now() + 30).into();
        assert_eq!(
            verifier.verify(&raw_token(claims.clone())),
            Ok(msisdn()),
            "in the leeway"
        );
        claims["nbf"] = (now() + 600).into();
        assert_eq!(
            code_of(verifier.verify(&raw_token(claims))),
            Code::Unauthenticated
        );
    }

    #[test]
    fn an_rsa_public_key_is_no_hmac_secret() {
        // Algorithm confusion: an HS256 token whose "secret" is the RSA public key's PEM.
        let public_pem = test_key("rsa-1.pub.pem");
        let rsa = VerifyingKey::from_pem(&public_pem).unwrap();
        let verifier = Verifier::new(vec![rsa, VerifyingKey::hs256(SECRET)], None, None);
        let forged = signed(Header::new(Algorithm::HS256), &claims(), &public_pem);
        assert_eq!(code_of(verifier.verify(&forged)), Code::Unauthenticated);
    }

    // --- client tokens and wg2-msisdn ---------------------------------------------------------

    #[test]
    fn client_token_speaks_for_the_granted_number_wg2_msisdn_names() {
        let verifier = Verifier::hs256(SECRET);
        let token = client_token(&["+4799990001", "+4799990002"]);
        for named in ["+4799990002", "4799990002", " +4799990002 "] {
            assert_eq!(
                verifier.authenticate(&metadata_naming(&token, &[named])),
                Ok(number("+4799990002")),
                "{named:?}"
            );
        }
        assert_eq!(
            verifier.authenticate(&metadata_naming(&token, &["+4799990001"])),
            Ok(number("+4799990001"))
        );
    }

    #[test]
    fn client_token_without_wg2_msisdn_is_unauthenticated_and_says_so() {
        let verifier = Verifier::hs256(SECRET);
        let token = client_token(&["+4799990001"]);
        for map in [metadata_naming(&token, &[]), metadata_naming(&token, &[""])] {
            let result = verifier.authenticate(&map);
            assert_eq!(result, Err(AuthError::MsisdnRequired));
            let status = result.unwrap_err().status();
            assert_eq!(status.code(), Code::Unauthenticated);
            assert!(
                status.message().contains("wg2-msisdn is required"),
                "{}",
                status.message()
            );
        }
        // verify() knows no metadata: a client token alone names nobody.
        assert_eq!(verifier.verify(&token), Err(AuthError::MsisdnRequired));
    }

    #[test]
    fn wg2_msisdn_the_token_does_not_grant_is_permission_denied() {
        let verifier = Verifier::hs256(SECRET);
        let token = client_token(&["+4799990001"]);
        let result = verifier.authenticate(&metadata_naming(&token, &["+4799990002"]));
        assert_eq!(result, Err(AuthError::NotGranted));
        assert_eq!(code_of(result), Code::PermissionDenied);
        // A client token that grants nothing speaks for nobody.
        let empty = client_token(&[]);
        assert_eq!(
            code_of(verifier.authenticate(&metadata_naming(&empty, &["+4799990001"]))),
            Code::PermissionDenied
        );
        assert_eq!(
            code_of(verifier.authenticate(&metadata_naming(&empty, &[]))),
            Code::Unauthenticated
        );
    }

    #[test]
    fn subscriber_token_may_name_only_its_own_number() {
        let verifier = Verifier::hs256(SECRET);
        let token = mint_token(SECRET, &msisdn(), REQUIRED_SCOPE, Duration::from_secs(60));
        for own in ["+4799990001", "4799990001", ""] {
            assert_eq!(
                verifier.authenticate(&metadata_naming(&token, &[own])),
                Ok(msisdn()),
                "{own:?}"
            );
        }
        let other = verifier.authenticate(&metadata_naming(&token, &["+4799990002"]));
        assert_eq!(other, Err(AuthError::NotGranted));
        assert_eq!(code_of(other), Code::PermissionDenied);
    }

    #[test]
    fn malformed_wg2_msisdn_is_invalid_argument() {
        let verifier = Verifier::hs256(SECRET);
        let client = client_token(&["+4799990001"]);
        let subscriber = mint_token(SECRET, &msisdn(), REQUIRED_SCOPE, Duration::from_secs(60));
        for token in [&client, &subscriber] {
            for bad in [
                "+47 9999 0001",
                "tel:+4799990001",
                "+1",
                "0479999",
                "++4799990001",
            ] {
                let result = verifier.authenticate(&metadata_naming(token, &[bad]));
                assert!(
                    matches!(result, Err(AuthError::BadMsisdnMetadata(_))),
                    "{bad:?}: {result:?}"
                );
                let status = result.unwrap_err().status();
                assert_eq!(status.code(), Code::InvalidArgument, "{bad:?}");
                assert!(
                    status.message().contains("wg2-msisdn"),
                    "{}",
                    status.message()
                );
            }
            // Twice, even the same number: an rpc speaks for one subscriber.
            let twice = metadata_naming(token, &["+4799990001", "+4799990001"]);
            assert_eq!(
                code_of(verifier.authenticate(&twice)),
                Code::InvalidArgument
            );
        }
    }

    #[test]
    fn the_token_is_checked_before_wg2_msisdn() {
        let verifier = Verifier::hs256(SECRET);
        // A bad token: UNAUTHENTICATED, whatever wg2-msisdn says.
        let forged = mint_client_token(
            b"another secret",
            "voicebot",
            &[msisdn()],
            REQUIRED_SCOPE,
            Duration::from_secs(60),
        );
        assert_eq!(
            code_of(verifier.authenticate(&metadata_naming(&forged, &["not a number"]))),
            Code::Unauthenticated
        );
        // No scope: PERMISSION_DENIED before the missing wg2-msisdn.
        let unscoped = mint_client_token(
            SECRET,
            "voicebot",
            &[msisdn()],
            "events.read",
            Duration::from_secs(60),
        );
        assert_eq!(
            verifier.authenticate(&metadata_naming(&unscoped, &[])),
            Err(AuthError::MissingScope)
        );
        assert_eq!(
            verifier.authenticate(&metadata_naming(&unscoped, &["+4799990001"])),
            Err(AuthError::MissingScope)
        );
    }

    #[test]
    fn client_token_grants_may_lack_the_plus_and_must_be_numbers() {
        let verifier = Verifier::hs256(SECRET);
        let token = |msisdns: serde_json::Value| {
            raw_token(serde_json::json!({
                "sub": "wg2-voicebot", "msisdns": msisdns, "scope": REQUIRED_SCOPE,
                "exp": now() + 60,
            }))
        };
        let plain = token(serde_json::json!(["4799990001", "+4799990002"]));
        for named in ["+4799990001", "4799990001", "+4799990002"] {
            assert!(
                verifier
                    .authenticate(&metadata_naming(&plain, &[named]))
                    .is_ok(),
                "{named:?}"
            );
        }
        for bad in [
            serde_json::json!(["+4799990001", "alice"]),
            serde_json::json!(["+47 9999 0001"]),
            serde_json::json!("+4799990001"),
            serde_json::json!([4799990001u64]),
        ] {
            let result =
                verifier.authenticate(&metadata_naming(&token(bad.clone()), &["+4799990001"]));
            assert!(
                matches!(result, Err(AuthError::Invalid(_))),
                "{bad}: {result:?}"
            );
            assert_eq!(code_of(result), Code::Unauthenticated, "{bad}");
        }
        // A subscriber token's sub keeps its '+' (a sub that is not E.164 could be a client).
        let no_plus_sub = raw_token(serde_json::json!({
            "sub": "4799990001", "scope": REQUIRED_SCOPE, "exp": now() + 60,
        }));
        assert_eq!(
            verifier.authenticate(&metadata_naming(&no_plus_sub, &["4799990001"])),
            Err(AuthError::BadSubject(MsisdnError::NoPlus))
        );
    }

    #[test]
    fn lenient_numbers_follow_the_e164_digit_rules() {
        assert_eq!(Msisdn::parse_lenient("4799990001"), Ok(msisdn()));
        assert_eq!(Msisdn::parse_lenient("+4799990001"), Ok(msisdn()));
        assert_eq!(
            Msisdn::parse_lenient("4799990001").unwrap().as_str(),
            "+4799990001"
        );
        assert_eq!(Msisdn::parse_lenient(""), Err(MsisdnError::Empty));
        assert_eq!(Msisdn::parse_lenient("+"), Err(MsisdnError::Length(0)));
        assert_eq!(Msisdn::parse_lenient("1"), Err(MsisdnError::Length(1)));
        assert_eq!(
            Msisdn::parse_lenient("0479999"),
            Err(MsisdnError::LeadingZero)
        );
        assert_eq!(Msisdn::parse_lenient("47 99"), Err(MsisdnError::NotDigits));
        assert_eq!(Msisdn::parse_lenient("++47"), Err(MsisdnError::NotDigits));
        assert_eq!(
            Msisdn::parse_lenient("1234567890123456"),
            Err(MsisdnError::Length(16))
        );
    }
}
