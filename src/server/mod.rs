//! The composition root: [`Exchange`] (and [`serve`], its shorthand) builds each room, wires them
//! together and serves them on one listener, with health, reflection and graceful shutdown
//! (docs/ARCHITECTURE.md, "The shape of the house"; PROTOCOL.md 4.9). Nothing below imports it.
//!
//! - [`ServerConfig`]: what the server is configured with, and its defaults; the types of its
//!   fields are re-exported here, where embedders find them.
//! - [`routing_file`]: the routing file's groups, read at start and again on `SIGHUP`.
//!
//! The rooms it wires: the [`driver`] that owns the switch, the transport
//! [`edge`](crate::edge) (listener, gRPC and WebSocket sessions, softphone page), access tokens
//! ([`auth`]), the [`operator`] API, [`telemetry`](crate::telemetry), and the
//! phone network, call records and notifications.

mod config;
pub mod routing_file;
#[cfg(test)]
mod tests;
mod tls;

pub use config::*;

use crate::auth;
use crate::core::Switch;
use crate::driver::{self, event_hub};
use crate::edge::{gateway, http_server, listener, session, softphone};
use crate::notifications::Notifier;
use crate::operator::{self, simulator};
use crate::phone::{PhoneNetwork, PhoneReports};
use crate::proto::webterminal::web_terminal_service_server::WebTerminalServiceServer;
use crate::records::Recorder;
use crate::telemetry::health;
use crate::telemetry::metrics;
use crate::wire;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tonic::transport::server::TcpIncoming;

/// Why [`serve`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The reflection service could not be built from the embedded descriptors (a build defect).
    #[error("gRPC reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// A token key file ([`TokenPolicy::public_keys`], [`TokenPolicy::jwks`]) is unreadable or
    /// holds no usable key: a startup error.
    #[error("access token keys: {0}")]
    Keys(#[from] auth::KeyError),
    /// The TLS certificate or key ([`ServerConfig::tls`]) is unreadable or unusable: a startup
    /// error. The text names the file and the fault.
    #[error("TLS: {0}")]
    Tls(String),
    /// The routing file ([`ServerConfig::routing`]) is unreadable or invalid: a startup error.
    #[error(transparent)]
    Routing(#[from] routing_file::RoutingError),
}

/// Serves the core on `listener` until `shutdown` resolves, then shuts down gracefully
/// (PROTOCOL.md 4.9) and returns `Ok(())`. Shorthand for [`Exchange::start`] then [`Exchange::serve`].
///
/// Tests bind `127.0.0.1:0` themselves and pass the listener in; to watch the switch (e.g. assert
/// that no call is left), use [`Exchange`] and its [`Exchange::driver`].
///
/// # Errors
/// [`ServeError`] when a token key or TLS file is unreadable or invalid (at once, before serving).
pub async fn serve(
    config: ServerConfig,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    Exchange::start(config).serve(listener, shutdown).await
}

/// A telephone exchange ready to serve: the driver task owning the switch, and the phone network
/// [`ServerConfig::phone_network`] asks for, already running.
pub struct Exchange {
    config: ServerConfig,
    driver: driver::DriverHandle,
    driver_task: tokio::task::JoinHandle<()>,
    /// The simulated phone network's control, when it runs: its operator API is served, and
    /// presence reports its phones' state.
    simulator: Option<crate::phone::sim::SimulatorControl>,
    /// The call records writer, or why there is none (section 9).
    records: Result<Recorder, String>,
    /// The task that reloads the routing file on SIGHUP (aborted with the exchange), or why the
    /// routing file could not be used at start.
    routing: Result<Option<AbortOnDrop>, routing_file::RoutingError>,
    /// The Redis notifications pusher, when configured (section 10).
    notifier: Option<Notifier>,
}

/// A task aborted when this is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl fmt::Debug for Exchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exchange")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Exchange {
    /// Starts the driver task and the phone network `config.phone_network` names: the simulated one
    /// ([`PhoneNetworkKind::Sim`]), whose operator API is then served, or a SIP trunk
    /// ([`PhoneNetworkKind::Sip`]).
    /// `config.switch.phone_network` is set from `config.phone_network`.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn start(config: ServerConfig) -> Exchange {
        let (reports, phone_events) = PhoneReports::channel();
        let (phone, simulator) = match &config.phone_network {
            PhoneNetworkKind::Sim => {
                let (network, control) = crate::phone::sim::SimulatedPhoneNetwork::start(reports);
                let network: Box<dyn PhoneNetwork> = Box::new(network);
                (Some(network), Some(control))
            }
            PhoneNetworkKind::Sip(sip) => {
                let trunk =
                    crate::phone::sip::SipTrunk::start(sip.clone(), config.max_sdp_bytes, reports);
                // The trunk's health in /readyz (PROTOCOL.md section 13), until the trunk ends.
                let mut up = trunk.watch_up();
                let health = config.health.clone();
                tokio::spawn(async move {
                    loop {
                        let down = !*up.borrow_and_update();
                        health.set_down(crate::phone::sip::TRUNK_DOWN, down);
                        if up.changed().await.is_err() {
                            break;
                        }
                    }
                });
                let network: Box<dyn PhoneNetwork> = Box::new(trunk);
                (Some(network), None)
            }
            PhoneNetworkKind::None => (None, None),
        };
        Self::assemble(config, phone, phone_events, simulator)
    }

    /// Starts the driver task with the embedder's own phone network (PROTOCOL.md section 7) in place
    /// of the simulated one: `connect` is given the [`PhoneReports`] to report the network's events
    /// through (now or later, from any task) and returns the [`PhoneNetwork`] the driver hands its
    /// commands to. `config.phone_network` is ignored; the simulator's operator API is not served.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn with_phone_network<N: PhoneNetwork>(
        config: ServerConfig,
        connect: impl FnOnce(PhoneReports) -> N,
    ) -> Exchange {
        let (reports, phone_events) = PhoneReports::channel();
        let network: Box<dyn PhoneNetwork> = Box::new(connect(reports));
        Self::assemble(config, Some(network), phone_events, None)
    }

    fn assemble(
        config: ServerConfig,
        phone: Option<Box<dyn PhoneNetwork>>,
        phone_events: tokio::sync::mpsc::UnboundedReceiver<crate::core::PhoneEvent>,
        simulator: Option<crate::phone::sim::SimulatorControl>,
    ) -> Exchange {
        let mut switch_config = config.switch.clone();
        switch_config.phone_network = phone.is_some();
        // With records configured but unavailable, the driver still gets a handle: it counts each
        // call's record as lost (section 12).
        let (records, record_sink) =
            match crate::records::start(&config.records, crate::clock::wall_clock) {
                Ok(Some(recorder)) => {
                    metrics::records_configured(true);
                    let sink = recorder.handle();
                    (Ok(recorder), Some(sink))
                }
                Ok(None) => (
                    Err("call records are off: this core keeps none".to_owned()),
                    None,
                ),
                Err(why) => {
                    tracing::error!(%why, "call records: running without records");
                    metrics::records_configured(false);
                    (
                        Err(format!("call records are unavailable: {why}")),
                        Some(crate::records::RecorderHandle::unavailable()),
                    )
                }
            };
        let mut switch = Switch::new(switch_config, seed(), std::time::Instant::now());
        let routing = config
            .routing
            .as_deref()
            .map(routing_file::load)
            .transpose();
        if let Ok(Some(groups)) = &routing {
            tracing::info!(groups = groups.len(), "routing file read");
            switch.set_router(Box::new(groups.clone()));
        }
        let notifier = config.notifications.as_ref().map(Notifier::start);
        let (driver, driver_task) = driver::spawn(
            switch,
            driver::PhoneLink {
                network: phone,
                events: phone_events,
            },
            driver::Sinks {
                events: event_hub::EventHub::new(config.events),
                records: record_sink,
                notifications: notifier.as_ref().map(Notifier::handle),
            },
        );
        let routing = routing.map(|groups| {
            let path = config.routing.clone().filter(|_| groups.is_some())?;
            Some(AbortOnDrop(routing_file::reload_on_hangup(
                path,
                driver.clone(),
            )))
        });
        Exchange {
            config,
            driver,
            driver_task,
            simulator,
            records,
            routing,
            notifier,
        }
    }

    /// The call records writer's counters (events dropped, writes failed, records written), when
    /// records are kept (PROTOCOL.md section 9).
    pub fn records_stats(&self) -> Option<Arc<crate::records::RecorderStats>> {
        self.records
            .as_ref()
            .ok()
            .map(|r| r.handle().stats().clone())
    }

    /// The Redis notifications' counters (pushed, queued, dropped), when configured (PROTOCOL.md
    /// section 10).
    pub fn notifications_stats(&self) -> Option<&crate::notifications::NotificationStats> {
        self.notifier.as_ref().map(Notifier::stats)
    }

    /// Has the switch consult `router` for every new call (PROTOCOL.md section 5): where a call
    /// goes, or that it is rejected. Call it before [`Exchange::serve`] so that no call is routed
    /// without it. `examples/proxy.rs` shows one.
    ///
    /// # Errors
    /// [`driver::DriverError::Stopped`] when the driver has stopped.
    pub async fn set_router(
        &self,
        router: impl crate::core::Router + 'static,
    ) -> Result<(), driver::DriverError> {
        self.driver.set_router(Box::new(router)).await
    }

    /// A handle on the driver: [`driver::DriverHandle::stats`] tells how many terminals and calls
    /// the switch holds.
    pub fn driver(&self) -> &driver::DriverHandle {
        &self.driver
    }

    /// Serves on `listener` until `shutdown` resolves, then shuts down gracefully (PROTOCOL.md 4.9)
    /// and returns `Ok(())`.
    ///
    /// Served: `wgtwo.webterminal.v0.WebTerminalService`; `grpc.health.v1.Health` (the WebTerminal
    /// service SERVING until shutdown begins); gRPC server reflection v1 and v1alpha; and, with the
    /// simulated phone network, `webterminal.core.v1.SimulatedPhoneNetwork`; and on the same port,
    /// over HTTP/1.1, the browsers' WebSocket gateway `GET /pipe` and `GET /multipipe`
    /// (PROTOCOL.md section 11, [`gateway`]), the softphone page `GET /` ([`softphone::router`])
    /// and, with `config.demo_tokens`, its demo token endpoint ([`softphone::demo_router`]); any
    /// other path is `404` (a gRPC request for an unknown method: `UNIMPLEMENTED`). Keepalive pings
    /// (HTTP/2 and WebSocket) as `config.keepalive` says (default every 20 s, 10 s timeout), TCP
    /// keepalive 30 s, at most 1024 concurrent streams per HTTP/2 connection.
    /// Connections are capped and given deadlines as `config.connections` says ([`listener`]): over
    /// a cap, a new connection is closed at once; one that has not opened an rpc within the
    /// handshake timeout, or has had none open for the idle timeout, is closed.
    ///
    /// Shutdown: the listener closes, every live leg gets `Bye{SERVER_SHUTDOWN}`, every response
    /// stream ends with status OK, and open connections drain for at most `config.drain_timeout`.
    /// With `config.notifications`, the Redis pusher then has up to
    /// [`crate::notifications::FLUSH_TIMEOUT`] to deliver what is queued (section 10).
    ///
    /// Access tokens are verified as [`auth::Verifier::from_policy`] describes. With `config.tls`,
    /// connections are TLS (rustls, ALPN h2 and http/1.1, TLS 1.2 and 1.3, under the same handshake
    /// timeout); a failed handshake drops that connection only. Without it, plaintext HTTP/2 and
    /// HTTP/1.1.
    ///
    /// # Errors
    /// [`ServeError::Keys`] or [`ServeError::Tls`] when a token key or TLS file is unreadable or
    /// invalid: returned at once, before serving, with the switch shut down.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), ServeError> {
        let Exchange {
            config,
            driver,
            driver_task,
            simulator: sim_control,
            records,
            routing,
            notifier,
        } = self;
        let record_store = records
            .as_ref()
            .map(|r| r.store().clone())
            .map_err(String::clone);
        // Commits every record once the driver has ended every call (section 9).
        let close_records = || async {
            if let Ok(recorder) = records {
                recorder.close().await;
            }
        };
        // Gives the pusher a bounded chance to deliver what is queued (section 10).
        let close_notifier = || async {
            if let Some(notifier) = notifier {
                notifier.close(crate::notifications::FLUSH_TIMEOUT).await;
            }
        };
        let prepared = routing.map_err(ServeError::from).and_then(|reload| {
            let verifier = auth::Verifier::from_policy(&config.jwt_secret, &config.tokens)?;
            let tls = tls::acceptor(config.tls.as_ref()).map_err(ServeError::Tls)?;
            Ok((reload, verifier, tls))
        });
        // The SIGHUP reloads go on while this serves.
        let (_routing_reload, verifier, tls) = match prepared {
            Ok(prepared) => prepared,
            Err(e) => {
                let _ = driver.shutdown().await;
                let _ = driver_task.await;
                close_records().await;
                close_notifier().await;
                return Err(e);
            }
        };
        let verifier = Arc::new(verifier);
        let limits = wire::Limits {
            max_sdp_bytes: config.max_sdp_bytes,
        };
        let sessions = Arc::new(
            session::WebTerminal::new(
                driver.clone(),
                verifier.clone(),
                limits,
                config.outbound_queue_capacity(),
            )
            .with_rate_limits(config.rate_limits()),
        );
        let webterminal = WebTerminalServiceServer::from_arc(sessions.clone())
            .max_decoding_message_size(config.max_message_bytes);

        let (health, health_service) = tonic_health::server::health_reporter();
        health
            .set_serving::<WebTerminalServiceServer<session::WebTerminal>>()
            .await;
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                // Both reflection versions list each other too, whichever a client asks.
                .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(
                    tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
                )
        };
        let reflection_v1 = reflection().build_v1()?;
        let reflection_v1alpha = reflection().build_v1alpha()?;

        // TCP options go on the incoming stream.
        let tcp = TcpIncoming::from(listener)
            .with_nodelay(Some(true))
            .with_keepalive(Some(Duration::from_secs(30)));
        let open_files = listener::open_file_limit();
        let incoming = listener::Incoming::new(tcp, config.connections, open_files);
        let (max_connections, max_connections_per_ip) = incoming.caps();
        tracing::info!(
            open_files,
            max_connections,
            max_connections_per_ip,
            handshake_timeout = ?config.connections.handshake_timeout,
            idle_timeout = ?config.connections.idle_timeout,
            outbound_queue = config.outbound_queue_capacity(),
            "connection limits"
        );
        tracing::info!(rates = ?config.rate_limits(), "rate limits per second (0: none)");
        // One router for everything on the port: the gRPC services (HTTP/2) and the browsers'
        // WebSocket gateway (HTTP/1.1 upgrades), PROTOCOL.md section 11.
        let mut routes = tonic::service::Routes::builder();
        routes
            .add_service(webterminal)
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(operator::service(
                driver.clone(),
                verifier,
                sim_control.clone(),
                record_store,
            ));
        if let Some(sim) = sim_control {
            routes.add_service(simulator::service(sim));
        }
        let websockets = tokio_util::task::TaskTracker::new();
        // Every WebSocket session has ended (the HTTP server does not wait for upgraded
        // connections): at shutdown, once the driver has closed every terminal's queue.
        let websockets_ended = || {
            websockets.close();
            websockets.wait()
        };
        let gateway = gateway::Gateway {
            service: sessions,
            max_message_bytes: config.max_message_bytes,
            keepalive: config.keepalive,
            allowed_origins: config.allowed_origins.clone().into(),
            sessions: websockets.clone(),
        };
        let app = routes
            .routes()
            .prepare()
            .into_axum_router()
            .merge(browser_routes(gateway, &config))
            .fallback(softphone::not_found);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = http_server::serve(app, incoming, tls, config.keepalive, async {
            let _ = stopped.await;
        });
        tokio::pin!(server);
        tokio::pin!(shutdown);

        tokio::select! {
            () = &mut server => {
                // The listener ended on its own: end every call before returning.
                let _ = driver.shutdown().await;
                websockets_ended().await;
                close_records().await;
                close_notifier().await;
                return Ok(());
            }
            () = &mut shutdown => {}
        }

        tracing::info!("shutting down: no new connections, Bye{{SERVER_SHUTDOWN}} on every leg");
        config.health.start_draining();
        health
            .set_not_serving::<WebTerminalServiceServer<session::WebTerminal>>()
            .await;
        let _ = stop.send(());
        let drain = async {
            let _ = tokio::join!(driver.shutdown(), &mut server);
            websockets_ended().await;
        };
        match tokio::time::timeout(config.drain_timeout, drain).await {
            Ok(()) => {}
            Err(_) => {
                tracing::warn!(
                    drain_timeout = ?config.drain_timeout,
                    "connections still open after the drain timeout; closing them"
                );
                driver_task.abort();
            }
        }
        let _ = driver_task.await;
        close_records().await;
        close_notifier().await;
        tracing::info!("shut down");
        Ok(())
    }
}

/// Everything served on the port besides gRPC, over HTTP/1.1 (PROTOCOL.md section 11): the
/// WebSocket gateway (`GET /pipe`, `GET /multipipe`), the softphone page (`GET /` and its assets,
/// [`softphone::router`]) and, with `config.demo_tokens`, its demo token endpoint
/// ([`softphone::demo_router`]).
fn browser_routes(gateway: gateway::Gateway, config: &ServerConfig) -> axum::Router {
    let routes = gateway::router(gateway)
        .merge(softphone::router())
        .merge(health::router(config.health.clone()));
    match &config.demo_tokens {
        Some(demo) => routes.merge(softphone::demo_router(&config.jwt_secret, demo.clone())),
        None => routes,
    }
}

/// A seed for the switch's call-id generator, from the operating system's randomness.
fn seed() -> u64 {
    getrandom::u64().expect("the operating system provides randomness")
}
