//! The transport edge: everything between a socket and the driver. One port serves gRPC (HTTP/2)
//! and browsers (HTTP/1.1); a terminal is one session, whichever framing carries it.
//!
//! - [`listener`]: what a TCP connection may cost before it is any use: caps, accept back-off,
//!   handshake and idle deadlines.
//! - [`http_server`]: the one hyper server for HTTP/2 and HTTP/1.1 (with WebSocket upgrades).
//! - [`session`]: one terminal's session (decode, rate limits, hand to the driver), whatever
//!   carries it.
//! - [`grpc`]: the session over gRPC: `WebTerminalService` (`Pipe`, `MultiPipe`).
//! - [`gateway`]: the same session over WebSockets, for browsers (PROTOCOL.md section 11).
//! - [`rate_limit`]: rate limits per terminal, per number and per caller and callee (section 6).
//! - [`softphone`]: the softphone page at `GET /` and its demo token endpoint (section 11).

pub mod gateway;
pub mod grpc;
pub mod http_server;
pub mod listener;
pub mod rate_limit;
pub mod session;
pub mod softphone;
