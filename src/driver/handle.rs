//! How the rest of the server talks to the driver task: a [`DriverHandle`] sends it inputs
//! through its bounded input queue, and the answers come back on oneshot channels.

use super::queries::OperatorQuery;
use crate::core::{Msisdn, PipeKind, RegisterError, Rejection, Request, Router, TerminalId};
use crate::proto::webterminal::WebTerminalMessage;
use std::fmt;
use tokio::sync::{mpsc, oneshot};
use tonic::Status;

/// Capacity of a terminal's outbound queue, in messages, before room for the answers to a burst of
/// its messages is added ([`outbound_queue_for`]); with no message rate limit, the whole capacity.
/// A terminal that lets its queue fill is dropped as a slow consumer.
pub const DEFAULT_OUTBOUND_QUEUE: usize = 256;

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
pub(crate) struct RouterBox(pub(super) Box<dyn Router>);

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
    pub(super) inputs: mpsc::Sender<DriverInput>,
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
