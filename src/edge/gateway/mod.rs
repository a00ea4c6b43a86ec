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
//!
//! This file is the WebSocket pump (upgrade, frames, keepalive, closing); `credentials.rs` reads
//! and checks what the upgrade request carries for auth.

mod credentials;

pub use credentials::{BEARER_SUBPROTOCOL, TOKEN_COOKIE};

use crate::core::PipeKind;
use crate::edge::listener::ConnInfo;
use crate::edge::session::{Inbound, InboundStream, TerminalStream, WebTerminal};
use crate::proto::webterminal::WebTerminalMessage;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use credentials::Credentials;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio_util::task::TaskTracker;
use tonic::Status;

/// Close code of a session that ended with an error frame (policy violation, RFC 6455 7.4.1).
pub const CLOSE_ERROR: u16 = 1008;

/// How long the core waits for the browser's answer to its close frame before dropping the
/// connection: 5 s.
const CLOSING_HANDSHAKE: Duration = Duration::from_secs(5);

/// Time between keepalive pings on an idle connection, HTTP/2 and WebSocket alike: 20 s.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(20);

/// How long a keepalive ping may go unanswered before the connection (or WebSocket) is dropped:
/// 10 s.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// WebSocket keepalive: the same intervals as the HTTP/2 keepalive of the gRPC connections.
/// [`Keepalive::default`]: [`KEEPALIVE_INTERVAL`], [`KEEPALIVE_TIMEOUT`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keepalive {
    /// Time between pings.
    pub interval: Duration,
    /// How long a ping may go unanswered before the peer is dropped.
    pub timeout: Duration,
}

impl Default for Keepalive {
    fn default() -> Self {
        Keepalive {
            interval: KEEPALIVE_INTERVAL,
            timeout: KEEPALIVE_TIMEOUT,
        }
    }
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
    let msisdn = credentials.authenticate(
        gateway.service.verifier(),
        &gateway.allowed_origins,
        &parts.headers,
    );
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
