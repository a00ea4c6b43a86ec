//! The simulator task: the one owner of the [`SimulatedPhones`], fed by the switch's commands
//! ([`SimulatedPhoneNetwork`]) and the operator's requests ([`SimulatorControl`]).

use super::behaviour::{Behaviour, Operation, SimError};
use super::machine::SimulatedPhones;
use crate::core::{CallContext, Msisdn, PhoneCommand};
use crate::phone::{PhoneNetwork, PhoneReports};
use std::fmt;
use tokio::sync::{mpsc, oneshot};

/// One request to the simulator task.
enum Request {
    Command(PhoneCommand),
    SetBehaviour(Msisdn, Behaviour, oneshot::Sender<()>),
    Control(Msisdn, Operation, oneshot::Sender<Result<u32, SimError>>),
    Dial(
        Msisdn,
        Msisdn,
        CallContext,
        oneshot::Sender<Result<(), SimError>>,
    ),
    Behaviour(Msisdn, oneshot::Sender<Behaviour>),
}

/// The simulated phone network as the switch's driver sees it: a [`PhoneNetwork`] that queues each
/// command to the simulator task and returns at once (PROTOCOL.md section 7). Made by
/// [`SimulatedPhoneNetwork::start`].
#[derive(Debug)]
pub struct SimulatedPhoneNetwork {
    requests: mpsc::UnboundedSender<Request>,
}

impl SimulatedPhoneNetwork {
    /// Starts the simulated phone network (PROTOCOL.md section 7): spawns the one task that owns every
    /// simulated phone and reports their events to `reports`. Returns the [`PhoneNetwork`] to give the
    /// driver and the operator's [`SimulatorControl`]. The task ends when both (and every clone of the
    /// control) are dropped.
    ///
    /// # Panics
    /// Outside a tokio runtime (it calls `tokio::spawn`).
    pub fn start(reports: PhoneReports) -> (SimulatedPhoneNetwork, SimulatorControl) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut phones = SimulatedPhones::new();
            while let Some(request) = rx.recv().await {
                let events = match request {
                    Request::Command(command) => phones.command(command),
                    Request::SetBehaviour(msisdn, behaviour, reply) => {
                        phones.set_behaviour(msisdn, behaviour);
                        let _ = reply.send(());
                        continue;
                    }
                    Request::Control(msisdn, operation, reply) => {
                        match phones.control(&msisdn, operation) {
                            Ok(events) => {
                                // Report before replying, so the operator's caller sees the events
                                // queued to the core by the time its request returns.
                                let legs = u32::try_from(events.len()).unwrap_or(u32::MAX);
                                for event in events {
                                    reports.report(event);
                                }
                                let _ = reply.send(Ok(legs));
                            }
                            Err(e) => {
                                let _ = reply.send(Err(e));
                            }
                        }
                        continue;
                    }
                    Request::Behaviour(msisdn, reply) => {
                        let _ = reply.send(phones.behaviour(&msisdn));
                        continue;
                    }
                    Request::Dial(from, to, context, reply) => match phones.dial(from, to, context)
                    {
                        Ok(events) => {
                            // Reported before the reply, as for Control.
                            for event in events {
                                reports.report(event);
                            }
                            let _ = reply.send(Ok(()));
                            continue;
                        }
                        Err(e) => {
                            let _ = reply.send(Err(e));
                            continue;
                        }
                    },
                };
                for event in events {
                    reports.report(event);
                }
            }
            tracing::debug!("simulated phone network stopped");
        });
        (
            SimulatedPhoneNetwork {
                requests: tx.clone(),
            },
            SimulatorControl { requests: tx },
        )
    }
}

impl PhoneNetwork for SimulatedPhoneNetwork {
    /// Queues `command`; the simulator task reports its events. Dropped with a debug log if the task
    /// has stopped (the runtime is shutting down).
    fn send(&mut self, command: PhoneCommand) {
        if self.requests.send(Request::Command(command)).is_err() {
            tracing::debug!("simulated phone network stopped; phone command dropped");
        }
    }
}

/// The operator's handle on the simulated phone network (PROTOCOL.md section 7): what the
/// `webterminal.core.v1.SimulatedPhoneNetwork` service and the configuration call. Cheap to clone;
/// every method is a request to the simulator task with a oneshot reply.
#[derive(Clone, Debug)]
pub struct SimulatorControl {
    requests: mpsc::UnboundedSender<Request>,
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Request::Command(c) => f.debug_tuple("Command").field(c).finish(),
            Request::SetBehaviour(m, b, _) => {
                f.debug_tuple("SetBehaviour").field(m).field(b).finish()
            }
            Request::Control(m, o, _) => f.debug_tuple("Control").field(m).field(o).finish(),
            Request::Behaviour(m, _) => f.debug_tuple("Behaviour").field(m).finish(),
            Request::Dial(from, to, context, _) => f
                .debug_tuple("Dial")
                .field(from)
                .field(to)
                .field(context)
                .finish(),
        }
    }
}

impl SimulatorControl {
    /// Sets how `msisdn`'s simulated phone reacts to the next calls and handovers.
    ///
    /// # Errors
    /// [`SimError::Stopped`] when the simulator task has stopped.
    pub async fn set_behaviour(
        &self,
        msisdn: Msisdn,
        behaviour: Behaviour,
    ) -> Result<(), SimError> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(Request::SetBehaviour(msisdn, behaviour, tx))
            .map_err(|_| SimError::Stopped)?;
        rx.await.map_err(|_| SimError::Stopped)
    }

    /// How `msisdn`'s simulated phone behaves now (what presence reports of it, PROTOCOL.md
    /// section 8).
    ///
    /// # Errors
    /// [`SimError::Stopped`].
    pub async fn behaviour(&self, msisdn: Msisdn) -> Result<Behaviour, SimError> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(Request::Behaviour(msisdn, tx))
            .map_err(|_| SimError::Stopped)?;
        rx.await.map_err(|_| SimError::Stopped)
    }

    /// Answers the call that has rung longest on `msisdn`'s simulated phone, with a generated SDP.
    /// Returns the number of legs touched (1).
    ///
    /// # Errors
    /// [`SimError::NothingRinging`]; [`SimError::Stopped`].
    pub async fn answer(&self, msisdn: Msisdn) -> Result<u32, SimError> {
        self.control(msisdn, Operation::Answer).await
    }

    /// Declines the call that has rung longest on `msisdn`'s simulated phone (`Rejected{Declined}`).
    /// Returns the number of legs touched (1).
    ///
    /// # Errors
    /// [`SimError::NothingRinging`]; [`SimError::Stopped`].
    pub async fn reject(&self, msisdn: Msisdn) -> Result<u32, SimError> {
        self.control(msisdn, Operation::Reject).await
    }

    /// `from`'s simulated phone calls `to` with a generated offer and call `context` (PROTOCOL.md
    /// 4.11); the call is reported to the core before this returns. `hang_up(from)` ends it from the
    /// phone.
    ///
    /// # Errors
    /// [`SimError::Busy`], [`SimError::Unreachable`], [`SimError::DialsItself`];
    /// [`SimError::Stopped`].
    pub async fn dial(
        &self,
        from: Msisdn,
        to: Msisdn,
        context: CallContext,
    ) -> Result<(), SimError> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(Request::Dial(from, to, context, tx))
            .map_err(|_| SimError::Stopped)?;
        rx.await.map_err(|_| SimError::Stopped)?
    }

    /// Hangs up every leg on `msisdn`'s simulated phone (`HungUp` for each). Returns how many.
    ///
    /// # Errors
    /// [`SimError::NoLegs`]; [`SimError::Stopped`].
    pub async fn hang_up(&self, msisdn: Msisdn) -> Result<u32, SimError> {
        self.control(msisdn, Operation::HangUp).await
    }

    /// Carries out `operation` on `msisdn`'s simulated phone; returns the number of legs touched.
    ///
    /// # Errors
    /// As [`SimulatedPhones::control`], and [`SimError::Stopped`].
    pub async fn control(&self, msisdn: Msisdn, operation: Operation) -> Result<u32, SimError> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(Request::Control(msisdn, operation, tx))
            .map_err(|_| SimError::Stopped)?;
        rx.await.map_err(|_| SimError::Stopped)?
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use crate::core::{PhoneEvent, PhoneLegId};

    #[tokio::test]
    async fn the_task_reports_commands_and_operator_requests() {
        let (reports, mut events) = PhoneReports::channel();
        let (mut network, control) = SimulatedPhoneNetwork::start(reports);
        network.send(ring(1, B));
        assert_eq!(
            events.recv().await,
            Some(PhoneEvent::Ringing { leg: PhoneLegId(1) })
        );
        assert_eq!(control.answer(n(B)).await, Ok(1));
        assert!(matches!(
            events.try_recv(),
            Ok(PhoneEvent::Answered {
                leg: PhoneLegId(1),
                ..
            })
        ));
        assert_eq!(control.reject(n(B)).await, Err(SimError::NothingRinging));
        control
            .set_behaviour(n(A), Behaviour::Unreachable)
            .await
            .unwrap();
        network.send(hand_over(2, A));
        assert_eq!(
            events.recv().await,
            Some(PhoneEvent::HandOverFailed {
                leg: PhoneLegId(2),
                message: "the phone is unreachable".into()
            })
        );
        assert_eq!(control.hang_up(n(B)).await, Ok(1));
        assert_eq!(
            events.try_recv(),
            Ok(PhoneEvent::HungUp { leg: PhoneLegId(1) })
        );
        assert_eq!(control.hang_up(n(B)).await, Err(SimError::NoLegs));
    }
}
