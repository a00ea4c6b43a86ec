//! The operator API's questions to the driver (PROTOCOL.md section 8): the driver answers each
//! between two inputs, with the switch and the event hub it owns, so that a `ListCalls` snapshot
//! and the sequence it reflects, or a watcher's replay and its subscription, are taken atomically.

use super::event_hub::{EventHub, Watch};
use crate::core::{CallRef, LiveCall, Msisdn, Presence, Switch};
use std::time::Instant;
use tokio::sync::oneshot;
use tonic::Status;

/// A question for the driver from the operator API; answered between two inputs.
#[derive(Debug)]
pub enum OperatorQuery {
    /// `WatchCalls`.
    Watch {
        /// Replay the held events after this sequence (0: none).
        after: u64,
        /// The answer.
        reply: oneshot::Sender<Result<Watch, Status>>,
    },
    /// `ListCalls`: the live calls (of one number) and the last sequence.
    ListCalls {
        /// Only this number's calls.
        msisdn: Option<Msisdn>,
        /// The answer.
        reply: oneshot::Sender<(Vec<LiveCall>, u64)>,
    },
    /// `GetPresence`.
    Presence {
        /// The number.
        msisdn: Msisdn,
        /// The answer.
        reply: oneshot::Sender<Presence>,
    },
    /// `EndCall`: `false` when the ref is not live.
    EndCall {
        /// The call.
        call_ref: CallRef,
        /// The answer.
        reply: oneshot::Sender<bool>,
    },
}

impl OperatorQuery {
    /// Answers the query from the driver task, with the switch and the hub it owns.
    pub fn answer(self, switch: &mut Switch, hub: &EventHub, now: Instant) {
        match self {
            OperatorQuery::Watch { after, reply } => {
                let _ = reply.send(hub.watch(after, switch.last_sequence()));
            }
            OperatorQuery::ListCalls { msisdn, reply } => {
                let calls = switch.live_calls(msisdn.as_ref());
                let _ = reply.send((calls, switch.last_sequence()));
            }
            OperatorQuery::Presence { msisdn, reply } => {
                let _ = reply.send(switch.presence(&msisdn));
            }
            OperatorQuery::EndCall { call_ref, reply } => {
                let _ = reply.send(switch.end_call(now, call_ref));
            }
        }
    }
}
