//! The driver: the one tokio task that owns the [`Switch`] (docs/ARCHITECTURE.md, "One owner, `&mut self`").
//!
//! Stream tasks hand it inputs through a [`DriverHandle`]; it feeds each to the switch with
//! `Instant::now()`, then drains every [`Output`] before the next input: notices go to the terminal's
//! bounded outbound queue, commands go to the phone network. It also reads the phone network's
//! events and sleeps until the switch's next deadline. No lock guards call state: only this task
//! touches it.
//!
//! Back-pressure: a terminal whose outbound queue is full is a slow consumer. It is dropped at once
//! (its response stream ends, its calls end as PROTOCOL.md 4.8 says) rather than letting one slow
//! client stall the switch for everyone.
//!
//! The driver also owns what only it may touch between two inputs: the [`event_hub`] every call
//! event is published into, and the operator API's [`queries`] it answers with the switch.

pub mod event_hub;
pub mod queries;

use crate::core::Msisdn;
use crate::core::{
    Output, PhoneEvent, PipeKind, RegisterError, Rejection, Request, Router, Switch, TerminalId,
};
use crate::driver::event_hub::EventHub;
use crate::driver::queries::OperatorQuery;
use crate::notifications::NotifierHandle;
use crate::phone::PhoneNetwork;
use crate::proto::webterminal::WebTerminalMessage;
use crate::records::RecorderHandle;
use crate::telemetry::metrics::DriverMetrics;
use crate::wire;
use std::collections::HashMap;
use std::fmt;
use std::time::Instant;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tonic::Status;

/// Capacity of a terminal's outbound queue, in messages, before room for the answers to a burst of
/// its messages is added ([`outbound_queue_for`]); with no message rate limit, the whole capacity.
/// A terminal that lets its queue fill is dropped as a slow consumer.
pub const DEFAULT_OUTBOUND_QUEUE: usize = 256;

/// Capacity of the driver's input queue, in inputs. When it is full, stream tasks wait (they stop
/// reading their clients), which pushes back on the clients through HTTP/2 flow control.
const INPUT_QUEUE: usize = 1024;

/// The sending half of a terminal's outbound queue: what the response stream of its rpc yields.
pub type Outbound = mpsc::Sender<Result<WebTerminalMessage, Status>>;

/// One input for the driver task. Sent through a [`DriverHandle`].
#[derive(Debug)]
pub(crate) enum DriverInput {
    /// A terminal opened `Pipe` or `MultiPipe` as `msisdn` (from its token). The driver keeps
    /// `outbound` and answers on `reply`; on error it drops `outbound`.
    Register {
        terminal: TerminalId,
        msisdn: Msisdn,
        kind: PipeKind,
        outbound: Outbound,
        /// Dropped by the driver when it lets go of the terminal, after sending why when it was a
        /// slow consumer (see [`Detached`]).
        detached: oneshot::Sender<DetachReason>,
        reply: oneshot::Sender<Result<(), RegisterError>>,
    },
    /// A message from the terminal, parsed at the edge; `raw_call_id` is its `call_id` as sent, echoed
    /// on an `Error` answering it (PROTOCOL.md section 6).
    Request {
        terminal: TerminalId,
        raw_call_id: String,
        parsed: Result<Request, Rejection>,
    },
    /// The terminal half-closed its request stream (PROTOCOL.md section 3).
    HalfClose { terminal: TerminalId },
    /// The terminal's rpc ended: cancelled, connection lost, or its response stream was dropped
    /// (PROTOCOL.md 4.8). Idempotent.
    Gone { terminal: TerminalId },
    /// Asks for [`DriverStats`].
    Stats { reply: oneshot::Sender<DriverStats> },
    /// A question of the operator API (PROTOCOL.md section 8).
    Operator(OperatorQuery),
    /// The embedder's routing hook (PROTOCOL.md section 5), for every new call from now on.
    SetRouter(RouterBox),
    /// Server shutdown (PROTOCOL.md 4.9): `Bye{SERVER_SHUTDOWN}` on every live leg, every response
    /// stream ends with status OK, then the driver stops and answers on `done`.
    Shutdown { done: oneshot::Sender<()> },
}

/// An embedder's routing hook on its way to the driver.
pub(crate) struct RouterBox(Box<dyn Router>);

impl fmt::Debug for RouterBox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Router")
    }
}

/// Resolves when the driver lets go of a registered terminal: it was dropped as a slow consumer, it
/// went away, or the server shut down. Its reader should stop reading then: nothing it sends is
/// looked at any more, and a flooding client that does not read must not keep the server busy.
#[derive(Debug)]
pub struct Detached(oneshot::Receiver<DetachReason>);

impl Detached {
    /// Waits until the driver has let go of the terminal; `Some` when it says why (a slow
    /// consumer), `None` when the terminal went away or the server shut down.
    pub async fn wait(&mut self) -> Option<DetachReason> {
        (&mut self.0).await.ok()
    }
}

/// Why the driver let go of a terminal the rpc of which is still open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DetachReason {
    /// Its outbound queue, of `queue` messages, was full: the client does not read fast enough
    /// (or at all). Its rpc ends with `RESOURCE_EXHAUSTED` and its calls end as if it had gone
    /// (PROTOCOL.md 4.8).
    SlowConsumer {
        /// The queue's capacity, in messages.
        queue: usize,
    },
}

/// The outbound queue capacity, in messages, for a terminal allowed `messages_per_second` messages
/// a second (burst: twice as many; 0 is unlimited): [`DEFAULT_OUTBOUND_QUEUE`] for notices, plus
/// room for one answer to each message of a full burst, so that a client that reads promptly is
/// never dropped for the answers to a burst within its rate limit.
pub fn outbound_queue_for(messages_per_second: u32) -> usize {
    let burst = 2 * usize::try_from(messages_per_second).unwrap_or(usize::MAX / 4);
    DEFAULT_OUTBOUND_QUEUE.saturating_add(burst)
}

/// A snapshot of the switch's size, for tests and health checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct DriverStats {
    /// Registered terminals.
    pub terminals: usize,
    /// Calls held by the switch, ringing or established. Zero once every terminal has gone
    /// (PROTOCOL.md section 6: "the core holds no call").
    pub calls: usize,
}

/// What can go wrong talking to the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriverError {
    /// The driver task has stopped (the server is shutting down).
    Stopped,
    /// The switch refused the registration: a terminal limit is reached.
    Register(RegisterError),
}

impl fmt::Display for DriverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DriverError::Stopped => f.write_str("the core is shutting down"),
            DriverError::Register(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for DriverError {}

impl From<DriverError> for Status {
    /// `RESOURCE_EXHAUSTED` for a terminal limit (PROTOCOL.md section 6), `UNAVAILABLE` when the core
    /// is shutting down.
    fn from(e: DriverError) -> Status {
        match e {
            DriverError::Stopped => Status::unavailable(e.to_string()),
            DriverError::Register(_) => Status::resource_exhausted(e.to_string()),
        }
    }
}

/// A cheap, cloneable way to talk to the driver task. Every method fails with
/// [`DriverError::Stopped`] once the driver has shut down.
#[derive(Clone, Debug)]
pub struct DriverHandle {
    inputs: mpsc::Sender<DriverInput>,
}

impl DriverHandle {
    async fn send(&self, input: DriverInput) -> Result<(), DriverError> {
        self.inputs
            .send(input)
            .await
            .map_err(|_| DriverError::Stopped)
    }

    /// Registers a terminal (see `DriverInput::Register`); resolves once the switch accepted it, after
    /// any `Idle`/`InCall`/`Offer` for it has been queued on `outbound`.
    ///
    /// # Errors
    /// [`DriverError::Register`] when a terminal limit is reached, [`DriverError::Stopped`].
    pub async fn register(
        &self,
        terminal: TerminalId,
        msisdn: Msisdn,
        kind: PipeKind,
        outbound: Outbound,
    ) -> Result<Detached, DriverError> {
        let (reply, answer) = oneshot::channel();
        let (detached, signal) = oneshot::channel();
        self.send(DriverInput::Register {
            terminal,
            msisdn,
            kind,
            outbound,
            detached,
            reply,
        })
        .await?;
        answer
            .await
            .map_err(|_| DriverError::Stopped)?
            .map_err(DriverError::Register)?;
        Ok(Detached(signal))
    }

    /// Hands over one message of a terminal (see `DriverInput::Request`). Returns once queued; the
    /// answer, if any, arrives on the terminal's outbound queue.
    ///
    /// # Errors
    /// [`DriverError::Stopped`].
    pub async fn request(
        &self,
        terminal: TerminalId,
        raw_call_id: String,
        parsed: Result<Request, Rejection>,
    ) -> Result<(), DriverError> {
        self.send(DriverInput::Request {
            terminal,
            raw_call_id,
            parsed,
        })
        .await
    }

    /// The terminal half-closed (see `DriverInput::HalfClose`).
    ///
    /// # Errors
    /// [`DriverError::Stopped`].
    pub async fn half_close(&self, terminal: TerminalId) -> Result<(), DriverError> {
        self.send(DriverInput::HalfClose { terminal }).await
    }

    /// The terminal's rpc ended (see `DriverInput::Gone`).
    ///
    /// # Errors
    /// [`DriverError::Stopped`].
    pub async fn gone(&self, terminal: TerminalId) -> Result<(), DriverError> {
        self.send(DriverInput::Gone { terminal }).await
    }

    /// How many terminals and calls the switch holds now.
    ///
    /// # Errors
    /// [`DriverError::Stopped`].
    pub async fn stats(&self) -> Result<DriverStats, DriverError> {
        let (reply, answer) = oneshot::channel();
        self.send(DriverInput::Stats { reply }).await?;
        answer.await.map_err(|_| DriverError::Stopped)
    }

    /// Has the switch consult `router` for every new call from now on (PROTOCOL.md section 5).
    ///
    /// # Errors
    /// [`DriverError::Stopped`].
    pub async fn set_router(&self, router: Box<dyn Router>) -> Result<(), DriverError> {
        self.send(DriverInput::SetRouter(RouterBox(router))).await
    }

    /// Hands a question of the operator API to the driver; it answers on the query's own reply.
    ///
    /// # Errors
    /// [`DriverError::Stopped`].
    pub async fn operator(&self, query: OperatorQuery) -> Result<(), DriverError> {
        self.send(DriverInput::Operator(query)).await
    }

    /// Shuts the switch down (see `DriverInput::Shutdown`) and waits until every Bye is queued and
    /// every outbound queue is closed.
    ///
    /// # Errors
    /// [`DriverError::Stopped`] when it had already stopped.
    pub async fn shutdown(&self) -> Result<(), DriverError> {
        let (done, finished) = oneshot::channel();
        self.send(DriverInput::Shutdown { done }).await?;
        finished.await.map_err(|_| DriverError::Stopped)
    }
}

/// Starts the driver task on the current tokio runtime, owning `switch` and, when given, the phone
/// network that reports on `phone_events` (the receiver of the `PhoneReports` channel it was built
/// with). The task ends after a shutdown, or when every [`DriverHandle`] is dropped (then it shuts the
/// switch down the same way).
pub fn spawn(
    switch: Switch,
    events: EventHub,
    phone: Option<Box<dyn PhoneNetwork>>,
    phone_events: mpsc::UnboundedReceiver<PhoneEvent>,
) -> (DriverHandle, JoinHandle<()>) {
    spawn_with_records(switch, events, phone, phone_events, None)
}

/// [`spawn`], also handing every call event to the call records writer when `records` is given
/// (PROTOCOL.md section 9; never waiting on it).
pub fn spawn_with_records(
    switch: Switch,
    events: EventHub,
    phone: Option<Box<dyn PhoneNetwork>>,
    phone_events: mpsc::UnboundedReceiver<PhoneEvent>,
    records: Option<RecorderHandle>,
) -> (DriverHandle, JoinHandle<()>) {
    spawn_with_sinks(switch, events, phone, phone_events, records, None)
}

/// [`spawn_with_records`], also queueing the notification of every answered group call for Redis
/// when `notifications` is given (PROTOCOL.md section 10; never waiting on it).
pub(crate) fn spawn_with_sinks(
    switch: Switch,
    events: EventHub,
    phone: Option<Box<dyn PhoneNetwork>>,
    phone_events: mpsc::UnboundedReceiver<PhoneEvent>,
    records: Option<RecorderHandle>,
    notifications: Option<NotifierHandle>,
) -> (DriverHandle, JoinHandle<()>) {
    let (inputs, receiver) = mpsc::channel(INPUT_QUEUE);
    let driver = Driver {
        switch,
        events,
        records,
        notifications,
        phone,
        terminals: HashMap::new(),
        metrics: DriverMetrics::new(),
        queue_changes_seen: 0,
    };
    let task = tokio::spawn(driver.run(receiver, phone_events));
    (DriverHandle { inputs }, task)
}

/// The state of the driver task.
struct Driver {
    switch: Switch,
    /// Call events for the operator API's watchers.
    events: EventHub,
    /// Call events for the call records writer, when records are kept.
    records: Option<RecorderHandle>,
    /// Answered group calls for Redis, when notifications are configured (section 10).
    notifications: Option<NotifierHandle>,
    phone: Option<Box<dyn PhoneNetwork>>,
    /// Each registered terminal's outbound queue, and the signal its reader waits on (dropped with
    /// the entry).
    terminals: HashMap<TerminalId, (Outbound, oneshot::Sender<DetachReason>)>,
    /// Prometheus metrics (PROTOCOL.md section 12).
    metrics: DriverMetrics,
    /// The switch's [`Switch::queue_changes`] when the queue gauges were last set.
    queue_changes_seen: u64,
}

impl Driver {
    async fn run(
        mut self,
        mut inputs: mpsc::Receiver<DriverInput>,
        mut phone_events: mpsc::UnboundedReceiver<PhoneEvent>,
    ) {
        let mut phone_open = true;
        loop {
            let deadline = self.switch.poll_timeout();
            let sleep = tokio::time::sleep_until(match deadline {
                Some(at) => tokio::time::Instant::from_std(at),
                None => tokio::time::Instant::now(),
            });
            tokio::select! {
                input = inputs.recv() => match input {
                    Some(DriverInput::Shutdown { done }) => {
                        self.shutdown();
                        let _ = done.send(());
                        return;
                    }
                    Some(input) => {
                        self.metrics.queue_depth(inputs.len());
                        self.handle(input)
                    }
                    None => {
                        self.shutdown();
                        return;
                    }
                },
                event = phone_events.recv(), if phone_open => match event {
                    Some(event) => self.switch.handle_phone_event(Instant::now(), event),
                    None => phone_open = false,
                },
                () = sleep, if deadline.is_some() => self.switch.handle_timeout(Instant::now()),
            }
            self.drain();
        }
    }

    fn handle(&mut self, input: DriverInput) {
        let now = Instant::now();
        match input {
            DriverInput::Register {
                terminal,
                msisdn,
                kind,
                outbound,
                detached,
                reply,
            } => {
                // Known before registering: the switch may greet the terminal (Idle, InCall, Offer).
                self.terminals.insert(terminal, (outbound, detached));
                let result = self.switch.register(now, terminal, msisdn, kind);
                match result {
                    Ok(()) => self.metrics.terminal(kind, 1.0),
                    Err(_) => {
                        self.terminals.remove(&terminal);
                    }
                }
                self.drain();
                if reply.send(result).is_err() {
                    // The rpc went away while registering.
                    self.drop_terminal(now, terminal);
                }
            }
            DriverInput::Request {
                terminal,
                raw_call_id,
                parsed,
            } => {
                if !self.terminals.contains_key(&terminal) {
                    return;
                }
                self.metrics
                    .message_in(parsed.as_ref().ok().map(|r| r.body.kind()));
                let result =
                    parsed.and_then(|request| self.switch.handle_request(now, terminal, request));
                if let Err(rejection) = result {
                    tracing::debug!(?terminal, %rejection, "request refused");
                    self.deliver(terminal, wire::rejection_to_proto(raw_call_id, &rejection));
                }
            }
            DriverInput::HalfClose { terminal } => self.switch.half_close(now, terminal),
            DriverInput::Gone { terminal } => self.drop_terminal(now, terminal),
            DriverInput::Stats { reply } => {
                let _ = reply.send(DriverStats {
                    terminals: self.switch.terminal_count(),
                    calls: self.switch.call_count(),
                });
            }
            DriverInput::Operator(query) => query.answer(&mut self.switch, &self.events, now),
            DriverInput::SetRouter(RouterBox(router)) => self.switch.set_router(router),
            DriverInput::Shutdown { .. } => unreachable!("handled by the run loop"),
        }
    }

    /// Carries out every output of the switch (docs/ARCHITECTURE.md, "Inputs in, outputs polled").
    fn drain(&mut self) {
        while let Some(output) = self.switch.poll_output() {
            match output {
                Output::Deliver { terminal, notice } => {
                    self.deliver(terminal, wire::notice_to_proto(notice));
                }
                Output::Phone(command) => match &mut self.phone {
                    Some(phone) => phone.send(command),
                    None => tracing::warn!(?command, "no phone network for a phone command"),
                },
                Output::Event(event) => {
                    self.metrics.call_event(&event);
                    if let Some(records) = &self.records {
                        records.record(event.clone());
                    }
                    if let Some(notifications) = &self.notifications {
                        notifications.notify(&event);
                    }
                    self.events.publish(event);
                }
            }
        }
        let queue_changes = self.switch.queue_changes();
        if queue_changes != self.queue_changes_seen {
            self.queue_changes_seen = queue_changes;
            self.metrics
                .queued_calls(&self.switch.queued_calls_by_group());
        }
    }

    /// Queues `message` for `terminal`. A full queue means a slow consumer and a closed one a
    /// terminal that went away: either way the terminal is dropped and unregistered; the outputs that
    /// causes are drained by the caller's loop.
    fn deliver(&mut self, terminal: TerminalId, message: WebTerminalMessage) {
        let Some((outbound, _)) = self.terminals.get(&terminal) else {
            return;
        };
        self.metrics.message_out(&message);
        match outbound.try_send(Ok(message)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                let queue = outbound.max_capacity();
                tracing::warn!(
                    ?terminal,
                    queue,
                    "slow consumer: outbound queue full, dropping the terminal"
                );
                if let Some((_, detached)) = self.terminals.remove(&terminal) {
                    let _ = detached.send(DetachReason::SlowConsumer { queue });
                    self.metrics.slow_consumer();
                    self.unregister(Instant::now(), terminal);
                }
            }
            Err(TrySendError::Closed(_)) => self.drop_terminal(Instant::now(), terminal),
        }
    }

    /// Forgets the terminal's queue (its response stream ends) and unregisters it from the switch.
    fn drop_terminal(&mut self, now: Instant, terminal: TerminalId) {
        if self.terminals.remove(&terminal).is_some() {
            self.unregister(now, terminal);
        }
    }

    /// Unregisters the terminal from the switch (PROTOCOL.md 4.8).
    fn unregister(&mut self, now: Instant, terminal: TerminalId) {
        if let Some(kind) = self.switch.terminal_kind(terminal) {
            self.metrics.terminal(kind, -1.0);
        }
        self.switch.unregister(now, terminal);
    }

    /// PROTOCOL.md 4.9: Bye{SERVER_SHUTDOWN} everywhere, then every outbound queue closes, so every
    /// response stream ends with status OK once its queued messages are read.
    fn shutdown(&mut self) {
        tracing::info!(
            terminals = self.terminals.len(),
            calls = self.switch.call_count(),
            "switch shutting down"
        );
        self.switch.shutdown(Instant::now());
        self.drain();
        self.terminals.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{ByeReason, RequestBody, Sdp, SwitchConfig};
    use crate::proto::webterminal::{bye, web_terminal_message::Message};

    const SDP: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.2\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:111 opus/48000/2\r\na=sendrecv\r\n";

    fn no_phone() -> (DriverHandle, JoinHandle<()>) {
        let (_reports, events) = crate::phone::PhoneReports::channel();
        spawn(
            Switch::new(
                SwitchConfig {
                    phone_network: false,
                    ..SwitchConfig::default()
                },
                1,
            ),
            EventHub::new(Default::default()),
            None,
            events,
        )
    }

    fn msisdn(s: &str) -> Msisdn {
        Msisdn::parse(s).unwrap()
    }

    async fn next(rx: &mut mpsc::Receiver<Result<WebTerminalMessage, Status>>) -> Message {
        let msg = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
            .await
            .expect("a message in time")
            .expect("queue open")
            .expect("no status");
        msg.message.expect("oneof set")
    }

    #[tokio::test]
    async fn pipe_is_greeted_with_idle_and_counted() {
        let (driver, _task) = no_phone();
        let (tx, mut rx) = mpsc::channel(8);
        driver
            .register(TerminalId(1), msisdn("+4799990001"), PipeKind::Pipe, tx)
            .await
            .unwrap();
        assert!(matches!(next(&mut rx).await, Message::Idle(_)));
        assert_eq!(
            driver.stats().await.unwrap(),
            DriverStats {
                terminals: 1,
                calls: 0
            }
        );
        driver.gone(TerminalId(1)).await.unwrap();
        driver.gone(TerminalId(1)).await.unwrap();
        assert_eq!(driver.stats().await.unwrap(), DriverStats::default());
    }

    #[tokio::test]
    async fn edge_rejection_is_answered_with_the_raw_call_id() {
        let (driver, _task) = no_phone();
        let (tx, mut rx) = mpsc::channel(8);
        driver
            .register(
                TerminalId(1),
                msisdn("+4799990001"),
                PipeKind::MultiPipe,
                tx,
            )
            .await
            .unwrap();
        driver
            .request(
                TerminalId(1),
                "nope".into(),
                Err(Rejection::new(crate::core::ErrorCode::InvalidCallId, "bad")),
            )
            .await
            .unwrap();
        let Message::Error(e) = next(&mut rx).await else {
            panic!("expected Error")
        };
        assert_eq!(
            e.err,
            wire::error_code_to_proto(crate::core::ErrorCode::InvalidCallId) as i32
        );
    }

    #[tokio::test]
    async fn call_between_terminals_then_shutdown_byes_and_closes() {
        let (driver, task) = no_phone();
        let (tx_a, mut rx_a) = mpsc::channel(8);
        let (tx_b, mut rx_b) = mpsc::channel(8);
        let mut detached_a = driver
            .register(
                TerminalId(1),
                msisdn("+4799990001"),
                PipeKind::MultiPipe,
                tx_a,
            )
            .await
            .unwrap();
        driver
            .register(
                TerminalId(2),
                msisdn("+4799990002"),
                PipeKind::MultiPipe,
                tx_b,
            )
            .await
            .unwrap();
        let id = crate::core::CallId::random();
        driver
            .request(
                TerminalId(1),
                id.to_string(),
                Ok(Request {
                    call_id: Some(id),
                    body: RequestBody::Offer {
                        sdp: Sdp::parse(SDP, 65536).unwrap(),
                        to: Some(msisdn("+4799990002")),
                        context: Default::default(),
                    },
                }),
            )
            .await
            .unwrap();
        assert!(matches!(next(&mut rx_b).await, Message::Offer(_)));
        assert_eq!(driver.stats().await.unwrap().calls, 1);

        driver.shutdown().await.unwrap();
        let bye = |m: Message| match m {
            Message::Bye(b) => b.reason,
            other => panic!("expected Bye, got {other:?}"),
        };
        assert_eq!(
            bye(next(&mut rx_a).await),
            bye::Reason::ServerShutdown as i32
        );
        assert_eq!(
            bye(next(&mut rx_b).await),
            bye::Reason::ServerShutdown as i32
        );
        assert!(rx_a.recv().await.is_none(), "stream ends after shutdown");
        assert_eq!(detached_a.wait().await, None, "no reason: the rpc ends OK");
        assert!(rx_b.recv().await.is_none(), "stream ends after shutdown");
        task.await.unwrap();
        assert_eq!(driver.stats().await, Err(DriverError::Stopped));
    }

    #[tokio::test]
    async fn slow_consumer_is_dropped_and_its_call_ends() {
        let (driver, _task) = no_phone();
        // B's queue holds one message: the first Offer fills it and B never reads.
        let (tx_a, mut rx_a) = mpsc::channel(8);
        let (tx_b, mut rx_b) = mpsc::channel(1);
        driver
            .register(
                TerminalId(1),
                msisdn("+4799990001"),
                PipeKind::MultiPipe,
                tx_a,
            )
            .await
            .unwrap();
        let mut detached_b = driver
            .register(
                TerminalId(2),
                msisdn("+4799990002"),
                PipeKind::MultiPipe,
                tx_b,
            )
            .await
            .unwrap();
        let offer = |id: crate::core::CallId| Request {
            call_id: Some(id),
            body: RequestBody::Offer {
                sdp: Sdp::parse(SDP, 65536).unwrap(),
                to: Some(msisdn("+4799990002")),
                context: Default::default(),
            },
        };
        let first = crate::core::CallId::random();
        let second = crate::core::CallId::random();
        driver
            .request(TerminalId(1), first.to_string(), Ok(offer(first)))
            .await
            .unwrap();
        driver
            .request(TerminalId(1), second.to_string(), Ok(offer(second)))
            .await
            .unwrap();
        // The second Offer found B's queue full: B is dropped, so both calls lose their only fork.
        assert!(matches!(next(&mut rx_b).await, Message::Offer(_)));
        assert!(
            rx_b.recv().await.is_none(),
            "the slow consumer's stream ends"
        );
        assert_eq!(
            detached_b.wait().await,
            Some(DetachReason::SlowConsumer { queue: 1 }),
            "its reader is told why, to end the rpc with RESOURCE_EXHAUSTED"
        );
        let mut reasons = vec![];
        for _ in 0..2 {
            if let Message::Bye(b) = next(&mut rx_a).await {
                reasons.push(b.reason);
            }
        }
        assert_eq!(
            reasons,
            vec![
                wire::bye_reason_to_proto(ByeReason::Unavailable) as i32,
                wire::bye_reason_to_proto(ByeReason::Unavailable) as i32
            ]
        );
        assert_eq!(
            driver.stats().await.unwrap(),
            DriverStats {
                terminals: 1,
                calls: 0
            }
        );
    }
}
