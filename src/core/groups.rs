//! Groups: hunt groups and contact-centre queues (PROTOCOL.md section 10), as a routing file lists
//! them. The table is a [`Router`]: a call to a group's number is queued to the group
//! ([`Route::Group`]), any other call rings the number dialled. What happens in the queue — which
//! member is offered the call, when, for how long — is the switch's (`switch/queue.rs`).

use super::context::CallContext;
use super::router::{Route, Router};
use super::types::Msisdn;
use hashbrown::HashMap;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// How a group offers a queued call to its members (section 10).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
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

/// Every group of a routing file, by number. As a [`Router`], it queues calls to a group's number
/// and rings any other number as dialled.
#[derive(Clone, Debug, Default)]
pub struct GroupTable {
    groups: HashMap<Msisdn, Arc<Group>>,
}

/// Why a routing file was refused; the message names the group and field at fault.
#[derive(Debug, thiserror::Error)]
pub enum RoutingFileError {
    /// Not TOML, or a field of the wrong type, or an unknown field (a typo).
    #[error("{0}")]
    Syntax(#[from] toml::de::Error),
    /// The file parses but says something that cannot be.
    #[error("group {group}: {problem}")]
    Invalid {
        /// The group's `number` as written (its position, `#N`, when it has none).
        group: String,
        /// What is wrong.
        problem: String,
    },
}

impl GroupTable {
    /// Parses a routing file (section 10's TOML):
    ///
    /// ```toml
    /// [[group]]
    /// number = "+4721000000"
    /// strategy = "round-robin"        # "ring-all" (default), "round-robin", "longest-idle"
    /// member_ring_timeout = "20s"     # default 20s
    /// queue_timeout = "5m"            # default 5m
    /// members = [ { msisdn = "+4790000001", extension = "101" } ]
    /// ```
    ///
    /// # Errors
    /// [`RoutingFileError`]: not TOML, an unknown field, a number that is not E.164, a duration
    /// humantime cannot read or of zero, a group without members, a number listed twice (as two
    /// groups, or twice among one group's members), a group among its own members.
    pub fn from_toml(text: &str) -> Result<GroupTable, RoutingFileError> {
        let file: File = toml::from_str(text)?;
        let mut groups = HashMap::new();
        for (i, g) in file.group.into_iter().enumerate() {
            let group = g.validate().map_err(|problem| RoutingFileError::Invalid {
                group: match g.number.is_empty() {
                    true => format!("#{}", i + 1),
                    false => g.number.clone(),
                },
                problem,
            })?;
            let label = group.number.as_str().to_owned();
            if groups
                .insert(group.number.clone(), Arc::new(group))
                .is_some()
            {
                return Err(RoutingFileError::Invalid {
                    group: label,
                    problem: "listed twice".into(),
                });
            }
        }
        Ok(GroupTable { groups })
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

impl Router for GroupTable {
    fn route(&mut self, _from: &Msisdn, to: &Msisdn, _context: &CallContext) -> Route {
        match self.groups.get(to) {
            Some(group) => Route::Group(group.clone()),
            None => Route::Ring(to.clone()),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    group: Vec<GroupEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupEntry {
    number: String,
    #[serde(default = "ring_all")]
    strategy: Strategy,
    member_ring_timeout: Option<String>,
    queue_timeout: Option<String>,
    members: Vec<MemberEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberEntry {
    msisdn: String,
    #[serde(default)]
    extension: String,
}

fn ring_all() -> Strategy {
    Strategy::RingAll
}

impl GroupEntry {
    /// The group, or what is wrong with it.
    fn validate(&self) -> Result<Group, String> {
        let fault = |problem: String| problem;
        let number = Msisdn::parse(&self.number)
            .map_err(|e| fault(format!("number {:?}: {e}", self.number)))?;
        let duration = |field: &str, value: &Option<String>, default: Duration| match value {
            None => Ok(default),
            Some(text) => match humantime::parse_duration(text) {
                Ok(d) if !d.is_zero() => Ok(d),
                Ok(_) => Err(fault(format!("{field} must be more than zero"))),
                Err(e) => Err(fault(format!("{field} {text:?}: {e}"))),
            },
        };
        let member_ring_timeout = duration(
            "member_ring_timeout",
            &self.member_ring_timeout,
            DEFAULT_MEMBER_RING_TIMEOUT,
        )?;
        let queue_timeout = duration("queue_timeout", &self.queue_timeout, DEFAULT_QUEUE_TIMEOUT)?;
        if self.members.is_empty() {
            return Err(fault("has no members".into()));
        }
        let mut members: Vec<Member> = Vec::with_capacity(self.members.len());
        for m in &self.members {
            let msisdn = Msisdn::parse(&m.msisdn)
                .map_err(|e| fault(format!("member {:?}: {e}", m.msisdn)))?;
            if msisdn == number {
                return Err(fault("is among its own members".into()));
            }
            if members.iter().any(|x| x.msisdn == msisdn) {
                return Err(fault(format!("member {} listed twice", m.msisdn)));
            }
            members.push(Member {
                msisdn,
                extension: m.extension.clone(),
            });
        }
        Ok(Group {
            number,
            strategy: self.strategy,
            member_ring_timeout,
            queue_timeout,
            members,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
        [[group]]
        number = "+4721000000"
        strategy = "round-robin"
        member_ring_timeout = "15s"
        queue_timeout = "2m"
        members = [ { msisdn = "+4790000001", extension = "101" },
                    { msisdn = "+4790000002", extension = "102" } ]

        [[group]]
        number = "+4721000001"
        members = [ { msisdn = "+4790000001" } ]
    "#;

    fn m(s: &str) -> Msisdn {
        Msisdn::parse(s).unwrap()
    }

    #[test]
    fn a_routing_file_gives_groups_with_defaults_where_it_is_silent() {
        let table = GroupTable::from_toml(FILE).unwrap();
        assert_eq!(table.len(), 2);
        let sales = table.group(&m("+4721000000")).unwrap();
        assert_eq!(sales.strategy, Strategy::RoundRobin);
        assert_eq!(sales.member_ring_timeout, Duration::from_secs(15));
        assert_eq!(sales.queue_timeout, Duration::from_secs(120));
        assert_eq!(sales.members[1].extension, "102");
        let support = table.group(&m("+4721000001")).unwrap();
        assert_eq!(support.strategy, Strategy::RingAll);
        assert_eq!(support.member_ring_timeout, DEFAULT_MEMBER_RING_TIMEOUT);
        assert_eq!(support.queue_timeout, DEFAULT_QUEUE_TIMEOUT);
        assert_eq!(support.members[0].extension, "");
    }

    #[test]
    fn the_table_queues_calls_to_groups_and_rings_other_numbers() {
        let mut table = GroupTable::from_toml(FILE).unwrap();
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

    #[test]
    fn bad_files_are_refused_with_the_fault_named() {
        let cases = [
            ("[[group]]\nnumber = 5", "invalid type"),
            ("[[group]]\nnumber = \"+4721000000\"\nmembers = []", "has no members"),
            (
                "[[group]]\nnumber = \"+4721000000\"\nstrategy = \"random\"\nmembers = [{msisdn = \"+4790000001\"}]",
                "unknown variant",
            ),
            (
                "[[group]]\nnumber = \"+4721000000\"\nmember_ring_timout = \"1s\"\nmembers = [{msisdn = \"+4790000001\"}]",
                "unknown field",
            ),
            (
                "[[group]]\nnumber = \"+4721000000\"\nqueue_timeout = \"soon\"\nmembers = [{msisdn = \"+4790000001\"}]",
                "queue_timeout",
            ),
            (
                "[[group]]\nnumber = \"+4721000000\"\nqueue_timeout = \"0s\"\nmembers = [{msisdn = \"+4790000001\"}]",
                "more than zero",
            ),
            (
                "[[group]]\nnumber = \"4721000000x\"\nmembers = [{msisdn = \"+4790000001\"}]",
                "number",
            ),
            (
                "[[group]]\nnumber = \"+4721000000\"\nmembers = [{msisdn = \"+4721000000\"}]",
                "its own members",
            ),
            (
                "[[group]]\nnumber = \"+4721000000\"\nmembers = [{msisdn = \"+4790000001\"}, {msisdn = \"+4790000001\"}]",
                "listed twice",
            ),
            (
                "[[group]]\nnumber = \"+4721000000\"\nmembers = [{msisdn = \"+4790000001\"}]\n[[group]]\nnumber = \"+4721000000\"\nmembers = [{msisdn = \"+4790000002\"}]",
                "listed twice",
            ),
        ];
        for (text, expected) in cases {
            let err = GroupTable::from_toml(text).expect_err(text).to_string();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }
}
