//! What the listener's tests share: a listener on loopback, caps, and a client's and a server's
//! view of a connection closing. Real sockets; tokio's clock paused where a deadline is waited for.

use super::accept::Incoming;
use super::conn::Conn;
use super::limits::ConnectionLimits;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tonic::transport::server::TcpIncoming;

pub(super) async fn listen(limits: ConnectionLimits) -> (Incoming, SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (
        Incoming::new(TcpIncoming::from(listener), limits, 1024),
        addr,
    )
}

pub(super) fn limits(total: usize, per_ip: usize) -> ConnectionLimits {
    ConnectionLimits {
        max_connections: Some(total),
        max_connections_per_ip: Some(per_ip),
        ..ConnectionLimits::default()
    }
}

/// Reads until the server closes; `true` when it did (EOF or reset) within `within`.
pub(super) async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 64];
    loop {
        match tokio::time::timeout(within, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// Drives a connection as a server would: reads it until it fails.
pub(super) async fn serve_until_closed(mut conn: Conn) -> io::Error {
    let mut buf = [0u8; 64];
    loop {
        match conn.read(&mut buf).await {
            Ok(0) => return io::ErrorKind::UnexpectedEof.into(),
            Ok(_) => {}
            Err(e) => return e,
        }
    }
}
