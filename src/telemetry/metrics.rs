//! Prometheus metrics (PROTOCOL.md section 12), through the `metrics` facade: the driver counts
//! terminals, calls, messages, errors and drops with handles resolved once (no registry lookup on the
//! hot path), and [`install`] serves them at `GET /metrics` with `metrics-exporter-prometheus`.
//! Without an installed recorder (tests, embedders that bring their own) every handle is a no-op.
//!
//! The names are [`crate::metric_names`]'s, re-exported here.

pub use crate::metric_names::*;

use crate::core::{ByeReason, CallEvent, CallRef, CallStatus, Msisdn, PipeKind};
use crate::proto::webterminal::{error, web_terminal_message::Message, WebTerminalMessage};
use metrics::{Counter, Gauge, Histogram};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::Instant;

/// Call setup buckets, in seconds: answered by a bot in milliseconds, by a person in seconds.
const SETUP_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0,
];

/// Queue hold buckets, in seconds: a free agent answers in seconds, a busy queue in minutes.
const HOLD_BUCKETS: [f64; 11] = [
    1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
];

/// Why [`install`] failed.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The recorder could not be built or installed (one is installed already).
    #[error("metrics: {0}")]
    Recorder(#[from] metrics_exporter_prometheus::BuildError),
    /// The metrics listener could not be bound.
    #[error("metrics: cannot listen on {listen}: {source}")]
    Listen {
        /// The address asked for.
        listen: SocketAddr,
        /// Why the bind failed.
        source: std::io::Error,
    },
}

/// How often histograms are folded and idle series expired, as the exporter asks of its owner.
const UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// Installs the process-wide Prometheus recorder and serves, over HTTP/1.1 on `listen` (port 0:
/// any free port), `GET /metrics` in the Prometheus text format (PROTOCOL.md section 12) and
/// `GET /healthz` and `GET /readyz` reporting `health` ([`super::health`]). Returns the address
/// bound, once it listens.
///
/// # Errors
/// [`MetricsError`] when a recorder is already installed or `listen` cannot be bound.
///
/// # Panics
/// Outside a tokio runtime (the HTTP listener and the exporter's upkeep run on it).
pub async fn install(
    listen: SocketAddr,
    health: super::health::Health,
) -> Result<SocketAddr, MetricsError> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| MetricsError::Listen { listen, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| MetricsError::Listen { listen, source })?;
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full(CALL_SETUP.to_owned()),
            &SETUP_BUCKETS,
        )?
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full(QUEUE_HOLD.to_owned()),
            &HOLD_BUCKETS,
        )?
        .install_recorder()?;
    describe();
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(UPKEEP_INTERVAL);
        loop {
            interval.tick().await;
            upkeep.run_upkeep();
        }
    });
    let app = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(move || {
                let handle = handle.clone();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4",
                        )],
                        handle.render(),
                    )
                }
            }),
        )
        .merge(super::health::router(health));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(%e, "the metrics listener stopped");
        }
    });
    tracing::info!(listen = %bound, "metrics at http://{bound}/metrics");
    Ok(bound)
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_gauge!(TERMINALS, "Terminals registered, by kind.");
    describe_gauge!(CALLS, "Calls held, by state.");
    describe_counter!(CALLS_ENDED, "Calls ended, by final status and reason.");
    describe_counter!(MESSAGES_IN, "Messages received from terminals, by kind.");
    describe_counter!(MESSAGES_OUT, "Messages sent to terminals, by kind.");
    describe_counter!(ERRORS_SENT, "Error messages sent to terminals, by code.");
    describe_counter!(RATE_LIMIT_HITS, "Messages refused with RATE_LIMIT_HIT.");
    describe_counter!(SLOW_CONSUMERS, "Terminals dropped as slow consumers.");
    describe_histogram!(
        CALL_SETUP,
        Unit::Seconds,
        "Call setup time, from offered to answered."
    );
    describe_gauge!(DRIVER_QUEUE, "Inputs waiting in the driver's queue.");
    describe_counter!(RECORDS_WRITTEN, "Call records committed.");
    describe_counter!(RECORDS_FAILED, "Call record writes that failed.");
    describe_counter!(RECORDS_DROPPED, "Call events the records writer dropped.");
    describe_gauge!(
        RECORDS_UP,
        "1 when call records are kept, 0 when configured but unavailable."
    );
    describe_counter!(
        RECORDS_LOST,
        "Call records lost because records were unavailable, one per call that ended."
    );
    describe_counter!(
        ROUTING_RELOADS,
        "Routing file reloads on SIGHUP, by result."
    );
    describe_gauge!(QUEUED_CALLS, "Calls waiting in group queues, by group.");
    describe_histogram!(
        QUEUE_HOLD,
        Unit::Seconds,
        "How long answered group calls waited, by group."
    );
    describe_counter!(
        NOTIFICATIONS_PUSHED,
        "Inbound-call notifications Redis accepted."
    );
    describe_gauge!(
        NOTIFICATIONS_QUEUED,
        "Inbound-call notifications waiting for Redis."
    );
    describe_counter!(
        SIP_REQUESTS,
        "SIP requests sent and received by the trunk, by direction and method."
    );
    describe_counter!(
        SIP_RESPONSES,
        "SIP responses sent and received by the trunk, by direction and status class."
    );
    describe_gauge!(
        SIP_TRUNK_UP,
        "1 when the SIP trunk answers its OPTIONS pings, 0 when it does not."
    );
    describe_gauge!(
        SIP_REGISTERED,
        "1 while the SIP trunk holds our registration (--sip-register), 0 when not."
    );
    describe_counter!(
        SIP_REFUSED,
        "Datagrams the SIP trunk refused before its stack saw them, by reason."
    );
    describe_counter!(
        NOTIFICATIONS_DROPPED,
        "Inbound-call notifications dropped from a full queue, oldest first."
    );
}

/// Call records are configured: [`RECORDS_UP`] says whether they are kept (`up`), and
/// [`RECORDS_LOST`] is shown from 0.
pub(crate) fn records_configured(up: bool) {
    metrics::gauge!(RECORDS_UP).set(if up { 1.0 } else { 0.0 });
    metrics::counter!(RECORDS_LOST).increment(0);
}

const IN_KINDS: [&str; 6] = ["offer", "answer", "ringing", "bye", "action", "refused"];
const OUT_KINDS: [&str; 7] = [
    "offer", "answer", "ringing", "bye", "idle", "in_call", "error",
];
const ERROR_CODES: [error::Code; 6] = [
    error::Code::Unknown,
    error::Code::NotIncall,
    error::Code::TryAgain,
    error::Code::InvalidCallId,
    error::Code::RateLimitHit,
    error::Code::InvalidArgument,
];

/// The driver's metrics: handles resolved once, and what it takes to time call setup.
pub(crate) struct DriverMetrics {
    terminals: [Gauge; 2],
    ringing: Gauge,
    established: Gauge,
    setup: Histogram,
    messages_in: [Counter; IN_KINDS.len()],
    messages_out: [Counter; OUT_KINDS.len()],
    errors: [Counter; ERROR_CODES.len()],
    rate_limit_hits: Counter,
    slow_consumers: Counter,
    queue: Gauge,
    /// Each group's queued-calls gauge, made when the group first has a call waiting.
    queued_calls: HashMap<Msisdn, Gauge>,
    /// When each live call started, for its setup time.
    started: HashMap<CallRef, (Instant, bool)>,
}

impl DriverMetrics {
    pub(crate) fn new() -> Self {
        DriverMetrics {
            terminals: [
                metrics::gauge!(TERMINALS, "kind" => "pipe"),
                metrics::gauge!(TERMINALS, "kind" => "multipipe"),
            ],
            ringing: metrics::gauge!(CALLS, "state" => "ringing"),
            established: metrics::gauge!(CALLS, "state" => "established"),
            setup: metrics::histogram!(CALL_SETUP),
            messages_in: IN_KINDS.map(|kind| metrics::counter!(MESSAGES_IN, "kind" => kind)),
            messages_out: OUT_KINDS.map(|kind| metrics::counter!(MESSAGES_OUT, "kind" => kind)),
            errors: ERROR_CODES
                .map(|code| metrics::counter!(ERRORS_SENT, "code" => code.as_str_name())),
            rate_limit_hits: metrics::counter!(RATE_LIMIT_HITS),
            slow_consumers: metrics::counter!(SLOW_CONSUMERS),
            queue: metrics::gauge!(DRIVER_QUEUE),
            queued_calls: HashMap::new(),
            started: HashMap::new(),
        }
    }

    /// A terminal of `kind` registered (`+1`) or went (`-1`).
    pub(crate) fn terminal(&self, kind: PipeKind, delta: f64) {
        self.terminals[kind as usize].increment(delta);
    }

    /// A message came from a terminal: `kind` is its oneof field (`None`: refused at the edge).
    pub(crate) fn message_in(&self, kind: Option<&'static str>) {
        let index = kind
            .and_then(|k| IN_KINDS.iter().position(|known| *known == k))
            .unwrap_or(IN_KINDS.len() - 1);
        self.messages_in[index].increment(1);
    }

    /// `message` goes to a terminal.
    pub(crate) fn message_out(&self, message: &WebTerminalMessage) {
        let index = match &message.message {
            Some(Message::Offer(_)) => 0,
            Some(Message::Answer(_)) => 1,
            Some(Message::Ringing(_)) => 2,
            Some(Message::Bye(_)) => 3,
            Some(Message::Idle(_)) => 4,
            Some(Message::InCall(_)) => 5,
            Some(Message::Error(e)) => {
                let code = error::Code::try_from(e.err).unwrap_or(error::Code::Unknown);
                if let Some(i) = ERROR_CODES.iter().position(|c| *c == code) {
                    self.errors[i].increment(1);
                }
                if code == error::Code::RateLimitHit {
                    self.rate_limit_hits.increment(1);
                }
                6
            }
            Some(Message::Action(_)) | None => return,
        };
        self.messages_out[index].increment(1);
    }

    /// A terminal was dropped as a slow consumer.
    pub(crate) fn slow_consumer(&self) {
        self.slow_consumers.increment(1);
    }

    /// The driver's input queue holds `depth` inputs.
    pub(crate) fn queue_depth(&self, depth: usize) {
        self.queue.set(depth as f64);
    }

    /// The calls waiting in each group's queue (a group not named has none).
    pub(crate) fn queued_calls(&mut self, by_group: &BTreeMap<Msisdn, usize>) {
        for (group, gauge) in &self.queued_calls {
            if !by_group.contains_key(group) {
                gauge.set(0.0);
            }
        }
        for (group, count) in by_group {
            self.queued_calls
                .entry(group.clone())
                .or_insert_with(
                    || metrics::gauge!(QUEUED_CALLS, "group" => group.as_str().to_owned()),
                )
                .set(*count as f64);
        }
    }

    /// A call event: calls by state, setup time, group queue hold time, calls ended.
    pub(crate) fn call_event(&mut self, event: &CallEvent) {
        match event.status {
            CallStatus::Started => {
                self.started.insert(event.call_ref, (event.at, false));
                self.ringing.increment(1.0);
            }
            CallStatus::Answered => {
                if let Some((at, answered)) = self.started.get_mut(&event.call_ref) {
                    *answered = true;
                    self.setup
                        .record(event.at.saturating_duration_since(*at).as_secs_f64());
                }
                self.ringing.decrement(1.0);
                self.established.increment(1.0);
                if let Some(group) = &event.group_answer {
                    // One lookup per answered group call; groups are few (the routing file's).
                    metrics::histogram!(QUEUE_HOLD, "group" => group.group.as_str().to_owned())
                        .record(group.hold_time.as_secs_f64());
                }
            }
            status if status.is_final() => {
                let answered = self
                    .started
                    .remove(&event.call_ref)
                    .is_some_and(|(_, answered)| answered);
                match answered {
                    true => self.established.decrement(1.0),
                    false => self.ringing.decrement(1.0),
                }
                let reason = event
                    .reason
                    .map_or("REASON_UNSPECIFIED", ByeReason::name)
                    .to_ascii_lowercase();
                let status = format!("{status:?}").to_ascii_lowercase();
                metrics::counter!(CALLS_ENDED, "status" => status, "reason" => reason).increment(1);
            }
            _ => {}
        }
    }
}
