//! The harness of the gRPC tests: a real server on a loopback port ([`TestCore`]) and tonic clients
//! as terminals ([`Terminal`]), each on a connection of its own.
//!
//! A terminal is carried by a [`Transport`]: gRPC, or the browsers' WebSocket gateway (PROTOCOL.md
//! section 11, protobuf JSON text frames). A core opens its terminals over the transport of the
//! task that started it ([`TRANSPORT`], gRPC when unset), so that [`for_all_transports!`] runs the
//! same scenario over both; [`TestCore::open_over`] picks one per terminal.
//!
//! A terminal's response stream is read by a task of its own into a queue, and its connection goes
//! through a loopback TCP proxy of its own, so that a test can cancel one rpc ([`Terminal::cancel`]) or
//! drop its connection ([`Terminal::drop_connection`]), and [`TestCore::assert_no_calls_left`] can
//! drop every terminal's connection whoever owns the [`Terminal`].

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::{AbortHandle, JoinHandle};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Code, Status, Streaming};
use webterminal_core::auth::{mint_token, REQUIRED_SCOPE};
use webterminal_core::core::Msisdn;
use webterminal_core::driver::{DriverHandle, DriverStats};
use webterminal_core::proto::common::PhoneNumber;
use webterminal_core::proto::simulator::simulated_phone_network_client::SimulatedPhoneNetworkClient;
use webterminal_core::proto::simulator::{Behaviour, PhoneRequest, SetBehaviourRequest};
use webterminal_core::proto::webterminal::web_terminal_message::Message;
use webterminal_core::proto::webterminal::web_terminal_service_client::WebTerminalServiceClient;
use webterminal_core::proto::webterminal::{
    action, bye, error, Action, Answer, Bye, Offer, Ringing, ToPhone, Transfer, WebTerminalMessage,
};
use webterminal_core::server::{Exchange, PhoneNetworkKind, ServeError, ServerConfig};

pub use crate::terminal::{bearer, bearer_text};
pub use webterminal_core::proto::webterminal::bye::Reason;
pub use webterminal_core::proto::webterminal::error::Code as ErrCode;

/// The HS256 secret every [`TestCore`] signs tokens with.
pub const SECRET: &[u8] = b"grpc integration tests' secret..";

pub const A: &str = "+4799990001";
pub const B: &str = "+4799990002";
pub const C: &str = "+4799990003";
pub const D: &str = "+4799990004";
/// A number no test registers a terminal for.
pub const NOBODY: &str = "+4799990099";
/// The number of [`half_close_and_confirm`]'s probe terminal.
pub const PROBER: &str = "+4799990098";

/// How long `recv` waits before it fails the test.
pub const RECV_TIMEOUT: Duration = Duration::from_secs(5);
/// The silence window of [`Terminal::expect_silent`] in most tests.
pub const SILENCE: Duration = Duration::from_millis(200);
/// A short ring, negotiation or grace timeout for the timeout scenarios.
pub const SHORT: Duration = Duration::from_millis(300);

/// Which rpc a terminal opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Pipe,
    Multi,
}

impl Kind {
    pub fn other(self) -> Kind {
        match self {
            Kind::Pipe => Kind::Multi,
            Kind::Multi => Kind::Pipe,
        }
    }
}

/// What carries a terminal: a gRPC rpc, or a WebSocket of the gateway (PROTOCOL.md section 11).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Grpc,
    WebSocket,
}

tokio::task_local! {
    /// The transport a [`TestCore`] started in this task opens its terminals over.
    pub static TRANSPORT: Transport;
}

/// The transport of the current task ([`TRANSPORT`]), gRPC when unset.
pub fn current_transport() -> Transport {
    TRANSPORT.try_with(|t| *t).unwrap_or(Transport::Grpc)
}

/// Runs an `async fn name(kind: Kind)` once per rpc and once per transport: `pipe::name` and
/// `multipipe::name` over gRPC, `websocket_pipe::name` and `websocket_multipipe::name` over the
/// WebSocket gateway (`GET /pipe`, `GET /multipipe`): the section-4 scenarios pass on both.
/// Tests named after `grpc_only:` run over gRPC only (a WebSocket has no half-close).
#[macro_export]
macro_rules! for_all_transports {
    ($($(#[$attr:meta])* $name:ident),* $(,)? ; grpc_only: $($(#[$gattr:meta])* $gname:ident),* $(,)?) => {
        $crate::for_both_kinds!($($(#[$attr])* $name,)* $($(#[$gattr])* $gname),*);
        $crate::websocket_variants!($($(#[$attr])* $name),*);
    };
    ($($(#[$attr:meta])* $name:ident),* $(,)?) => {
        $crate::for_both_kinds!($($(#[$attr])* $name),*);
        $crate::websocket_variants!($($(#[$attr])* $name),*);
    };
}

/// The WebSocket half of [`for_all_transports!`].
#[macro_export]
macro_rules! websocket_variants {
    ($($(#[$attr:meta])* $name:ident),* $(,)?) => {
        mod websocket_pipe {
            $(
                #[tokio::test]
                $(#[$attr])*
                async fn $name() {
                    $crate::support::TRANSPORT
                        .scope(
                            $crate::support::Transport::WebSocket,
                            super::$name($crate::support::Kind::Pipe),
                        )
                        .await
                }
            )*
        }
        mod websocket_multipipe {
            $(
                #[tokio::test]
                $(#[$attr])*
                async fn $name() {
                    $crate::support::TRANSPORT
                        .scope(
                            $crate::support::Transport::WebSocket,
                            super::$name($crate::support::Kind::Multi),
                        )
                        .await
                }
            )*
        }
    };
}

/// Runs an `async fn name(kind: Kind)` once per rpc, as `pipe::name` and `multipipe::name`.
/// Attributes before a name (e.g. `#[ignore = "..."]`) go on both tests.
#[macro_export]
macro_rules! for_both_kinds {
    ($($(#[$attr:meta])* $name:ident),* $(,)?) => {
        mod pipe {
            $(
                #[tokio::test]
                $(#[$attr])*
                async fn $name() {
                    super::$name($crate::support::Kind::Pipe).await
                }
            )*
        }
        mod multipipe {
            $(
                #[tokio::test]
                $(#[$attr])*
                async fn $name() {
                    super::$name($crate::support::Kind::Multi).await
                }
            )*
        }
    };
}

/// The text of an SDP fixture of `tests/fixtures/sdp/`, byte for byte.
pub fn sdp(name: &str) -> String {
    let path = format!(
        "{}{name}",
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sdp/")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading fixture {path}: {e}"))
}

pub fn chromium_offer() -> String {
    sdp("chromium-offer.sdp")
}
pub fn chromium_answer() -> String {
    sdp("chromium-answer.sdp")
}
pub fn aiortc_offer() -> String {
    sdp("aiortc-offer.sdp")
}
pub fn aiortc_answer() -> String {
    sdp("aiortc-answer.sdp")
}

/// A fresh UUID, as a MultiPipe chooses for a new call.
pub fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub fn is_uuid(text: &str) -> bool {
    uuid::Uuid::parse_str(text).is_ok()
}

/// Messages a terminal sends.
pub mod msg {
    use super::*;

    fn with(call_id: &str, message: Message) -> WebTerminalMessage {
        WebTerminalMessage {
            message: Some(message),
            call_id: call_id.to_owned(),
        }
    }

    /// A new call to `to`.
    pub fn offer(call_id: &str, sdp: &str, to: &str) -> WebTerminalMessage {
        with(
            call_id,
            Message::Offer(Offer {
                sdp: sdp.to_owned(),
                msisdn: Some(PhoneNumber { e164: to.into() }),
                data: Default::default(),
            }),
        )
    }

    /// A re-offer or a pull (no number).
    pub fn reoffer(call_id: &str, sdp: &str) -> WebTerminalMessage {
        with(
            call_id,
            Message::Offer(Offer {
                sdp: sdp.to_owned(),
                msisdn: None,
                data: Default::default(),
            }),
        )
    }

    pub fn answer(call_id: &str, sdp: &str) -> WebTerminalMessage {
        with(
            call_id,
            Message::Answer(Answer {
                sdp: sdp.to_owned(),
            }),
        )
    }

    pub fn ringing(call_id: &str) -> WebTerminalMessage {
        with(call_id, Message::Ringing(Ringing {}))
    }

    pub fn bye(call_id: &str) -> WebTerminalMessage {
        with(call_id, Message::Bye(Bye { reason: 0 }))
    }

    pub fn to_phone(call_id: &str) -> WebTerminalMessage {
        with(
            call_id,
            Message::Action(Action {
                message: Some(action::Message::ToPhone(ToPhone {})),
            }),
        )
    }

    /// `Action{Transfer}` of call `call_id` to `to` (4.12), the number as given.
    pub fn transfer(call_id: &str, to: &str) -> WebTerminalMessage {
        with(
            call_id,
            Message::Action(Action {
                message: Some(action::Message::Transfer(Transfer {
                    msisdn: Some(PhoneNumber { e164: to.into() }),
                })),
            }),
        )
    }

    /// No field of the oneof set.
    pub fn empty(call_id: &str) -> WebTerminalMessage {
        WebTerminalMessage {
            message: None,
            call_id: call_id.to_owned(),
        }
    }
}

/// A running server on `127.0.0.1:0`.
pub struct TestCore {
    pub addr: SocketAddr,
    pub driver: DriverHandle,
    stop: Option<oneshot::Sender<()>>,
    served: Option<JoinHandle<Result<(), ServeError>>>,
    /// The reader and proxy tasks of every terminal opened, to end them all.
    readers: Arc<Mutex<Vec<AbortHandle>>>,
    next_terminal: Mutex<u32>,
    /// What [`TestCore::open`] and its kin open terminals over.
    pub transport: Transport,
    operator: tokio::sync::Mutex<Option<Channel>>,
}

impl TestCore {
    /// The default configuration with [`SECRET`] and `phones`, but no reconnect grace: an active
    /// leg that goes away ends its call at once (PROTOCOL.md 4.8), so that no call outlives its
    /// terminals ([`TestCore::assert_no_calls_left`]). The grace has tests of its own.
    pub fn config(phones: PhoneNetworkKind) -> ServerConfig {
        let mut config = ServerConfig::new(SECRET);
        config.phone_network = phones;
        config.switch.reconnect_grace = Duration::ZERO;
        config
    }

    /// The default configuration with a short negotiation timeout ([`SHORT`]). The ring timeout stays
    /// long, so that setting a call up never races a timer.
    pub fn short_negotiation(phones: PhoneNetworkKind) -> ServerConfig {
        let mut config = Self::config(phones);
        config.switch.negotiation_timeout = SHORT;
        config
    }

    /// The default configuration with a ring timeout of `ring`.
    pub fn short_ring(phones: PhoneNetworkKind, ring: Duration) -> ServerConfig {
        let mut config = Self::config(phones);
        config.switch.ring_timeout = ring;
        config
    }

    pub async fn new(phones: PhoneNetworkKind) -> TestCore {
        Self::start(Self::config(phones)).await
    }

    /// Binds `127.0.0.1:0`, starts the exchange and serves it until [`TestCore::shutdown`] (or drop).
    pub async fn start(config: ServerConfig) -> TestCore {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let exchange = Exchange::start(config);
        let driver = exchange.driver().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let served = tokio::spawn(exchange.serve(listener, async {
            let _ = stopped.await;
        }));
        TestCore {
            addr,
            driver,
            stop: Some(stop),
            served: Some(served),
            readers: Arc::default(),
            next_terminal: Mutex::new(1),
            transport: current_transport(),
            operator: tokio::sync::Mutex::new(None),
        }
    }

    /// A connection of its own to the server.
    pub async fn channel(&self) -> Channel {
        connect(self.addr).await
    }

    /// A connection of its own through a TCP proxy; aborting the returned task drops it.
    async fn proxied_channel(&self) -> (Channel, AbortHandle) {
        let (proxy, abort) = self.proxy().await;
        (connect(proxy).await, abort)
    }

    /// A TCP proxy to the server for one connection: its address, and the task to abort to drop it.
    async fn proxy(&self) -> (SocketAddr, AbortHandle) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let proxy = listener.local_addr().unwrap();
        let server = self.addr;
        let task = tokio::spawn(async move {
            let Ok((mut client, _)) = listener.accept().await else {
                return;
            };
            drop(listener);
            let Ok(mut upstream) = tokio::net::TcpStream::connect(server).await else {
                return;
            };
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        });
        let abort = task.abort_handle();
        self.readers.lock().unwrap().push(abort.clone());
        (proxy, abort)
    }

    /// A valid token for `msisdn`, one hour.
    pub fn token(msisdn: &str) -> String {
        mint_token(
            SECRET,
            &Msisdn::parse(msisdn).unwrap(),
            REQUIRED_SCOPE,
            Duration::from_secs(3600),
        )
    }

    /// Opens a `kind` rpc with `authorization` set to `authorization` (none when `None`).
    pub async fn try_open_with(
        &self,
        kind: Kind,
        msisdn: &str,
        authorization: Option<&str>,
    ) -> Result<Terminal, Status> {
        let metadata: Vec<(&str, &str)> = authorization
            .map(|value| ("authorization", value))
            .into_iter()
            .collect();
        self.try_open_with_metadata(kind, msisdn, &metadata).await
    }

    /// Opens a `kind` rpc with these metadata entries (a key may repeat); the terminal is named
    /// after `msisdn`, the number it is expected to speak for.
    pub async fn try_open_with_metadata(
        &self,
        kind: Kind,
        msisdn: &str,
        metadata: &[(&str, &str)],
    ) -> Result<Terminal, Status> {
        self.try_open_over(self.transport, kind, msisdn, metadata)
            .await
    }

    /// Opens a `kind` terminal over `transport` as `msisdn` with a valid token. Its registration
    /// is done when this returns.
    pub async fn open_over(&self, transport: Transport, kind: Kind, msisdn: &str) -> Terminal {
        let bearer = bearer_text(&Self::token(msisdn));
        self.try_open_over(transport, kind, msisdn, &[("authorization", &bearer)])
            .await
            .unwrap_or_else(|s| panic!("opening {kind:?} over {transport:?} as {msisdn}: {s:?}"))
    }

    /// Opens a `kind` terminal over `transport` with these metadata entries; over a WebSocket,
    /// `authorization: Bearer <token>` becomes the subprotocols `Bearer, <token>` and every other
    /// entry (an `authorization` of another form included) a header.
    pub async fn try_open_over(
        &self,
        transport: Transport,
        kind: Kind,
        msisdn: &str,
        metadata: &[(&str, &str)],
    ) -> Result<Terminal, Status> {
        if transport == Transport::WebSocket {
            return self.try_open_websocket(kind, msisdn, metadata).await;
        }
        let (channel, proxy) = self.proxied_channel().await;
        let mut client = WebTerminalServiceClient::new(channel.clone());
        let (tx, rx) = mpsc::channel(64);
        let mut request = tonic::Request::new(ReceiverStream::new(rx));
        for (key, value) in metadata {
            let key = tonic::metadata::MetadataKey::from_bytes(key.as_bytes()).expect("a key");
            request
                .metadata_mut()
                .append(key, value.parse().expect("ASCII metadata"));
        }
        let response = match kind {
            Kind::Pipe => client.pipe(request).await,
            Kind::Multi => client.multi_pipe(request).await,
        }?;
        let number = {
            let mut next = self.next_terminal.lock().unwrap();
            *next += 1;
            *next - 1
        };
        let name = format!("{msisdn} {kind:?}#{number}");
        Ok(Terminal::spawn_grpc(
            name,
            kind,
            msisdn,
            tx,
            response.into_inner(),
            (channel, proxy),
            &self.readers,
        ))
    }

    /// Opens a `kind` rpc as `msisdn` with a valid token whose request messages are `T`, any prost
    /// message (a look-alike of `WebTerminalMessage` can put bytes on the wire that the real type
    /// cannot). Returns the request sender and the terminal, whose own `send` is unusable.
    pub async fn open_raw<T>(&self, kind: Kind, msisdn: &str) -> (mpsc::Sender<T>, Terminal)
    where
        T: prost::Message + Send + Sync + 'static,
    {
        let (channel, proxy) = self.proxied_channel().await;
        let mut grpc = tonic::client::Grpc::new(channel.clone());
        grpc.ready().await.expect("the channel is ready");
        let (tx, rx) = mpsc::channel(64);
        let mut request = tonic::Request::new(ReceiverStream::new(rx));
        request
            .metadata_mut()
            .insert("authorization", bearer(&Self::token(msisdn)));
        let path = match kind {
            Kind::Pipe => "/wgtwo.webterminal.v0.WebTerminalService/Pipe",
            Kind::Multi => "/wgtwo.webterminal.v0.WebTerminalService/MultiPipe",
        };
        let codec = tonic_prost::ProstCodec::<T, WebTerminalMessage>::default();
        let response = grpc
            .streaming(
                request,
                tonic::codegen::http::uri::PathAndQuery::from_static(path),
                codec,
            )
            .await
            .unwrap_or_else(|s| panic!("opening a raw {kind:?} as {msisdn}: {s:?}"));
        let (unused, _) = mpsc::channel(1);
        let mut terminal = Terminal::spawn_grpc(
            format!("{msisdn} raw {kind:?}"),
            kind,
            msisdn,
            unused,
            response.into_inner(),
            (channel, proxy),
            &self.readers,
        );
        terminal.tx = None;
        (tx, terminal)
    }

    /// Opens a `kind` rpc as `msisdn` with a valid token. Its registration is done when this returns.
    pub async fn open(&self, kind: Kind, msisdn: &str) -> Terminal {
        let token = Self::token(msisdn);
        self.try_open_with(kind, msisdn, Some(&bearer_text(&token)))
            .await
            .unwrap_or_else(|s| panic!("opening {kind:?} as {msisdn}: {s:?}"))
    }

    /// Opens a `kind` rpc as `msisdn`, whose number is in no established call: a Pipe's greeting
    /// (`Idle` without call_id) is checked and consumed.
    pub async fn open_idle(&self, kind: Kind, msisdn: &str) -> Terminal {
        let mut t = self.open(kind, msisdn).await;
        if kind == Kind::Pipe {
            t.expect_greeting_idle().await;
        }
        t
    }

    /// Opens a WebSocket terminal (PROTOCOL.md section 11) through a proxy of its own, and waits
    /// until it is registered (a terminal of `msisdn` the operator API did not list before shows),
    /// or its first frame is an error (then returned as the status).
    async fn try_open_websocket(
        &self,
        kind: Kind,
        msisdn: &str,
        metadata: &[(&str, &str)],
    ) -> Result<Terminal, Status> {
        let before = self.terminal_ids(msisdn).await;
        let (proxy, abort) = self.proxy().await;
        let path = match kind {
            Kind::Pipe => "pipe",
            Kind::Multi => "multipipe",
        };
        let mut request =
            tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
                format!("ws://{proxy}/{path}"),
            )
            .unwrap();
        for (key, value) in metadata {
            let bearer = value.split_once(' ').filter(|(scheme, token)| {
                scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()
            });
            if let (true, Some((_, token))) = (*key == "authorization", bearer) {
                request.headers_mut().append(
                    "sec-websocket-protocol",
                    format!("Bearer, {}", token.trim())
                        .parse()
                        .expect("a header value"),
                );
            } else {
                request.headers_mut().append(
                    http::HeaderName::from_bytes(key.as_bytes()).expect("a header name"),
                    value.parse().expect("a header value"),
                );
            }
        }
        let tcp = tokio::net::TcpStream::connect(proxy)
            .await
            .expect("connect");
        let (socket, _response) = tokio_tungstenite::client_async(request, tcp)
            .await
            .unwrap_or_else(|e| panic!("WebSocket upgrade for {msisdn}: {e}"));
        let number = {
            let mut next = self.next_terminal.lock().unwrap();
            *next += 1;
            *next - 1
        };
        let name = format!("{msisdn} WebSocket {kind:?}#{number}");
        let (tx, rx) = mpsc::channel(64);
        let mut terminal =
            Terminal::spawn_websocket(name, kind, msisdn, tx, rx, socket, abort, &self.readers);
        // Registered, or refused: whichever shows first.
        let deadline = tokio::time::Instant::now() + RECV_TIMEOUT;
        loop {
            if let Ok(event) = terminal.events.try_recv() {
                if let Event::End(Err(status)) = event {
                    return Err(status);
                }
                terminal.pending.push_back(event);
                continue;
            }
            let now = self.terminal_ids(msisdn).await;
            if now.iter().any(|id| !before.contains(id)) {
                return Ok(terminal);
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "{}: neither registered nor refused within 5 s",
                    terminal.name
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The ids of `msisdn`'s registered terminals, from the operator API.
    pub async fn terminal_ids(&self, msisdn: &str) -> Vec<String> {
        use webterminal_core::proto::operator::operator_client::OperatorClient;
        use webterminal_core::proto::operator::GetPresenceRequest;
        let token = mint_token(
            SECRET,
            &Msisdn::parse(PROBER).unwrap(),
            webterminal_core::auth::OPERATOR_SCOPE,
            Duration::from_secs(3600),
        );
        let mut request = tonic::Request::new(GetPresenceRequest {
            msisdn: msisdn.to_owned(),
        });
        request
            .metadata_mut()
            .insert("authorization", bearer(&token));
        let mut client = OperatorClient::new(self.operator_channel().await);
        client
            .get_presence(request)
            .await
            .expect("GetPresence")
            .into_inner()
            .terminals
            .into_iter()
            .map(|t| t.terminal_id)
            .collect()
    }

    /// One connection for the harness's operator queries, kept for the core's life.
    async fn operator_channel(&self) -> Channel {
        let mut cached = self.operator.lock().await;
        if cached.is_none() {
            *cached = Some(self.channel().await);
        }
        cached.clone().expect("set above")
    }

    /// A client of the simulated phone network's operator API.
    pub async fn simulator(&self) -> SimulatedPhoneNetworkClient<Channel> {
        SimulatedPhoneNetworkClient::new(self.channel().await)
    }

    pub async fn set_behaviour(&self, msisdn: &str, behaviour: Behaviour) {
        self.simulator()
            .await
            .set_behaviour(SetBehaviourRequest {
                msisdn: msisdn.into(),
                behaviour: behaviour as i32,
            })
            .await
            .expect("SetBehaviour");
    }

    /// `from`'s simulated phone calls `to` (the simulator's `Dial`, PROTOCOL.md 4.11).
    pub async fn dial_from_phone(&self, from: &str, to: &str) {
        self.try_dial_from_phone(from, to).await.expect("Dial");
    }

    /// As [`TestCore::dial_from_phone`], returning the simulator's refusal.
    pub async fn try_dial_from_phone(&self, from: &str, to: &str) -> Result<(), Status> {
        self.simulator()
            .await
            .dial(webterminal_core::proto::simulator::DialRequest {
                from: from.into(),
                to: to.into(),
                data: Default::default(),
            })
            .await
            .map(|_| ())
    }

    /// Answers the call ringing on `msisdn`'s simulated phone.
    pub async fn phone_answer(&self, msisdn: &str) {
        let legs = self
            .simulator()
            .await
            .answer(phone(msisdn))
            .await
            .expect("Answer on the simulated phone")
            .into_inner()
            .legs;
        assert_eq!(legs, 1);
    }

    /// Hangs up every leg of `msisdn`'s simulated phone; returns how many.
    pub async fn phone_hang_up(&self, msisdn: &str) -> u32 {
        self.simulator()
            .await
            .hang_up(phone(msisdn))
            .await
            .expect("HangUp on the simulated phone")
            .into_inner()
            .legs
    }

    /// Asserts `msisdn`'s simulated phone holds no leg (HangUp answers NOT_FOUND).
    pub async fn assert_phone_has_no_leg(&self, msisdn: &str) {
        let status = self
            .simulator()
            .await
            .hang_up(phone(msisdn))
            .await
            .expect_err("the simulated phone should hold no leg");
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
    }

    pub async fn stats(&self) -> DriverStats {
        self.driver.stats().await.expect("the driver is running")
    }

    /// Polls the switch until `want` holds, for at most 5 s.
    pub async fn wait_for_stats(&self, what: &str, want: impl Fn(DriverStats) -> bool) {
        let deadline = tokio::time::Instant::now() + RECV_TIMEOUT;
        loop {
            let stats = self.stats().await;
            if want(stats) {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("{what}: still {stats:?} after 5 s");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Drops every terminal's connection and waits (at most 5 s) until the switch holds no terminal and no
    /// call (PROTOCOL.md section 6: "when every terminal has gone, the core holds no call").
    pub async fn assert_no_calls_left(&self) {
        for reader in self.readers.lock().unwrap().drain(..) {
            reader.abort();
        }
        self.wait_for_stats("after every terminal went", |s| {
            s.terminals == 0 && s.calls == 0
        })
        .await;
    }

    /// Signals shutdown and waits for `serve` to return (within 10 s).
    pub async fn shutdown(&mut self) -> Result<(), ServeError> {
        self.stop.take().expect("not shut down yet").send(()).ok();
        let served = self.served.take().unwrap();
        tokio::time::timeout(Duration::from_secs(10), served)
            .await
            .expect("serve returns within the drain time")
            .expect("serve did not panic")
    }
}

impl Drop for TestCore {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn connect(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("connect to the test core")
}

fn phone(msisdn: &str) -> PhoneRequest {
    PhoneRequest {
        msisdn: msisdn.into(),
    }
}

/// What a terminal's reader task saw.
#[derive(Debug)]
enum Event {
    Message(WebTerminalMessage),
    /// The response stream ended: `Ok` for status OK.
    End(Result<(), Status>),
}

/// One frame from the gateway as an [`Event`] (PROTOCOL.md section 11).
fn frame_event(text: &str) -> Event {
    let value: serde_json::Value = serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("a frame that is not JSON: {e}: {text}"));
    if let Some(result) = value.get("result") {
        let message = serde_json::from_value(result.clone())
            .unwrap_or_else(|e| panic!("a result that is not a WebTerminalMessage: {e}: {text}"));
        return Event::Message(message);
    }
    let error = value
        .get("error")
        .unwrap_or_else(|| panic!("a frame neither result nor error: {text}"));
    let code = error["code"].as_i64().expect("an error code") as i32;
    let message = error["message"].as_str().expect("an error message");
    Event::End(Err(Status::new(Code::from(code), message)))
}

/// What an `Offer` from the core carried.
#[derive(Debug, Clone)]
pub struct Offered {
    pub call_id: String,
    pub sdp: String,
    pub from: String,
    /// The call context (`Offer.data`).
    pub data: std::collections::HashMap<String, String>,
}

/// One open `Pipe` or `MultiPipe`.
pub struct Terminal {
    pub name: String,
    pub kind: Kind,
    pub msisdn: String,
    tx: Option<mpsc::Sender<WebTerminalMessage>>,
    events: mpsc::UnboundedReceiver<Event>,
    /// Events taken from `events` before the test asked for them.
    pending: std::collections::VecDeque<Event>,
    reader: AbortHandle,
    proxy: AbortHandle,
    /// Keeps the connection's client alive as long as the terminal (gRPC).
    _channel: Option<Channel>,
}

impl Terminal {
    /// A terminal whose events `task` reads into `events` (the reader is ended with the core's
    /// other readers).
    #[allow(clippy::too_many_arguments)]
    fn assemble(
        name: String,
        kind: Kind,
        msisdn: &str,
        tx: mpsc::Sender<WebTerminalMessage>,
        events: mpsc::UnboundedReceiver<Event>,
        task: JoinHandle<()>,
        proxy: AbortHandle,
        readers: &Arc<Mutex<Vec<AbortHandle>>>,
        channel: Option<Channel>,
    ) -> Terminal {
        let reader = task.abort_handle();
        readers.lock().unwrap().push(reader.clone());
        Terminal {
            name,
            kind,
            msisdn: msisdn.to_owned(),
            tx: Some(tx),
            events,
            pending: Default::default(),
            reader,
            proxy,
            _channel: channel,
        }
    }

    fn spawn_grpc(
        name: String,
        kind: Kind,
        msisdn: &str,
        tx: mpsc::Sender<WebTerminalMessage>,
        mut stream: Streaming<WebTerminalMessage>,
        (channel, proxy): (Channel, AbortHandle),
        readers: &Arc<Mutex<Vec<AbortHandle>>>,
    ) -> Terminal {
        let (events_tx, events) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                let event = match stream.message().await {
                    Ok(Some(m)) => Event::Message(m),
                    Ok(None) => Event::End(Ok(())),
                    Err(status) => Event::End(Err(status)),
                };
                if !forward(&events_tx, event) {
                    return;
                }
            }
        });
        Self::assemble(
            name,
            kind,
            msisdn,
            tx,
            events,
            task,
            proxy,
            readers,
            Some(channel),
        )
    }

    /// A terminal on a WebSocket: one task writes each message sent as a protobuf JSON text frame
    /// and reads the core's frames, `{"result": ...}` as messages, `{"error": ...}` as the end
    /// with that status, a close frame (without an error) as the end with status OK. A WebSocket
    /// has no half-close: dropping the sender only stops sending.
    #[allow(clippy::too_many_arguments)]
    fn spawn_websocket(
        name: String,
        kind: Kind,
        msisdn: &str,
        tx: mpsc::Sender<WebTerminalMessage>,
        mut rx: mpsc::Receiver<WebTerminalMessage>,
        socket: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
        proxy: AbortHandle,
        readers: &Arc<Mutex<Vec<AbortHandle>>>,
    ) -> Terminal {
        use futures_util::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message as Frame;
        let (events_tx, events) = mpsc::unbounded_channel();
        let (mut sink, mut stream) = socket.split();
        let task = tokio::spawn(async move {
            let mut sending = true;
            loop {
                let event = tokio::select! {
                    out = rx.recv(), if sending => {
                        match out {
                            Some(message) => {
                                let text = serde_json::to_string(&message).expect("JSON");
                                if sink.send(Frame::text(text)).await.is_err() {
                                    Event::End(Err(Status::unavailable("the WebSocket failed")))
                                } else {
                                    continue;
                                }
                            }
                            None => {
                                sending = false;
                                continue;
                            }
                        }
                    }
                    frame = stream.next() => match frame {
                        Some(Ok(Frame::Text(text))) => frame_event(&text),
                        Some(Ok(Frame::Close(_))) | None => Event::End(Ok(())),
                        Some(Ok(_)) => continue,
                        Some(Err(e)) => Event::End(Err(Status::unavailable(format!("the WebSocket failed: {e}")))),
                    },
                };
                if !forward(&events_tx, event) {
                    return;
                }
            }
        });
        Self::assemble(name, kind, msisdn, tx, events, task, proxy, readers, None)
    }

    /// The next event: one taken early, or the next from the reader task.
    async fn next_event(
        &mut self,
        within: Duration,
    ) -> Result<Option<Event>, tokio::time::error::Elapsed> {
        if let Some(event) = self.pending.pop_front() {
            return Ok(Some(event));
        }
        tokio::time::timeout(within, self.events.recv()).await
    }

    /// Sends one message on the request stream.
    pub async fn send(&self, message: WebTerminalMessage) {
        self.tx
            .as_ref()
            .unwrap_or_else(|| panic!("{}: sending after half-close", self.name))
            .send(message)
            .await
            .unwrap_or_else(|_| panic!("{}: the request stream is gone", self.name));
    }

    /// Ends the request stream (a half-close); the response stream stays open.
    pub fn half_close(&mut self) {
        self.tx = None;
    }

    /// Cancels the rpc (HTTP/2 RST_STREAM): drops the response stream and the request stream; the
    /// connection stays up.
    pub fn cancel(self) {
        self.reader.abort();
    }

    /// Drops the terminal's TCP connection, as a browser tab that loses its network does.
    pub fn drop_connection(self) {
        self.proxy.abort();
        self.reader.abort();
    }

    /// The next message, within 5 s; panics with what came instead.
    pub async fn recv(&mut self) -> WebTerminalMessage {
        match self.next_event(RECV_TIMEOUT).await {
            Err(_) => panic!("{}: no message within {RECV_TIMEOUT:?}", self.name),
            Ok(None) => panic!("{}: the reader task stopped (rpc cancelled)", self.name),
            Ok(Some(Event::Message(m))) => m,
            Ok(Some(Event::End(end))) => {
                panic!(
                    "{}: expected a message, but the stream ended with {end:?}",
                    self.name
                )
            }
        }
    }

    /// Asserts nothing arrives (and the stream does not end) for `window`.
    pub async fn expect_silent(&mut self, window: Duration) {
        if let Ok(event) = self.next_event(window).await {
            panic!("{}: expected silence, got {event:?}", self.name);
        }
    }

    /// The end of the response stream, within 5 s: `Ok` for status OK, else the status.
    pub async fn expect_end(&mut self) -> Result<(), Status> {
        match self.next_event(RECV_TIMEOUT).await {
            Err(_) => panic!("{}: the stream did not end within 5 s", self.name),
            Ok(None) => panic!("{}: the reader task stopped (rpc cancelled)", self.name),
            Ok(Some(Event::Message(m))) => {
                panic!("{}: expected the end of the stream, got {m:?}", self.name)
            }
            Ok(Some(Event::End(end))) => end,
        }
    }

    /// Asserts the stream ends with status OK.
    pub async fn expect_end_ok(&mut self) {
        let end = self.expect_end().await;
        assert!(
            end.is_ok(),
            "{}: the stream should end with status OK, got {end:?}",
            self.name
        );
    }

    // ----- one expectation per message type -----

    /// A Pipe's greeting on open, or its `Idle` when no established call is left: `Idle` with no
    /// call_id.
    pub async fn expect_greeting_idle(&mut self) {
        let m = self.recv().await;
        assert_eq!(
            m.message,
            Some(Message::Idle(Default::default())),
            "{}: expected Idle, got {m:?}",
            self.name
        );
        assert_eq!(
            m.call_id, "",
            "{}: a Pipe's Idle carries no call_id",
            self.name
        );
    }

    /// `Idle` when the call `call_id` ended: a MultiPipe's carries the id, a Pipe's none.
    pub async fn expect_idle(&mut self, call_id: &str) {
        let m = self.recv().await;
        assert_eq!(
            m.message,
            Some(Message::Idle(Default::default())),
            "{}: expected Idle, got {m:?}",
            self.name
        );
        match self.kind {
            Kind::Pipe => assert_eq!(m.call_id, "", "{}: Pipe Idle has no call_id", self.name),
            Kind::Multi => assert_eq!(m.call_id, call_id, "{}: Idle's call_id", self.name),
        }
    }

    /// `InCall{peer}` with `call_id`.
    pub async fn expect_in_call(&mut self, call_id: &str, peer: &str) {
        let m = self.recv().await;
        match &m.message {
            Some(Message::InCall(in_call)) => {
                assert_eq!(
                    in_call.msisdn.as_ref().map(|n| n.e164.as_str()),
                    Some(peer),
                    "{}: InCall's msisdn",
                    self.name
                );
            }
            _ => panic!("{}: expected InCall, got {m:?}", self.name),
        }
        assert_eq!(m.call_id, call_id, "{}: InCall's call_id", self.name);
    }

    /// `InCall{peer}`; returns its call_id.
    pub async fn expect_any_in_call(&mut self, peer: &str) -> String {
        let m = self.recv().await;
        match &m.message {
            Some(Message::InCall(in_call)) => assert_eq!(
                in_call.msisdn.as_ref().map(|n| n.e164.as_str()),
                Some(peer),
                "{}: InCall's msisdn",
                self.name
            ),
            _ => panic!("{}: expected InCall, got {m:?}", self.name),
        }
        assert!(is_uuid(&m.call_id), "{}: {m:?}", self.name);
        m.call_id
    }

    /// An `Offer`; its call_id is a UUID.
    pub async fn expect_offer(&mut self) -> Offered {
        let m = self.recv().await;
        let Some(Message::Offer(offer)) = m.message else {
            panic!("{}: expected Offer, got {m:?}", self.name);
        };
        assert!(
            is_uuid(&m.call_id),
            "{}: Offer's call_id {:?} is a UUID",
            self.name,
            m.call_id
        );
        Offered {
            call_id: m.call_id,
            sdp: offer.sdp,
            from: offer
                .msisdn
                .unwrap_or_else(|| panic!("{}: an Offer from the core has msisdn", self.name))
                .e164,
            data: offer.data,
        }
    }

    /// An `Offer` of `sdp` (byte for byte) from `from`; returns its call_id.
    pub async fn expect_offer_of(&mut self, sdp: &str, from: &str) -> String {
        let offered = self.expect_offer().await;
        assert!(
            offered.sdp == sdp,
            "{}: the offered SDP must be relayed byte for byte",
            self.name
        );
        assert_eq!(offered.from, from, "{}: Offer's msisdn", self.name);
        offered.call_id
    }

    /// `Ringing`; returns its call_id.
    pub async fn expect_ringing(&mut self) -> String {
        let m = self.recv().await;
        assert_eq!(
            m.message,
            Some(Message::Ringing(Ringing {})),
            "{}: expected Ringing, got {m:?}",
            self.name
        );
        m.call_id
    }

    /// `Answer`; returns (call_id, sdp).
    pub async fn expect_answer(&mut self) -> (String, String) {
        let m = self.recv().await;
        let Some(Message::Answer(answer)) = m.message else {
            panic!("{}: expected Answer, got {m:?}", self.name);
        };
        (m.call_id, answer.sdp)
    }

    /// `Answer` of `sdp` (byte for byte) on `call_id`.
    pub async fn expect_answer_of(&mut self, call_id: &str, sdp: &str) {
        let (id, got) = self.expect_answer().await;
        assert_eq!(id, call_id, "{}: Answer's call_id", self.name);
        assert!(
            got == sdp,
            "{}: the answer SDP must be relayed byte for byte",
            self.name
        );
    }

    /// `Bye{reason}`; returns its call_id.
    pub async fn expect_bye(&mut self, reason: Reason) -> String {
        let m = self.recv().await;
        match &m.message {
            Some(Message::Bye(b)) => assert_eq!(
                bye::Reason::try_from(b.reason),
                Ok(reason),
                "{}: Bye's reason",
                self.name
            ),
            _ => panic!("{}: expected Bye{{{reason:?}}}, got {m:?}", self.name),
        }
        m.call_id
    }

    /// `Bye{reason}` on `call_id`.
    pub async fn expect_bye_on(&mut self, call_id: &str, reason: Reason) {
        let id = self.expect_bye(reason).await;
        assert_eq!(id, call_id, "{}: Bye's call_id", self.name);
    }

    /// `Error{code}` carrying `call_id` (that of the message it answers) and a message; returns the
    /// message.
    pub async fn expect_error(&mut self, code: error::Code, call_id: &str) -> String {
        let m = self.recv().await;
        let Some(Message::Error(e)) = &m.message else {
            panic!("{}: expected Error{{{code:?}}}, got {m:?}", self.name);
        };
        assert_eq!(
            error::Code::try_from(e.err),
            Ok(code),
            "{}: Error's code ({:?})",
            self.name,
            e.message
        );
        assert_eq!(
            m.call_id, call_id,
            "{}: an Error carries the call_id of the message it answers",
            self.name
        );
        assert!(
            !e.message.is_empty(),
            "{}: Error.message explains",
            self.name
        );
        e.message.clone()
    }

    // ----- steps of a call, with the ids a terminal of this kind uses -----

    /// The call_id this terminal puts on a new call: a fresh UUID on MultiPipe, none on a Pipe.
    pub fn new_call_id(&self) -> String {
        match self.kind {
            Kind::Pipe => String::new(),
            Kind::Multi => uuid(),
        }
    }

    /// Places a call to `to` offering `sdp`; returns the call_id sent.
    pub async fn dial(&self, to: &str, sdp: &str) -> String {
        let id = self.new_call_id();
        self.send(msg::offer(&id, sdp, to)).await;
        id
    }

    /// Asserts `got` is the id of the call placed with `sent`: the same on MultiPipe, one the core
    /// made (a UUID) on a Pipe.
    pub fn assert_own_call_id(&self, sent: &str, got: &str) {
        match self.kind {
            Kind::Multi => assert_eq!(got, sent, "{}: the call keeps the terminal's id", self.name),
            Kind::Pipe => assert!(
                is_uuid(got),
                "{}: a Pipe's call gets an id made by the core, got {got:?}",
                self.name
            ),
        }
    }
}

/// `a` calls `b`'s number; `b` (its only device that answers) rings and answers. Returns
/// (a's call_id, b's call_id). Offer and Answer are checked byte for byte.
pub async fn establish(a: &mut Terminal, b: &mut Terminal) -> (String, String) {
    establish_with(a, b, &chromium_offer(), &chromium_answer()).await
}

pub async fn establish_with(
    a: &mut Terminal,
    b: &mut Terminal,
    offer: &str,
    answer: &str,
) -> (String, String) {
    let sent = a.dial(&b.msisdn, offer).await;
    let b_id = b.expect_offer_of(offer, &a.msisdn.clone()).await;
    b.send(msg::ringing(&b_id)).await;
    let a_id = a.expect_ringing().await;
    a.assert_own_call_id(&sent, &a_id);
    assert_ne!(a_id, b_id, "each side has its own id");
    b.send(msg::answer(&b_id, answer)).await;
    a.expect_answer_of(&a_id, answer).await;
    (a_id, b_id)
}

/// Half-closes `t` and waits until the core has seen it: a probe terminal calls `t`'s number until
/// the call is refused with `Bye{BUSY}` (a half-closed terminal is offered no new call, section 5).
/// Needs `PhoneNetworkKind::None` and `t` the number's only eligible terminal.
pub async fn half_close_and_confirm(core: &TestCore, t: &mut Terminal) {
    t.half_close();
    let mut prober = core.open(Kind::Multi, PROBER).await;
    let to = t.msisdn.clone();
    for _ in 0..50 {
        let id = uuid();
        prober.send(msg::offer(&id, &chromium_offer(), &to)).await;
        tokio::select! {
            m = prober.recv() => {
                assert_eq!(
                    m.message,
                    Some(Message::Bye(Bye { reason: Reason::Busy as i32 })),
                    "probing {to}: {m:?}"
                );
                prober.cancel();
                return;
            }
            offered = t.expect_offer() => {
                // Not seen yet: withdraw the probe call.
                prober.send(msg::bye(&id)).await;
                t.expect_bye_on(&offered.call_id, Reason::Cancelled).await;
            }
        }
    }
    panic!("{}: the core never saw the half-close", t.name);
}

/// `t` (not in a call, no phone network) can still place a call: one to [`NOBODY`] is answered
/// `Bye{UNAVAILABLE}` on the call's id.
pub async fn assert_still_usable(t: &mut Terminal) {
    let sent = t.dial(NOBODY, &chromium_offer()).await;
    let id = t.expect_bye(Reason::Unavailable).await;
    t.assert_own_call_id(&sent, &id);
}

/// Hands `event` to the terminal's queue; `false` once the reader should stop (the event was the
/// end, or nobody listens any more).
fn forward(events: &mpsc::UnboundedSender<Event>, event: Event) -> bool {
    let end = matches!(event, Event::End(_));
    events.send(event).is_ok() && !end
}
