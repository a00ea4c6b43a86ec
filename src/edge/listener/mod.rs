//! The connection edge: what a TCP connection may cost before it is any use (docs/SECURITY.md,
//! "Holding up under bad clients").
//!
//! [`Incoming`] wraps tonic's [`TcpIncoming`](tonic::transport::server::TcpIncoming) (which sets `TCP_NODELAY` and TCP keepalive) and adds:
//!
//! - **caps** on open connections, in total and per source address: a connection over a cap is
//!   closed as soon as it is accepted (the newest goes; the ones already open are kept);
//! - **a back-off on accept errors** that name an exhausted resource (`EMFILE`, `ENFILE`, `ENOBUFS`,
//!   `ENOMEM`): the accept loop sleeps (10 ms, doubling up to 1 s, until an accept succeeds) instead
//!   of spinning on a listener it cannot drain, and logs a warning at most once per
//!   [`LOG_INTERVAL`] with the number of errors since the last one;
//! - **deadlines** on each accepted [`Conn`]: a connection must complete its handshake (TLS if
//!   configured, then the HTTP/2 preface and settings) and open its first rpc within the handshake
//!   timeout, and a connection with no open rpc is closed after the idle timeout. A connection
//!   that sends nothing, or one byte every few seconds, is closed at the deadline whatever it does.
//!
//! The deadlines need to know when a connection has an open rpc: [`TrackRpcsLayer`], a tower layer
//! on the server, counts each connection's open rpcs (from the request's start to the end of its
//! response body) through the [`ConnInfo`] the server puts in every request's extensions; a
//! WebSocket holds one open rpc for its whole life ([`ConnInfo::hold_open`]).
//!
//! One file a concern: [`ConnectionLimits`] and the open-file limit they are sized from
//! (`limits.rs`, `open_files.rs`), the accept loop with its caps and back-off (`accept.rs`), a
//! connection's deadlines (`conn.rs`) and the tower layer that tells them when rpcs are open
//! (`track_rpcs.rs`).

mod accept;
mod conn;
mod limits;
mod open_files;
#[cfg(test)]
mod test_support;
mod track_rpcs;

pub use accept::{Incoming, LOG_INTERVAL};
pub use conn::{Conn, ConnInfo, OpenRpc};
pub use limits::{
    default_max_connections, ConnectionLimits, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_IDLE_TIMEOUT,
    PER_ADDRESS_SHARE, RESERVED_DESCRIPTORS,
};
pub use open_files::{open_file_limit, raise_open_file_limit};
pub use track_rpcs::{TrackRpcs, TrackRpcsLayer, TrackedBody, TrackedFuture};
