//! One terminal's session (PROTOCOL.md sections 1 and 3), the same whichever transport carries
//! it: the gRPC `Pipe` and `MultiPipe` ([`super::grpc`]) or the browsers' WebSocket gateway
//! ([`super::gateway`], section 11).
//!
//! Each rpc (or WebSocket) is one terminal. The transport authenticates the token before any
//! message ([`Verifier`]) and hands the session its inbound messages as an [`InboundStream`];
//! [`WebTerminal::open_session`] registers the terminal with the driver and returns its outbound
//! queue as a [`TerminalStream`]. A reader task then decodes every inbound message with
//! [`wire::parse_request`] and hands it to the driver (a keepalive, [`wire::is_keepalive`], is only
//! charged to the terminal's rate limit); it reports the client's half-close, and the end of the
//! session (the [`TerminalStream`] dropped: cancelled, connection lost, or ended by the driver) as
//! `Gone`. The transports are adapters around it: gRPC's is [`super::grpc`], WebSocket's
//! [`super::gateway`].

use crate::auth::Verifier;
use crate::core::RequestBody;
use crate::core::{PipeKind, TerminalId};
use crate::driver::DetachReason;
use crate::driver::DriverHandle;
use crate::edge::rate_limit::{NumberBudgets, RateLimits};
use crate::proto::webterminal::WebTerminalMessage;
use crate::wire::{self, Limits};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::Status;

/// The WebTerminal service: one value serves every rpc of the server. Wrap it in
/// `WebTerminalServiceServer` to serve it.
#[derive(Debug)]
pub struct WebTerminal {
    driver: DriverHandle,
    verifier: Arc<Verifier>,
    limits: Limits,
    outbound_queue: usize,
    budgets: Arc<NumberBudgets>,
    next_terminal: AtomicU64,
}

impl WebTerminal {
    /// A service that registers terminals with `driver`, authenticates them with `verifier`, checks
    /// fields against `limits`, and gives each terminal an outbound queue of `outbound_queue`
    /// messages (a terminal that lets it fill is dropped as a slow consumer).
    ///
    /// # Panics
    /// If `outbound_queue` is 0.
    pub fn new(
        driver: DriverHandle,
        verifier: Arc<Verifier>,
        limits: Limits,
        outbound_queue: usize,
    ) -> Self {
        assert!(
            outbound_queue > 0,
            "an outbound queue holds at least one message"
        );
        WebTerminal {
            driver,
            verifier,
            limits,
            outbound_queue,
            budgets: Arc::new(NumberBudgets::new(RateLimits::UNLIMITED)),
            next_terminal: AtomicU64::new(1),
        }
    }

    /// Limits messages and new call attempts per second, per terminal and per number (across all
    /// its terminals and reconnects), and new calls from one number to another; a message over a
    /// limit gets `Error{RATE_LIMIT_HIT}` with its call_id and goes no further (PROTOCOL.md section
    /// 6). The check runs in the terminal's own reader task: the switch never sees such a message,
    /// the driver only forwards its rejection (in order with the answers before it), and the
    /// driver's bounded input queue holds a flooding terminal back. Default: unlimited.
    pub fn with_rate_limits(mut self, rates: RateLimits) -> Self {
        self.budgets = Arc::new(NumberBudgets::new(rates));
        self
    }

    /// The verifier the transports authenticate terminals with.
    pub fn verifier(&self) -> &Arc<Verifier> {
        &self.verifier
    }

    /// Opens one terminal of `kind` for `msisdn` (already authenticated by the transport), reading
    /// its messages from `inbound`, whatever carries them (PROTOCOL.md sections 3 and 11). Returns
    /// the terminal's outbound stream; dropping it ends the session (`Gone`).
    ///
    /// # Errors
    /// `RESOURCE_EXHAUSTED` past a terminal limit, `UNAVAILABLE` while shutting down (PROTOCOL.md
    /// section 6).
    pub async fn open_session(
        &self,
        kind: PipeKind,
        msisdn: crate::core::Msisdn,
        inbound: impl InboundStream,
    ) -> Result<TerminalStream, Status> {
        let terminal = TerminalId(self.next_terminal.fetch_add(1, Ordering::Relaxed));
        let (outbound, queue) = mpsc::channel(self.outbound_queue);
        let (registered_tx, registered) = oneshot::channel();
        let (gone_guard, gone) = oneshot::channel();
        let (failed_tx, failed) = oneshot::channel();
        tracing::debug!(?terminal, ?msisdn, ?kind, "terminal opening");
        // Registration and reading run in their own task, so that a client that cancels while this
        // handler awaits still ends in `Gone` (the guard and queue are dropped with this future).
        let reader = Reader {
            driver: self.driver.clone(),
            terminal,
            kind,
            limits: self.limits,
            budgets: self.budgets.clone(),
        };
        tokio::spawn(reader.run(msisdn, outbound, registered_tx, inbound, gone, failed_tx));
        match registered.await {
            Ok(Ok(())) => Ok(TerminalStream {
                queue: ReceiverStream::new(queue),
                failed: Some(failed),
                done: false,
                _gone_guard: gone_guard,
            }),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(Status::unavailable("the core is shutting down")),
        }
    }
}

/// The response stream of one terminal: the messages the driver queued for it, in order. It ends
/// with status OK when the driver closes the terminal's queue at shutdown (PROTOCOL.md 4.9). It
/// fails with a status, at once (messages still queued are dropped), when the terminal was dropped
/// as a slow consumer (`RESOURCE_EXHAUSTED`, saying so) or its request stream could not be read (a
/// message over the size limit, or one that does not decode). Dropping it (the rpc ended) tells the
/// reader task the terminal is gone.
pub struct TerminalStream {
    queue: ReceiverStream<Result<WebTerminalMessage, Status>>,
    /// The status that fails the rpc, sent by the reader task when it could not read the request
    /// stream or the driver dropped the terminal as a slow consumer (PROTOCOL.md section 6: a gRPC
    /// status ends an rpc whose stream is unusable; OK would read as a shutdown). Dropped without
    /// a status when the reader ends otherwise.
    failed: Option<oneshot::Receiver<Status>>,
    /// The failing status has been yielded: the stream is over.
    done: bool,
    /// Dropped with the stream; the reader task waits for that.
    _gone_guard: oneshot::Sender<()>,
}

impl Stream for TerminalStream {
    type Item = Result<WebTerminalMessage, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if let Some(failed) = self.failed.as_mut() {
            if let Poll::Ready(result) = Pin::new(failed).poll(cx) {
                self.failed = None;
                if let Ok(status) = result {
                    self.done = true;
                    return Poll::Ready(Some(Err(status)));
                }
            }
        }
        match Pin::new(&mut self.queue).poll_next(cx) {
            // The driver let go of the terminal. Whether the rpc ends OK or with a status is the
            // reader task's word, which it gives (or drops) as soon as it sees the driver let go.
            Poll::Ready(None) if self.failed.is_some() => Poll::Pending,
            polled => polled,
        }
    }
}

impl std::fmt::Debug for TerminalStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TerminalStream")
    }
}

/// What a transport read next from a terminal ([`InboundStream::next`]).
#[derive(Debug)]
pub enum Inbound {
    /// One message.
    Message(WebTerminalMessage),
    /// The client half-closed its stream: no more messages, but it still reads (PROTOCOL.md
    /// section 3).
    HalfClosed,
    /// The stream cannot be read on (a message over the size limit, or one that does not decode):
    /// the session ends with this status, which the transport tells the client.
    Failed(Status),
    /// The client went away (closed, cancelled, connection lost): the session ends.
    Gone,
}

/// A terminal's inbound messages as a transport reads them: the request stream of a gRPC rpc, or
/// the frames of a WebSocket. The session's reader task polls [`InboundStream::next`] in a
/// `select!`, so it must be cancel-safe.
pub trait InboundStream: Send + 'static {
    /// The next message or event.
    fn next(&mut self) -> impl Future<Output = Inbound> + Send;
}

/// The task that reads one terminal's inbound stream.
struct Reader {
    driver: DriverHandle,
    terminal: TerminalId,
    kind: PipeKind,
    limits: Limits,
    budgets: Arc<NumberBudgets>,
}

impl Reader {
    async fn run(
        self,
        msisdn: crate::core::Msisdn,
        outbound: crate::driver::Outbound,
        registered: oneshot::Sender<Result<(), crate::driver::DriverError>>,
        mut inbound: impl InboundStream,
        mut gone: oneshot::Receiver<()>,
        failed: oneshot::Sender<Status>,
    ) {
        let terminal = self.terminal;
        let mut budget = self.budgets.terminal(&msisdn, std::time::Instant::now());
        let result = self
            .driver
            .register(terminal, msisdn.clone(), self.kind, outbound)
            .await;
        let mut detached = match result {
            Ok(detached) => {
                let _ = registered.send(Ok(()));
                detached
            }
            Err(e) => {
                let _ = registered.send(Err(e));
                return;
            }
        };
        let mut reading = true;
        loop {
            tokio::select! {
                _ = &mut gone => break,
                // The driver let go of this terminal (a slow consumer, or shutdown): stop reading,
                // so that a client flooding a stream it does not read costs nothing more. A slow
                // consumer's rpc ends with RESOURCE_EXHAUSTED, saying why.
                reason = detached.wait() => {
                    if let Some(DetachReason::SlowConsumer { queue }) = reason {
                        let _ = failed.send(Status::resource_exhausted(format!(
                            "dropped as a slow consumer: {queue} messages waited unread in this \
                             terminal's outbound queue; its calls ended as if it had gone \
                             (PROTOCOL.md 4.8)"
                        )));
                    }
                    return;
                }
                next = inbound.next(), if reading => match next {
                    // A keepalive (no oneof, no call_id) is answered with nothing and goes no
                    // further, but it is charged like any message (PROTOCOL.md section 1): over the
                    // budget, it is dropped as silently, and the next real message is refused.
                    Inbound::Message(message) if wire::is_keepalive(&message) => {
                        let _ = budget.charge(std::time::Instant::now(), false);
                    }
                    Inbound::Message(message) => {
                        let raw_call_id = message.call_id.clone();
                        let new_call = wire::attempts_a_call(&message);
                        // Over budget: the message goes no further than a ready-made rejection,
                        // which the driver only forwards, in order with the answers before it.
                        let now = std::time::Instant::now();
                        let parsed = budget
                            .charge(now, new_call)
                            .and_then(|()| wire::parse_request(self.kind, message, &self.limits))
                            .and_then(|request| match &request.body {
                                RequestBody::Offer { to: Some(callee), .. }
                                | RequestBody::Transfer { to: callee } => {
                                    budget.charge_callee(now, callee).map(|()| request)
                                }
                                _ => Ok(request),
                            });
                        if self.driver.request(terminal, raw_call_id, parsed).await.is_err() {
                            return;
                        }
                    }
                    Inbound::HalfClosed => {
                        tracing::debug!(?terminal, "terminal half-closed");
                        reading = false;
                        if self.driver.half_close(terminal).await.is_err() {
                            return;
                        }
                    }
                    Inbound::Failed(status) => {
                        tracing::debug!(?terminal, %status, "terminal request stream failed");
                        // The session fails with that status.
                        let _ = failed.send(status);
                        break;
                    }
                    Inbound::Gone => break,
                },
            }
        }
        tracing::debug!(?terminal, "terminal gone");
        let _ = self.driver.gone(terminal).await;
    }
}
