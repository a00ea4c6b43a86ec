//! How many connections may be open, and how long one may take: [`ConnectionLimits`], its
//! defaults, the caps sized from the process's open-file limit, and the count of open connections
//! they cap (each connection holds a [`Slot`] in it).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Default deadline for a new connection to complete its handshake (TLS, HTTP/2 preface and
/// settings) and open its first rpc: 10 s.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Default time a connection may stay open with no rpc open on it: 120 s.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// Descriptors the default connection cap leaves to everything else (the listener, the runtime,
/// key and certificate files, logs): 64.
pub const RESERVED_DESCRIPTORS: u64 = 64;

/// The default cap per source address is this fraction of the total cap (1/8): one address
/// cannot take more than an eighth of the server's connections.
pub const PER_ADDRESS_SHARE: usize = 8;

/// The limits [`Incoming`](super::Incoming) enforces. [`ConnectionLimits::default`] gives the defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// How long a new connection has to complete its handshake and open its first rpc; then it
    /// is closed. Default [`DEFAULT_HANDSHAKE_TIMEOUT`].
    pub handshake_timeout: Duration,
    /// How long a connection may stay open with no open rpc; then it is closed. `Duration::ZERO`:
    /// never. Default [`DEFAULT_IDLE_TIMEOUT`].
    pub idle_timeout: Duration,
    /// Most connections open at once; more are closed as soon as accepted. `None`: sized from the
    /// process's open-file limit when serving starts ([`default_max_connections`]).
    pub max_connections: Option<usize>,
    /// Most connections open at once from one source IP address; more are closed as soon as
    /// accepted. `None`: [`ConnectionLimits::max_connections`] (as resolved) / [`PER_ADDRESS_SHARE`].
    pub max_connections_per_ip: Option<usize>,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: None,
            max_connections_per_ip: None,
        }
    }
}

impl ConnectionLimits {
    /// The caps in force: `(total, per source address)`, the unset ones sized from an open-file
    /// limit of `open_files` descriptors.
    pub fn caps(&self, open_files: u64) -> (usize, usize) {
        let total = self
            .max_connections
            .unwrap_or_else(|| default_max_connections(open_files));
        let per_ip = self
            .max_connections_per_ip
            .unwrap_or((total / PER_ADDRESS_SHARE).max(1));
        (total, per_ip)
    }
}

/// The default cap on open connections for an open-file limit of `open_files`: every descriptor
/// but [`RESERVED_DESCRIPTORS`], and at least 16.
pub fn default_max_connections(open_files: u64) -> usize {
    usize::try_from(open_files.saturating_sub(RESERVED_DESCRIPTORS).max(16)).unwrap_or(usize::MAX)
}

/// Open connections, in total and per source address.
#[derive(Debug, Default)]
pub(super) struct Counts {
    pub(super) total: usize,
    pub(super) per_ip: HashMap<IpAddr, usize>,
}

/// One open connection's place in the [`Counts`]; given back when dropped.
#[derive(Debug)]
pub(super) struct Slot {
    pub(super) counts: Arc<Mutex<Counts>>,
    pub(super) ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.total -= 1;
        if let Some(n) = counts.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.per_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_caps_come_from_the_open_file_limit() {
        let limits = ConnectionLimits::default();
        assert_eq!(limits.caps(256), (192, 24));
        assert_eq!(limits.caps(1024), (960, 120));
        assert_eq!(limits.caps(10), (16, 2), "never below 16 in all");
        let set = ConnectionLimits {
            max_connections: Some(100),
            ..ConnectionLimits::default()
        };
        assert_eq!(
            set.caps(256),
            (100, 12),
            "per address: an eighth of the total"
        );
    }
}
