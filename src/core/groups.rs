//! Groups: hunt groups and contact-centre queues (PROTOCOL.md section 10), whatever lists them (the
//! server reads them from a routing file). The table is a [`super::Router`]: a call to a group's
//! number is queued to the group, any other call rings the number dialled. What happens in the
//! queue — which member is offered the call, when, for how long — is the switch's
//! (`switch/queue.rs`).

use super::types::Msisdn;
use hashbrown::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// How a group offers a queued call to its members (section 10).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Strategy {
    /// Every available member at once; the first answer wins.
    RingAll,
    /// One member at a time, in the file's order, starting after the member who answered the
    /// group's last call.
    RoundRobin,
    /// One member at a time, the member idle longest first (idle since the end of their last
    /// answered call, or since their number's first terminal registered).
    LongestIdle,
}

/// One member of a group: a number whose terminals are offered the group's calls.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Member {
    /// The member's number (E.164).
    pub msisdn: Msisdn,
    /// The member's extension, as the back office knows the agent (section 10's `ref`); `""` when
    /// the file gives none.
    pub extension: String,
}

/// A group: the number callers dial, its members and how calls reach them.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Group {
    /// The number callers dial (E.164). It has no terminals of its own.
    pub number: Msisdn,
    /// How calls are offered to members.
    pub strategy: Strategy,
    /// How long one member is offered a call before it passes to the next (`round-robin` and
    /// `longest-idle`; `ring-all` rings until the queue timeout).
    pub member_ring_timeout: Duration,
    /// How long a caller may wait, from arrival to answer, before `Bye{NO_ANSWER}`.
    pub queue_timeout: Duration,
    /// The members, in the file's order (the order of `round-robin`, and of ties in
    /// `longest-idle`).
    pub members: Vec<Member>,
}

impl Strategy {
    /// Every strategy.
    pub const ALL: [Strategy; 3] = [
        Strategy::RingAll,
        Strategy::RoundRobin,
        Strategy::LongestIdle,
    ];

    /// The strategy's name as section 10 writes it: `ring-all`, `round-robin`, `longest-idle`.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::RingAll => "ring-all",
            Strategy::RoundRobin => "round-robin",
            Strategy::LongestIdle => "longest-idle",
        }
    }

    /// The strategy named `name` ([`Strategy::name`]).
    pub fn from_name(name: &str) -> Option<Strategy> {
        Strategy::ALL.into_iter().find(|s| s.name() == name)
    }
}

impl Group {
    /// The member whose number is `msisdn`.
    pub fn member(&self, msisdn: &Msisdn) -> Option<&Member> {
        self.members.iter().find(|m| m.msisdn == *msisdn)
    }
}

/// Default `member_ring_timeout`: 20 s.
pub const DEFAULT_MEMBER_RING_TIMEOUT: Duration = Duration::from_secs(20);
/// Default `queue_timeout`: 5 min.
pub const DEFAULT_QUEUE_TIMEOUT: Duration = Duration::from_secs(300);

/// Every group, by number. As a [`super::Router`], it queues calls to a group's number and rings any
/// other number as dialled.
#[derive(Clone, Debug, Default)]
pub struct GroupTable {
    groups: HashMap<Msisdn, Arc<Group>>,
}

/// Why a set of groups cannot be; the message names the group at fault.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("group {}: {problem}", group.as_str())]
pub struct GroupError {
    /// The group's number.
    pub group: Msisdn,
    /// What is wrong.
    pub problem: String,
}

impl GroupTable {
    /// The table of `groups`, once each is checked: it has members, none of them twice and not its
    /// own number among them, timeouts of more than zero, and no two groups share a number.
    ///
    /// # Errors
    /// [`GroupError`] naming the first group at fault and what is wrong with it.
    pub fn new(groups: impl IntoIterator<Item = Group>) -> Result<GroupTable, GroupError> {
        let mut table = HashMap::new();
        for group in groups {
            let fault = |problem: &str| GroupError {
                group: group.number.clone(),
                problem: problem.to_owned(),
            };
            if group.members.is_empty() {
                return Err(fault("has no members"));
            }
            if group.member_ring_timeout.is_zero() {
                return Err(fault("member_ring_timeout must be more than zero"));
            }
            if group.queue_timeout.is_zero() {
                return Err(fault("queue_timeout must be more than zero"));
            }
            for (i, member) in group.members.iter().enumerate() {
                if member.msisdn == group.number {
                    return Err(fault("is among its own members"));
                }
                if group.members[..i].iter().any(|m| m.msisdn == member.msisdn) {
                    return Err(fault(&format!(
                        "member {} listed twice",
                        member.msisdn.as_str()
                    )));
                }
            }
            if table.contains_key(&group.number) {
                return Err(fault("listed twice"));
            }
            table.insert(group.number.clone(), Arc::new(group));
        }
        Ok(GroupTable { groups: table })
    }

    /// The group whose number is `number`.
    pub fn group(&self, number: &Msisdn) -> Option<&Arc<Group>> {
        self.groups.get(number)
    }

    /// How many groups it has.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// Whether it has no group.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> Msisdn {
        Msisdn::parse(s).unwrap()
    }

    fn group(number: &str, members: &[&str]) -> Group {
        Group {
            number: m(number),
            strategy: Strategy::RingAll,
            member_ring_timeout: DEFAULT_MEMBER_RING_TIMEOUT,
            queue_timeout: DEFAULT_QUEUE_TIMEOUT,
            members: members
                .iter()
                .map(|n| Member {
                    msisdn: m(n),
                    extension: String::new(),
                })
                .collect(),
        }
    }

    #[test]
    fn strategies_are_named_as_section_10_writes_them() {
        for strategy in Strategy::ALL {
            assert_eq!(Strategy::from_name(strategy.name()), Some(strategy));
        }
        assert_eq!(Strategy::from_name("random"), None);
    }

    #[test]
    fn impossible_groups_are_refused_with_the_fault_named() {
        let mut zero = group("+4721000000", &["+4790000001"]);
        zero.queue_timeout = Duration::ZERO;
        let cases = [
            (vec![group("+4721000000", &[])], "has no members"),
            (vec![zero], "queue_timeout must be more than zero"),
            (
                vec![group("+4721000000", &["+4721000000"])],
                "its own members",
            ),
            (
                vec![group("+4721000000", &["+4790000001", "+4790000001"])],
                "member +4790000001 listed twice",
            ),
            (
                vec![
                    group("+4721000000", &["+4790000001"]),
                    group("+4721000000", &["+4790000002"]),
                ],
                "listed twice",
            ),
        ];
        for (groups, expected) in cases {
            let err = GroupTable::new(groups).expect_err(expected);
            assert_eq!(err.group, m("+4721000000"));
            assert!(err.problem.contains(expected), "{err}");
        }
        let table = GroupTable::new([group("+4721000000", &["+4790000001"])]).unwrap();
        assert_eq!(table.len(), 1);
        assert!(table.group(&m("+4721000000")).is_some());
    }
}
