//! The switch on a virtual clock, one behaviour per test (PROTOCOL.md sections 3–6). No I/O: every
//! test runs in microseconds, whatever timeouts it covers. Each `Net` checks on drop that the switch
//! holds no call once every terminal has gone.

mod harness;

mod outgoing;
