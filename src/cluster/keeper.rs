//! The task that keeps a node's lease: joins, renews every second, and says when the node is fenced.

use super::directory::{Directory, DirectoryError};
use super::lease::Lease;
use super::RENEW_EVERY;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// Where a node stands with its lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseState {
    /// Not holding a lease yet (the store is down, or a previous incarnation's lease has not
    /// lapsed): the node serves no number.
    Joining,
    /// Holding it: the node may serve until `until` unless a renewal succeeds before.
    Serving {
        /// When it must stop if no renewal succeeds before.
        until: Instant,
    },
    /// It could not renew in time, or the store said the lease is lost: every local leg ends
    /// (`Bye{SERVER_SHUTDOWN}`, PROTOCOL.md 4.9) and the node serves no number under this
    /// incarnation. Final.
    Fenced,
}

/// Keeps a node's lease in a [`Directory`]: joins (retrying every [`RENEW_EVERY`] while the node id
/// is taken or the store is down), renews every [`RENEW_EVERY`], and publishes [`LeaseState`]. The
/// fence comes at [`Lease::fence_after`] past the last renewal that succeeded *even while a renewal
/// hangs*: the task wakes at the deadline whatever the store does.
pub struct LeaseKeeper;

impl LeaseKeeper {
    /// Starts the task for `directory` with leases of `lease`; the receiver follows its state. The
    /// task ends once fenced, or when every receiver is gone.
    pub fn start<D: Directory>(directory: Arc<D>, lease: Duration) -> watch::Receiver<LeaseState> {
        let (state, watched) = watch::channel(LeaseState::Joining);
        tokio::spawn(keep(directory, lease, state));
        watched
    }
}

async fn keep<D: Directory>(directory: Arc<D>, length: Duration, state: watch::Sender<LeaseState>) {
    let mut lease = Lease::new(length);
    // Join.
    loop {
        let sent_at = Instant::now();
        match tokio::time::timeout(RENEW_EVERY, directory.join()).await {
            Ok(Ok(())) => {
                lease.renewed(sent_at.into_std());
                break;
            }
            Ok(Err(DirectoryError::NodeIdTaken(_) | DirectoryError::Store(_))) | Err(_) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot join the cluster");
                let _ = state.send(LeaseState::Fenced);
                return;
            }
        }
        if state.is_closed() {
            return;
        }
        tokio::time::sleep_until(sent_at + RENEW_EVERY).await;
    }
    // Renew until fenced.
    let mut next = Instant::now() + RENEW_EVERY;
    while let Some(deadline) = lease.deadline().map(Instant::from_std) {
        if state.send(LeaseState::Serving { until: deadline }).is_err() {
            return;
        }
        tokio::time::sleep_until(next.min(deadline)).await;
        if !lease.serving(Instant::now().into_std()) {
            break;
        }
        let sent_at = Instant::now();
        next = sent_at + RENEW_EVERY;
        let attempt = tokio::time::timeout_at(deadline.min(next), directory.renew()).await;
        match attempt {
            Ok(Ok(true)) => lease.renewed(sent_at.into_std()),
            Ok(Ok(false)) => {
                tracing::warn!("the cluster lease was lost: fencing");
                lease.lost();
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot renew the cluster lease"),
            Err(_) => tracing::warn!("renewing the cluster lease timed out"),
        }
    }
    tracing::warn!("fenced: this node serves no number until it joins again");
    let _ = state.send(LeaseState::Fenced);
}
