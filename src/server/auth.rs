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
//! Accepted signatures ([`Verifier::from_config`]):
//! - HS256 with the shared secret ([`crate::server::ServerConfig::jwt_secret`]; an empty secret
//!   accepts no HS256 token);
//! - RS256 and ES256 (P-256) with PEM public keys ([`crate::server::TokenPolicy::public_keys`]), the
//!   algorithm following from the key's type;
//! - RS256 and ES256 with the signing keys of a JWKS file (RFC 7517,
//!   [`crate::server::TokenPolicy::jwks`]), chosen by the token header's `kid`. A token without `kid`
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

use crate::core::{Msisdn, MsisdnError};
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rsa::pkcs1::der::Decode;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
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

/// Why the configured token keys cannot be used: a startup error (the server does not start).
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A key file could not be read.
    #[error("cannot read the key file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A PEM public key file (`--public-key`) holds no usable RS256 or ES256 public key.
    #[error("the public key file {}: {reason}", path.display())]
    PublicKey {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A JWKS file (`--jwks`) is malformed or holds no usable RS256 or ES256 signing key.
    #[error("the JWKS file {}: {reason}", path.display())]
    Jwks {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// Where a [`VerifyingKey`] came from, for logs and `Debug`.
#[derive(Clone, Debug, PartialEq, Eq)]
enum KeySource {
    Secret,
    Pem(PathBuf),
    Jwks(PathBuf),
    Given,
}

/// One key a token may be signed with, and the one algorithm it verifies.
#[derive(Clone)]
pub struct VerifyingKey {
    algorithm: Algorithm,
    key: DecodingKey,
    kid: Option<String>,
    source: KeySource,
}

impl VerifyingKey {
    /// HS256 with a shared secret (any length; 32 random bytes recommended).
    pub fn hs256(secret: &[u8]) -> Self {
        VerifyingKey {
            algorithm: Algorithm::HS256,
            key: DecodingKey::from_secret(secret),
            kid: None,
            source: KeySource::Secret,
        }
    }

    /// A PEM public key (`PUBLIC KEY` (SPKI) or `RSA PUBLIC KEY` (PKCS#1)): RSA of at least
    /// [`MIN_RSA_BITS`] for RS256, or EC P-256 for ES256.
    ///
    /// # Errors
    /// What is wrong with the PEM, in words for the operator.
    pub fn from_pem(pem: &[u8]) -> Result<Self, String> {
        let block =
            pem::parse(pem).map_err(|_| "not a PEM file (no '-----BEGIN ...-----' block)")?;
        let algorithm = match block.tag() {
            "RSA PUBLIC KEY" => Algorithm::RS256,
            "PUBLIC KEY" => spki_algorithm(block.contents())?,
            "CERTIFICATE" => {
                return Err(
                    "holds a certificate; give its public key (openssl x509 -pubkey -noout)".into(),
                )
            }
            label if label.contains("PRIVATE KEY") => {
                return Err(
                    "holds a private key; give the public key (openssl pkey -pubout)".into(),
                )
            }
            other => return Err(format!("holds a {other:?} PEM block, not a PUBLIC KEY")),
        };
        let key = if algorithm == Algorithm::RS256 {
            let key = DecodingKey::from_rsa_pem(pem)
                .map_err(|e| format!("a malformed RSA public key: {e}"))?;
            // The key's bytes are a PKCS#1 RSAPublicKey.
            let parts = rsa::pkcs1::RsaPublicKey::from_der(key.as_bytes())
                .map_err(|e| format!("a malformed RSA public key: {e}"))?;
            check_rsa(parts.modulus.as_bytes(), parts.public_exponent.as_bytes())?;
            key
        } else {
            DecodingKey::from_ec_pem(pem).map_err(|e| format!("a malformed EC public key: {e}"))?
        };
        let key = VerifyingKey {
            algorithm,
            key,
            kid: None,
            source: KeySource::Given,
        };
        key.probe()?;
        Ok(key)
    }

    /// A key of a JWK set: an RSA key for RS256 or an EC P-256 key for ES256, with its `kid`.
    ///
    /// # Errors
    /// [`JwkRefusal::Unsupported`] for a key this core does not verify with (another algorithm or
    /// curve, an encryption key, a symmetric key): a JWKS may hold such keys, they are left out.
    /// [`JwkRefusal::Invalid`] for a signing key that is malformed or too weak.
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, JwkRefusal> {
        use JwkRefusal::{Invalid, Unsupported};
        if let Some(used_for) = &jwk.common.public_key_use {
            if *used_for != PublicKeyUse::Signature {
                return Err(Unsupported(format!("not a signing key (use {used_for:?})")));
            }
        }
        if let Some(ops) = &jwk.common.key_operations {
            if !ops.contains(&KeyOperations::Verify) {
                return Err(Unsupported("its key_ops do not include verify".into()));
            }
        }
        let (algorithm, key) = match &jwk.algorithm {
            AlgorithmParameters::RSA(rsa) => {
                let key = DecodingKey::from_rsa_components(&rsa.n, &rsa.e)
                    .map_err(|e| Invalid(format!("bad RSA n or e: {e}")))?;
                if let jsonwebtoken::DecodingKeyKind::RsaModulusExponent { n, e } = key.kind() {
                    check_rsa(n, e).map_err(Invalid)?;
                }
                (Algorithm::RS256, key)
            }
            AlgorithmParameters::EllipticCurve(ec) => {
                if ec.curve != EllipticCurve::P256 {
                    return Err(Unsupported(format!(
                        "an EC key on {:?}: only P-256 (ES256) is accepted",
                        ec.curve
                    )));
                }
                let key = DecodingKey::from_ec_components(&ec.x, &ec.y)
                    .map_err(|e| Invalid(format!("bad EC x or y: {e}")))?;
                (Algorithm::ES256, key)
            }
            AlgorithmParameters::OctetKey(_) => {
                return Err(Unsupported("a symmetric (oct) key".into()))
            }
            AlgorithmParameters::OctetKeyPair(_) => {
                return Err(Unsupported("an OKP (EdDSA) key".into()))
            }
        };
        let declared = jwk.common.key_algorithm;
        let expected = match algorithm {
            Algorithm::RS256 => KeyAlgorithm::RS256,
            _ => KeyAlgorithm::ES256,
        };
        if declared.is_some_and(|declared| declared != expected) {
            return Err(Unsupported(format!(
                "its alg is {}, not {expected}",
                declared.map(|a| a.to_string()).unwrap_or_default()
            )));
        }
        let key = VerifyingKey {
            algorithm,
            key,
            kid: jwk.common.key_id.clone(),
            source: KeySource::Given,
        };
        key.probe().map_err(Invalid)?;
        Ok(key)
    }

    /// The algorithm this key verifies.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The key id (`kid`) tokens name this key by, if it has one (keys from a JWKS).
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    fn with_source(mut self, source: KeySource) -> Self {
        self.source = source;
        self
    }

    /// Parses the key as the verifier will, so that a malformed EC point fails at startup rather
    /// than on every token. (RSA keys are parsed per signature; [`check_rsa`] has checked them.)
    fn probe(&self) -> Result<(), String> {
        jsonwebtoken::crypto::verify("", b"probe", &self.key, self.algorithm)
            .map(|_| ())
            .map_err(|e| format!("not a usable {:?} key: {e}", self.algorithm))
    }
}

impl fmt::Debug for VerifyingKey {
    /// Never prints key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("algorithm", &self.algorithm)
            .field("kid", &self.kid)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// Why [`VerifyingKey::from_jwk`] did not make a key of a JWK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwkRefusal {
    /// A key of a kind this core does not verify with; a JWKS may hold it, it is left out.
    Unsupported(String),
    /// A signing key that is malformed or too weak: the JWKS is refused.
    Invalid(String),
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

    /// The verifier [`crate::server::ServerConfig`] describes: HS256 with `jwt_secret` (unless it is
    /// empty), every PEM key of `tokens.public_keys`, the signing keys of `tokens.jwks`, and the
    /// `tokens.issuer` / `tokens.audience` checks. Built once at startup; JWKS keys this core does
    /// not verify with (encryption keys, other algorithms) are left out with a warning.
    ///
    /// # Errors
    /// [`KeyError`] when a key file is unreadable or holds no usable key: the server must not start.
    pub fn from_config(config: &crate::server::ServerConfig) -> Result<Self, KeyError> {
        let policy = &config.tokens;
        let mut keys = Vec::new();
        if !config.jwt_secret.is_empty() {
            keys.push(VerifyingKey::hs256(&config.jwt_secret));
        }
        for path in &policy.public_keys {
            let pem = read(path)?;
            let key = VerifyingKey::from_pem(&pem).map_err(|reason| KeyError::PublicKey {
                path: path.clone(),
                reason,
            })?;
            keys.push(key.with_source(KeySource::Pem(path.clone())));
        }
        if let Some(path) = &policy.jwks {
            let json = read(path)?;
            let from_jwks = keys_from_jwks(&json).map_err(|reason| KeyError::Jwks {
                path: path.clone(),
                reason,
            })?;
            keys.extend(
                from_jwks
                    .into_iter()
                    .map(|key| key.with_source(KeySource::Jwks(path.clone()))),
            );
        }
        let verifier = Verifier::new(keys, policy.issuer.clone(), policy.audience.clone());
        tracing::info!(
            keys = ?verifier.keys,
            issuer = ?verifier.issuer,
            audience = ?verifier.audience,
            "access tokens"
        );
        Ok(verifier)
    }

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

fn read(path: &Path) -> Result<Vec<u8>, KeyError> {
    std::fs::read(path).map_err(|source| KeyError::Read {
        path: path.to_owned(),
        source,
    })
}

/// The signing keys of a JWK set (RFC 7517 section 5): `{"keys": [...]}`. Keys of other kinds are
/// left out with a warning; a malformed signing key or a set with no usable key is an error.
fn keys_from_jwks(json: &[u8]) -> Result<Vec<VerifyingKey>, String> {
    #[derive(Deserialize)]
    struct RawSet {
        keys: Vec<serde_json::Value>,
    }
    let set: RawSet = serde_json::from_slice(json)
        .map_err(|e| format!("not a JWK set ({{\"keys\": [...]}}, RFC 7517): {e}"))?;
    let mut keys = Vec::new();
    for (index, value) in set.keys.into_iter().enumerate() {
        let kid = value
            .get("kid")
            .and_then(|k| k.as_str())
            .map(shorten)
            .unwrap_or_default();
        let kty = value.get("kty").and_then(|k| k.as_str()).unwrap_or("");
        let name = format!("key {index} (kid {kid:?}, kty {kty:?})");
        // Left out before parsing: kinds of keys that jsonwebtoken may not even parse.
        let field = |name: &str| value.get(name).and_then(|v| v.as_str());
        let unsupported = if !matches!(kty, "RSA" | "EC") {
            Some("only RSA and EC keys are used".to_owned())
        } else if let Some(used_for) = field("use").filter(|u| *u != "sig") {
            Some(format!("not a signing key (use {used_for:?})"))
        } else if let Some(alg) = field("alg").filter(|a| !matches!(*a, "RS256" | "ES256")) {
            Some(format!("its alg is {alg:?}, not RS256 or ES256"))
        } else {
            field("crv")
                .filter(|c| kty == "EC" && *c != "P-256")
                .map(|crv| format!("an EC key on {crv:?}: only P-256 (ES256) is accepted"))
        };
        if let Some(why) = unsupported {
            tracing::warn!("JWKS {name}: left out, {why}");
            continue;
        }
        let jwk: Jwk =
            serde_json::from_value(value).map_err(|e| format!("{name} is not a valid JWK: {e}"))?;
        match VerifyingKey::from_jwk(&jwk) {
            Ok(key) => keys.push(key),
            Err(JwkRefusal::Unsupported(why)) => {
                tracing::warn!("JWKS {name}: left out, {why}");
            }
            Err(JwkRefusal::Invalid(why)) => return Err(format!("{name}: {why}")),
        }
    }
    if keys.is_empty() {
        return Err("no RS256 (RSA) or ES256 (EC P-256) signing key in the set".into());
    }
    Ok(keys)
}

/// The algorithm a DER `SubjectPublicKeyInfo` verifies: RS256 for an RSA key, ES256 for an EC key
/// on P-256 (RFC 5480 object identifiers).
fn spki_algorithm(der: &[u8]) -> Result<Algorithm, String> {
    use rsa::pkcs8::spki::{ObjectIdentifier as Oid, SubjectPublicKeyInfoRef};
    const RSA_ENCRYPTION: Oid = Oid::new_unwrap("1.2.840.113549.1.1.1");
    const EC_PUBLIC_KEY: Oid = Oid::new_unwrap("1.2.840.10045.2.1");
    const P256: Oid = Oid::new_unwrap("1.2.840.10045.3.1.7");
    const P384: Oid = Oid::new_unwrap("1.3.132.0.34");
    let spki = SubjectPublicKeyInfoRef::from_der(der)
        .map_err(|e| format!("a malformed public key: {e}"))?;
    let curve = spki.algorithm.parameters_oid().ok();
    match spki.algorithm.oid {
        RSA_ENCRYPTION => Ok(Algorithm::RS256),
        EC_PUBLIC_KEY if curve == Some(P256) => Ok(Algorithm::ES256),
        EC_PUBLIC_KEY if curve == Some(P384) => {
            Err("an EC P-384 key: only P-256 (ES256) EC keys are accepted".into())
        }
        EC_PUBLIC_KEY => {
            Err("an EC key on an unsupported curve: only P-256 (ES256) is accepted".into())
        }
        _ => Err("neither an RSA (RS256) nor an EC P-256 (ES256) public key".into()),
    }
}

/// Checks an RSA public key (modulus and exponent, big-endian) as the verifier will use it: at
/// least [`MIN_RSA_BITS`], and one the `rsa` crate accepts (at most 4096 bits, a sane exponent).
fn check_rsa(modulus: &[u8], exponent: &[u8]) -> Result<(), String> {
    let n = rsa::BigUint::from_bytes_be(modulus);
    let bits = n.bits();
    if bits < MIN_RSA_BITS {
        return Err(format!(
            "an RSA key of {bits} bits: RS256 needs at least {MIN_RSA_BITS}"
        ));
    }
    rsa::RsaPublicKey::new(n, rsa::BigUint::from_bytes_be(exponent))
        .map(drop)
        .map_err(|e| {
            format!("not a usable RS256 key ({e}): RSA keys of 2048 to 4096 bits are accepted")
        })
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

    // --- key selection, issuer, audience, typ, key files -------------------------------------

    fn hs_key(secret: &[u8], kid: Option<&str>) -> VerifyingKey {
        VerifyingKey {
            kid: kid.map(str::to_owned),
            ..VerifyingKey::hs256(secret)
        }
    }

    fn claims() -> serde_json::Value {
        serde_json::json!({ "sub": "+4799990001", "scope": REQUIRED_SCOPE, "exp": now() + 60 })
    }

    fn signed(header: Header, claims: &serde_json::Value, secret: &[u8]) -> String {
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret)).unwrap()
    }

    fn with_kid(kid: &str) -> Header {
        Header {
            kid: Some(kid.into()),
            ..Header::new(Algorithm::HS256)
        }
    }

    fn test_key(name: &str) -> Vec<u8> {
        std::fs::read(format!("{}/tests/keys/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

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
    fn pem_keys_give_their_algorithm_and_refuse_what_they_are_not() {
        let rsa = VerifyingKey::from_pem(&test_key("rsa-1.pub.pem")).unwrap();
        assert_eq!(rsa.algorithm(), Algorithm::RS256);
        let ec = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let es = VerifyingKey::from_pem(ec.public_key_pem().as_bytes()).unwrap();
        assert_eq!(es.algorithm(), Algorithm::ES256);
        let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let err = VerifyingKey::from_pem(p384.public_key_pem().as_bytes()).unwrap_err();
        assert!(err.contains("P-384"), "{err}");
        let err = VerifyingKey::from_pem(&test_key("rsa-1.key.pem")).unwrap_err();
        assert!(err.contains("private key"), "{err}");
        let err = VerifyingKey::from_pem(b"not a key").unwrap_err();
        assert!(err.contains("not a PEM"), "{err}");
        let garbage = b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
        assert!(VerifyingKey::from_pem(garbage).is_err());
        let parts = rsa::pkcs1::RsaPublicKey::from_der(rsa.key.as_bytes()).unwrap();
        assert_eq!(
            rsa::BigUint::from_bytes_be(parts.modulus.as_bytes()).bits(),
            2048
        );
    }

    #[test]
    fn pem_keys_may_be_pkcs1_or_follow_text_and_rsa_keys_are_bounded() {
        use rsa::pkcs1::EncodeRsaPublicKey;
        use rsa::pkcs8::DecodePublicKey;
        let spki = String::from_utf8(test_key("rsa-1.pub.pem")).unwrap();
        let public = rsa::RsaPublicKey::from_public_key_pem(&spki).unwrap();
        let pkcs1 = public.to_pkcs1_pem(Default::default()).unwrap();
        assert!(
            pkcs1.starts_with("-----BEGIN RSA PUBLIC KEY-----"),
            "{pkcs1}"
        );
        let key = VerifyingKey::from_pem(pkcs1.as_bytes()).unwrap();
        assert_eq!(key.algorithm(), Algorithm::RS256);
        // Explanatory text before the block, as some tools write it.
        let annotated = format!("issuer signing key, 2024\n{spki}");
        assert!(VerifyingKey::from_pem(annotated.as_bytes()).is_ok());
        // Over 4096 bits the verifier cannot use the key: refused at startup, not per token.
        let huge = check_rsa(&[0xff; 1025], &[1, 0, 1]).unwrap_err();
        assert!(huge.contains("4096"), "{huge}");
        let weak = check_rsa(&[0xff; 128], &[1, 0, 1]).unwrap_err();
        assert!(weak.contains("1024 bits"), "{weak}");
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

    fn rsa_jwk(kid: &str) -> serde_json::Value {
        let private = EncodingKey::from_rsa_pem(&test_key("rsa-1.key.pem")).unwrap();
        let mut jwk = Jwk::from_encoding_key(&private, Algorithm::RS256).unwrap();
        jwk.common.key_id = Some(kid.into());
        serde_json::to_value(jwk).unwrap()
    }

    #[test]
    fn jwks_keeps_signing_keys_and_leaves_out_the_rest() {
        let mut encryption = rsa_jwk("enc");
        encryption["use"] = "enc".into();
        encryption["alg"] = "RSA-OAEP-256".into();
        let set = serde_json::json!({ "keys": [
            rsa_jwk("sig-1"),
            encryption,
            { "kty": "oct", "k": "c2VjcmV0", "kid": "hmac" },
            { "kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" },
            { "kty": "EC", "crv": "P-384", "x": "AA", "y": "AA", "kid": "p384" },
        ]});
        let keys = keys_from_jwks(set.to_string().as_bytes()).unwrap();
        assert_eq!(keys.len(), 1, "{keys:?}");
        assert_eq!(keys[0].kid(), Some("sig-1"));
        assert_eq!(keys[0].algorithm(), Algorithm::RS256);
    }

    #[test]
    fn jwks_without_usable_keys_or_with_a_broken_one_is_refused() {
        let only_oct = serde_json::json!({ "keys": [{ "kty": "oct", "k": "c2VjcmV0" }] });
        let err = keys_from_jwks(only_oct.to_string().as_bytes()).unwrap_err();
        assert!(err.contains("no RS256"), "{err}");
        let err = keys_from_jwks(b"[1, 2]").unwrap_err();
        assert!(err.contains("not a JWK set"), "{err}");
        // A 512-bit RSA signing key is refused, not skipped.
        let mut weak = rsa_jwk("weak");
        weak["n"] = "AQ".repeat(43).into();
        let err = keys_from_jwks(serde_json::json!({ "keys": [weak] }).to_string().as_bytes())
            .unwrap_err();
        assert!(err.contains("at least 2048"), "{err}");
        // An EC point that is not on the curve.
        let off_curve = serde_json::json!({ "keys": [{
            "kty": "EC", "crv": "P-256", "kid": "bad",
            "x": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE",
            "y": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE",
        }]});
        let err = keys_from_jwks(off_curve.to_string().as_bytes()).unwrap_err();
        assert!(err.contains("not a usable ES256 key"), "{err}");
    }

    #[test]
    fn from_config_reads_the_files_and_an_empty_secret_accepts_no_hs256() {
        let mut config = crate::server::ServerConfig::new(Vec::new());
        config.tokens.public_keys =
            vec![format!("{}/tests/keys/rsa-1.pub.pem", env!("CARGO_MANIFEST_DIR")).into()];
        let verifier = Verifier::from_config(&config).unwrap();
        assert_eq!(verifier.keys().len(), 1);
        let hs = signed(Header::new(Algorithm::HS256), &claims(), b"");
        assert_eq!(code_of(verifier.verify(&hs)), Code::Unauthenticated);

        config.tokens.jwks = Some("/nonexistent/jwks.json".into());
        let err = Verifier::from_config(&config).unwrap_err();
        assert!(matches!(err, KeyError::Read { .. }), "{err:?}");
        assert!(err.to_string().contains("/nonexistent/jwks.json"), "{err}");
    }

    // --- client tokens and wg2-msisdn ---------------------------------------------------------

    fn number(text: &str) -> Msisdn {
        Msisdn::parse(text).unwrap()
    }

    fn client_token(msisdns: &[&str]) -> String {
        let granted: Vec<Msisdn> = msisdns.iter().map(|m| number(m)).collect();
        mint_client_token(
            SECRET,
            "voicebot",
            &granted,
            REQUIRED_SCOPE,
            Duration::from_secs(60),
        )
    }

    /// `authorization: Bearer <token>` and, for each of `named`, a `wg2-msisdn` value.
    fn metadata_naming(token: &str, named: &[&str]) -> MetadataMap {
        let mut map = metadata(&format!("Bearer {token}"));
        for value in named {
            map.append(MSISDN_METADATA, value.parse().unwrap());
        }
        map
    }

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
