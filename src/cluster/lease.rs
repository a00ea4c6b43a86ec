//! The node lease's clock and the epoch rule, without I/O: time comes in as arguments.

use crate::core::Msisdn;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A node's view of its own lease (PROTOCOL.md section 14).
///
/// The store counts a lease's life from when it *processed* a renewal, which is after the node sent
/// it; so the node counts from when it *sent* the last renewal that succeeded, and stops serving
/// (fences) after [`Lease::fence_after`] — 85 % of the lease (4.25 s of 5 s) — leaving the rest as
/// a margin for clocks that run at slightly different rates. Until the first renewal succeeds the
/// node does not serve at all.
#[derive(Debug, Clone)]
pub struct Lease {
    lease: Duration,
    /// When the last renewal that succeeded was sent.
    renewed_at: Option<Instant>,
    fenced: bool,
}

impl Lease {
    /// A lease of `lease` (the store's expiry), not yet held.
    pub fn new(lease: Duration) -> Lease {
        Lease {
            lease,
            renewed_at: None,
            fenced: false,
        }
    }

    /// How long after a renewal was sent the node must stop serving: 85 % of the lease.
    pub fn fence_after(&self) -> Duration {
        self.lease.mul_f64(0.85)
    }

    /// A renewal (or the first acquisition) sent at `sent_at` succeeded. Ignored once fenced: a
    /// fenced node never serves again under this lease (it joins anew, with a new incarnation).
    pub fn renewed(&mut self, sent_at: Instant) {
        if self.fenced {
            return;
        }
        if self.renewed_at.is_none_or(|at| sent_at > at) {
            self.renewed_at = Some(sent_at);
        }
    }

    /// The store said the lease is not ours any more (it lapsed, or another incarnation holds it):
    /// fence at once.
    pub fn lost(&mut self) {
        self.fenced = true;
    }

    /// When the node must stop serving, if it still serves.
    pub fn deadline(&self) -> Option<Instant> {
        if self.fenced {
            return None;
        }
        self.renewed_at.map(|at| at + self.fence_after())
    }

    /// Whether the node may serve at `now`; the first call at or past the deadline fences it for
    /// good.
    pub fn serving(&mut self, now: Instant) -> bool {
        match self.deadline() {
            Some(deadline) if now < deadline => true,
            Some(_) => {
                self.fenced = true;
                false
            }
            None => false,
        }
    }

    /// Whether it has fenced (for good).
    pub fn fenced(&self) -> bool {
        self.fenced
    }
}

/// A frame about `msisdn` carried epoch `got`, lower than `seen`, the highest seen for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a frame about {msisdn:?} carries epoch {got}, below the {seen} already seen")]
pub struct StaleEpoch {
    /// The number.
    pub msisdn: Msisdn,
    /// The frame's epoch.
    pub got: u64,
    /// The highest epoch seen for the number.
    pub seen: u64,
}

/// The highest owner epoch seen per number: every frame between nodes carries its sender's epoch for
/// the number, and a receiver refuses one lower than it has seen (PROTOCOL.md section 14), so a node
/// that was fenced and has not noticed cannot act on a number another node now owns.
#[derive(Debug, Default)]
pub struct EpochGuard {
    seen: HashMap<Msisdn, u64>,
}

impl EpochGuard {
    /// An empty guard.
    pub fn new() -> EpochGuard {
        EpochGuard::default()
    }

    /// Accepts a frame about `msisdn` with `epoch` (raising the highest seen), or refuses it.
    pub fn admit(&mut self, msisdn: &Msisdn, epoch: u64) -> Result<(), StaleEpoch> {
        match self.seen.get_mut(msisdn) {
            Some(seen) if epoch < *seen => Err(StaleEpoch {
                msisdn: msisdn.clone(),
                got: epoch,
                seen: *seen,
            }),
            Some(seen) => {
                *seen = epoch;
                Ok(())
            }
            None => {
                self.seen.insert(msisdn.clone(), epoch);
                Ok(())
            }
        }
    }

    /// The highest epoch seen for `msisdn`.
    pub fn seen(&self, msisdn: &Msisdn) -> Option<u64> {
        self.seen.get(msisdn).copied()
    }

    /// Forgets `msisdn` (its calls are over and it is released everywhere this node knows of).
    pub fn forget(&mut self, msisdn: &Msisdn) {
        self.seen.remove(msisdn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_secs(5);

    #[test]
    fn a_node_serves_only_after_its_first_renewal() {
        let t0 = Instant::now();
        let mut lease = Lease::new(LEASE);
        assert!(!lease.serving(t0));
        lease.renewed(t0);
        assert!(lease.serving(t0));
    }

    #[test]
    fn it_fences_at_85_percent_of_the_lease_after_the_renewal_was_sent() {
        let t0 = Instant::now();
        let mut lease = Lease::new(LEASE);
        lease.renewed(t0);
        assert_eq!(lease.fence_after(), Duration::from_millis(4250));
        assert_eq!(lease.deadline(), Some(t0 + Duration::from_millis(4250)));
        assert!(lease.serving(t0 + Duration::from_millis(4249)));
        assert!(!lease.serving(t0 + Duration::from_millis(4250)));
        assert!(lease.fenced());
    }

    #[test]
    fn renewals_push_the_deadline_and_an_older_one_arriving_late_does_not_pull_it_back() {
        let t0 = Instant::now();
        let mut lease = Lease::new(LEASE);
        lease.renewed(t0);
        lease.renewed(t0 + Duration::from_secs(2));
        lease.renewed(t0 + Duration::from_secs(1));
        assert_eq!(
            lease.deadline(),
            Some(t0 + Duration::from_secs(2) + Duration::from_millis(4250))
        );
        assert!(lease.serving(t0 + Duration::from_secs(6)));
    }

    #[test]
    fn a_fenced_node_stays_fenced_whatever_renews_later() {
        let t0 = Instant::now();
        let mut lease = Lease::new(LEASE);
        lease.renewed(t0);
        assert!(!lease.serving(t0 + LEASE));
        lease.renewed(t0 + LEASE);
        assert!(!lease.serving(t0 + LEASE));
        assert_eq!(lease.deadline(), None);
    }

    #[test]
    fn a_lease_the_store_says_is_lost_fences_at_once() {
        let t0 = Instant::now();
        let mut lease = Lease::new(LEASE);
        lease.renewed(t0);
        lease.lost();
        assert!(!lease.serving(t0));
    }

    #[test]
    fn the_guard_refuses_only_a_lower_epoch_than_seen() {
        let a = Msisdn::parse("+4799990001").unwrap();
        let b = Msisdn::parse("+4799990002").unwrap();
        let mut guard = EpochGuard::new();
        assert_eq!(guard.admit(&a, 10), Ok(()));
        assert_eq!(guard.admit(&a, 10), Ok(()));
        assert_eq!(guard.admit(&a, 12), Ok(()));
        let refused = guard.admit(&a, 11).unwrap_err();
        assert_eq!((refused.got, refused.seen), (11, 12));
        // Numbers are independent.
        assert_eq!(guard.admit(&b, 1), Ok(()));
        assert_eq!(guard.seen(&a), Some(12));
        guard.forget(&a);
        assert_eq!(guard.admit(&a, 1), Ok(()));
    }
}
