//! The connection edge: what a TCP connection may cost before it is any use (docs/SECURITY.md,
//! "Holding up under bad clients").
//!
//! [`Incoming`] wraps tonic's [`TcpIncoming`] (which sets `TCP_NODELAY` and TCP keepalive) and adds:
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

use crate::pacing::{Backoff, LogThrottle};
use atomic_waker::AtomicWaker;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tokio_stream::Stream;
use tonic::transport::server::{Connected, TcpConnectInfo, TcpIncoming};

/// Default deadline for a new connection to complete its handshake (TLS, HTTP/2 preface and
/// settings) and open its first rpc: 10 s.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Default time a connection may stay open with no rpc open on it: 120 s.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// Descriptors the default connection cap leaves to everything else (the listener, the runtime,
/// key and certificate files, logs): 64.
pub const RESERVED_DESCRIPTORS: u64 = 64;

/// The default cap per source address is this fraction of the total cap (1/8): one address
/// cannot take more than an eighth of the server's connections.
pub const PER_ADDRESS_SHARE: usize = 8;

/// How often, at most, the same kind of connection trouble (accept errors, connections refused
/// over a cap) is logged: once per 10 s, with a count.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);

const MIN_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Connections accepted (and refused) in one poll before the accept loop yields to other tasks.
const ACCEPTS_PER_POLL: usize = 64;

/// The limits [`Incoming`] enforces. [`ConnectionLimits::default`] gives the defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// How long a new connection has to complete its handshake and open its first rpc; then it
    /// is closed. Default [`DEFAULT_HANDSHAKE_TIMEOUT`].
    pub handshake_timeout: Duration,
    /// How long a connection may stay open with no open rpc; then it is closed. `Duration::ZERO`:
    /// never. Default [`DEFAULT_IDLE_TIMEOUT`].
    pub idle_timeout: Duration,
    /// Most connections open at once; more are closed as soon as accepted. `None`: sized from the
    /// process's open-file limit when serving starts ([`default_max_connections`]).
    pub max_connections: Option<usize>,
    /// Most connections open at once from one source IP address; more are closed as soon as
    /// accepted. `None`: [`ConnectionLimits::max_connections`] (as resolved) / [`PER_ADDRESS_SHARE`].
    pub max_connections_per_ip: Option<usize>,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: None,
            max_connections_per_ip: None,
        }
    }
}

impl ConnectionLimits {
    /// The caps in force: `(total, per source address)`, the unset ones sized from an open-file
    /// limit of `open_files` descriptors.
    pub fn caps(&self, open_files: u64) -> (usize, usize) {
        let total = self
            .max_connections
            .unwrap_or_else(|| default_max_connections(open_files));
        let per_ip = self
            .max_connections_per_ip
            .unwrap_or((total / PER_ADDRESS_SHARE).max(1));
        (total, per_ip)
    }
}

/// The default cap on open connections for an open-file limit of `open_files`: every descriptor
/// but [`RESERVED_DESCRIPTORS`], and at least 16.
pub fn default_max_connections(open_files: u64) -> usize {
    usize::try_from(open_files.saturating_sub(RESERVED_DESCRIPTORS).max(16)).unwrap_or(usize::MAX)
}

/// The process's soft open-file limit (`RLIMIT_NOFILE`), or 1024 where it cannot be read.
pub fn open_file_limit() -> u64 {
    rlimit::getrlimit(rlimit::Resource::NOFILE)
        .map(|(soft, _hard)| soft)
        .unwrap_or(1024)
}

/// Raises the soft open-file limit (`RLIMIT_NOFILE`) to the hard limit and logs both. Returns the
/// soft limit in force afterwards. A server holds one descriptor per connection: the soft limit a
/// process inherits (often 1024) would otherwise cap it far below what the system allows.
pub fn raise_open_file_limit() -> u64 {
    let before = open_file_limit();
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(now) if now > before => {
            tracing::info!(
                from = before,
                to = now,
                "raised the open-file limit to its hard limit"
            );
            now
        }
        Ok(now) => {
            tracing::info!(limit = now, "open-file limit (already at its hard limit)");
            now
        }
        Err(e) => {
            tracing::warn!(limit = before, %e, "cannot raise the open-file limit");
            before
        }
    }
}

/// Open connections, in total and per source address.
#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// One open connection's place in the [`Counts`]; given back when dropped.
#[derive(Debug)]
struct Slot {
    counts: Arc<Mutex<Counts>>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.total -= 1;
        if let Some(n) = counts.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.per_ip.remove(&self.ip);
            }
        }
    }
}

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

/// The stream of accepted connections [`crate::server::Exchange::serve`] serves: tonic's
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

/// What a connection's deadlines need to know of its rpcs, shared by the connection and the
/// [`TrackRpcsLayer`] guards of its rpcs.
#[derive(Debug, Default)]
struct Activity {
    open_rpcs: AtomicUsize,
    /// An rpc was opened at least once: the handshake is over.
    opened_any: AtomicBool,
    /// The task polling the connection, woken when its last rpc ends (to start the idle timer).
    waker: AtomicWaker,
}

/// The connection info the server puts in each request's extensions for a [`Conn`] (see
/// [`Connected`]): the TCP addresses, and the handle [`TrackRpcsLayer`] counts rpcs through.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    tcp: TcpConnectInfo,
    activity: Arc<Activity>,
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
    fn new(
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
struct RpcGuard(Arc<Activity>);

impl RpcGuard {
    fn new(activity: &Arc<Activity>) -> RpcGuard {
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

/// A tower layer for the server that counts each [`Conn`]'s open rpcs, from the start of a
/// request to the end (or drop) of its response body, for the connection's deadlines. Requests
/// that did not come through a [`Conn`] pass untouched. It also puts the connection's
/// [`TcpConnectInfo`] in the request's extensions, so that `tonic::Request::remote_addr` works.
#[derive(Clone, Copy, Debug, Default)]
pub struct TrackRpcsLayer;

impl<S> tower::Layer<S> for TrackRpcsLayer {
    type Service = TrackRpcs<S>;

    fn layer(&self, inner: S) -> TrackRpcs<S> {
        TrackRpcs { inner }
    }
}

/// The service [`TrackRpcsLayer`] makes.
#[derive(Clone, Debug)]
pub struct TrackRpcs<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for TrackRpcs<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
{
    type Response = http::Response<TrackedBody<ResBody>>;
    type Error = S::Error;
    type Future = TrackedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        let info = request.extensions().get::<ConnInfo>().cloned();
        let guard = info.map(|info| {
            let guard = RpcGuard::new(&info.activity);
            request.extensions_mut().insert(info.tcp);
            guard
        });
        TrackedFuture {
            inner: self.inner.call(request),
            guard,
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`TrackRpcs`]: the rpc counts as open while it runs.
    pub struct TrackedFuture<F> {
        #[pin]
        inner: F,
        guard: Option<RpcGuard>,
    }
}

impl<F, B, E> Future for TrackedFuture<F>
where
    F: Future<Output = Result<http::Response<B>, E>>,
{
    type Output = Result<http::Response<TrackedBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.inner.poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(result) => {
                let guard = this.guard.take();
                Poll::Ready(result.map(|response| {
                    response.map(|body| TrackedBody {
                        inner: body,
                        _guard: guard,
                    })
                }))
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// A response body of [`TrackRpcs`]: the rpc counts as open until it is dropped.
    pub struct TrackedBody<B> {
        #[pin]
        inner: B,
        _guard: Option<RpcGuard>,
    }
}

impl<B: http_body::Body> http_body::Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    //! Real sockets on loopback, tokio's clock paused where a deadline is waited for.

    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_stream::StreamExt;

    async fn listen(limits: ConnectionLimits) -> (Incoming, SocketAddr) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        (
            Incoming::new(TcpIncoming::from(listener), limits, 1024),
            addr,
        )
    }

    fn limits(total: usize, per_ip: usize) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: Some(total),
            max_connections_per_ip: Some(per_ip),
            ..ConnectionLimits::default()
        }
    }

    /// Reads until the server closes; `true` when it did (EOF or reset) within `within`.
    async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
        let mut buf = [0u8; 64];
        loop {
            match tokio::time::timeout(within, stream.read(&mut buf)).await {
                Err(_) => return false,
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => {}
            }
        }
    }

    #[test]
    fn default_caps_come_from_the_open_file_limit() {
        let limits = ConnectionLimits::default();
        assert_eq!(limits.caps(256), (192, 24));
        assert_eq!(limits.caps(1024), (960, 120));
        assert_eq!(limits.caps(10), (16, 2), "never below 16 in all");
        let set = ConnectionLimits {
            max_connections: Some(100),
            ..ConnectionLimits::default()
        };
        assert_eq!(
            set.caps(256),
            (100, 12),
            "per address: an eighth of the total"
        );
    }

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

    /// Drives a connection as a server would: reads it until it fails.
    async fn serve_until_closed(mut conn: Conn) -> io::Error {
        let mut buf = [0u8; 64];
        loop {
            match conn.read(&mut buf).await {
                Ok(0) => return io::ErrorKind::UnexpectedEof.into(),
                Ok(_) => {}
                Err(e) => return e,
            }
        }
    }

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
