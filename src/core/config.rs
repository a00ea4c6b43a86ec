//! Limits and timers of the switch.

use std::time::Duration;

/// How the switch behaves where PROTOCOL.md leaves a number open. Every field has a default that suits
/// a public deployment (see `Default`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SwitchConfig {
    /// How long a call may ring before the caller gets `Bye{NO_ANSWER}` (PROTOCOL.md 4.3). Default 60 s.
    pub ring_timeout: Duration,
    /// How long a re-offer, pull or handover may wait for the far side's answer (4.5, 4.6, 4.7).
    /// Default 30 s.
    pub negotiation_timeout: Duration,
    /// Whether a phone network is attached (section 7). Without one, numbers with no terminal are
    /// unavailable and ToPhone fails with `Error{UNKNOWN}`. Default on.
    pub phone_network: bool,
    /// How many calls one MultiPipe terminal may be in at once (as caller, fork or active leg); past it
    /// a new call gets `Error{RATE_LIMIT_HIT}` and the terminal is not offered incoming calls
    /// (sections 3, 5). Default 16.
    pub multipipe_call_cap: usize,
    /// Most terminals registered for one msisdn; one more fails the rpc with RESOURCE_EXHAUSTED.
    /// Default 32.
    pub max_terminals_per_msisdn: usize,
    /// Most terminals registered in total; one more fails the rpc with RESOURCE_EXHAUSTED.
    /// Default 1,000,000.
    pub max_terminals: usize,
    /// How long a call whose active terminal went away waits for a terminal of that number to pull it
    /// back before the far side gets `Bye{PEER_GONE}` (PROTOCOL.md 4.8). Zero ends the call at once.
    /// Default 15 s.
    pub reconnect_grace: Duration,
}

impl Default for SwitchConfig {
    fn default() -> Self {
        SwitchConfig {
            ring_timeout: Duration::from_secs(60),
            negotiation_timeout: Duration::from_secs(30),
            phone_network: true,
            multipipe_call_cap: 16,
            max_terminals_per_msisdn: 32,
            max_terminals: 1_000_000,
            reconnect_grace: Duration::from_secs(15),
        }
    }
}
