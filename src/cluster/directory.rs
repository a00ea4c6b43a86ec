//! Who owns which number: the store's side of ownership (PROTOCOL.md section 14), as a trait so that
//! another store (etcd, NATS KV) can follow Redis.

use crate::core::Msisdn;
use std::fmt;
use std::future::Future;

/// A node's name in the cluster (`--node-id`): 1 to 64 characters of `[A-Za-z0-9._-]`, so that it
/// can sit inside a store key and a log line as it is.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(String);

impl NodeId {
    /// Checks `name`.
    pub fn parse(name: &str) -> Result<NodeId, DirectoryError> {
        let valid = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if valid {
            Ok(NodeId(name.to_owned()))
        } else {
            Err(DirectoryError::BadNodeId(name.chars().take(80).collect()))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", self.0)
    }
}

/// A number's live owner: the node, and the epoch its claim got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// The node serving the number.
    pub node: NodeId,
    /// Grows with every change of owner, never falls: `max(previous + 1, the store's clock in ms)`.
    pub epoch: u64,
}

/// The answer to a claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// This node owns the number now (or already did), under this epoch.
    Ours {
        /// The claim's epoch.
        epoch: u64,
    },
    /// Another node, whose lease is alive, owns it.
    Theirs(Owner),
}

/// Why the store could not answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    /// The store did not answer in time, or refused the command.
    #[error("the cluster store: {0}")]
    Store(String),
    /// This node holds no lease (it never joined, or its lease lapsed): it may not claim.
    #[error("this node holds no lease in the cluster store")]
    NoLease,
    /// A live incarnation of this node id already holds the lease (another process with the same
    /// `--node-id`, or this one's previous run, until its lease lapses).
    #[error("node id {0} is held by a live node")]
    NodeIdTaken(NodeId),
    /// Not a node id ([`NodeId::parse`]).
    #[error("{0:?} is not a node id: 1 to 64 of A-Z a-z 0-9 . _ -")]
    BadNodeId(String),
}

/// A store of node leases and number owners (PROTOCOL.md section 14).
///
/// Every method is one atomic step in the store. A node [`join`](Directory::join)s with a fresh
/// incarnation, [`renew`](Directory::renew)s its lease every second, claims numbers on first use,
/// and [`leave`](Directory::leave)s on drain. A number whose owner's lease lapsed is free: the next
/// claim takes it with a higher epoch.
pub trait Directory: Send + Sync + 'static {
    /// Takes this node's lease under a new incarnation. [`DirectoryError::NodeIdTaken`] while a
    /// live incarnation holds it.
    fn join(&self) -> impl Future<Output = Result<(), DirectoryError>> + Send;

    /// Extends this node's lease by the lease's length: `Ok(false)` when the lease is not this
    /// incarnation's any more (it lapsed): the node must fence.
    fn renew(&self) -> impl Future<Output = Result<bool, DirectoryError>> + Send;

    /// Claims `msisdn` for this node unless a live node owns it.
    fn claim(&self, msisdn: &Msisdn) -> impl Future<Output = Result<Claim, DirectoryError>> + Send;

    /// `msisdn`'s live owner, if any.
    fn owner(
        &self,
        msisdn: &Msisdn,
    ) -> impl Future<Output = Result<Option<Owner>, DirectoryError>> + Send;

    /// Gives `msisdn` up if this node owns it (its epoch is kept, so the next owner's is higher);
    /// whether it did.
    fn release(&self, msisdn: &Msisdn)
        -> impl Future<Output = Result<bool, DirectoryError>> + Send;

    /// Gives up every number this node owns and its lease (a drain).
    fn leave(&self) -> impl Future<Output = Result<(), DirectoryError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_are_short_and_plain() {
        assert_eq!(
            NodeId::parse("node-1.eu_west").unwrap().as_str(),
            "node-1.eu_west"
        );
        for bad in ["", "a b", "a:b", "ä", &"n".repeat(65)] {
            assert!(
                matches!(NodeId::parse(bad), Err(DirectoryError::BadNodeId(_))),
                "{bad:?}"
            );
        }
    }
}
