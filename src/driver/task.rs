//! The driver task itself: it feeds each input to the switch with `Instant::now()`, drains every
//! output, delivers terminal messages to their bounded queues, and fans call events out to the
//! [`Sinks`].

use super::event_hub::EventHub;
use super::handle::{DetachReason, DriverHandle, DriverInput, DriverStats, Outbound, RouterBox};
use crate::core::{Output, PhoneEvent, Switch, TerminalId};
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

/// Capacity of the driver's input queue, in inputs. When it is full, stream tasks wait (they stop
/// reading their clients), which pushes back on the clients through HTTP/2 flow control.
const INPUT_QUEUE: usize = 1024;

/// Where the driver hands what the switch outputs besides terminal messages (docs/ARCHITECTURE.md,
/// "One way through"), each behind a bounded queue it never waits on.
#[derive(Debug)]
pub struct Sinks {
    /// Call events for the operator API's watchers (PROTOCOL.md section 8).
    pub events: EventHub,
    /// Call events for the call records writer, when records are kept (section 9).
    pub records: Option<RecorderHandle>,
    /// Answered group calls for Redis, when notifications are configured (section 10).
    pub notifications: Option<NotifierHandle>,
}

impl Sinks {
    /// The operator API's event hub only: no records, no notifications.
    pub fn new(events: EventHub) -> Sinks {
        Sinks {
            events,
            records: None,
            notifications: None,
        }
    }
}

/// The phone network as the driver sees it (PROTOCOL.md section 7): where the switch's commands go,
/// and the receiving half of the `PhoneReports` channel the network reports its events on.
pub struct PhoneLink {
    /// The network, or `None` when the server runs without one.
    pub network: Option<Box<dyn PhoneNetwork>>,
    /// The network's events.
    pub events: mpsc::UnboundedReceiver<PhoneEvent>,
}

impl fmt::Debug for PhoneLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PhoneLink")
            .field("network", &self.network.is_some())
            .finish_non_exhaustive()
    }
}

/// Starts the driver task on the current tokio runtime, owning `switch`, handing the phone
/// network its commands and reading its events through `phone`, and fanning call events out to
/// `sinks`. The task ends after a shutdown, or when every [`DriverHandle`] is dropped (then it
/// shuts the switch down the same way).
pub fn spawn(switch: Switch, phone: PhoneLink, sinks: Sinks) -> (DriverHandle, JoinHandle<()>) {
    let (inputs, receiver) = mpsc::channel(INPUT_QUEUE);
    let Sinks {
        events,
        records,
        notifications,
    } = sinks;
    let driver = Driver {
        switch,
        events,
        records,
        notifications,
        phone: phone.network,
        terminals: HashMap::new(),
        metrics: DriverMetrics::new(),
        queue_changes_seen: 0,
    };
    let task = tokio::spawn(driver.run(receiver, phone.events));
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
    use super::super::handle::DriverError;
    use super::*;
    use crate::core::{
        ByeReason, Msisdn, PipeKind, Rejection, Request, RequestBody, Sdp, SwitchConfig,
    };
    use crate::proto::webterminal::{bye, web_terminal_message::Message};
    use tonic::Status;

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
                Instant::now(),
            ),
            PhoneLink {
                network: None,
                events,
            },
            Sinks::new(EventHub::new(Default::default())),
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
