//! Where call events go (PROTOCOL.md section 8): the last events held for replay, and every live
//! watcher. The driver task owns the hub and publishes every event into it without waiting; the
//! operator API subscribes through the driver ([`super::queries::OperatorQuery::Watch`]), so that
//! a watcher's replay and its subscription are taken together.

use crate::core::CallEvent;
use std::collections::VecDeque;
use tokio::sync::broadcast;
use tonic::Status;

/// The operator API's event buffers (PROTOCOL.md section 8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventLimits {
    /// Events held for replay (`WatchCallsRequest.after_sequence`). Default 10,000, what
    /// PROTOCOL.md asks for at least; smaller values are for tests.
    pub replay: usize,
    /// Events a watcher may fall behind by before it is ended with `RESOURCE_EXHAUSTED`. Default
    /// 4,096.
    pub watcher_lag: usize,
}

impl Default for EventLimits {
    fn default() -> Self {
        EventLimits {
            replay: 10_000,
            watcher_lag: 4_096,
        }
    }
}

/// Where call events go: the last [`EventLimits::replay`] for replay, and every live watcher. Owned
/// by the driver task.
#[derive(Debug)]
pub struct EventHub {
    held: VecDeque<CallEvent>,
    replay: usize,
    live: broadcast::Sender<CallEvent>,
}

impl EventHub {
    /// An empty hub with these buffer sizes (each at least 1).
    pub fn new(limits: EventLimits) -> Self {
        EventHub {
            held: VecDeque::with_capacity(limits.replay.max(1)),
            replay: limits.replay.max(1),
            live: broadcast::channel(limits.watcher_lag.max(1)).0,
        }
    }

    /// Holds `event` for replay and hands it to every watcher; never waits.
    pub fn publish(&mut self, event: CallEvent) {
        if self.held.len() == self.replay {
            self.held.pop_front();
        }
        self.held.push_back(event.clone());
        // No receiver is not an error: nobody watches.
        let _ = self.live.send(event);
    }

    /// The held events after `after` and a subscription to the ones to come, taken together so that
    /// nothing falls between them.
    ///
    /// # Errors
    /// `OUT_OF_RANGE` when `after` is beyond the last event `last`, or the events right after it
    /// are no longer held.
    pub fn watch(&self, after: u64, last: u64) -> Result<Watch, Status> {
        let replay: Vec<CallEvent> = if after == 0 {
            Vec::new()
        } else {
            if after > last {
                return Err(Status::out_of_range(format!(
                    "after_sequence {after} is beyond the last event, {last}: is it from another run of the core?"
                )));
            }
            let oldest = self.held.front().map_or(last + 1, |e| e.sequence);
            if after + 1 < oldest {
                return Err(Status::out_of_range(format!(
                    "the events after {after} are no longer held (the oldest held is {oldest}): list the calls again"
                )));
            }
            self.held
                .iter()
                .filter(|e| e.sequence > after)
                .cloned()
                .collect()
        };
        Ok(Watch {
            replay,
            live: self.live.subscribe(),
        })
    }
}

/// A watcher's start: the replayed events, then the live ones.
#[derive(Debug)]
pub struct Watch {
    /// The held events after the sequence asked for, oldest first.
    pub replay: Vec<CallEvent>,
    /// The events to come.
    pub live: broadcast::Receiver<CallEvent>,
}
