//! The routing file (`--routing FILE`, PROTOCOL.md section 10): the groups, read at start and again
//! on every SIGHUP. A file that cannot be read or parsed at start is a startup error; on a reload it
//! is logged and counted, and the groups already in force are kept. The file's format (TOML, read
//! with serde) is this module's; what makes a set of groups possible is the core's
//! ([`GroupTable::new`]).

use crate::core::{
    Group, GroupError, GroupTable, Member, Msisdn, Strategy, DEFAULT_MEMBER_RING_TIMEOUT,
    DEFAULT_QUEUE_TIMEOUT,
};
use crate::driver::DriverHandle;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why a routing file could not be used; the text names the file and the fault.
#[derive(Debug, thiserror::Error)]
pub enum RoutingError {
    /// The file could not be read.
    #[error("routing file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a valid routing file.
    #[error("routing file {path}: {source}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the group and field.
        source: RoutingFileError,
    },
}

/// Why the text of a routing file was refused; the message names the group and field at fault.
#[derive(Debug, thiserror::Error)]
pub enum RoutingFileError {
    /// Not TOML, or a field of the wrong type, or an unknown field (a typo).
    #[error("{0}")]
    Syntax(#[from] toml::de::Error),
    /// A value the file cannot hold: a number that is not E.164, a strategy or duration that is no
    /// such thing.
    #[error("group {group}: {problem}")]
    Value {
        /// The group's `number` as written (its position, `#N`, when it has none).
        group: String,
        /// What is wrong.
        problem: String,
    },
    /// The groups the file lists cannot be ([`GroupTable::new`]).
    #[error(transparent)]
    Groups(#[from] GroupError),
}

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
/// [`RoutingFileError`]: not TOML, an unknown field, a number that is not E.164, an unknown
/// strategy, a duration humantime cannot read, and whatever [`GroupTable::new`] refuses (no
/// members, a number twice, a group among its own members, a zero duration).
pub fn parse(text: &str) -> Result<GroupTable, RoutingFileError> {
    let file: File = toml::from_str(text)?;
    let mut groups = Vec::with_capacity(file.group.len());
    for (i, entry) in file.group.into_iter().enumerate() {
        let group = entry
            .to_group()
            .map_err(|problem| RoutingFileError::Value {
                group: match entry.number.is_empty() {
                    true => format!("#{}", i + 1),
                    false => entry.number.clone(),
                },
                problem,
            })?;
        groups.push(group);
    }
    Ok(GroupTable::new(groups)?)
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
    strategy: Option<String>,
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

impl GroupEntry {
    /// The group as written, or what cannot be read in it.
    fn to_group(&self) -> Result<Group, String> {
        let number =
            Msisdn::parse(&self.number).map_err(|e| format!("number {:?}: {e}", self.number))?;
        let strategy = match &self.strategy {
            None => Strategy::RingAll,
            Some(name) => Strategy::from_name(name).ok_or_else(|| {
                format!("strategy {name:?}: unknown variant, expected ring-all, round-robin or longest-idle")
            })?,
        };
        let duration = |field: &str, value: &Option<String>, default: Duration| match value {
            None => Ok(default),
            Some(text) => {
                humantime::parse_duration(text).map_err(|e| format!("{field} {text:?}: {e}"))
            }
        };
        let member_ring_timeout = duration(
            "member_ring_timeout",
            &self.member_ring_timeout,
            DEFAULT_MEMBER_RING_TIMEOUT,
        )?;
        let queue_timeout = duration("queue_timeout", &self.queue_timeout, DEFAULT_QUEUE_TIMEOUT)?;
        let members = self
            .members
            .iter()
            .map(|m| {
                let msisdn =
                    Msisdn::parse(&m.msisdn).map_err(|e| format!("member {:?}: {e}", m.msisdn))?;
                Ok(Member {
                    msisdn,
                    extension: m.extension.clone(),
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(Group {
            number,
            strategy,
            member_ring_timeout,
            queue_timeout,
            members,
        })
    }
}

/// Reads and parses the routing file at `path`.
///
/// # Errors
/// [`RoutingError`] when it cannot be read or is not a valid routing file.
pub fn load(path: &Path) -> Result<GroupTable, RoutingError> {
    let text = std::fs::read_to_string(path).map_err(|source| RoutingError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text).map_err(|source| RoutingError::Invalid {
        path: path.to_owned(),
        source,
    })
}

/// Re-reads `path` on every SIGHUP and hands the new groups to the switch: calls already queued
/// keep the group they joined; new calls follow the new file. A bad file is logged (error) and
/// counted (`webterminal_routing_reloads_total{result="failed"}`), and the groups in force stay.
/// The task ends when the driver has stopped. Unix only; elsewhere the file is read at start only.
pub fn reload_on_hangup(path: PathBuf, driver: DriverHandle) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let mut hangups = match signal(SignalKind::hangup()) {
                Ok(hangups) => hangups,
                Err(e) => {
                    tracing::error!(error = %e, "cannot watch SIGHUP: the routing file will not be reloaded");
                    return;
                }
            };
            while hangups.recv().await.is_some() {
                let result = match load(&path) {
                    Ok(table) => {
                        let groups = table.len();
                        if driver.set_router(Box::new(table)).await.is_err() {
                            return;
                        }
                        tracing::info!(path = %path.display(), groups, "routing file reloaded");
                        "reloaded"
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "routing file not reloaded: keeping the groups in force");
                        "failed"
                    }
                };
                metrics::counter!(crate::telemetry::metrics::ROUTING_RELOADS, "result" => result)
                    .increment(1);
            }
        }
        #[cfg(not(unix))]
        {
            let _ = (path, driver);
        }
    })
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
        let table = parse(FILE).unwrap();
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
    fn bad_files_are_refused_with_the_fault_named() {
        let member = "members = [{msisdn = \"+4790000001\"}]";
        let cases = [
            ("[[group]]\nnumber = 5".to_owned(), "invalid type"),
            ("[[group]]\nnumber = \"+4721000000\"\nmembers = []".into(), "+4721000000: has no members"),
            (format!("[[group]]\nnumber = \"+4721000000\"\nstrategy = \"random\"\n{member}"), "unknown variant"),
            (format!("[[group]]\nnumber = \"+4721000000\"\nmember_ring_timout = \"1s\"\n{member}"), "unknown field"),
            (format!("[[group]]\nnumber = \"+4721000000\"\nqueue_timeout = \"soon\"\n{member}"), "queue_timeout"),
            (format!("[[group]]\nnumber = \"+4721000000\"\nqueue_timeout = \"0s\"\n{member}"), "more than zero"),
            (format!("[[group]]\nnumber = \"4721000000x\"\n{member}"), "number"),
            ("[[group]]\nnumber = \"+4721000000\"\nmembers = [{msisdn = \"+4721000000\"}]".into(), "its own members"),
            (
                "[[group]]\nnumber = \"+4721000000\"\nmembers = [{msisdn = \"+4790000001\"}, {msisdn = \"+4790000001\"}]".into(),
                "listed twice",
            ),
            (
                format!("[[group]]\nnumber = \"+4721000000\"\n{member}\n[[group]]\nnumber = \"+4721000000\"\nmembers = [{{msisdn = \"+4790000002\"}}]"),
                "listed twice",
            ),
        ];
        for (text, expected) in cases {
            let err = parse(&text).expect_err(&text).to_string();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }
}
