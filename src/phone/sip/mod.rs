//! A SIP trunk as the phone network (PROTOCOL.md section 13): calls to phones go out as INVITEs to
//! one trunk (a carrier, a PBX, an IMS), and INVITEs from the trunk's allowed sources are calls from
//! phones (4.11).
//!
//! [`mapping`] holds the rules, as pure functions; [`trunk`] applies them over the rsipstack
//! transaction and dialog layers, on UDP. What it carries: calls both ways with their ringing,
//! answer, rejection and hangup, call context as `X-` headers, loop refusal (482), OPTIONS pings
//! with the trunk's health ([`TRUNK_DOWN`], `webterminal_sip_trunk_up`), SIP message counts,
//! re-offers both ways on an answered leg (re-INVITE, an UPDATE accepted, 491 on glare), handover
//! and transfer to a phone as a delayed-offer INVITE answered in the ACK ([`socket`] holds that
//! ACK back until the answer is known; [`wire`] the text rules), and with `--rtpengine` each leg's
//! media anchored in rtpengine ([`media`] the rules, [`rtpengine`] the ng client), digest
//! credentials for challenged INVITEs and a registration kept fresh ([`SipCredential`],
//! `--sip-register`), and bad input refused before the stack ([`screen`]). Not yet: early media,
//! PRACK, session timers, TCP.

pub mod mapping;
pub mod media;
pub mod rtpengine;
pub mod screen;
pub mod socket;
pub mod trunk;
pub mod wire;

pub use mapping::Cidr;
pub use trunk::SipTrunk;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// The default `--sip-listen`: every address, port 5060 (UDP).
pub const DEFAULT_SIP_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 5060);

/// The default `--sip-options-interval`: an OPTIONS ping of the trunk every 30 s.
pub const DEFAULT_OPTIONS_INTERVAL: Duration = Duration::from_secs(30);

/// The `/readyz` reason ([`crate::telemetry::health::NotReady::Down`]) while the trunk does not answer
/// its OPTIONS pings.
pub const TRUNK_DOWN: &str = "sip_trunk_down";

/// How the SIP trunk is set up (PROTOCOL.md section 13 flags).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SipConfig {
    /// Where the trunk receives and sends SIP, over UDP (`--sip-listen`; port 0: any free port).
    /// Default [`DEFAULT_SIP_LISTEN`].
    pub listen: SocketAddr,
    /// Where calls to phones go (`--sip-trunk`), a `sip:` URI such as
    /// `sip:127.0.0.1:5090;transport=udp`; each call's Request-URI is it with the callee's number as
    /// user part.
    pub trunk: String,
    /// Who may send INVITEs (`--sip-allow`); when empty, the trunk's own address (its host, resolved
    /// at start when it is a name).
    pub allow: Vec<Cidr>,
    /// How often the trunk is pinged with OPTIONS (`--sip-options-interval`, PROTOCOL.md section
    /// 13); [`Duration::ZERO`]: never, and the trunk is taken as up. Default
    /// [`DEFAULT_OPTIONS_INTERVAL`].
    pub options_interval: Duration,
    /// A socket already bound to `listen` ([`SipConfig::bind`]), used instead of binding at start.
    pub socket: Option<BoundSocket>,
    /// rtpengine's ng control socket (`--rtpengine`, UDP): every SIP leg's media is anchored there
    /// ([`media`]). `None`: SDP passes through unchanged.
    pub rtpengine: Option<SocketAddr>,
    /// Digest credentials (`--sip-username`, `--sip-password`, RFC 3261 section 22, RFC 2617): an
    /// INVITE the trunk challenges with 401 or 407 is sent again once with them. `None`: a
    /// challenged call fails as the status maps (401/407 → `UNAVAILABLE`).
    pub credential: Option<SipCredential>,
    /// Also REGISTER [`SipConfig::credential`] with the trunk (`--sip-register`) and keep the
    /// registration fresh (at 75 % of the expiry the trunk grants; after a failure 1 s doubling to
    /// 60 s). Needs a credential ([`SipConfigError::Register`]).
    pub register: bool,
    /// New INVITEs a second from one IP address (`--sip-invites-per-second`, a burst of twice as
    /// many; 0: no limit); more get 503 with `Retry-After` ([`screen`]). Default
    /// [`screen::DEFAULT_INVITES_PER_SECOND`].
    pub invites_per_second: u32,
}

/// The trunk's digest credentials: a user name and its password. The password is never printed
/// (`Debug` shows `REDACTED`).
#[derive(Clone, PartialEq, Eq)]
pub struct SipCredential {
    /// The user name: the digest user name and the user part of the registered address of record.
    pub username: String,
    /// The password.
    pub password: String,
}

impl fmt::Debug for SipCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SipCredential")
            .field("username", &self.username)
            .field("password", &"REDACTED")
            .finish()
    }
}

/// Why a SIP trunk configuration is refused at startup.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SipConfigError {
    /// `--sip-trunk` does not parse as a `sip:` URI with a host.
    #[error("--sip-trunk {uri:?} is not a sip: URI with a host (e.g. sip:192.0.2.1:5060): {why}")]
    Trunk {
        /// The value given.
        uri: String,
        /// What is wrong with it.
        why: String,
    },
    /// `--sip-register` without `--sip-username` and `--sip-password`.
    #[error(
        "--sip-register needs --sip-username and --sip-password (the credentials to register)"
    )]
    Register,
}

impl SipConfig {
    /// A trunk to `trunk` (validated), listening on [`DEFAULT_SIP_LISTEN`], INVITEs allowed from the
    /// trunk's own address.
    ///
    /// # Errors
    /// [`SipConfigError::Trunk`] when `trunk` is not a `sip:` URI with a host.
    pub fn new(trunk: &str) -> Result<SipConfig, SipConfigError> {
        trunk::parse_trunk_uri(trunk).map_err(|why| SipConfigError::Trunk {
            uri: trunk.to_owned(),
            why,
        })?;
        Ok(SipConfig {
            listen: DEFAULT_SIP_LISTEN,
            trunk: trunk.to_owned(),
            allow: Vec::new(),
            options_interval: DEFAULT_OPTIONS_INTERVAL,
            socket: None,
            rtpengine: None,
            credential: None,
            register: false,
            invites_per_second: screen::DEFAULT_INVITES_PER_SECOND,
        })
    }

    /// Checks what one flag cannot: registering needs a credential.
    ///
    /// # Errors
    /// [`SipConfigError::Register`] when [`SipConfig::register`] is set without
    /// [`SipConfig::credential`].
    pub fn validate(&self) -> Result<(), SipConfigError> {
        if self.register && self.credential.is_none() {
            return Err(SipConfigError::Register);
        }
        Ok(())
    }

    /// Binds the UDP socket for [`SipConfig::listen`] now, so that a bind failure is a startup error
    /// and the port chosen for port 0 is known before the trunk starts. Returns the bound address.
    ///
    /// # Errors
    /// The bind's I/O error (address in use, not permitted).
    pub fn bind(&mut self) -> std::io::Result<SocketAddr> {
        let socket = std::net::UdpSocket::bind(self.listen)?;
        let local = socket.local_addr()?;
        self.socket = Some(BoundSocket(Arc::new(socket)));
        Ok(local)
    }
}

/// A UDP socket bound ahead of the trunk's start; clones share it. Equal only to its own clones.
#[derive(Clone)]
pub struct BoundSocket(Arc<std::net::UdpSocket>);

impl BoundSocket {
    /// A handle of its own on the socket (a duplicated descriptor).
    fn duplicate(&self) -> std::io::Result<std::net::UdpSocket> {
        self.0.try_clone()
    }
}

impl PartialEq for BoundSocket {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for BoundSocket {}

impl fmt::Debug for BoundSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.local_addr() {
            Ok(addr) => write!(f, "BoundSocket(udp {addr})"),
            Err(_) => f.write_str("BoundSocket(udp)"),
        }
    }
}
