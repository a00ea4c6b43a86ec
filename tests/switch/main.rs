//! The switch on a virtual clock, one behaviour per test (PROTOCOL.md sections 3–6). No I/O: every
//! test runs in microseconds, whatever timeouts it covers. Each `Net` checks on drop that the switch
//! holds no call once every terminal has gone.

mod harness;

mod call_context;
mod call_events;
mod calls_from_phones;
mod errors;
mod glare;
mod groups;
mod half_close;
mod handover;
mod in_call_idle;
mod incoming;
mod no_answer;
mod outgoing;
mod pipe_and_multipipe;
mod pull;
mod reconnect_grace;
mod renegotiation;
mod routing;
mod routing_hook;
mod shutdown;
mod terminal_gone;
mod transfer;
