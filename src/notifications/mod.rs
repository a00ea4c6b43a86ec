//! Inbound-call notifications to Redis (PROTOCOL.md section 10): with `--redis URL`, each answered
//! group call is announced with `RPUSH <key>` of one JSON message ([`payload`]), so that a
//! consumer's `BLPOP` reads them first in, first out.
//!
//! Shape (docs/ARCHITECTURE.md, "One way through", as for call records): the driver task hands
//! every call event to a [`NotifierHandle`]; for a group call's `Answered` event it appends an
//! [`InboundCall`] to a bounded in-memory [`queue`] and returns at once. The [`pusher`] task takes
//! notifications from the head of the queue and pushes them to Redis in batches, removing them
//! only once Redis has them. Redis slow or down never delays a call: notifications wait (at most
//! [`NotificationsConfig::queue_bound`] of them; past it the oldest is dropped, logged and counted)
//! and are delivered in order, at least once, when Redis is back. A clean shutdown gives the pusher
//! up to [`FLUSH_TIMEOUT`] to deliver what is queued.
//!
//! Metrics (section 12): `webterminal_notifications_pushed_total` (counter),
//! `webterminal_notifications_queued` (gauge), `webterminal_notifications_dropped_total`
//! (counter).
//!
//! - [`payload`]: the message and its JSON, from a call event.
//! - [`queue`]: the bounded queue (drops the oldest; never waits).
//! - [`pusher`]: the task that pushes to Redis, and the driver's handle.

pub mod payload;
pub mod pusher;
pub mod queue;

pub use payload::InboundCall;
pub use pusher::{Notifier, NotifierHandle};
pub use queue::NotificationStats;

use std::fmt;
use std::time::Duration;

/// The Redis list notifications are pushed to unless `--redis-key` says otherwise.
pub const DEFAULT_KEY: &str = "enigma:notifications:inbound";

/// How many notifications wait for Redis at most unless `--redis-queue` says otherwise; also the
/// least the CLI accepts (PROTOCOL.md section 10: "at least 10,000").
pub const DEFAULT_QUEUE_BOUND: usize = 10_000;

/// How long a clean shutdown lets the pusher deliver what is queued before it gives up.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// A Redis URL that cannot be used (`--redis`): a startup error.
#[derive(Debug, thiserror::Error)]
#[error("Redis URL: {0}")]
pub struct NotificationsError(String);

/// Where and how inbound-call notifications go ([`crate::server::ServerConfig::notifications`]).
///
/// `Debug` shows where Redis is but never a password in the URL.
#[derive(Clone)]
pub struct NotificationsConfig {
    client: redis::Client,
    /// The Redis list (`RPUSH` key). Default [`DEFAULT_KEY`].
    pub key: String,
    /// Most notifications waiting for Redis; past it the oldest is dropped (at least 1).
    /// Default [`DEFAULT_QUEUE_BOUND`].
    pub queue_bound: usize,
}

impl NotificationsConfig {
    /// Notifications to the Redis at `url` (`redis://[user][:password@]host[:port][/db]`, or
    /// `unix:///path/to/redis.sock`), with the default key and queue bound. Only the URL is
    /// checked: nothing connects until the first notification.
    ///
    /// # Errors
    /// [`NotificationsError`] when the URL does not parse, or asks for TLS (`rediss://`, not built
    /// in).
    pub fn new(url: &str) -> Result<NotificationsConfig, NotificationsError> {
        let client = redis::Client::open(url).map_err(|e| NotificationsError(e.to_string()))?;
        Ok(NotificationsConfig {
            client,
            key: DEFAULT_KEY.to_owned(),
            queue_bound: DEFAULT_QUEUE_BOUND,
        })
    }

    /// Where Redis is (`host:port`, or a socket path), without credentials: for logs.
    pub fn target(&self) -> String {
        let info = self.client.get_connection_info();
        format!("{}", info.addr())
    }
}

impl fmt::Debug for NotificationsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotificationsConfig")
            .field("redis", &self.target())
            .field("key", &self.key)
            .field("queue_bound", &self.queue_bound)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_at_once_and_passwords_never_shown() {
        let config = NotificationsConfig::new("redis://user:hunter2@127.0.0.1:6390/2").unwrap();
        assert_eq!(config.key, DEFAULT_KEY);
        assert_eq!(config.queue_bound, 10_000);
        let shown = format!("{config:?}");
        assert!(shown.contains("127.0.0.1:6390"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        for bad in [
            "",
            "127.0.0.1:6379",
            "http://127.0.0.1",
            "redis://",
            "rediss://127.0.0.1",
        ] {
            assert!(
                NotificationsConfig::new(bad).is_err(),
                "{bad:?} must be refused"
            );
        }
    }
}
