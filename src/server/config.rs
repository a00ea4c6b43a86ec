//! What the server is configured with ([`ServerConfig`]) and its defaults: listen address, limits,
//! rates, keepalives, TLS files, token policy, records, routing file and notifications.

pub use crate::auth::TokenPolicy;
use crate::core::SwitchConfig;
use crate::driver;
pub use crate::driver::event_hub::EventLimits;
pub use crate::edge::gateway::{Keepalive, KEEPALIVE_INTERVAL, KEEPALIVE_TIMEOUT};
pub use crate::edge::listener::ConnectionLimits;
use crate::edge::rate_limit;
pub use crate::edge::softphone::DemoTokens;
use crate::notifications::NotificationsConfig;
use crate::records::RecordsConfig;
use crate::telemetry::health;
use crate::wire;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// Default largest gRPC message a client may send, in bytes (256 KiB). A larger message fails the rpc
/// with `RESOURCE_EXHAUSTED`; fields inside smaller messages have their own limits ([`wire::Limits`]).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// Default bound on a graceful shutdown (PROTOCOL.md 4.9): 5 s.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Default listen address: loopback only, port 50051.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 50051);

/// Which phone network the server attaches (PROTOCOL.md section 7).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum PhoneNetworkKind {
    /// The simulated network: every E.164 number has a simulated phone, controlled through the
    /// `webterminal.core.v1.SimulatedPhoneNetwork` service served next to the WebTerminal API.
    #[default]
    Sim,
    /// No phone network: numbers without terminals are unavailable and ToPhone fails.
    None,
    /// A SIP trunk (PROTOCOL.md section 13): calls to phones go to the trunk as INVITEs, and INVITEs
    /// from its allowed sources are calls from phones.
    Sip(crate::phone::sip::SipConfig),
}

/// Everything [`serve`](super::serve) needs. [`ServerConfig::new`] gives the defaults.
#[derive(Clone)]
pub struct ServerConfig {
    /// Where the CLI binds its listener. [`serve`](super::serve) itself serves on the listener it is given.
    /// Default [`DEFAULT_LISTEN`].
    pub listen: SocketAddr,
    /// Timers and limits of the switch. `phone_network` is overridden by
    /// [`ServerConfig::phone_network`].
    pub switch: SwitchConfig,
    /// The HS256 secret access tokens may be signed with (see [`auth`](crate::auth)). Empty: no HS256 token is
    /// accepted (only the keys of [`ServerConfig::tokens`]).
    pub jwt_secret: Vec<u8>,
    /// Which phone network to attach. Default [`PhoneNetworkKind::Sim`].
    pub phone_network: PhoneNetworkKind,
    /// Largest gRPC message accepted from a client, in bytes. Default [`DEFAULT_MAX_MESSAGE_BYTES`].
    pub max_message_bytes: usize,
    /// Largest SDP accepted, in bytes. Default [`wire::DEFAULT_MAX_SDP_BYTES`].
    pub max_sdp_bytes: usize,
    /// Capacity of each terminal's outbound queue, in messages; a terminal that lets it fill is
    /// dropped as a slow consumer, its rpc ending with `RESOURCE_EXHAUSTED`. `None` (the default):
    /// sized from the message rate limit, [`driver::outbound_queue_for`]`(messages_per_second)`, so
    /// that the answers to a full burst of messages fit.
    pub outbound_queue: Option<usize>,
    /// How long a graceful shutdown may take before the remaining connections are dropped.
    /// Default [`DEFAULT_DRAIN_TIMEOUT`].
    pub drain_timeout: Duration,
    /// TLS for the listener (rustls), gRPC and WebSockets alike. `None`: plaintext HTTP/2 and
    /// HTTP/1.1, the loopback default.
    pub tls: Option<TlsFiles>,
    /// How access tokens are verified besides the HS256 secret (RS256/ES256 keys, JWKS, issuer and
    /// audience checks).
    pub tokens: TokenPolicy,
    /// Each terminal's message budget: a token bucket refilled at this many messages per second,
    /// holding twice as many. A message over it gets `Error{RATE_LIMIT_HIT}` and is dropped
    /// (PROTOCOL.md section 6). Default [`DEFAULT_MESSAGES_PER_SECOND`].
    pub messages_per_second: u32,
    /// Each terminal's budget of new call attempts (Offers with a number), as above.
    /// Default [`DEFAULT_CALL_ATTEMPTS_PER_SECOND`].
    pub call_attempts_per_second: u32,
    /// Each number's message budget, shared by all its terminals and kept across reconnects, as
    /// above. `None` (the default): [`NUMBER_MESSAGES_PER_TERMINAL_MESSAGES`] times
    /// [`ServerConfig::messages_per_second`] (500 a second with the defaults).
    pub messages_per_second_per_number: Option<u32>,
    /// Each number's budget of new call attempts, shared by all its terminals and kept across
    /// reconnects, as above. `None` (the default): [`ServerConfig::call_attempts_per_second`] (one
    /// subscriber's budget, as for one terminal: 10 a second with the defaults).
    pub call_attempts_per_second_per_number: Option<u32>,
    /// New calls one number may make to one other number a second (burst: twice as many), as
    /// above: no subscriber is rung more often by one caller. `None` (the default): the per-number
    /// attempt rate, so that it bites when that is raised explicitly (a dialler).
    pub offers_per_second_per_callee: Option<u32>,
    /// Caps on connections and deadlines for silent and idle ones ([`listener`](crate::edge::listener)).
    pub connections: ConnectionLimits,
    /// The operator API's event buffers (PROTOCOL.md section 8).
    pub events: EventLimits,
    /// Where call records are kept (PROTOCOL.md section 9). Default [`RecordsConfig::None`]:
    /// none (the CLI's default is a SQLite file in the core's data directory).
    pub records: RecordsConfig,
    /// The routing file (PROTOCOL.md section 10): its groups route calls from the start, and it is
    /// read again on every SIGHUP ([`routing_file`](super::routing_file)). `None` (the default): no groups; calls ring
    /// the number dialled unless [`Exchange::set_router`](super::Exchange::set_router) installs a router.
    pub routing: Option<std::path::PathBuf>,
    /// Where answered group calls are announced (PROTOCOL.md section 10, `--redis`). Default
    /// `None`: nowhere.
    pub notifications: Option<NotificationsConfig>,
    /// Keepalive pings, HTTP/2 and WebSocket: their interval and how long one may go unanswered
    /// before the peer is dropped. Default [`KEEPALIVE_INTERVAL`], [`KEEPALIVE_TIMEOUT`].
    pub keepalive: Keepalive,
    /// Origins (`scheme://host[:port]`) besides the core's own whose pages may open a WebSocket
    /// with the `token` cookie (PROTOCOL.md section 11, [`gateway`](crate::edge::gateway)). Default: none.
    pub allowed_origins: Vec<String>,
    /// The demo token endpoint of the softphone page ([`demo_router`](crate::edge::softphone::demo_router)): `Some` only when
    /// [`ServerConfig::jwt_secret`] is a demo secret the server made and keeps itself (the CLI's
    /// `serve` without `--jwt-secret`), since whoever reaches the listener may then mint a token for
    /// any number. Default `None`: off.
    pub demo_tokens: Option<DemoTokens>,
    /// The health `GET /healthz` and `GET /readyz` report ([`health`]); [`serve`](super::serve)
    /// marks it draining when shutdown begins. Share a clone with
    /// [`metrics::install`](crate::telemetry::metrics::install) to serve the same health on the metrics port.
    pub health: health::Health,
}

/// Default per-terminal message rate, in messages per second (burst: twice as many).
pub const DEFAULT_MESSAGES_PER_SECOND: u32 = 100;

/// Default per-terminal rate of new call attempts, per second (burst: twice as many).
pub const DEFAULT_CALL_ATTEMPTS_PER_SECOND: u32 = 10;

/// The default per-number message rate is this many times the per-terminal one: room for several
/// terminals each sending keepalives, far below a flood (500 a second with the defaults).
pub const NUMBER_MESSAGES_PER_TERMINAL_MESSAGES: u32 = 5;

/// The certificate chain and private key a TLS listener presents, as PEM files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first.
    pub cert: std::path::PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: std::path::PathBuf,
}

impl ServerConfig {
    /// The defaults, with tokens signed by `jwt_secret`.
    pub fn new(jwt_secret: impl Into<Vec<u8>>) -> Self {
        ServerConfig {
            listen: DEFAULT_LISTEN,
            switch: SwitchConfig::default(),
            jwt_secret: jwt_secret.into(),
            phone_network: PhoneNetworkKind::Sim,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_sdp_bytes: wire::DEFAULT_MAX_SDP_BYTES,
            outbound_queue: None,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            tls: None,
            tokens: TokenPolicy::default(),
            messages_per_second: DEFAULT_MESSAGES_PER_SECOND,
            call_attempts_per_second: DEFAULT_CALL_ATTEMPTS_PER_SECOND,
            messages_per_second_per_number: None,
            call_attempts_per_second_per_number: None,
            offers_per_second_per_callee: None,
            connections: ConnectionLimits::default(),
            health: health::Health::new(),
            events: EventLimits::default(),
            records: RecordsConfig::None,
            routing: None,
            notifications: None,
            keepalive: Keepalive::default(),
            allowed_origins: Vec::new(),
            demo_tokens: None,
        }
    }

    /// The rate limits of [`rate_limit`] in force: as configured, the unset per-number and
    /// per-callee ones derived from the per-terminal ones (so that raising or lifting a terminal's
    /// limit does not leave a stricter per-number one behind it).
    pub fn rate_limits(&self) -> rate_limit::RateLimits {
        let attempts_per_number = self
            .call_attempts_per_second_per_number
            .unwrap_or(self.call_attempts_per_second);
        rate_limit::RateLimits {
            messages_per_second: self.messages_per_second,
            call_attempts_per_second: self.call_attempts_per_second,
            messages_per_second_per_number: self.messages_per_second_per_number.unwrap_or(
                self.messages_per_second
                    .saturating_mul(NUMBER_MESSAGES_PER_TERMINAL_MESSAGES),
            ),
            call_attempts_per_second_per_number: attempts_per_number,
            offers_per_second_per_callee: self
                .offers_per_second_per_callee
                .unwrap_or(attempts_per_number),
        }
    }

    /// The outbound queue capacity in force: [`ServerConfig::outbound_queue`], or sized from the
    /// message rate limit.
    pub fn outbound_queue_capacity(&self) -> usize {
        self.outbound_queue
            .unwrap_or_else(|| driver::outbound_queue_for(self.messages_per_second))
    }
}

impl fmt::Debug for ServerConfig {
    /// Never prints the secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("listen", &self.listen)
            .field("switch", &self.switch)
            .field("jwt_secret", &"<redacted>")
            .field("phone_network", &self.phone_network)
            .field("max_message_bytes", &self.max_message_bytes)
            .field("max_sdp_bytes", &self.max_sdp_bytes)
            .field("outbound_queue", &self.outbound_queue)
            .field("drain_timeout", &self.drain_timeout)
            .field("tls", &self.tls)
            .field("tokens", &self.tokens)
            .field("messages_per_second", &self.messages_per_second)
            .field("call_attempts_per_second", &self.call_attempts_per_second)
            .field(
                "messages_per_second_per_number",
                &self.messages_per_second_per_number,
            )
            .field(
                "call_attempts_per_second_per_number",
                &self.call_attempts_per_second_per_number,
            )
            .field(
                "offers_per_second_per_callee",
                &self.offers_per_second_per_callee,
            )
            .field("connections", &self.connections)
            .field("events", &self.events)
            .field("records", &self.records)
            .field("notifications", &self.notifications)
            .field("keepalive", &self.keepalive)
            .field("allowed_origins", &self.allowed_origins)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"server test secret";

    #[test]
    fn per_number_limits_follow_the_per_terminal_ones_unless_set() {
        let mut config = ServerConfig::new(SECRET);
        let limits = config.rate_limits();
        assert_eq!(
            (
                limits.messages_per_second,
                limits.call_attempts_per_second,
                limits.messages_per_second_per_number,
                limits.call_attempts_per_second_per_number,
                limits.offers_per_second_per_callee
            ),
            (100, 10, 500, 10, 10)
        );
        assert_eq!(config.outbound_queue_capacity(), 456);
        config.messages_per_second = 0;
        config.call_attempts_per_second = 0;
        assert_eq!(config.rate_limits(), rate_limit::RateLimits::UNLIMITED);
        assert_eq!(config.outbound_queue_capacity(), 256);
        config.call_attempts_per_second_per_number = Some(100);
        config.offers_per_second_per_callee = Some(1);
        let limits = config.rate_limits();
        assert_eq!(limits.call_attempts_per_second_per_number, 100);
        assert_eq!(limits.offers_per_second_per_callee, 1);
    }
}
