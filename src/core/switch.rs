//! STUB: the real switch is being written; signatures are final.
#![allow(unused)]
use super::*;
use std::time::Instant;

/// Why a terminal could not register: the rpc fails with RESOURCE_EXHAUSTED (PROTOCOL.md section 6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegisterError {
    /// The process already has `SwitchConfig::max_terminals` terminals.
    TooManyTerminals { limit: usize },
    /// The msisdn already has `SwitchConfig::max_terminals_per_msisdn` terminals.
    TooManyTerminalsForMsisdn { limit: usize },
}

pub struct Switch {}

impl Switch {
    pub fn new(config: SwitchConfig) -> Self { todo!() }
    pub fn config(&self) -> &SwitchConfig { todo!() }
    /// A terminal opened Pipe/MultiPipe. A Pipe gets InCall or Idle at once.
    pub fn register(&mut self, now: Instant, terminal: TerminalId, msisdn: Msisdn, kind: PipeKind) -> Result<(), RegisterError> { todo!() }
    /// A terminal's message. Err: send Error{code,message} with the message's raw call_id.
    pub fn handle_request(&mut self, now: Instant, terminal: TerminalId, request: Request) -> Result<(), Rejection> { todo!() }
    /// The terminal's request stream ended (client half-close): not offered new calls any more.
    pub fn half_close(&mut self, now: Instant, terminal: TerminalId) { todo!() }
    /// The rpc ended (cancelled, connection lost, slow consumer): its calls end as PROTOCOL.md 4.8 says.
    pub fn unregister(&mut self, now: Instant, terminal: TerminalId) { todo!() }
    pub fn handle_phone_event(&mut self, now: Instant, event: PhoneEvent) { todo!() }
    /// Fires every timer due at or before `now`.
    pub fn handle_timeout(&mut self, now: Instant) { todo!() }
    /// Bye{SERVER_SHUTDOWN} on every live leg; no call remains. Terminals stay registered.
    pub fn shutdown(&mut self, now: Instant) { todo!() }
    pub fn poll_output(&mut self) -> Option<Output> { todo!() }
    pub fn poll_timeout(&self) -> Option<Instant> { todo!() }
    pub fn call_count(&self) -> usize { todo!() }
    pub fn terminal_count(&self) -> usize { todo!() }
    pub fn terminal_kind(&self, terminal: TerminalId) -> Option<PipeKind> { todo!() }
}
