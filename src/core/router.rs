//! The routing hook (PROTOCOL.md section 5): an embedder decides where a new call goes — aliases,
//! forwarding, a proxy between a customer and the employee assigned to them — before the switch
//! rings anything. Without one, a call rings the number dialled.

use super::context::CallContext;
use super::groups::Group;
use super::reason::ByeReason;
use super::types::Msisdn;
use std::sync::Arc;

/// Where a new call goes, as a [`Router`] decides it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// Ring the devices of this number (section 5): its terminals and its mobile phone. The call's
    /// callee side belongs to this number; the caller is told nothing of the change.
    Ring(Msisdn),
    /// Queue the call to this group (a hunt group, a contact-centre queue: section 10): the caller
    /// hears `Ringing` at once and the group's members are offered the call as its strategy says.
    /// A [`super::GroupTable`] routes calls to its groups' numbers so.
    Group(Arc<Group>),
    /// Do not ring anything: the caller gets `Bye{reason}` at once (e.g. `UNAVAILABLE` for a
    /// number nobody may reach, `BUSY`, `DECLINED`).
    Reject(ByeReason),
}

/// The routing hook: consulted once for every new call, from a terminal or from the phone network,
/// on the switch's own task — so it must answer at once, from what it holds (a table, a cache),
/// never waiting on I/O.
pub trait Router: Send {
    /// Where the call from `from` to the dialled number `to`, with the caller's `context`, goes.
    /// Routing a call back to `from` itself rejects it with `UNAVAILABLE`.
    fn route(&mut self, from: &Msisdn, to: &Msisdn, context: &CallContext) -> Route;
}
