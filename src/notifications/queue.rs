//! The bounded queue between the driver and the pusher (PROTOCOL.md section 10: "notifications
//! wait in a bounded queue ... past the bound the oldest is dropped, logged and counted").
//!
//! - [`NotificationQueue::push`] is synchronous and never waits: it is called on the driver task.
//!   It takes a [`std::sync::Mutex`] that is only ever held for a `VecDeque` operation or for
//!   cloning one batch of `Arc`s (at most [`super::pusher::BATCH`]), never across an `.await`, so
//!   the driver waits at most that long for the pusher. Past the bound it drops the oldest item, counts
//!   it and logs at most one warning per [`DROP_WARN_INTERVAL`] (with the count since the last).
//! - The pusher reads a [`Batch`] from the head without removing it ([`NotificationQueue::peek`])
//!   and removes it only once Redis has it ([`NotificationQueue::delivered`]): delivery is in order
//!   and at least once. Items carry sequence numbers, so a batch whose oldest items were dropped
//!   while it was in flight removes only what is left of it.

use super::payload::InboundCall;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// At most one "notifications dropped" warning per this long.
pub const DROP_WARN_INTERVAL: Duration = Duration::from_secs(10);

/// Counters of the notification queue and its pusher, for tests and health checks. The same
/// numbers go to Prometheus (PROTOCOL.md section 12).
#[derive(Debug, Default)]
pub struct NotificationStats {
    /// Notifications Redis accepted (`webterminal_notifications_pushed_total`). Only grows.
    pub pushed: AtomicU64,
    /// Notifications waiting in the queue now (`webterminal_notifications_queued`).
    pub queued: AtomicU64,
    /// Notifications dropped because the queue was full (`webterminal_notifications_dropped_total`).
    /// Only grows.
    pub dropped: AtomicU64,
}

/// The oldest notifications in the queue, as [`NotificationQueue::peek`] found them.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    /// The sequence number of `items[0]`.
    pub first: u64,
    /// Oldest first (shared with the queue: peeking copies no notification).
    pub items: Vec<Arc<InboundCall>>,
}

impl Batch {
    /// The sequence number after the batch's last item.
    pub fn end(&self) -> u64 {
        self.first + self.items.len() as u64
    }
}

/// A bounded FIFO of notifications that drops the oldest past its bound. Shared (in an `Arc`)
/// between the driver, which pushes, and the pusher task, which peeks and removes.
#[derive(Debug)]
pub struct NotificationQueue {
    state: Mutex<State>,
    bound: usize,
    wake: Notify,
    stats: NotificationStats,
    pushed: metrics::Counter,
    queued: metrics::Gauge,
    dropped: metrics::Counter,
}

#[derive(Debug)]
struct State {
    items: VecDeque<Arc<InboundCall>>,
    /// The sequence number of `items[0]` (of the next item pushed when empty).
    head: u64,
    /// When the last drop warning was logged.
    warned_at: Option<Instant>,
    /// Drops since then.
    unreported: u64,
}

impl NotificationQueue {
    /// An empty queue holding at most `bound` notifications (at least 1). The metric handles are
    /// resolved here, once.
    pub fn new(bound: usize) -> NotificationQueue {
        use crate::metric_names::{
            NOTIFICATIONS_DROPPED, NOTIFICATIONS_PUSHED, NOTIFICATIONS_QUEUED,
        };
        let bound = bound.max(1);
        NotificationQueue {
            state: Mutex::new(State {
                items: VecDeque::with_capacity(bound.min(1024)),
                head: 0,
                warned_at: None,
                unreported: 0,
            }),
            bound,
            wake: Notify::new(),
            stats: NotificationStats::default(),
            pushed: metrics::counter!(NOTIFICATIONS_PUSHED),
            queued: metrics::gauge!(NOTIFICATIONS_QUEUED),
            dropped: metrics::counter!(NOTIFICATIONS_DROPPED),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding it; if something did, the queue is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The most notifications it holds.
    pub fn bound(&self) -> usize {
        self.bound
    }

    /// Notifications waiting now.
    pub fn len(&self) -> usize {
        self.lock().items.len()
    }

    /// Whether none is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The counters.
    pub fn stats(&self) -> &NotificationStats {
        &self.stats
    }

    /// Appends `call` and wakes the pusher. When the queue is full, the oldest notification is
    /// dropped, counted and (rate-limited) logged first. Never waits.
    pub fn push(&self, call: InboundCall) {
        let call = Arc::new(call);
        let mut state = self.lock();
        state.items.push_back(call);
        let dropped = state.items.len() > self.bound;
        let mut warn = None;
        if dropped {
            state.items.pop_front();
            state.head += 1;
            state.unreported += 1;
            let now = Instant::now();
            if state
                .warned_at
                .is_none_or(|at| now.duration_since(at) >= DROP_WARN_INTERVAL)
            {
                warn = Some(state.unreported);
                state.warned_at = Some(now);
                state.unreported = 0;
            }
        }
        // Set under the lock, so that the last value set is the length now.
        self.set_queued(state.items.len());
        drop(state);
        if dropped {
            let total = self.stats.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            self.dropped.increment(1);
            if let Some(since_last) = warn {
                tracing::warn!(
                    dropped = since_last,
                    dropped_total = total,
                    bound = self.bound,
                    "inbound-call notifications: queue full (Redis slow or down), oldest dropped"
                );
            }
        }
        self.wake.notify_one();
    }

    /// Up to `max` of the oldest notifications, cloned; the queue keeps them.
    pub fn peek(&self, max: usize) -> Batch {
        let state = self.lock();
        Batch {
            first: state.head,
            items: state.items.iter().take(max).cloned().collect(),
        }
    }

    /// Redis has `batch`: removes what is left of it from the head and counts it as pushed.
    /// Returns how many were removed (fewer than the batch when the queue dropped some of it
    /// meanwhile; those are counted both as dropped and as pushed).
    pub fn delivered(&self, batch: &Batch) -> usize {
        let mut state = self.lock();
        let mut removed = 0;
        while state.head < batch.end() && !state.items.is_empty() {
            state.items.pop_front();
            state.head += 1;
            removed += 1;
        }
        self.set_queued(state.items.len());
        drop(state);
        self.stats
            .pushed
            .fetch_add(batch.items.len() as u64, Ordering::Relaxed);
        self.pushed.increment(batch.items.len() as u64);
        removed
    }

    /// Waits until a notification is pushed (returns at once if one was pushed since the last
    /// wait).
    pub async fn wait(&self) {
        self.wake.notified().await;
    }

    fn set_queued(&self, len: usize) {
        self.stats.queued.store(len as u64, Ordering::Relaxed);
        self.queued.set(len as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{CallRef, Msisdn};

    fn call(n: u128) -> InboundCall {
        InboundCall {
            number: Msisdn::parse("+4790000009").unwrap(),
            dial_number: Msisdn::parse("+4721000000").unwrap(),
            hold_time: 1,
            call_ref: CallRef(uuid::Uuid::from_u128(n)),
            contact_ref: String::new(),
            reference: "101".into(),
        }
    }

    fn refs(batch: &Batch) -> Vec<u128> {
        batch.items.iter().map(|c| c.call_ref.0.as_u128()).collect()
    }

    #[test]
    fn first_in_first_out_and_kept_until_delivered() {
        let queue = NotificationQueue::new(10);
        for n in 0..5 {
            queue.push(call(n));
        }
        let batch = queue.peek(3);
        assert_eq!(refs(&batch), [0, 1, 2]);
        assert_eq!(refs(&queue.peek(3)), [0, 1, 2], "peeking removes nothing");
        assert_eq!(queue.len(), 5);
        assert_eq!(queue.delivered(&batch), 3);
        assert_eq!(refs(&queue.peek(10)), [3, 4]);
        assert_eq!(queue.stats().pushed.load(Ordering::Relaxed), 3);
        assert_eq!(queue.stats().queued.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn past_the_bound_the_oldest_is_dropped_and_counted() {
        let queue = NotificationQueue::new(3);
        for n in 0..8 {
            queue.push(call(n));
        }
        assert_eq!(queue.len(), 3);
        assert_eq!(refs(&queue.peek(10)), [5, 6, 7]);
        assert_eq!(queue.stats().dropped.load(Ordering::Relaxed), 5);
        assert_eq!(queue.stats().queued.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn a_batch_partly_dropped_in_flight_removes_only_its_rest() {
        let queue = NotificationQueue::new(4);
        for n in 0..4 {
            queue.push(call(n));
        }
        let batch = queue.peek(3); // 0, 1, 2 in flight
        queue.push(call(4)); // drops 0
        queue.push(call(5)); // drops 1
        assert_eq!(queue.delivered(&batch), 1, "only 2 was still queued");
        assert_eq!(refs(&queue.peek(10)), [3, 4, 5]);
        assert_eq!(queue.stats().dropped.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_redelivered_batch_removes_nothing_more() {
        let queue = NotificationQueue::new(4);
        queue.push(call(0));
        queue.push(call(1));
        let batch = queue.peek(1);
        assert_eq!(queue.delivered(&batch), 1);
        assert_eq!(queue.delivered(&batch), 0, "already gone");
        assert_eq!(refs(&queue.peek(10)), [1]);
    }

    #[test]
    fn a_bound_of_zero_holds_one() {
        let queue = NotificationQueue::new(0);
        queue.push(call(0));
        queue.push(call(1));
        assert_eq!(queue.bound(), 1);
        assert_eq!(refs(&queue.peek(10)), [1]);
    }

    /// The log lines written while `f` runs.
    fn logged(f: impl FnOnce()) -> String {
        #[derive(Clone, Default)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let bytes = buffer.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn drops_are_logged_once_per_interval_not_once_each() {
        let queue = NotificationQueue::new(2);
        let started = Instant::now();
        let log = logged(|| {
            for n in 0..1002 {
                queue.push(call(n));
            }
        });
        // However slow the machine: at most one warning per interval begun.
        let intervals = started.elapsed().as_secs() / DROP_WARN_INTERVAL.as_secs();
        assert_eq!(queue.stats().dropped.load(Ordering::Relaxed), 1000);
        let warnings: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("oldest dropped"))
            .collect();
        assert!(!warnings.is_empty(), "the first drop is logged");
        assert!(warnings.len() as u64 <= 1 + intervals, "{log}");
        assert!(warnings[0].contains("dropped=1 "), "{log}");
    }

    #[tokio::test]
    async fn a_push_before_the_wait_is_not_missed() {
        let queue = NotificationQueue::new(4);
        queue.push(call(0));
        tokio::time::timeout(Duration::from_secs(5), queue.wait())
            .await
            .expect("the push left a wake-up");
    }
}
