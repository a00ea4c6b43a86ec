//! The accept loop: caps on open connections, in total and per source address, and a back-off on
//! accept errors that name an exhausted resource.

use super::conn::Conn;
use super::limits::{ConnectionLimits, Counts, Slot};
use crate::pacing::{Backoff, LogThrottle};
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tokio_stream::Stream;
use tonic::transport::server::{TcpConnectInfo, TcpIncoming};

/// How often, at most, the same kind of connection trouble (accept errors, connections refused
/// over a cap) is logged: once per 10 s, with a count.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);

const MIN_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Connections accepted (and refused) in one poll before the accept loop yields to other tasks.
const ACCEPTS_PER_POLL: usize = 64;

/// Is this accept error an exhausted resource (descriptors, buffers, memory), which retrying at
/// once cannot cure?
fn is_resource_exhaustion(e: &io::Error) -> bool {
    // EMFILE 24, ENFILE 23, ENOBUFS 105, ENOMEM 12 (Linux numbering; the same on the BSDs but for
    // ENOBUFS, 55 there).
    #[cfg(unix)]
    {
        matches!(e.raw_os_error(), Some(23 | 24 | 12))
            || (cfg!(target_os = "linux") && e.raw_os_error() == Some(105))
            || (!cfg!(target_os = "linux") && e.raw_os_error() == Some(55))
    }
    #[cfg(not(unix))]
    {
        e.kind() == io::ErrorKind::OutOfMemory
    }
}

/// The stream of accepted connections the server serves: tonic's
/// [`TcpIncoming`] with caps, an accept back-off and per-connection deadlines (see the module
/// documentation). Never yields an error: accept errors are handled here.
pub struct Incoming {
    inner: TcpIncoming,
    handshake_timeout: Duration,
    idle_timeout: Duration,
    max_total: usize,
    max_per_ip: usize,
    counts: Arc<Mutex<Counts>>,
    backoff: Option<Pin<Box<Sleep>>>,
    /// The waits after accept errors that name an exhausted resource.
    accept_backoff: Backoff,
    accept_errors: LogThrottle,
    refused: LogThrottle,
}

impl std::fmt::Debug for Incoming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Incoming")
            .field("handshake_timeout", &self.handshake_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_total", &self.max_total)
            .field("max_per_ip", &self.max_per_ip)
            .finish_non_exhaustive()
    }
}

impl Incoming {
    /// Accepts from `inner` under `limits`, the unset caps sized from an open-file limit of
    /// `open_files` descriptors ([`ConnectionLimits::caps`]).
    pub fn new(inner: TcpIncoming, limits: ConnectionLimits, open_files: u64) -> Self {
        let (max_total, max_per_ip) = limits.caps(open_files);
        Incoming {
            inner,
            handshake_timeout: limits.handshake_timeout,
            idle_timeout: limits.idle_timeout,
            max_total,
            max_per_ip,
            counts: Arc::default(),
            backoff: None,
            accept_backoff: Backoff::new(MIN_BACKOFF, MAX_BACKOFF),
            accept_errors: LogThrottle::new(LOG_INTERVAL),
            refused: LogThrottle::new(LOG_INTERVAL),
        }
    }

    /// The caps in force: `(total, per source address)`.
    pub fn caps(&self) -> (usize, usize) {
        (self.max_total, self.max_per_ip)
    }

    /// Takes a slot for a connection from `peer`, or `None` when a cap is reached.
    fn admit(&mut self, peer: IpAddr) -> Result<Slot, (usize, usize)> {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let from_peer = counts.per_ip.get(&peer).copied().unwrap_or(0);
        if counts.total >= self.max_total || from_peer >= self.max_per_ip {
            return Err((counts.total, from_peer));
        }
        counts.total += 1;
        *counts.per_ip.entry(peer).or_insert(0) += 1;
        Ok(Slot {
            counts: self.counts.clone(),
            ip: peer,
        })
    }

    fn accepted(&mut self, stream: TcpStream) -> Option<Conn> {
        let tcp = TcpConnectInfo {
            local_addr: stream.local_addr().ok(),
            remote_addr: stream.peer_addr().ok(),
        };
        let peer = tcp
            .remote_addr
            .map_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |a| a.ip());
        match self.admit(peer) {
            Ok(slot) => Some(Conn::new(
                stream,
                tcp,
                slot,
                self.handshake_timeout,
                self.idle_timeout,
            )),
            Err((total, from_peer)) => {
                if let Some(count) = self.refused.due(Instant::now().into_std()) {
                    tracing::warn!(
                        refused = count,
                        open = total,
                        open_from_this_address = from_peer,
                        max_connections = self.max_total,
                        max_connections_per_ip = self.max_per_ip,
                        "connection cap reached: closing new connections"
                    );
                }
                None
            }
        }
    }
}

impl Stream for Incoming {
    type Item = io::Result<Conn>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        for _ in 0..ACCEPTS_PER_POLL {
            if let Some(backoff) = self.backoff.as_mut() {
                if backoff.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.backoff = None;
            }
            match Pin::new(&mut self.inner).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Ready(Some(Ok(stream))) => {
                    self.accept_backoff.reset();
                    if let Some(conn) = self.accepted(stream) {
                        return Poll::Ready(Some(Ok(conn)));
                    }
                }
                Poll::Ready(Some(Err(e))) if is_resource_exhaustion(&e) => {
                    let wait = self.accept_backoff.next_wait();
                    if let Some(count) = self.accept_errors.due(Instant::now().into_std()) {
                        tracing::warn!(
                            errors = count,
                            %e,
                            backoff = ?wait,
                            "cannot accept connections: backing off"
                        );
                    }
                    self.backoff = Some(Box::pin(tokio::time::sleep(wait)));
                }
                // A connection that failed before it was accepted (reset, aborted): next.
                Poll::Ready(Some(Err(e))) => tracing::debug!(%e, "accept error"),
            }
        }
        // Many connections refused in a row: let other tasks run, then go on.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use std::time::Duration;
    use tokio_stream::StreamExt;

    #[test]
    fn descriptor_exhaustion_is_told_from_a_failed_connection() {
        assert!(is_resource_exhaustion(&io::Error::from_raw_os_error(24)));
        assert!(is_resource_exhaustion(&io::Error::from_raw_os_error(23)));
        assert!(!is_resource_exhaustion(&io::Error::from(
            io::ErrorKind::ConnectionAborted
        )));
    }

    #[tokio::test]
    async fn connections_over_the_per_address_cap_are_closed_newest_first() {
        let (mut incoming, addr) = listen(limits(10, 2)).await;
        let mut first = TcpStream::connect(addr).await.unwrap();
        let mut second = TcpStream::connect(addr).await.unwrap();
        let mut third = TcpStream::connect(addr).await.unwrap();
        let a = incoming.next().await.unwrap().unwrap();
        let b = incoming.next().await.unwrap().unwrap();
        // The third is accepted and closed inside `next`, which then waits for a fourth.
        let pending = tokio::time::timeout(Duration::from_millis(200), incoming.next()).await;
        assert!(pending.is_err(), "nothing more to yield");
        assert!(closed_within(&mut third, Duration::from_secs(5)).await);
        assert!(!closed_within(&mut first, Duration::from_millis(100)).await);
        assert!(!closed_within(&mut second, Duration::from_millis(100)).await);
        // A closed connection gives its place back.
        drop(a);
        let _fourth = TcpStream::connect(addr).await.unwrap();
        let d = tokio::time::timeout(Duration::from_secs(5), incoming.next()).await;
        assert!(matches!(d, Ok(Some(Ok(_)))), "{d:?}");
        drop(b);
    }

    #[tokio::test]
    async fn connections_over_the_total_cap_are_closed() {
        let (mut incoming, addr) = listen(limits(1, 1)).await;
        let _first = TcpStream::connect(addr).await.unwrap();
        // From another loopback address: the total cap, not the per-address one, refuses it.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        let mut second = socket.connect(addr).await.unwrap();
        let _a = incoming.next().await.unwrap().unwrap();
        let pending = tokio::time::timeout(Duration::from_millis(200), incoming.next()).await;
        assert!(pending.is_err());
        assert!(closed_within(&mut second, Duration::from_secs(5)).await);
    }
}
