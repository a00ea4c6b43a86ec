//! The driver: the one tokio task that owns the [`Switch`](crate::core::Switch) (docs/ARCHITECTURE.md, "One owner, `&mut self`").
//!
//! Stream tasks hand it inputs through a [`DriverHandle`]; it feeds each to the switch with
//! `Instant::now()`, then drains every [`Output`](crate::core::Output) before the next input: notices go to the terminal's
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
//!
//! Files: [`handle`] (what the rest of the server sends the driver), `task.rs` (the task and
//! [`spawn`]), [`event_hub`] and [`queries`].

pub mod event_hub;
pub mod handle;
pub mod queries;
mod task;

pub use handle::{
    outbound_queue_for, DetachReason, Detached, DriverError, DriverHandle, DriverStats, Outbound,
    DEFAULT_OUTBOUND_QUEUE,
};
pub use task::{spawn, PhoneLink, Sinks};
