//! The operator API, `webterminal.core.v1.Operator` (PROTOCOL.md section 8): live call events with
//! replay, the live calls, presence, ending a call, and the call records (section 9); and the
//! simulated phone network's own operator API (section 7).
//!
//! Shape: the driver task owns the switch and the
//! [`EventHub`](crate::driver::event_hub::EventHub), and answers
//! [`OperatorQuery`](crate::driver::queries::OperatorQuery)s between two inputs, so a `ListCalls`
//! snapshot and the sequence it reflects, or a watcher's replay and its subscription, are taken
//! atomically. Events reach watchers through a bounded broadcast channel that the driver never
//! waits on: a watcher that falls behind is ended with `RESOURCE_EXHAUSTED`.
//!
//! - [`service`](mod@service): the tonic service, one method an rpc.
//! - [`mapping`]: core values to the operator API's protobuf messages.
//! - [`simulator`]: `webterminal.core.v1.SimulatedPhoneNetwork`, served with the simulated network.

pub mod mapping;
pub mod service;
pub mod simulator;

pub use service::{service, OperatorService};
