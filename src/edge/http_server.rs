//! One listener for gRPC and browsers: every accepted [`Conn`](listener::Conn) (under the caps and
//! deadlines of [`listener`]) is served, through TLS when configured (ALPN `h2` and `http/1.1`), as
//! HTTP/2 or HTTP/1.1 (with upgrades, for the WebSocket gateway, PROTOCOL.md section 11) by one
//! axum router holding the gRPC services and the gateway's routes.

use crate::edge::gateway::Keepalive;
use crate::edge::listener::{self, TrackRpcsLayer};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use tokio_stream::StreamExt;
use tower::Layer;

/// Most concurrent HTTP/2 streams (rpcs) on one connection.
pub const MAX_CONCURRENT_STREAMS: u32 = 1024;

/// How many bytes of requests one HTTP/2 connection may send before the server reads them (its
/// connection flow-control window): 8 MiB.
///
/// h2 also budgets the framing overhead of the small DATA frames it holds unread — each costs 256
/// bytes less its payload — at half this window, and closes the connection with
/// `GOAWAY(ENHANCE_YOUR_CALM)` when the budget runs out. A terminal's reader stops reading while
/// the driver is saturated, so a connection multiplexing many terminals (a gateway) holds one
/// small frame per message they send meanwhile: at hyper's default window of 1 MiB the budget ran
/// out after about 2,500 such messages (a Ringing is 45 bytes), closing every terminal on the
/// connection. At 8 MiB it holds about 20,000 (`tests/multiplexed_connection.rs`).
pub const CONNECTION_WINDOW_BYTES: u32 = 8 * 1024 * 1024;

/// How many bytes of requests one HTTP/2 stream (one rpc) may send before the server reads them:
/// 256 KiB, the largest gRPC message accepted by default, so that no single terminal can fill its
/// connection's window.
pub const STREAM_WINDOW_BYTES: u32 = 256 * 1024;

/// Serves `app` on every connection `incoming` yields until `shutdown` resolves; then stops
/// accepting, shuts every connection down gracefully (HTTP/2 GOAWAY, open rpcs run to their end)
/// and returns once they have all ended. Connections already upgraded to WebSockets are not
/// waited for here: the caller waits for their sessions ([`crate::edge::gateway::Gateway::sessions`]).
///
/// HTTP/2 keepalive pings every `keepalive.interval`, a connection dropped when one is unanswered
/// for `keepalive.timeout`; at most [`MAX_CONCURRENT_STREAMS`] streams per connection, with the flow
/// control windows [`CONNECTION_WINDOW_BYTES`] and [`STREAM_WINDOW_BYTES`]. Each
/// request carries its connection's [`listener::ConnInfo`] in its extensions, and counts as an open
/// rpc for the connection's deadlines ([`TrackRpcsLayer`]).
pub(crate) async fn serve(
    app: axum::Router,
    mut incoming: listener::Incoming,
    tls: Option<tokio_rustls::TlsAcceptor>,
    keepalive: Keepalive,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new());
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(keepalive.interval))
        .keep_alive_timeout(keepalive.timeout)
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .initial_connection_window_size(CONNECTION_WINDOW_BYTES)
        .initial_stream_window_size(STREAM_WINDOW_BYTES);
    let app = TrackRpcsLayer.layer(app);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let conn = tokio::select! {
            conn = incoming.next() => match conn {
                Some(Ok(conn)) => conn,
                Some(Err(e)) => {
                    tracing::debug!(%e, "accept error");
                    continue;
                }
                None => break,
            },
            () = &mut shutdown => break,
        };
        let info = tonic::transport::server::Connected::connect_info(&conn);
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: http::Request<_>| {
            request.extensions_mut().insert(info.clone());
            tower::Service::call(&mut app.clone(), request)
        });
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            let served = match tls {
                None => {
                    let connection =
                        builder.serve_connection_with_upgrades(TokioIo::new(conn), service);
                    watcher.watch(connection.into_owned()).await
                }
                Some(acceptor) => match acceptor.accept(conn).await {
                    Ok(stream) => {
                        let connection =
                            builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                        watcher.watch(connection.into_owned()).await
                    }
                    Err(e) => {
                        tracing::debug!(%e, "TLS handshake failed");
                        return;
                    }
                },
            };
            if let Err(e) = served {
                tracing::debug!(%e, "connection ended with an error");
            }
        });
    }
    // Closes the listener: no new connections.
    drop(incoming);
    graceful.shutdown().await;
}
