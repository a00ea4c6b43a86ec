//! The phone network behind the core (PROTOCOL.md section 7): the interface an embedder implements to
//! reach its real network, and the simulated network the core ships.

pub mod sim;
pub mod sip;

use crate::core::{PhoneCommand, PhoneEvent};
use tokio::sync::mpsc;

/// A phone network: mobile phones and every number that has no terminal.
///
/// The driver task hands it the switch's [`PhoneCommand`]s one at a time; it reports what its phones
/// do through the [`PhoneReports`] it was built with, now or later. `send` runs on the driver task that
/// owns the switch, so it must not block: queue the work and return.
pub trait PhoneNetwork: Send + 'static {
    /// Accepts one command. Never fails: a command the network cannot carry out is answered with a
    /// `Rejected`, `HandOverFailed` or `HungUp` event for its leg.
    fn send(&mut self, command: PhoneCommand);
}

/// Where a phone network reports its events; cheap to clone, usable from any task.
#[derive(Clone, Debug)]
pub struct PhoneReports(mpsc::UnboundedSender<PhoneEvent>);

impl PhoneReports {
    /// A reporter and the receiving end the driver reads.
    pub fn channel() -> (PhoneReports, mpsc::UnboundedReceiver<PhoneEvent>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (PhoneReports(tx), rx)
    }

    /// Reports one event. Returns `false` when the core has shut down and nobody listens.
    pub fn report(&self, event: PhoneEvent) -> bool {
        self.0.send(event).is_ok()
    }
}
