//! The records writer (PROTOCOL.md section 9): a thread of its own that folds call events into
//! records and commits them to the [`RecordStore`], so that no disk write ever happens on the
//! driver task.
//!
//! The driver hands events over with [`RecorderHandle::record`], which never waits: the queue holds
//! [`QUEUE_EVENTS`]; when it is full the event is dropped, counted and logged. The thread commits
//! one transaction at most [`BATCH_WINDOW`] after the first change it holds (so a record is
//! committed well within a second of its call's end), and at once on [`Recorder::flush`] and
//! [`Recorder::close`]. While calls are live it also notes every [`HEARTBEAT`] that the core is
//! alive, for estimating their end after a crash. A failed write is logged and counted; the calls
//! go on, and the thread with them.

use super::builder::{Built, RecordBuilder};
use super::{Batch, RecordStore};
use crate::core::{CallEvent, CallRef};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::oneshot;

/// Call events the writer's queue holds before the driver drops them.
pub const QUEUE_EVENTS: usize = 65_536;

/// Longest a change waits in the writer before it is committed.
pub const BATCH_WINDOW: Duration = Duration::from_millis(200);

/// How often the writer notes that the core is alive while calls are live.
pub const HEARTBEAT: Duration = Duration::from_secs(1);

/// How often a busy writer takes the events that came (an idle one waits for the next message).
const TICK: Duration = Duration::from_millis(50);

/// Counters of the writer, for logs and metrics. Every field only grows.
#[derive(Debug, Default)]
pub struct RecorderStats {
    /// Events dropped because the queue was full.
    pub dropped_events: AtomicU64,
    /// Transactions that failed (their changes are lost).
    pub failed_writes: AtomicU64,
    /// Finished records committed.
    pub records_written: AtomicU64,
    /// Records lost because records were unavailable: one per call that ended
    /// ([`RecorderHandle::unavailable`]).
    pub lost_records: AtomicU64,
}

enum Message {
    /// Boxed: the queue's slots are allocated up front, and most stay empty.
    Event(Box<CallEvent>),
    Flush(oneshot::Sender<()>),
    /// Commit, answer, and end the thread.
    Close(oneshot::Sender<()>),
}

/// The driver's side of the writer: cheap to clone; [`RecorderHandle::record`] never waits.
#[derive(Clone, Debug)]
pub struct RecorderHandle {
    /// The writer's queue; `None` when records are unavailable ([`RecorderHandle::unavailable`]).
    queue: Option<SyncSender<Message>>,
    stats: Arc<RecorderStats>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Message::Event(e) => f.debug_tuple("Event").field(&e.sequence).finish(),
            Message::Flush(_) => f.write_str("Flush"),
            Message::Close(_) => f.write_str("Close"),
        }
    }
}

impl RecorderHandle {
    /// A handle for a core whose records are configured but unavailable (the store could not be
    /// opened at start, PROTOCOL.md section 9): it keeps nothing, and counts the record of each
    /// call that ends as lost ([`RecorderStats::lost_records`], `webterminal_records_lost_total`),
    /// logged.
    pub fn unavailable() -> RecorderHandle {
        RecorderHandle {
            queue: None,
            stats: Arc::default(),
        }
    }

    /// Queues `event` for the writer, or drops it (counted in
    /// [`RecorderStats::dropped_events`], logged) when the queue is full or the writer has
    /// stopped. Never waits. Without a writer ([`RecorderHandle::unavailable`]) a call's final
    /// event counts its record as lost.
    pub fn record(&self, event: CallEvent) {
        let Some(queue) = &self.queue else {
            if event.status.is_final() {
                let lost = self.stats.lost_records.fetch_add(1, Ordering::Relaxed) + 1;
                metrics::counter!(crate::metric_names::RECORDS_LOST).increment(1);
                // The first, then every power of two: the cause was logged at start.
                if lost.is_power_of_two() {
                    tracing::warn!(lost, "call records are unavailable: call records lost");
                }
            }
            return;
        };
        match queue.try_send(Message::Event(Box::new(event))) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                let dropped = self.stats.dropped_events.fetch_add(1, Ordering::Relaxed) + 1;
                metrics::counter!(crate::metric_names::RECORDS_DROPPED).increment(1);
                // The first, then every power of two: a full queue must not flood the log.
                if dropped.is_power_of_two() {
                    tracing::warn!(
                        dropped,
                        "call records: the writer's queue is full, call events dropped"
                    );
                }
            }
        }
    }

    /// The writer's counters.
    pub fn stats(&self) -> &Arc<RecorderStats> {
        &self.stats
    }
}

/// The writer thread and its store. Dropping it lets the thread commit and end on its own once
/// every [`RecorderHandle`] is gone; [`Recorder::close`] does so and waits.
pub struct Recorder {
    handle: RecorderHandle,
    store: Arc<dyn RecordStore>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("stats", &self.handle.stats)
            .finish_non_exhaustive()
    }
}

impl Recorder {
    /// Closes the calls `store` holds as live from a process that died
    /// ([`RecordStore::close_abandoned`]; a failure is logged), then starts the writer thread.
    /// `clock` turns an event's `Instant` into UTC ([`crate::clock::wall_clock`]).
    ///
    /// # Errors
    /// The operating system refused a thread.
    pub fn start(
        store: Arc<dyn RecordStore>,
        clock: impl Fn(Instant) -> SystemTime + Send + 'static,
    ) -> std::io::Result<Recorder> {
        match store.close_abandoned() {
            Ok(0) => {}
            Ok(closed) => tracing::warn!(
                closed,
                "call records: closed the calls left live by a core that stopped unexpectedly"
            ),
            Err(e) => tracing::error!(%e, "call records: cannot close the calls left live"),
        }
        let (queue, inbox) = mpsc::sync_channel(QUEUE_EVENTS);
        let stats = Arc::new(RecorderStats::default());
        let writer = Writer {
            store: store.clone(),
            builder: RecordBuilder::new(clock),
            stats: stats.clone(),
            pending: HashMap::new(),
            since: None,
        };
        let thread = std::thread::Builder::new()
            .name("call-records".into())
            .spawn(move || writer.run(inbox))?;
        Ok(Recorder {
            handle: RecorderHandle {
                queue: Some(queue),
                stats,
            },
            store,
            thread: Some(thread),
        })
    }

    /// A handle for the driver.
    pub fn handle(&self) -> RecorderHandle {
        self.handle.clone()
    }

    /// The store, for reading (`ListCallRecords`).
    pub fn store(&self) -> &Arc<dyn RecordStore> {
        &self.store
    }

    /// Commits everything queued before this call and waits until it is committed (or failed).
    pub async fn flush(&self) {
        self.ask(Message::Flush).await;
    }

    /// Sends `message` (waiting for room in a full queue, off the runtime's threads) and waits
    /// for its answer.
    async fn ask(&self, message: fn(oneshot::Sender<()>) -> Message) {
        let (done, committed) = oneshot::channel();
        let Some(queue) = self.handle.queue.clone() else {
            return;
        };
        let sent = tokio::task::spawn_blocking(move || queue.send(message(done)).is_ok())
            .await
            .unwrap_or(false);
        if sent {
            let _ = committed.await;
        }
    }

    /// Commits everything queued before this call (PROTOCOL.md section 9: "at once on a clean
    /// shutdown"), ends the writer thread and waits for it. Events queued later by handles still
    /// held are dropped and counted.
    pub async fn close(mut self) {
        self.ask(Message::Close).await;
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

/// The state of the writer thread.
struct Writer {
    store: Arc<dyn RecordStore>,
    builder: RecordBuilder,
    stats: Arc<RecorderStats>,
    /// The calls changed since the last commit: the newest row of each.
    pending: HashMap<CallRef, Built>,
    /// When the oldest pending change came.
    since: Option<Instant>,
}

impl Writer {
    fn run(mut self, inbox: mpsc::Receiver<Message>) {
        let mut last_heartbeat = Instant::now();
        loop {
            // Idle (nothing pending, no live call): block until a message comes. Busy: sleep a
            // tick, then take everything that came meanwhile, so that a core carrying thousands
            // of calls a second does not wake this thread once per event (every wake-up costs a
            // context switch, on a small machine taken from the threads that carry the calls).
            let mut next = if self.since.is_none() && self.builder.live_calls() == 0 {
                inbox.recv().map_err(|_| TryRecvError::Disconnected)
            } else {
                std::thread::sleep(TICK);
                inbox.try_recv()
            };
            loop {
                match next {
                    Ok(Message::Event(event)) => {
                        if let Some(built) = self.builder.fold(&event) {
                            self.pending.insert(built.call_ref(), built);
                            self.since.get_or_insert_with(Instant::now);
                        }
                    }
                    Ok(Message::Flush(done)) => {
                        self.commit();
                        last_heartbeat = Instant::now();
                        let _ = done.send(());
                    }
                    Ok(Message::Close(done)) => {
                        self.commit();
                        let _ = done.send(());
                        return;
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        self.commit();
                        return;
                    }
                }
                next = inbox.try_recv();
            }
            let now = Instant::now();
            let due = self.since.is_some_and(|since| now >= since + BATCH_WINDOW);
            let beat = self.builder.live_calls() > 0 && now >= last_heartbeat + HEARTBEAT;
            if due || beat {
                self.commit();
                last_heartbeat = now;
            }
        }
    }

    /// Writes the pending changes (and that the core is alive) in one transaction.
    fn commit(&mut self) {
        self.since = None;
        let mut batch = Batch {
            alive_at: (self.builder.live_calls() > 0 || !self.pending.is_empty())
                .then(SystemTime::now),
            ..Batch::default()
        };
        for (_, built) in self.pending.drain() {
            match built {
                Built::Live(live) => batch.live.push(live),
                Built::Finished(record) => batch.finished.push(record),
            }
        }
        if batch.is_empty() {
            return;
        }
        match self.store.write(&batch) {
            Ok(()) => {
                self.stats
                    .records_written
                    .fetch_add(batch.finished.len() as u64, Ordering::Relaxed);
                metrics::counter!(crate::metric_names::RECORDS_WRITTEN)
                    .increment(batch.finished.len() as u64);
            }
            Err(e) => {
                let failed = self.stats.failed_writes.fetch_add(1, Ordering::Relaxed) + 1;
                metrics::counter!(crate::metric_names::RECORDS_FAILED).increment(1);
                tracing::error!(
                    %e,
                    failed,
                    lost_records = batch.finished.len(),
                    "call records: cannot write; calls go on without their records"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{ByeReason, CallContext, CallId, CallStatus, Msisdn};
    use crate::records::{CallRecord, RecordPage, RecordQuery, StoreError};
    use std::sync::Mutex;

    /// A store in memory that can be told to fail.
    #[derive(Default, Debug)]
    struct Memory {
        batches: Mutex<Vec<Batch>>,
        fail: std::sync::atomic::AtomicBool,
    }

    impl RecordStore for Memory {
        fn write(&self, batch: &Batch) -> Result<(), StoreError> {
            if self.fail.load(Ordering::Relaxed) {
                return Err(StoreError::Database("disk full".into()));
            }
            self.batches.lock().unwrap().push(batch.clone());
            Ok(())
        }
        fn close_abandoned(&self) -> Result<usize, StoreError> {
            Ok(0)
        }
        fn list(&self, _: &RecordQuery) -> Result<RecordPage, StoreError> {
            Ok(RecordPage::default())
        }
    }

    impl Memory {
        fn finished(&self) -> Vec<CallRecord> {
            let batches = self.batches.lock().unwrap();
            batches.iter().flat_map(|b| b.finished.clone()).collect()
        }
    }

    fn event(call_ref: CallRef, sequence: u64, status: CallStatus) -> CallEvent {
        CallEvent {
            sequence,
            at: Instant::now(),
            call_ref,
            caller: Msisdn::parse("+4799990001").unwrap(),
            callee: Msisdn::parse("+4799990002").unwrap(),
            caller_call_id: CallId::random(),
            callee_call_id: CallId::random(),
            status,
            device: None,
            reason: status.is_final().then_some(ByeReason::Cancelled),
            context: CallContext::default(),
            group_answer: None,
        }
    }

    #[tokio::test]
    async fn a_finished_call_is_committed_within_the_batch_window_without_a_flush() {
        let store = Arc::new(Memory::default());
        let recorder = Recorder::start(store.clone(), |_| SystemTime::now()).unwrap();
        let handle = recorder.handle();
        let call = CallRef(uuid::Uuid::new_v4());
        handle.record(event(call, 1, CallStatus::Started));
        handle.record(event(call, 2, CallStatus::Unanswered));
        let deadline = Instant::now() + Duration::from_secs(1);
        while store.finished().is_empty() {
            assert!(Instant::now() < deadline, "not committed within a second");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let batches = store.batches.lock().unwrap().clone();
        assert_eq!(batches.len(), 1, "one transaction");
        assert!(
            batches[0].live.is_empty(),
            "a call that ended in the batch has no live row"
        );
        assert_eq!(store.finished()[0].call_ref, call);
        drop(handle);
        recorder.close().await;
    }

    #[tokio::test]
    async fn a_failing_store_is_counted_and_the_writer_goes_on() {
        let store = Arc::new(Memory::default());
        store.fail.store(true, Ordering::Relaxed);
        let recorder = Recorder::start(store.clone(), |_| SystemTime::now()).unwrap();
        let handle = recorder.handle();
        let first = CallRef(uuid::Uuid::new_v4());
        handle.record(event(first, 1, CallStatus::Started));
        handle.record(event(first, 2, CallStatus::Unanswered));
        recorder.flush().await;
        assert_eq!(handle.stats().failed_writes.load(Ordering::Relaxed), 1);
        store.fail.store(false, Ordering::Relaxed);
        let second = CallRef(uuid::Uuid::new_v4());
        handle.record(event(second, 3, CallStatus::Started));
        handle.record(event(second, 4, CallStatus::Unanswered));
        drop(handle);
        recorder.close().await;
        let finished: Vec<CallRef> = store.finished().iter().map(|r| r.call_ref).collect();
        assert_eq!(finished, [second]);
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_waiting() {
        let (queue, _inbox) = mpsc::sync_channel(1);
        let handle = RecorderHandle {
            queue: Some(queue),
            stats: Arc::default(),
        };
        let call = CallRef(uuid::Uuid::new_v4());
        for n in 0..5 {
            handle.record(event(call, n, CallStatus::Started));
        }
        assert_eq!(handle.stats().dropped_events.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn without_a_writer_each_call_that_ends_is_a_record_lost() {
        let handle = RecorderHandle::unavailable();
        for n in 0..3 {
            let call = CallRef(uuid::Uuid::new_v4());
            handle.record(event(call, 2 * n, CallStatus::Started));
            handle.record(event(call, 2 * n + 1, CallStatus::Unanswered));
        }
        let stats = handle.stats();
        assert_eq!(stats.lost_records.load(Ordering::Relaxed), 3);
        assert_eq!(stats.dropped_events.load(Ordering::Relaxed), 0);
    }
}
