//! How a soak terminal talks to the core: a gRPC `Pipe` or `MultiPipe` (a bearer token, or a client
//! token naming its number in `wg2-msisdn`), or the same over the browsers' WebSocket gateway (JSON
//! text frames, the token in the subprotocol). Either way the terminal sees one [`Rpc`]: a sender of
//! requests and a receiver of what the core sent, read by a task of its own that can be made slow.

use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message as Frame;
use tonic::transport::Channel;
use webterminal_core::auth::{mint_client_token, mint_token, MSISDN_METADATA, REQUIRED_SCOPE};
use webterminal_core::core::Msisdn;
use webterminal_core::proto::webterminal::web_terminal_service_client::WebTerminalServiceClient;
use webterminal_core::proto::webterminal::WebTerminalMessage;

/// How long opening an rpc may take before the terminal gives up and tries again later.
const OPEN_WITHIN: Duration = Duration::from_secs(5);
/// How long a slow reader waits before each message it reads.
const SLOW_READ: Duration = Duration::from_millis(150);

/// The rpc a terminal opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Pipe,
    MultiPipe,
}

/// How a terminal reaches the core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// gRPC over HTTP/2, a bearer token for its number.
    Grpc,
    /// gRPC with a client token granting its number, named in `wg2-msisdn`.
    GrpcClientToken,
    /// The WebSocket gateway.
    WebSocket,
}

/// How an rpc ended, as its reader saw it.
#[derive(Debug)]
pub enum End {
    /// The core closed it cleanly.
    Closed,
    /// The core ended it with this status (gRPC) or error frame (WebSocket).
    Status(tonic::Code),
}

/// One open rpc.
pub struct Rpc {
    pub tx: mpsc::Sender<WebTerminalMessage>,
    /// What the core sent, each with when the reader took it off the connection (`None` when the
    /// reader was slow then: the time says more about the reader than about the core).
    pub rx: mpsc::UnboundedReceiver<(Option<Instant>, Result<WebTerminalMessage, End>)>,
    /// When the rpc was opened.
    pub opened: Instant,
    /// Set: the reader waits [`SLOW_READ`] before each message (a slow consumer).
    pub slow: Arc<AtomicBool>,
    reader: tokio::task::JoinHandle<()>,
}

impl Rpc {
    /// Cancels the rpc at once (no half-close): the reader stops and the request stream drops.
    pub fn cancel(self) {
        self.reader.abort();
    }

    /// Half-closes: no more requests, the core's messages still arrive on `rx`.
    pub fn half_close(&mut self) {
        let (closed, _) = mpsc::channel(1);
        self.tx = closed;
    }
}

impl Drop for Rpc {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// A new HTTP/2 connection to the core.
pub async fn connect(addr: SocketAddr) -> Option<Channel> {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .ok()?
        .connect_timeout(OPEN_WITHIN)
        .connect()
        .await
        .ok()
}

/// Opens a `kind` rpc for `msisdn` over `transport` (`channel` for gRPC); `None` when the core
/// refused or did not answer in time.
pub async fn open(
    addr: SocketAddr,
    channel: &Channel,
    transport: Transport,
    kind: Kind,
    secret: &[u8],
    msisdn: &Msisdn,
) -> Option<Rpc> {
    let opened = tokio::time::timeout(OPEN_WITHIN, async {
        match transport {
            Transport::WebSocket => open_websocket(addr, kind, secret, msisdn).await,
            Transport::Grpc | Transport::GrpcClientToken => {
                open_grpc(channel, transport, kind, secret, msisdn).await
            }
        }
    })
    .await;
    opened.ok().flatten()
}

fn token(secret: &[u8], transport: Transport, msisdn: &Msisdn) -> String {
    let ttl = Duration::from_secs(24 * 3600);
    match transport {
        Transport::GrpcClientToken => mint_client_token(
            secret,
            "soak",
            std::slice::from_ref(msisdn),
            REQUIRED_SCOPE,
            ttl,
        ),
        Transport::Grpc | Transport::WebSocket => mint_token(secret, msisdn, REQUIRED_SCOPE, ttl),
    }
}

async fn open_grpc(
    channel: &Channel,
    transport: Transport,
    kind: Kind,
    secret: &[u8],
    msisdn: &Msisdn,
) -> Option<Rpc> {
    let (tx, requests) = mpsc::channel(32);
    let mut request = tonic::Request::new(ReceiverStream::new(requests));
    let bearer = format!("Bearer {}", token(secret, transport, msisdn));
    request
        .metadata_mut()
        .insert("authorization", bearer.parse().ok()?);
    if transport == Transport::GrpcClientToken {
        request
            .metadata_mut()
            .insert(MSISDN_METADATA, msisdn.as_str().parse().ok()?);
    }
    let mut client = WebTerminalServiceClient::new(channel.clone());
    let response = match kind {
        Kind::Pipe => client.pipe(request).await,
        Kind::MultiPipe => client.multi_pipe(request).await,
    };
    let mut stream = response.ok()?.into_inner();
    let slow = Arc::new(AtomicBool::new(false));
    let (forward, rx) = mpsc::unbounded_channel();
    let slow_reader = slow.clone();
    let reader = tokio::spawn(async move {
        loop {
            let slow = slow_reader.load(Ordering::Relaxed);
            if slow {
                tokio::time::sleep(SLOW_READ).await;
            }
            let item = match stream.message().await {
                Ok(Some(m)) => Ok(m),
                Ok(None) => Err(End::Closed),
                Err(status) => Err(End::Status(status.code())),
            };
            let last = item.is_err();
            let at = (!slow).then(Instant::now);
            if forward.send((at, item)).is_err() || last {
                return;
            }
        }
    });
    Some(Rpc {
        tx,
        rx,
        opened: Instant::now(),
        slow,
        reader,
    })
}

async fn open_websocket(
    addr: SocketAddr,
    kind: Kind,
    secret: &[u8],
    msisdn: &Msisdn,
) -> Option<Rpc> {
    let path = match kind {
        Kind::Pipe => "pipe",
        Kind::MultiPipe => "multipipe",
    };
    let mut request = format!("ws://{addr}/{path}").into_client_request().ok()?;
    let protocols = format!("Bearer, {}", token(secret, Transport::WebSocket, msisdn));
    request
        .headers_mut()
        .insert("sec-websocket-protocol", protocols.parse().ok()?);
    let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
    let (socket, _) = tokio_tungstenite::client_async(request, tcp).await.ok()?;
    let (mut sink, mut frames) = socket.split();
    let (tx, mut requests) = mpsc::channel::<WebTerminalMessage>(32);
    let slow = Arc::new(AtomicBool::new(false));
    let (forward, rx) = mpsc::unbounded_channel();
    let slow_reader = slow.clone();
    let reader = tokio::spawn(async move {
        let mut sending = true;
        loop {
            tokio::select! {
                request = requests.recv(), if sending => match request {
                    Some(message) => {
                        let Ok(text) = serde_json::to_string(&message) else { continue };
                        if sink.send(Frame::text(text)).await.is_err() {
                            let _ = forward.send((None, Err(End::Closed)));
                            return;
                        }
                    }
                    // Half-closed: the gateway has no half-close, so a close frame says it.
                    None => {
                        sending = false;
                        let _ = sink.send(Frame::Close(None)).await;
                    }
                },
                frame = frames.next() => {
                    let slow = slow_reader.load(Ordering::Relaxed);
                    if slow {
                        tokio::time::sleep(SLOW_READ).await;
                    }
                    let item = match frame {
                        Some(Ok(Frame::Text(text))) => match parse_frame(&text) {
                            Some(item) => item,
                            None => continue,
                        },
                        Some(Ok(Frame::Close(_))) | None | Some(Err(_)) => Err(End::Closed),
                        Some(Ok(_)) => continue,
                    };
                    let last = item.is_err();
                    let at = (!slow).then(Instant::now);
                    if forward.send((at, item)).is_err() || last {
                        return;
                    }
                }
            }
        }
    });
    Some(Rpc {
        tx,
        rx,
        opened: Instant::now(),
        slow,
        reader,
    })
}

/// A gateway frame: `{"result": message}` or `{"error": {"code", "message"}}` (its code).
fn parse_frame(text: &str) -> Option<Result<WebTerminalMessage, End>> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    if let Some(result) = value.get("result") {
        return serde_json::from_value(result.clone()).ok().map(Ok);
    }
    let error = value.get("error")?;
    let code = error.get("code").and_then(|c| c.as_i64()).unwrap_or(2) as i32;
    Some(Err(End::Status(tonic::Code::from(code))))
}
