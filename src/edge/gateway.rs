//! The browsers' WebSocket gateway (PROTOCOL.md section 11), compatible with WG2's (grpc-gateway
//! with grpc-websocket-proxy): `GET /pipe` and `GET /multipipe` upgrade to a WebSocket that is one
//! terminal, exactly as the rpc of that name, driving the same session
//! ([`WebTerminal::open_session`]) on the same switch, under the same limits.
//!
//! - **Auth.** The access token comes in `Sec-WebSocket-Protocol: Bearer, <token>` (answered with
//!   the subprotocol `Bearer`), in an `Authorization: Bearer <token>` header (clients that are not
//!   browsers, as grpc-gateway forwards it) or in a cookie `token`; `wg2-msisdn` as a header or a query
//!   parameter. They are checked exactly as the rpc's metadata is ([`crate::auth::Verifier::authenticate`]). A
//!   token from the cookie is refused when the request's `Origin` is present and neither the
//!   request's own origin (its `Host`) nor one of [`Gateway::allowed_origins`]: a cross-site page
//!   must not ride the browser's cookie. The upgrade succeeds even when auth fails, so the browser
//!   can read why: the first frame is then the error.
//! - **Frames.** Each text frame from the browser is one `WebTerminalMessage` in protobuf's
//!   canonical JSON (lowerCamelCase or proto field names; unknown fields ignored). Each frame from
//!   the core is `{"result": <WebTerminalMessage>}`. A session that would end with a gRPC status
//!   sends `{"error": {"code": <gRPC code number>, "message": "..."}}` and closes (close code
//!   1008); one that ends OK (at shutdown, after `Bye{SERVER_SHUTDOWN}`) closes with 1000. A
//!   binary frame, or a text frame that is not such JSON, ends the session with
//!   `INVALID_ARGUMENT`; a frame over the message size limit with `RESOURCE_EXHAUSTED`.
//! - **Keepalive.** A ping every [`Keepalive::interval`]; a peer that has not answered within
//!   [`Keepalive::timeout`] is dropped (`Gone`), as is one that has not taken a frame for
//!   `interval + timeout` (it neither reads nor answers).

use crate::auth::{AuthError, MSISDN_METADATA};
use crate::core::PipeKind;
use crate::edge::listener::ConnInfo;
use crate::edge::session::{Inbound, InboundStream, TerminalStream, WebTerminal};
use crate::proto::webterminal::WebTerminalMessage;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio_util::task::TaskTracker;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::Status;

/// The subprotocol a browser offers with its token (`Sec-WebSocket-Protocol: Bearer, <token>`),
/// and the one the core answers with.
pub const BEARER_SUBPROTOCOL: &str = "Bearer";

/// The cookie a browser may carry its access token in.
pub const TOKEN_COOKIE: &str = "token";

/// Close code of a session that ended with an error frame (policy violation, RFC 6455 7.4.1).
pub const CLOSE_ERROR: u16 = 1008;

/// How long the core waits for the browser's answer to its close frame before dropping the
/// connection: 5 s.
const CLOSING_HANDSHAKE: Duration = Duration::from_secs(5);

/// WebSocket keepalive: the same intervals as the HTTP/2 keepalive of the gRPC connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keepalive {
    /// Time between pings. Default [`crate::server::KEEPALIVE_INTERVAL`].
    pub interval: Duration,
    /// How long a ping may go unanswered before the peer is dropped. Default
    /// [`crate::server::KEEPALIVE_TIMEOUT`].
    pub timeout: Duration,
}

/// The gateway's configuration and the service it drives; [`router`] serves it.
#[derive(Clone, Debug)]
pub struct Gateway {
    /// The WebTerminal service whose sessions the WebSockets open.
    pub service: Arc<WebTerminal>,
    /// Largest frame (message) a browser may send, in bytes: the gRPC message size limit.
    pub max_message_bytes: usize,
    /// Pings and how long their answer may take.
    pub keepalive: Keepalive,
    /// Origins (`scheme://host[:port]`, as browsers send `Origin`) besides the request's own whose
    /// pages may use the `token` cookie. Empty: only same-origin pages.
    pub allowed_origins: Arc<[String]>,
    /// Every session's task, so that shutdown can wait for them: the HTTP server lets go of a
    /// connection once it is upgraded, so its graceful shutdown does not see them (PROTOCOL.md
    /// 4.9: each leg's `Bye{SERVER_SHUTDOWN}` and the close frame go out before the core exits).
    pub sessions: TaskTracker,
}

/// The gateway's routes (PROTOCOL.md section 11): `GET /pipe` and `GET /multipipe`, each a
/// WebSocket upgrade (a request without the upgrade headers is refused with a 4xx status and opens
/// no terminal). Merge it into the server's router; pages for browsers (`GET /`) merge the same way.
pub fn router(gateway: Gateway) -> axum::Router {
    axum::Router::new()
        .route("/pipe", get(pipe))
        .route("/multipipe", get(multipipe))
        .with_state(gateway)
}

async fn pipe(State(gateway): State<Gateway>, request: Request) -> Response {
    upgrade(gateway, PipeKind::Pipe, request).await
}

async fn multipipe(State(gateway): State<Gateway>, request: Request) -> Response {
    upgrade(gateway, PipeKind::MultiPipe, request).await
}

/// Upgrades the request to a WebSocket and runs one terminal session on it; auth is checked first,
/// but its failure is told on the WebSocket.
async fn upgrade(gateway: Gateway, kind: PipeKind, request: Request) -> Response {
    let (mut parts, _body) = request.into_parts();
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    let credentials = Credentials::read(&parts.headers, parts.uri.query());
    let msisdn = credentials.authenticate(&gateway, &parts.headers);
    // An open WebSocket is an open rpc: the connection's idle deadline does not run.
    let hold = parts.extensions.get::<ConnInfo>().map(ConnInfo::hold_open);
    let upgrade = if credentials.offered_bearer {
        upgrade.protocols([BEARER_SUBPROTOCOL])
    } else {
        upgrade
    };
    upgrade
        .max_message_size(gateway.max_message_bytes)
        .max_frame_size(gateway.max_message_bytes)
        .on_upgrade(move |socket| {
            let sessions = gateway.sessions.clone();
            sessions.track_future(async move {
                let _hold = hold;
                session(socket, gateway, kind, msisdn).await;
            })
        })
}

/// What the upgrade request carried for auth.
#[derive(Debug, Default)]
struct Credentials {
    /// The client offered the subprotocol `Bearer`.
    offered_bearer: bool,
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
    fn read(headers: &http::HeaderMap, query: Option<&str>) -> Credentials {
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
    /// ([`crate::auth::Verifier::authenticate`]), after the cookie's Origin rule.
    fn authenticate(
        &self,
        gateway: &Gateway,
        headers: &http::HeaderMap,
    ) -> Result<crate::core::Msisdn, Status> {
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
                check_origin(headers, &gateway.allowed_origins)?;
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
        gateway
            .service
            .verifier()
            .authenticate(&metadata)
            .map_err(Status::from)
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

/// The `{"error": ...}` frame for `status`.
fn error_frame(status: &Status) -> String {
    serde_json::json!({
        "error": {"code": status.code() as i32, "message": status.message()}
    })
    .to_string()
}

/// The `{"result": ...}` frame for `message`.
fn result_frame(message: &WebTerminalMessage) -> Result<String, serde_json::Error> {
    #[derive(serde::Serialize)]
    struct Result<'a> {
        result: &'a WebTerminalMessage,
    }
    serde_json::to_string(&Result { result: message })
}

/// One terminal on one WebSocket: the session's writer. Its reader is the session's reader task,
/// which owns the socket's receiving half ([`WsInbound`]).
async fn session(
    socket: WebSocket,
    gateway: Gateway,
    kind: PipeKind,
    msisdn: Result<crate::core::Msisdn, Status>,
) {
    let (mut sink, stream) = socket.split();
    let msisdn = match msisdn {
        Ok(msisdn) => msisdn,
        Err(status) => {
            tracing::debug!(%status, "WebSocket terminal refused");
            close_with_error(&mut sink, &status).await;
            finish_closing(sink, Some(stream)).await;
            return;
        }
    };
    let pongs = Arc::new(AtomicU64::new(0));
    let (back_tx, back) = oneshot::channel();
    let inbound = WsInbound {
        stream: Some(stream),
        pongs: pongs.clone(),
        back: Some(back_tx),
    };
    let outbound = match gateway.service.open_session(kind, msisdn, inbound).await {
        Ok(outbound) => outbound,
        Err(status) => {
            close_with_error(&mut sink, &status).await;
            finish_closing(sink, back.await.ok()).await;
            return;
        }
    };
    match write(&mut sink, outbound, gateway.keepalive, pongs).await {
        // The peer is gone (no answer to pings, or it takes no frames): drop the connection.
        Ending::Dropped => {}
        Ending::Closed => {
            // The outbound stream was dropped inside `write`: the reader task ends and gives the
            // receiving half back, to read the browser's answer to the close frame.
            let stream = tokio::time::timeout(CLOSING_HANDSHAKE, back).await;
            finish_closing(sink, stream.ok().and_then(Result::ok)).await;
        }
    }
}

/// How [`write`] ended.
enum Ending {
    /// A close frame was sent.
    Closed,
    /// The peer is gone; nothing more can be sent.
    Dropped,
}

/// Writes the terminal's outbound stream as `{"result"}` frames, with keepalive pings, until it
/// ends (close 1000) or fails (`{"error"}`, close 1008).
async fn write(
    sink: &mut SplitSink<WebSocket, Message>,
    mut outbound: TerminalStream,
    keepalive: Keepalive,
    pongs: Arc<AtomicU64>,
) -> Ending {
    // A frame the peer does not take within a keepalive round: it is not reading.
    let send_timeout = keepalive.interval + keepalive.timeout;
    let mut ping = tokio::time::interval_at(
        tokio::time::Instant::now() + keepalive.interval,
        keepalive.interval,
    );
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // A ping awaiting its pong: when it times out, and the pong count when it was sent.
    let mut awaiting: Option<(tokio::time::Instant, u64)> = None;
    loop {
        let pong_deadline = awaiting.map(|(at, _)| at);
        tokio::select! {
            item = outbound.next() => match item {
                Some(Ok(message)) => {
                    let text = match result_frame(&message) {
                        Ok(text) => text,
                        Err(e) => {
                            tracing::error!(%e, "cannot write a message as JSON");
                            continue;
                        }
                    };
                    let sent = tokio::time::timeout(send_timeout, sink.send(Message::Text(text.into()))).await;
                    if !matches!(sent, Ok(Ok(()))) {
                        return Ending::Dropped;
                    }
                }
                Some(Err(status)) => {
                    drop(outbound);
                    close_with_error(sink, &status).await;
                    return Ending::Closed;
                }
                None => {
                    drop(outbound);
                    let close = Message::Close(Some(CloseFrame {
                        code: 1000,
                        reason: Utf8Bytes::from_static("the stream ended"),
                    }));
                    let _ = tokio::time::timeout(send_timeout, sink.send(close)).await;
                    return Ending::Closed;
                }
            },
            _ = ping.tick(), if awaiting.is_none() => {
                let count = pongs.load(Ordering::Acquire);
                let sent = tokio::time::timeout(send_timeout, sink.send(Message::Ping(Default::default()))).await;
                if !matches!(sent, Ok(Ok(()))) {
                    return Ending::Dropped;
                }
                awaiting = Some((tokio::time::Instant::now() + keepalive.timeout, count));
            }
            () = sleep_until(pong_deadline), if pong_deadline.is_some() => {
                let (_, count) = awaiting.take().expect("awaiting a pong");
                if pongs.load(Ordering::Acquire) == count {
                    tracing::debug!("WebSocket peer did not answer a ping: gone");
                    return Ending::Dropped;
                }
            }
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Sends the `{"error"}` frame for `status`, then a close frame.
async fn close_with_error(sink: &mut SplitSink<WebSocket, Message>, status: &Status) {
    let send = async {
        sink.send(Message::Text(error_frame(status).into())).await?;
        let reason = match status.code() {
            tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => "refused",
            _ => "error",
        };
        sink.send(Message::Close(Some(CloseFrame {
            code: CLOSE_ERROR,
            reason: Utf8Bytes::from_static(reason),
        })))
        .await
    };
    let _ = tokio::time::timeout(CLOSING_HANDSHAKE, send).await;
}

/// After the close frame: reads until the browser answers it (or [`CLOSING_HANDSHAKE`] passes), so
/// that the connection is not reset under frames the browser has not read yet.
async fn finish_closing(
    sink: SplitSink<WebSocket, Message>,
    stream: Option<SplitStream<WebSocket>>,
) {
    let Some(mut stream) = stream else { return };
    let _ = tokio::time::timeout(CLOSING_HANDSHAKE, async {
        while let Some(Ok(message)) = stream.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
    drop(sink);
}

/// The session's inbound messages from a WebSocket: text frames of protobuf JSON. Counts pongs for
/// the writer's keepalive. Gives the receiving half back when dropped, so that the writer can
/// finish the closing handshake.
struct WsInbound {
    stream: Option<SplitStream<WebSocket>>,
    pongs: Arc<AtomicU64>,
    back: Option<oneshot::Sender<SplitStream<WebSocket>>>,
}

impl Drop for WsInbound {
    fn drop(&mut self) {
        if let (Some(stream), Some(back)) = (self.stream.take(), self.back.take()) {
            let _ = back.send(stream);
        }
    }
}

impl InboundStream for WsInbound {
    async fn next(&mut self) -> Inbound {
        let Some(stream) = self.stream.as_mut() else {
            return Inbound::Gone;
        };
        loop {
            let frame = match stream.next().await {
                None => return Inbound::Gone,
                Some(Ok(frame)) => frame,
                Some(Err(e)) => return read_error(e),
            };
            return match frame {
                Message::Text(text) => match serde_json::from_str(text.as_str()) {
                    Ok(message) => Inbound::Message(message),
                    Err(e) => Inbound::Failed(Status::invalid_argument(format!(
                        "a text frame that is not one WebTerminalMessage in protobuf JSON: {e} \
                         (PROTOCOL.md section 11)"
                    ))),
                },
                Message::Binary(_) => Inbound::Failed(Status::invalid_argument(
                    "binary frames are not accepted: send each WebTerminalMessage as a text \
                     frame of protobuf JSON (PROTOCOL.md section 11)",
                )),
                Message::Pong(_) => {
                    self.pongs.fetch_add(1, Ordering::AcqRel);
                    continue;
                }
                // Answered by the WebSocket layer itself.
                Message::Ping(_) => continue,
                Message::Close(_) => Inbound::Gone,
            };
        }
    }
}

/// A frame that could not be read: over the size limit (`RESOURCE_EXHAUSTED`, as gRPC says of an
/// oversized message), or the connection failed (gone).
fn read_error(e: axum::Error) -> Inbound {
    let inner = e.into_inner();
    match inner.downcast_ref::<tungstenite::Error>() {
        Some(tungstenite::Error::Capacity(capacity)) => Inbound::Failed(
            Status::resource_exhausted(format!("a frame over the message size limit: {capacity}")),
        ),
        _ => {
            tracing::debug!(e = %inner, "WebSocket read failed");
            Inbound::Gone
        }
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
