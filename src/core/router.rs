//! The routing hook (PROTOCOL.md section 5): an embedder decides where a new call goes — aliases,
//! forwarding, a proxy between a customer and the employee assigned to them — before the switch
//! rings anything. Without one, a call rings the number dialled.

use super::context::CallContext;
use super::groups::{Group, GroupTable};
use super::reason::ByeReason;
use super::types::Msisdn;
use std::sync::Arc;

/// Where a new call goes, as a [`Router`] decides it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// Ring the devices of this number (section 5): its terminals and its mobile phone. The call's
    /// callee side belongs to this number; the caller is told nothing of the change.
    Ring(Msisdn),
    /// Queue the call to this group (a hunt group, a contact-centre queue: section 10): the caller
    /// hears `Ringing` at once and the group's members are offered the call as its strategy says.
    /// A [`super::GroupTable`] routes calls to its groups' numbers so.
    Group(Arc<Group>),
    /// Do not ring anything: the caller gets `Bye{reason}` at once (e.g. `UNAVAILABLE` for a
    /// number nobody may reach, `BUSY`, `DECLINED`).
    Reject(ByeReason),
}

/// The routing hook: consulted once for every new call, from a terminal or from the phone network,
/// on the switch's own task — so it must answer at once, from what it holds (a table, a cache),
/// never waiting on I/O.
pub trait Router: Send {
    /// Where the call from `from` to the dialled number `to`, with the caller's `context`, goes.
    /// Routing a call back to `from` itself rejects it with `UNAVAILABLE`.
    fn route(&mut self, from: &Msisdn, to: &Msisdn, context: &CallContext) -> Route;
}

impl Router for GroupTable {
    fn route(&mut self, _from: &Msisdn, to: &Msisdn, _context: &CallContext) -> Route {
        match self.group(to) {
            Some(group) => Route::Group(group.clone()),
            None => Route::Ring(to.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::groups::{Member, Strategy};
    use std::time::Duration;

    fn m(s: &str) -> Msisdn {
        Msisdn::parse(s).unwrap()
    }

    #[test]
    fn a_group_table_queues_calls_to_groups_and_rings_other_numbers() {
        let sales = Group {
            number: m("+4721000000"),
            strategy: Strategy::RoundRobin,
            member_ring_timeout: Duration::from_secs(15),
            queue_timeout: Duration::from_secs(120),
            members: vec![Member {
                msisdn: m("+4790000001"),
                extension: "101".into(),
            }],
        };
        let mut table = GroupTable::new([sales]).unwrap();
        let ctx = CallContext::default();
        match table.route(&m("+4799999999"), &m("+4721000000"), &ctx) {
            Route::Group(g) => assert_eq!(g.number, m("+4721000000")),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            table.route(&m("+4799999999"), &m("+4790000001"), &ctx),
            Route::Ring(m("+4790000001"))
        );
    }
}
