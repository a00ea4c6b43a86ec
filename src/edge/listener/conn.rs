//! One accepted connection and its deadlines: the handshake deadline until its first rpc opens,
//! the idle deadline whenever no rpc is open.

use super::limits::Slot;
use atomic_waker::AtomicWaker;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// What a connection's deadlines need to know of its rpcs, shared by the connection and the
/// [`TrackRpcsLayer`] guards of its rpcs.
#[derive(Debug, Default)]
pub(super) struct Activity {
    open_rpcs: AtomicUsize,
    /// An rpc was opened at least once: the handshake is over.
    opened_any: AtomicBool,
    /// The task polling the connection, woken when its last rpc ends (to start the idle timer).
    waker: AtomicWaker,
}

/// The connection info the server puts in each request's extensions for a [`Conn`] (see
/// [`Connected`]): the TCP addresses, and the handle [`TrackRpcsLayer`](super::TrackRpcsLayer) counts rpcs through.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    pub(super) tcp: TcpConnectInfo,
    pub(super) activity: Arc<Activity>,
}

impl ConnInfo {
    /// The client's address.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.tcp.remote_addr
    }

    /// Counts one open rpc on this connection while the returned guard lives, so that neither
    /// deadline runs meanwhile. An upgraded connection (a WebSocket, PROTOCOL.md section 11) holds
    /// one for as long as its session: the HTTP request that upgraded it is over at once.
    pub fn hold_open(&self) -> OpenRpc {
        OpenRpc(RpcGuard::new(&self.activity))
    }
}

/// One open rpc of a connection, counted while it lives ([`ConnInfo::hold_open`]).
#[derive(Debug)]
pub struct OpenRpc(#[allow(dead_code)] RpcGuard);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// No rpc opened yet: the handshake deadline runs.
    Handshake,
    /// At least one rpc open: no deadline.
    Busy,
    /// No rpc open: the idle deadline runs.
    Idle,
}

/// One accepted connection, as the server reads and writes it: the TCP stream, its place under the
/// caps, and its deadlines. When a deadline passes, reads and writes fail with
/// [`io::ErrorKind::TimedOut`], so the TLS handshake or the HTTP/2 connection ends and the socket
/// is closed.
pub struct Conn {
    stream: TcpStream,
    info: ConnInfo,
    phase: Phase,
    /// The running deadline; `None` when none runs (busy, or idle with no idle timeout).
    deadline: Option<Pin<Box<Sleep>>>,
    idle_timeout: Duration,
    expired: bool,
    _slot: Slot,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("peer", &self.info.tcp.remote_addr)
            .field("phase", &self.phase)
            .field("expired", &self.expired)
            .finish_non_exhaustive()
    }
}

impl Conn {
    pub(super) fn new(
        stream: TcpStream,
        tcp: TcpConnectInfo,
        slot: Slot,
        handshake_timeout: Duration,
        idle_timeout: Duration,
    ) -> Conn {
        Conn {
            stream,
            info: ConnInfo {
                tcp,
                activity: Arc::default(),
            },
            phase: Phase::Handshake,
            deadline: Some(Box::pin(tokio::time::sleep(handshake_timeout))),
            idle_timeout,
            expired: false,
            _slot: slot,
        }
    }

    /// Moves the deadlines on, and fails once one has passed.
    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if self.expired {
            return Err(io::ErrorKind::TimedOut.into());
        }
        let activity = &self.info.activity;
        // Registered before looking at the count: an rpc that ends after the look wakes us.
        activity.waker.register(cx.waker());
        if activity.open_rpcs.load(Ordering::Acquire) > 0 {
            self.phase = Phase::Busy;
            self.deadline = None;
            return Ok(());
        }
        let handshake_done =
            self.phase == Phase::Handshake && activity.opened_any.load(Ordering::Acquire);
        if self.phase == Phase::Busy || handshake_done {
            self.phase = Phase::Idle;
            self.deadline = (!self.idle_timeout.is_zero())
                .then(|| Box::pin(tokio::time::sleep(self.idle_timeout)));
        }
        if let Some(deadline) = self.deadline.as_mut() {
            if deadline.as_mut().poll(cx).is_ready() {
                self.expired = true;
                tracing::debug!(
                    peer = ?self.info.tcp.remote_addr,
                    phase = ?self.phase,
                    "closing a connection: its deadline passed"
                );
                return Err(io::ErrorKind::TimedOut.into());
            }
        }
        Ok(())
    }
}

impl Connected for Conn {
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> ConnInfo {
        self.info.clone()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Err(e) = self.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Err(e) = self.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if let Err(e) = self.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Counts one open rpc of a connection while it lives.
#[derive(Debug)]
pub(super) struct RpcGuard(Arc<Activity>);

impl RpcGuard {
    pub(super) fn new(activity: &Arc<Activity>) -> RpcGuard {
        activity.open_rpcs.fetch_add(1, Ordering::AcqRel);
        activity.opened_any.store(true, Ordering::Release);
        RpcGuard(activity.clone())
    }
}

impl Drop for RpcGuard {
    fn drop(&mut self) {
        if self.0.open_rpcs.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The last rpc ended: the connection starts its idle deadline.
            self.0.waker.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio_stream::StreamExt;

    #[tokio::test]
    async fn a_silent_or_trickling_connection_is_closed_at_the_handshake_deadline() {
        let mut config = limits(10, 10);
        config.handshake_timeout = Duration::from_millis(300);
        let (mut incoming, addr) = listen(config).await;
        let mut client = TcpStream::connect(addr).await.unwrap();
        let conn = incoming.next().await.unwrap().unwrap();
        let server = tokio::spawn(serve_until_closed(conn));
        // One byte at a time keeps it no more alive than silence.
        for byte in b"PRI" {
            client.write_all(&[*byte]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let error = tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("closed at the deadline")
            .unwrap();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(closed_within(&mut client, Duration::from_secs(5)).await);
    }

    #[tokio::test]
    async fn an_rpc_holds_the_connection_open_and_idleness_closes_it() {
        let mut config = limits(10, 10);
        config.handshake_timeout = Duration::from_millis(200);
        config.idle_timeout = Duration::from_millis(400);
        let (mut incoming, addr) = listen(config).await;
        let _client = TcpStream::connect(addr).await.unwrap();
        let conn = incoming.next().await.unwrap().unwrap();
        let info = conn.connect_info();
        // An rpc opens before the handshake deadline and stays open well past both deadlines.
        let rpc = RpcGuard::new(&info.activity);
        let server = tokio::spawn(serve_until_closed(conn));
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert!(!server.is_finished(), "an open rpc keeps the connection");
        // Once it ends, the idle deadline runs (with no read or write to move it on).
        drop(rpc);
        let error = tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("closed once idle")
            .unwrap();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn no_idle_timeout_keeps_an_idle_connection() {
        let mut config = limits(10, 10);
        config.handshake_timeout = Duration::from_millis(100);
        config.idle_timeout = Duration::ZERO;
        let (mut incoming, addr) = listen(config).await;
        let _client = TcpStream::connect(addr).await.unwrap();
        let conn = incoming.next().await.unwrap().unwrap();
        drop(RpcGuard::new(&conn.connect_info().activity));
        let server = tokio::spawn(serve_until_closed(conn));
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(
            !server.is_finished(),
            "past the handshake, no deadline runs"
        );
        server.abort();
    }
}
