//! The server over real TCP on loopback, with tonic clients as terminals: every scenario of
//! PROTOCOL.md section 4 on `Pipe` and on `MultiPipe`, authentication and bad input (section 6), and
//! the simulated phone network's operator API (section 7); and the browsers' WebSocket gateway
//! (section 11), over which the section-4 scenarios run too. After each test no terminal and no call
//! is left in the switch.

mod support;
#[path = "../support/terminal.rs"]
mod terminal;

mod auth;
mod bad_input;
mod call_context;
mod call_records;
mod calls_from_phones;
mod groups;
mod handover;
mod in_call_idle;
mod incoming;
mod limits;
mod no_answer_busy_unavailable;
mod operator;
mod outgoing;
mod pull;
mod renegotiation;
mod shutdown;
mod simulated_phone;
mod terminal_gone;
mod transfer;
mod websocket;
mod wg2;
