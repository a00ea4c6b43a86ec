//! Several nodes as one system (PROTOCOL.md section 14): the room for what a node needs to share
//! one set of numbers with others. Built so far: **ownership** — who serves a number, under leases
//! in a shared store.
//!
//! - [`Lease`] (sans-IO): when a node must stop serving because it has not renewed its node lease
//!   in time — it fences itself at 4.25 s of a 5 s lease, counted from when it *sent* the last
//!   renewal that succeeded, so that it stops before the store can let the lease lapse and another
//!   node claim its numbers.
//! - [`EpochGuard`] (sans-IO): refuses a frame about a number carrying a lower epoch than one
//!   already seen for it.
//! - [`Directory`]: the store's side — join (take a node lease), renew, claim a number, look up its
//!   owner, release, leave — with [`RedisDirectory`] over Redis (one Lua script per step).
//! - [`LeaseKeeper`]: the task that renews a node's lease every second and reports when the node is
//!   fenced.
//!
//! Not built yet: bridges of terminals to their number's owner, trunks between owners, and the
//! wiring of ownership into `serve` (`--cluster`); until then every core is one node.

mod directory;
mod keeper;
mod lease;
mod redis_directory;

pub use directory::{Claim, Directory, DirectoryError, NodeId, Owner};
pub use keeper::{LeaseKeeper, LeaseState};
pub use lease::{EpochGuard, Lease, StaleEpoch};
pub use redis_directory::RedisDirectory;

use std::time::Duration;

/// How long a node lease lives in the store without a renewal (section 14: 5 s).
pub const DEFAULT_LEASE: Duration = Duration::from_secs(5);

/// How often a node renews its lease (section 14: every second).
pub const RENEW_EVERY: Duration = Duration::from_secs(1);
