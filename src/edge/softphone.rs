//! The softphone page at `GET /` (PROTOCOL.md section 11), shipped inside the binary, and the demo
//! token endpoint that lets it mint its own token when the core runs on its own demo secret.
//!
//! The page is plain HTML, CSS and JavaScript modules from the `web/` directory, embedded at build
//! time: no build step, no bundler, nothing fetched from elsewhere. It registers as a **MultiPipe**
//! terminal over the WebSocket gateway (`GET /multipipe`), so that it can ring with a second call while
//! in one and see every call of its number on other devices (`InCall`) at once. It makes WebRTC calls
//! with non-trickle ICE (it waits for every candidate before sending its offer or answer: the core
//! relays SDP and has no trickle) and no STUN servers.
//!
//! - [`router`]: `GET /` and the page's assets under `/softphone/`.
//! - [`demo_router`]: `GET /demo` and `POST /demo/token {"msisdn": "+47…"}`, served only when the
//!   server signs tokens with the demo secret it made and keeps itself ([`DemoTokens`]); the CLI's
//!   `serve` turns it on exactly when no `--jwt-secret` is given.

use crate::auth;
use crate::core::Msisdn;
use axum::body::Bytes;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use std::sync::Arc;
use std::time::Duration;

/// One file of the page.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

/// Every file of the page, at the path the page asks for it by.
const ASSETS: &[Asset] = &[
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../../web/index.html"),
    },
    Asset {
        path: "/softphone/style.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../web/style.css"),
    },
    Asset {
        path: "/softphone/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../web/app.js"),
    },
    Asset {
        path: "/softphone/pipe.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../web/pipe.js"),
    },
    Asset {
        path: "/softphone/media.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../web/media.js"),
    },
];

/// What the page may load and connect to: only this origin (its own WebSocket included).
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; media-src 'self' blob: mediastream:; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// `GET /` (the softphone page) and its assets under `/softphone/`, for the listener's HTTP/1.1
/// router to merge. Every response is `Cache-Control: no-cache` (a new binary may ship a new page),
/// `X-Content-Type-Options: nosniff` and `Referrer-Policy: no-referrer`; the page itself carries a
/// Content-Security-Policy that allows only its own origin.
pub fn router() -> Router {
    ASSETS.iter().fold(Router::new(), |router, asset| {
        router.route(asset.path, get(move || async move { serve_asset(asset) }))
    })
}

fn serve_asset(asset: &'static Asset) -> Response {
    let mut response = (
        [
            (header::CONTENT_TYPE, asset.content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        asset.body,
    )
        .into_response();
    if asset.content_type.starts_with("text/html") {
        response.headers_mut().insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        );
    }
    response
}

/// The listener's answer to a request no route takes: for gRPC (`content-type: application/grpc…`),
/// status `UNIMPLEMENTED` as tonic answers it; for anything else (a browser asking for a page or
/// file that is not there), `404 Not Found`.
pub async fn not_found(request: http::Request<axum::body::Body>) -> Response {
    let grpc = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"));
    if grpc {
        return tonic::Status::unimplemented("no such service or method")
            .into_http::<axum::body::Body>();
    }
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "not found\n",
    )
        .into_response()
}

/// How long a demo token is valid: a day, as the tokens `serve` prints.
pub const DEFAULT_DEMO_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

/// The demo token endpoint's settings ([`demo_router`]). Turn it on only when the server signs
/// tokens with a demo secret of its own: whoever reaches the listener can then mint a subscriber
/// token for any number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DemoTokens {
    /// Numbers the page suggests (the demo numbers `serve` prints tokens for). Tokens may be minted
    /// for any E.164 number.
    pub numbers: Vec<Msisdn>,
    /// How long each minted token is valid. Default [`DEFAULT_DEMO_TOKEN_TTL`].
    pub ttl: Duration,
}

impl DemoTokens {
    /// Suggests `numbers`; tokens valid for [`DEFAULT_DEMO_TOKEN_TTL`].
    pub fn new(numbers: Vec<Msisdn>) -> Self {
        DemoTokens {
            numbers,
            ttl: DEFAULT_DEMO_TOKEN_TTL,
        }
    }
}

/// The demo token endpoint, signing with `secret` (HS256, as [`auth::mint_token`]):
///
/// - `GET /demo`: `{"numbers": ["+4799990001", …], "ttl_seconds": 86400}`; the page shows its
///   "Get a demo token" button only when this answers.
/// - `POST /demo/token` with `Content-Type: application/json` and `{"msisdn": "+4799990001"}` (the
///   `+` optional): `{"msisdn": "+4799990001", "token": "…", "ttl_seconds": 86400}`, a subscriber
///   token with the scope `call.control.answer_and_initiate` only (never the operator's). A body that
///   is not that JSON, or a number that is not E.164: 400 `{"error": "…"}`; another content type: 415
///   (so that a cross-site form cannot post here without a CORS preflight, which is not answered).
pub fn demo_router(secret: &[u8], demo: DemoTokens) -> Router {
    let secret: Arc<[u8]> = Arc::from(secret);
    let info = serde_json::json!({
        "numbers": demo.numbers.iter().map(Msisdn::as_str).collect::<Vec<_>>(),
        "ttl_seconds": demo.ttl.as_secs(),
    })
    .to_string();
    let ttl = demo.ttl;
    Router::new()
        .route(
            "/demo",
            get(move || {
                let info = info.clone();
                async move { json(StatusCode::OK, info) }
            }),
        )
        .route(
            "/demo/token",
            post(move |headers: HeaderMap, body: Bytes| {
                let secret = secret.clone();
                async move { mint(&secret, ttl, &headers, &body) }
            }),
        )
}

fn mint(secret: &[u8], ttl: Duration, headers: &HeaderMap, body: &[u8]) -> Response {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send {\"msisdn\": \"+47...\"} as application/json",
        );
    }
    #[derive(serde::Deserialize)]
    struct Request {
        msisdn: String,
    }
    let request: Request = match serde_json::from_slice(body) {
        Ok(request) => request,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("bad request body: {e}")),
    };
    let msisdn = match Msisdn::parse_lenient(request.msisdn.trim()) {
        Ok(msisdn) => msisdn,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("msisdn: {e}")),
    };
    let token = auth::mint_token(secret, &msisdn, auth::REQUIRED_SCOPE, ttl);
    tracing::info!(msisdn = %msisdn, "minted a demo token");
    json(
        StatusCode::OK,
        serde_json::json!({
            "msisdn": msisdn.as_str(),
            "token": token,
            "ttl_seconds": ttl.as_secs(),
        })
        .to_string(),
    )
}

fn json(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

fn error(status: StatusCode, message: &str) -> Response {
    json(status, serde_json::json!({ "error": message }).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use http::Request;
    use http_body::Body as _;
    use tower::ServiceExt;

    async fn body_of(response: Response) -> String {
        let mut body = response.into_body();
        let mut bytes = Vec::new();
        while let Some(frame) =
            std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await
        {
            if let Ok(data) = frame.expect("a body frame").into_data() {
                bytes.extend_from_slice(&data);
            }
        }
        String::from_utf8(bytes).expect("UTF-8")
    }

    async fn get_path(router: Router, path: &str) -> Response {
        router
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn the_page_and_every_file_it_loads_are_served() {
        let page = get_path(router(), "/").await;
        assert_eq!(page.status(), StatusCode::OK);
        assert_eq!(
            page.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        assert!(page.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("connect-src 'self'"));
        let html = body_of(page).await;
        // Every local reference of the page and every import of its modules resolves.
        let mut wanted: Vec<String> = Vec::new();
        for attribute in ["src=\"", "href=\""] {
            for part in html.split(attribute).skip(1) {
                let target = &part[..part.find('"').unwrap()];
                if target.starts_with('/') {
                    wanted.push(target.to_owned());
                }
            }
        }
        assert!(
            wanted.contains(&"/softphone/app.js".to_owned()),
            "{wanted:?}"
        );
        for asset in ASSETS.iter().filter(|a| a.path.ends_with(".js")) {
            let text = std::str::from_utf8(asset.body).unwrap();
            for part in text.split("from \"./").skip(1) {
                let module = &part[..part.find('"').unwrap()];
                wanted.push(format!("/softphone/{module}"));
            }
        }
        assert!(
            wanted.contains(&"/softphone/media.js".to_owned()),
            "{wanted:?}"
        );
        for path in wanted {
            let response = get_path(router(), &path).await;
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            assert_eq!(
                response.headers()[header::X_CONTENT_TYPE_OPTIONS],
                "nosniff"
            );
            if path.ends_with(".js") {
                assert_eq!(
                    response.headers()[header::CONTENT_TYPE],
                    "text/javascript; charset=utf-8",
                    "{path}: modules need a JavaScript type"
                );
            }
        }
        assert_eq!(
            get_path(router(), "/softphone/nothing.js").await.status(),
            StatusCode::NOT_FOUND
        );
    }

    #[tokio::test]
    async fn what_no_route_takes_is_404_for_browsers_and_unimplemented_for_grpc() {
        let app = || router().fallback(not_found);
        let missing = get_path(app(), "/softphone/missing.js").await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        let grpc = app()
            .oneshot(
                Request::post("/no.Such/Method")
                    .header(header::CONTENT_TYPE, "application/grpc")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(grpc.status(), StatusCode::OK);
        assert_eq!(grpc.headers()["grpc-status"], "12", "UNIMPLEMENTED");
    }

    #[test]
    fn the_page_loads_nothing_from_elsewhere() {
        for asset in ASSETS {
            let text = std::str::from_utf8(asset.body).unwrap();
            for scheme in ["http://", "https://", "//cdn", "stun:", "turn:"] {
                assert!(
                    !text.contains(scheme),
                    "{} mentions {scheme}: the page must work offline and on loopback",
                    asset.path
                );
            }
        }
    }

    fn demo() -> Router {
        demo_router(
            b"demo secret",
            DemoTokens::new(vec![Msisdn::parse("+4799990001").unwrap()]),
        )
    }

    async fn post_token(content_type: &str, body: &str) -> Response {
        demo()
            .oneshot(
                Request::post("/demo/token")
                    .header(header::CONTENT_TYPE, content_type)
                    .body(Body::from(body.to_owned()))
                    .unwrap(),
            )
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn demo_tokens_are_subscriber_tokens_signed_with_the_secret() {
        let info = body_of(get_path(demo(), "/demo").await).await;
        assert_eq!(info, r#"{"numbers":["+4799990001"],"ttl_seconds":86400}"#);
        let response = post_token("application/json", r#"{"msisdn":"4799990002"}"#).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: serde_json::Value = serde_json::from_str(&body_of(response).await).unwrap();
        assert_eq!(body["msisdn"], "+4799990002");
        let token = body["token"].as_str().unwrap();
        let verifier = auth::Verifier::hs256(b"demo secret");
        assert_eq!(verifier.verify(token).unwrap().as_str(), "+4799990002");
        let other = auth::Verifier::hs256(b"another secret");
        assert!(
            other.verify(token).is_err(),
            "signed with the demo secret only"
        );
        let mut metadata = tonic::metadata::MetadataMap::new();
        metadata.insert("authorization", format!("Bearer {token}").parse().unwrap());
        assert!(
            verifier.authorize_operator(&metadata).is_err(),
            "never an operator token"
        );
    }

    #[tokio::test]
    async fn demo_token_requests_that_are_not_json_numbers_are_refused() {
        let cases = [
            ("text/plain", r#"{"msisdn":"+4799990002"}"#, 415),
            ("application/json", r#"{"msisdn":"+47 abc"}"#, 400),
            ("application/json", r#"{"number":"+4799990002"}"#, 400),
            ("application/json", "not json", 400),
        ];
        for (content_type, body, status) in cases {
            let response = post_token(content_type, body).await;
            assert_eq!(response.status().as_u16(), status, "{content_type} {body}");
            let text = body_of(response).await;
            assert!(text.starts_with(r#"{"error":"#), "{text}");
        }
        // Without the demo router, nothing answers there.
        let response = router()
            .oneshot(
                Request::post("/demo/token")
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(r#"{"msisdn":"+4799990002"}"#))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }
}
