//! What a WebSocket upgrade request carries for auth (PROTOCOL.md section 11): the token from the
//! subprotocol, the `Authorization` header or the cookie, `wg2-msisdn` from a header or the query,
//! and the Origin rule that guards the cookie. Checked as an rpc's metadata is.

use crate::auth::{AuthError, Verifier, MSISDN_METADATA};
use crate::core::Msisdn;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::Status;

/// The subprotocol a browser offers with its token (`Sec-WebSocket-Protocol: Bearer, <token>`),
/// and the one the core answers with.
pub const BEARER_SUBPROTOCOL: &str = "Bearer";

/// The cookie a browser may carry its access token in.
pub const TOKEN_COOKIE: &str = "token";

/// What the upgrade request carried for auth.
#[derive(Debug, Default)]
pub(super) struct Credentials {
    /// The client offered the subprotocol `Bearer`.
    pub(super) offered_bearer: bool,
    /// The token from `Sec-WebSocket-Protocol: Bearer, <token>`.
    subprotocol_token: Option<String>,
    /// The `Authorization` header, as sent.
    authorization: Option<String>,
    /// The token from the cookie `token`.
    cookie_token: Option<String>,
    /// `wg2-msisdn`, from the header and from the query (either may be absent).
    msisdns: Vec<String>,
}

impl Credentials {
    pub(super) fn read(headers: &http::HeaderMap, query: Option<&str>) -> Credentials {
        let mut credentials = Credentials::default();
        let offered: Vec<&str> = headers
            .get_all(http::header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect();
        if let Some(at) = offered.iter().position(|p| *p == BEARER_SUBPROTOCOL) {
            credentials.offered_bearer = true;
            credentials.subprotocol_token = offered.get(at + 1).map(|t| (*t).to_owned());
        }
        credentials.authorization = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        // RFC 6265 section 5.4: `name=value` pairs separated by `; `; a value may be quoted
        // (section 4.1.1), and the quotes are not part of the token. A header that is not visible
        // ASCII, and a pair without `=`, are skipped.
        credentials.cookie_token = headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(cookie::Cookie::split_parse)
            .filter_map(Result::ok)
            .find(|cookie| cookie.name() == TOKEN_COOKIE)
            .map(|cookie| cookie.value_trimmed().to_owned());
        for value in headers.get_all(MSISDN_METADATA) {
            if let Ok(text) = value.to_str() {
                credentials.msisdns.push(text.trim().to_owned());
            }
        }
        // application/x-www-form-urlencoded (WHATWG URL standard, section 5.1): `%XX` escapes are
        // decoded, a malformed one (`%zz`, a trailing `%`) is kept as written, and `+` reads as a
        // space; the number is read with or without its '+'.
        let query = form_urlencoded::parse(query.unwrap_or("").as_bytes());
        for (name, value) in query {
            if name == MSISDN_METADATA {
                credentials.msisdns.push(value.trim().to_owned());
            }
        }
        credentials.msisdns.dedup();
        credentials
    }

    /// The subscriber the session speaks for, checked as an rpc's metadata is
    /// ([`Verifier::authenticate`]), after the cookie's Origin rule.
    pub(super) fn authenticate(
        &self,
        verifier: &Verifier,
        allowed_origins: &[String],
        headers: &http::HeaderMap,
    ) -> Result<Msisdn, Status> {
        // The subprotocol and the Authorization header are not ambient: a page must hold the token
        // to send them. The cookie is, hence the Origin rule.
        let authorization = match (
            &self.subprotocol_token,
            &self.authorization,
            &self.cookie_token,
        ) {
            (Some(token), _, _) => format!("Bearer {token}"),
            (None, Some(authorization), _) => authorization.clone(),
            (None, None, Some(token)) => {
                check_origin(headers, allowed_origins)?;
                format!("Bearer {token}")
            }
            (None, None, None) => {
                return Err(Status::unauthenticated(format!(
                    "no access token: send it as 'Sec-WebSocket-Protocol: {BEARER_SUBPROTOCOL}, \
                     <token>' or in the cookie '{TOKEN_COOKIE}' (PROTOCOL.md section 11)"
                )))
            }
        };
        let mut metadata = MetadataMap::new();
        let bearer = MetadataValue::try_from(authorization)
            .map_err(|_| Status::from(AuthError::NotBearer))?;
        metadata.insert("authorization", bearer);
        for msisdn in &self.msisdns {
            let value = MetadataValue::try_from(msisdn.as_str()).map_err(|_| {
                Status::from(AuthError::BadMsisdnMetadata(
                    "is not visible ASCII: it must be an E.164 number".into(),
                ))
            })?;
            metadata.append(MSISDN_METADATA, value);
        }
        verifier.authenticate(&metadata).map_err(Status::from)
    }
}

/// A cookie rides along with any page's request, so a token from the cookie is only taken from a
/// page of the same origin as the request (its `Host`), or one allowed: `Origin` absent (not a
/// browser page), equal to `http(s)://<Host>`, or in `allowed`.
fn check_origin(headers: &http::HeaderMap, allowed: &[String]) -> Result<(), Status> {
    let Some(origin) = headers.get(http::header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or("null").trim();
    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .trim();
    let authority = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    let same = authority.is_some_and(|a| !host.is_empty() && a.eq_ignore_ascii_case(host));
    if same || allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)) {
        Ok(())
    } else {
        Err(Status::permission_denied(format!(
            "the token cookie is not accepted from a page of origin {origin:?}: only from the \
             core's own origin (Host {host:?}) or an allowed one; a page of another origin must \
             send its token as 'Sec-WebSocket-Protocol: {BEARER_SUBPROTOCOL}, <token>'"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    #[test]
    fn credentials_come_from_the_subprotocol_the_cookie_the_header_and_the_query() {
        let c = Credentials::read(
            &headers(&[
                ("sec-websocket-protocol", "Bearer, abc.def"),
                ("cookie", "a=b; token=\"ghi\""),
                ("wg2-msisdn", "+4799000001"),
            ]),
            Some("x=1&wg2-msisdn=%2B4799000002"),
        );
        assert!(c.offered_bearer);
        assert_eq!(c.subprotocol_token.as_deref(), Some("abc.def"));
        assert_eq!(c.cookie_token.as_deref(), Some("ghi"));
        assert_eq!(c.msisdns, ["+4799000001", "+4799000002"]);
        let c = Credentials::read(&headers(&[]), Some("wg2-msisdn=+4799000002"));
        assert!(!c.offered_bearer);
        assert_eq!(c.msisdns, ["4799000002"], "a form '+' is a space, trimmed");
    }

    #[test]
    fn the_cookie_is_only_taken_from_the_same_origin_or_an_allowed_one() {
        let allowed = ["https://app.example".to_owned()];
        let check = |pairs: &[(&str, &str)]| check_origin(&headers(pairs), &allowed).is_ok();
        assert!(check(&[("host", "core:8080")]), "no Origin: not a page");
        assert!(check(&[
            ("host", "core:8080"),
            ("origin", "http://core:8080")
        ]));
        assert!(check(&[
            ("host", "core:8080"),
            ("origin", "https://CORE:8080")
        ]));
        assert!(check(&[
            ("host", "core"),
            ("origin", "https://app.example")
        ]));
        assert!(!check(&[
            ("host", "core:8080"),
            ("origin", "http://evil.example")
        ]));
        assert!(!check(&[
            ("host", "core:8080"),
            ("origin", "http://core:8081")
        ]));
        assert!(!check(&[("host", "core:8080"), ("origin", "null")]));
    }

    #[test]
    fn the_query_is_form_decoded() {
        let msisdns = |query| Credentials::read(&headers(&[]), Some(query)).msisdns;
        assert_eq!(msisdns("wg2-msisdn=%2B47%20a+b"), ["+47 a b"]);
        assert_eq!(
            msisdns("wg2-msisdn=100%"),
            ["100%"],
            "a trailing '%' is kept"
        );
        assert_eq!(
            msisdns("wg2-msisdn=%zz"),
            ["%zz"],
            "a malformed escape is kept"
        );
        assert_eq!(
            msisdns("wg2%2Dmsisdn=1&wg2-msisdn=1"),
            ["1"],
            "names are decoded too"
        );
        assert_eq!(
            msisdns("a=1&&wg2-msisdn=2=3"),
            ["2=3"],
            "the first '=' splits"
        );
        assert_eq!(msisdns("wg2-msisdn"), [""], "no '=': an empty value");
        assert!(msisdns("").is_empty());
    }

    #[test]
    fn the_token_cookie() {
        let token = |cookie| Credentials::read(&headers(&[("cookie", cookie)]), None).cookie_token;
        assert_eq!(token("token=abc").as_deref(), Some("abc"));
        assert_eq!(token("a=b;token = abc ; c").as_deref(), Some("abc"));
        assert_eq!(token("a; token=\"abc\"").as_deref(), Some("abc"));
        assert_eq!(token("tokens=abc; a=token"), None);
        assert_eq!(token("token=a=b").as_deref(), Some("a=b"));
        assert_eq!(
            token("token=x; token=y").as_deref(),
            Some("x"),
            "the first one"
        );
    }
}
