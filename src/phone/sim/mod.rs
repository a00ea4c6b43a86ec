//! The simulated phone network (PROTOCOL.md section 7), on by default so that every scenario can be
//! tried on one machine.
//!
//! Every E.164 number has a simulated phone. By default it rings when called and never answers by
//! itself; it accepts a handover at once; it answers a re-offer at once. Per number, the operator API
//! (`webterminal.core.v1.SimulatedPhoneNetwork`, served by `crate::operator::simulator`) or the
//! configuration can make it answer, decline, be busy or be unreachable ([`Behaviour`]), and can
//! answer, reject or hang up its calls by hand ([`Operation`]).
//!
//! **Simulated phones carry no media.** Their SDPs ([`generated_sdp`], [`generated_answer_sdp`]) are
//! generated: syntactically valid WebRTC audio descriptions with no reachable address behind them, so a
//! browser that talks to a simulated phone negotiates but never hears anything.
//!
//! Shape: a file a concern. `behaviour.rs` says what a phone does and what the operator may do to
//! it; the state machine is the plain, synchronous [`SimulatedPhones`] (`machine.rs`, tested
//! without tokio); its SDPs come from `sdp.rs`. One task (`task.rs`), spawned by
//! [`SimulatedPhoneNetwork::start`], owns the machine and is fed by an unbounded channel from the
//! [`SimulatedPhoneNetwork`] (the switch's commands) and from any number of [`SimulatorControl`]s
//! (the operator's requests). No locks: one owner, `&mut self`.

mod behaviour;
mod machine;
mod sdp;
mod task;
#[cfg(test)]
mod test_support;

pub use behaviour::{Behaviour, Operation, SimError};
pub use machine::SimulatedPhones;
pub use sdp::{generated_answer_sdp, generated_sdp};
pub use task::{SimulatedPhoneNetwork, SimulatorControl};
