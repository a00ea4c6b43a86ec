//! Fixtures shared by the unit tests of the `auth` module's files: the HS256 test secret, token
//! builders (raw claims, signed headers, minted client tokens), test keys and rpc metadata.

use super::{mint_client_token, AuthError, VerifyingKey, MSISDN_METADATA, REQUIRED_SCOPE};
use crate::core::Msisdn;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tonic::metadata::MetadataMap;
use tonic::Code;

pub(super) const SECRET: &[u8] = b"test secret, 32 bytes long......";

pub(super) fn msisdn() -> Msisdn {
    Msisdn::parse("+4799990001").unwrap()
}

pub(super) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub(super) fn raw_token(claims: serde_json::Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

pub(super) fn metadata(value: &str) -> MetadataMap {
    let mut map = MetadataMap::new();
    map.insert("authorization", value.parse().unwrap());
    map
}

pub(super) fn code_of(result: Result<Msisdn, AuthError>) -> Code {
    result.expect_err("must be refused").status().code()
}

pub(super) fn hs_key(secret: &[u8], kid: Option<&str>) -> VerifyingKey {
    // `source` is private to `keys`: no struct update syntax from here.
    let mut key = VerifyingKey::hs256(secret);
    key.kid = kid.map(str::to_owned);
    key
}

pub(super) fn claims() -> serde_json::Value {
    serde_json::json!({ "sub": "+4799990001", "scope": REQUIRED_SCOPE, "exp": now() + 60 })
}

pub(super) fn signed(header: Header, claims: &serde_json::Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret)).unwrap()
}

pub(super) fn with_kid(kid: &str) -> Header {
    Header {
        kid: Some(kid.into()),
        ..Header::new(Algorithm::HS256)
    }
}

pub(super) fn test_key(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/keys/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

pub(super) fn number(text: &str) -> Msisdn {
    Msisdn::parse(text).unwrap()
}

pub(super) fn client_token(msisdns: &[&str]) -> String {
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
pub(super) fn metadata_naming(token: &str, named: &[&str]) -> MetadataMap {
    let mut map = metadata(&format!("Bearer {token}"));
    for value in named {
        map.append(MSISDN_METADATA, value.parse().unwrap());
    }
    map
}
