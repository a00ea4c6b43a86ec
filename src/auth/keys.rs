//! Verifying keys and where they come from: the HS256 shared secret, PEM public keys (RS256, ES256
//! on P-256; RFC 7518 section 3, RFC 5480) and the signing keys of a JWK set (RFC 7517), read once
//! at startup by [`Verifier::from_policy`]. The tokens they verify: PROTOCOL.md sections 1 and 6.

use super::{shorten, TokenPolicy, Verifier, MIN_RSA_BITS};
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey};
use rsa::pkcs1::der::Decode;
use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};

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
    pub(super) algorithm: Algorithm,
    pub(super) key: DecodingKey,
    pub(super) kid: Option<String>,
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

impl Verifier {
    /// The verifier for HS256 with `jwt_secret` (unless it is empty), every PEM key of
    /// `policy.public_keys`, the signing keys of `policy.jwks`, and the `policy.issuer` /
    /// `policy.audience` checks. Built once at startup; JWKS keys this core does
    /// not verify with (encryption keys, other algorithms) are left out with a warning.
    ///
    /// # Errors
    /// [`KeyError`] when a key file is unreadable or holds no usable key: the server must not start.
    pub fn from_policy(jwt_secret: &[u8], policy: &TokenPolicy) -> Result<Self, KeyError> {
        let mut keys = Vec::new();
        if !jwt_secret.is_empty() {
            keys.push(VerifyingKey::hs256(jwt_secret));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::test_support::*;
    use jsonwebtoken::{EncodingKey, Header};
    use tonic::Code;

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
    fn from_policy_reads_the_files_and_an_empty_secret_accepts_no_hs256() {
        let mut policy = TokenPolicy {
            public_keys: vec![
                format!("{}/tests/keys/rsa-1.pub.pem", env!("CARGO_MANIFEST_DIR")).into(),
            ],
            ..TokenPolicy::default()
        };
        let verifier = Verifier::from_policy(b"", &policy).unwrap();
        assert_eq!(verifier.keys().len(), 1);
        let hs = signed(Header::new(Algorithm::HS256), &claims(), b"");
        assert_eq!(code_of(verifier.verify(&hs)), Code::Unauthenticated);

        policy.jwks = Some("/nonexistent/jwks.json".into());
        let err = Verifier::from_policy(b"", &policy).unwrap_err();
        assert!(matches!(err, KeyError::Read { .. }), "{err:?}");
        assert!(err.to_string().contains("/nonexistent/jwks.json"), "{err}");
    }
}
