//! The pusher: a tokio task that moves notifications from the [`NotificationQueue`] to Redis
//! (PROTOCOL.md section 10), and the handle the driver queues them through.
//!
//! It takes up to [`BATCH`] notifications from the head of the queue, sends them in one
//! `RPUSH key v1 v2 …` (Redis appends them in that order) and removes them from the queue only once
//! Redis has answered. On any error (cannot connect, connection lost, no answer within
//! [`RESPONSE_TIMEOUT`], an error reply) it drops the connection, waits ([`MIN_BACKOFF`], doubling
//! to [`MAX_BACKOFF`]) and sends the same notifications again over a new connection: delivery is in
//! order and at least once (a push whose answer was lost may arrive twice). Redis being down at
//! start is no different: the first connection is made on the first notification.
//!
//! The connection is made with `redis::Client::get_multiplexed_async_connection_with_config`, not
//! `redis::aio::ConnectionManager`: the pusher already retries and backs off, and a second retry
//! layer underneath would stack its own delays on top.

use super::payload::InboundCall;
use super::queue::{NotificationQueue, NotificationStats};
use super::NotificationsConfig;
use crate::core::CallEvent;
use crate::pacing::{Backoff, LogThrottle};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Most notifications sent in one `RPUSH`.
pub const BATCH: usize = 100;

/// First wait after a failed push.
pub const MIN_BACKOFF: Duration = Duration::from_millis(100);

/// Longest wait between two tries while Redis stays unreachable.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How long connecting to Redis may take before it counts as a failure.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long Redis may take to answer an `RPUSH` before it counts as a failure (and the batch is
/// sent again).
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// While Redis stays unreachable, at most one warning per this long.
const FAILURE_WARN_INTERVAL: Duration = Duration::from_secs(30);

/// The driver's side: queues notifications, never waits. Cheap to clone.
#[derive(Clone, Debug)]
pub struct NotifierHandle {
    queue: Arc<NotificationQueue>,
}

impl NotifierHandle {
    /// Queues the notification of `event` when it is the answer of a group call
    /// ([`InboundCall::from_event`]); does nothing for any other event. Never waits.
    pub fn notify(&self, event: &CallEvent) {
        if let Some(call) = InboundCall::from_event(event) {
            self.queue.push(call);
        }
    }

    /// Queues `call` (dropping the oldest when the queue is full). Never waits.
    pub fn push(&self, call: InboundCall) {
        self.queue.push(call);
    }

    /// The queue's counters.
    pub fn stats(&self) -> &NotificationStats {
        self.queue.stats()
    }
}

/// The pusher task and its queue. [`Notifier::close`] gives it a bounded time to deliver what is
/// queued; dropping it stops the task at once.
#[derive(Debug)]
pub struct Notifier {
    queue: Arc<NotificationQueue>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
    target: String,
}

impl Notifier {
    /// Starts the pusher for `config` on the current tokio runtime. It connects on the first
    /// notification, so a Redis that is down (or never comes up) changes nothing here.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn start(config: &NotificationsConfig) -> Notifier {
        let queue = Arc::new(NotificationQueue::new(config.queue_bound));
        let (stop, stopped) = watch::channel(false);
        let target = config.target();
        tracing::info!(
            redis = %target,
            key = %config.key,
            queue = queue.bound(),
            "inbound-call notifications to Redis"
        );
        let pusher = Pusher {
            queue: queue.clone(),
            client: config.client.clone(),
            key: config.key.clone(),
            target: target.clone(),
        };
        let task = tokio::spawn(pusher.run(stopped));
        Notifier {
            queue,
            stop,
            task: Some(task),
            target,
        }
    }

    /// A handle for the driver.
    pub fn handle(&self) -> NotifierHandle {
        NotifierHandle {
            queue: self.queue.clone(),
        }
    }

    /// The queue's counters, shared.
    pub fn stats(&self) -> &NotificationStats {
        self.queue.stats()
    }

    /// Stops the pusher once the queue is empty, waiting at most `within` for it to deliver what
    /// is queued; past that the task is stopped and what is left is lost (logged). Returns how many
    /// notifications were left undelivered. Never waits longer than `within`.
    pub async fn close(mut self, within: Duration) -> usize {
        let _ = self.stop.send(true);
        let Some(mut task) = self.task.take() else {
            return self.queue.len();
        };
        if tokio::time::timeout(within, &mut task).await.is_err() {
            task.abort();
        }
        let left = self.queue.len();
        if left > 0 {
            tracing::warn!(
                left,
                redis = %self.target,
                "inbound-call notifications: Redis did not take them before shutdown; lost"
            );
        }
        left
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The state of the pusher task.
struct Pusher {
    queue: Arc<NotificationQueue>,
    client: redis::Client,
    key: String,
    /// Where Redis is, without credentials, for logs.
    target: String,
}

impl Pusher {
    async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut connection: Option<redis::aio::MultiplexedConnection> = None;
        let mut backoff = Backoff::new(MIN_BACKOFF, MAX_BACKOFF);
        let mut failing_since: Option<Instant> = None;
        let mut warnings = LogThrottle::new(FAILURE_WARN_INTERVAL);
        let mut stopping = false;
        loop {
            let batch = self.queue.peek(BATCH);
            if batch.items.is_empty() {
                if stopping {
                    return;
                }
                tokio::select! {
                    () = self.queue.wait() => {}
                    // A closed channel (the Notifier is gone) stops the task too.
                    _ = stop.changed() => stopping = true,
                }
                continue;
            }
            let values: Vec<String> = batch.items.iter().map(|call| call.to_json()).collect();
            match self.push(&mut connection, &values).await {
                Ok(()) => {
                    self.queue.delivered(&batch);
                    if let Some(since) = failing_since.take() {
                        tracing::info!(
                            redis = %self.target,
                            unreachable_for = ?since.elapsed(),
                            queued = self.queue.len(),
                            "inbound-call notifications: Redis takes them again"
                        );
                    }
                    backoff.reset();
                    warnings.reset();
                }
                Err(e) => {
                    connection = None;
                    let now = Instant::now();
                    failing_since.get_or_insert(now);
                    let wait = backoff.next_wait();
                    if warnings.due(now).is_some() {
                        tracing::warn!(
                            redis = %self.target,
                            error = %e,
                            queued = self.queue.len(),
                            retry_in = ?wait,
                            "inbound-call notifications: cannot push to Redis; kept and retried"
                        );
                    }
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// One `RPUSH key values…`, connecting first when there is no connection.
    async fn push(
        &self,
        connection: &mut Option<redis::aio::MultiplexedConnection>,
        values: &[String],
    ) -> redis::RedisResult<()> {
        let connection = match connection {
            Some(connection) => connection,
            None => {
                let config = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(Some(RESPONSE_TIMEOUT));
                connection.insert(
                    self.client
                        .get_multiplexed_async_connection_with_config(&config)
                        .await?,
                )
            }
        };
        let _length: i64 = redis::cmd("RPUSH")
            .arg(&self.key)
            .arg(values)
            .query_async(connection)
            .await?;
        Ok(())
    }
}
