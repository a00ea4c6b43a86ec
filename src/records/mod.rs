//! Call records (CDRs, PROTOCOL.md section 9): one record per call that ended, kept in a store the
//! embedder chooses — by default the embedded SQLite database of [`sqlite`].
//!
//! Shape (docs/ARCHITECTURE.md, "One way through"): the driver task hands every call event to a
//! [`writer::RecorderHandle`] without ever waiting (a bounded queue, `try_send`); the writer thread
//! folds the events into records with the pure [`builder::RecordBuilder`] and commits them to a
//! [`RecordStore`] in batches (every ~200 ms while calls change, and at once on
//! [`writer::Recorder::close`]). Calls still live are kept as rows too, so that a call the process
//! died in is closed at the next start ([`RecordStore::close_abandoned`]) with reason
//! `SERVER_SHUTDOWN` and its end time marked estimated.
//!
//! - [`builder`]: call events → records, no I/O.
//! - [`sqlite`]: the SQLite store (WAL, versioned schema).
//! - [`writer`]: the writer thread and the handle the driver feeds.
//! - [`format`](mod@format): records as a table, CSV or JSON lines (the `records` command).

pub mod builder;
pub mod format;
pub mod sqlite;
pub mod writer;

pub use builder::RecordBuilder;
pub use sqlite::SqliteStore;
pub use writer::{Recorder, RecorderHandle, RecorderStats};

use crate::core::{ByeReason, CallRef, CallStatus, Device, Msisdn};
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One ended call (`webterminal.core.v1.CallRecord`, PROTOCOL.md sections 8 and 9). Times are UTC
/// wall-clock times truncated to whole milliseconds; durations are whole milliseconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallRecord {
    /// The call (a UUID, stable through pulls and handovers).
    pub call_ref: CallRef,
    /// The calling number.
    pub caller: Msisdn,
    /// The called number.
    pub callee: Msisdn,
    /// The number of the device that answered; `None` when the call was never answered.
    pub answered_by: Option<Msisdn>,
    /// The call context the caller attached (section 1, `Offer.data`), in key order.
    pub data: BTreeMap<String, String>,
    /// When the call was offered (`STARTED`).
    pub started_at: SystemTime,
    /// When its first leg alerted (`RINGING`); `None` if none did.
    pub alerted_at: Option<SystemTime>,
    /// When it was answered (`ANSWERED`); `None` if it never was.
    pub answered_at: Option<SystemTime>,
    /// When it ended; for a call closed after a crash, the last time the core is known to have
    /// held it ([`CallRecord::end_estimated`]).
    pub ended_at: SystemTime,
    /// `true` when the process died during the call and `ended_at` is an estimate (section 9).
    pub end_estimated: bool,
    /// The final status: `Completed`, `Unanswered`, `Rejected` or `Failed` (section 8's table).
    pub status: CallStatus,
    /// Why it ended (a `Bye.Reason`); `None` only if the switch gave none.
    pub reason: Option<ByeReason>,
    /// Start to answer, in milliseconds; 0 when never answered.
    pub setup_ms: u64,
    /// Answer to end, in milliseconds; 0 when never answered.
    pub talk_ms: u64,
    /// Time any side's media was on hold (`HELD` to `RESUMED`, or to the end), in milliseconds.
    pub hold_ms: u64,
    /// Every move of a side's active leg, oldest first.
    pub moves: Vec<Move>,
}

/// A move of one side's active leg (`CallRecord.moves`): a pull, a handover to the phone, a
/// transfer, or a terminal taking back a call its number's terminal left (section 8, `MOVED`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Move {
    /// When (UTC, whole milliseconds).
    pub at: SystemTime,
    /// Which side moved.
    pub side: Side,
    /// The leg it left: the side's previous active device (`None` if unknown).
    pub from: Option<Device>,
    /// The leg it moved to (`None` if the event carried none).
    pub to: Option<Device>,
    /// Why: `PULLED`, `HANDED_TO_PHONE`, `TRANSFERRED`.
    pub reason: Option<ByeReason>,
}

/// A side of a call (`CallRecord.Move.Side`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// The calling side.
    Caller,
    /// The called side.
    Callee,
}

impl Side {
    /// The wire name, `CALLER` or `CALLEE`.
    pub fn name(self) -> &'static str {
        match self {
            Side::Caller => "CALLER",
            Side::Callee => "CALLEE",
        }
    }

    /// The side named `name` ([`Side::name`]).
    pub fn from_name(name: &str) -> Option<Side> {
        match name {
            "CALLER" => Some(Side::Caller),
            "CALLEE" => Some(Side::Callee),
            _ => None,
        }
    }
}

/// A call still live, as the store keeps it so that a crash leaves a trace: the record it would
/// be if the core shut down at `record.ended_at` (the last time it is known to hold the call),
/// closed with `SERVER_SHUTDOWN` and `end_estimated`, and whether a side is on hold then.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveCallRecord {
    /// The record as it would be closed now.
    pub record: CallRecord,
    /// Whether a side's media is on hold (hold time then runs on to whatever end is estimated).
    pub held: bool,
}

/// One transaction's worth of changes for a [`RecordStore`]: the writer thread gathers them for
/// up to ~200 ms.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    /// Calls still live that changed: inserted or replaced, by `call_ref`.
    pub live: Vec<LiveCallRecord>,
    /// Calls that ended: inserted, or replacing their live row, by `call_ref`.
    pub finished: Vec<CallRecord>,
    /// A time the core was alive with its live calls, for estimating their end after a crash;
    /// `None` to leave the last one.
    pub alive_at: Option<SystemTime>,
}

impl Batch {
    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty() && self.finished.is_empty() && self.alive_at.is_none()
    }
}

/// Which records to list ([`RecordStore::list`], `ListCallRecordsRequest`): those of calls that
/// *started* in `[since, until)` and, with `msisdn`, that the number was caller or callee of;
/// newest start first, `page_size` at a time, after the record `after` names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordQuery {
    /// Only calls this number made or received.
    pub msisdn: Option<Msisdn>,
    /// Only calls started at or after this time.
    pub since: Option<SystemTime>,
    /// Only calls started before this time.
    pub until: Option<SystemTime>,
    /// At most this many records (at least 1; the store may hold to [`MAX_PAGE_SIZE`]).
    pub page_size: usize,
    /// Continue after this record (the previous page's [`RecordPage::next`]).
    pub after: Option<PageToken>,
}

/// Records per page when a request does not say (`ListCallRecordsRequest.page_size` 0).
pub const DEFAULT_PAGE_SIZE: usize = 100;

/// Most records per page; a larger `page_size` is held to it.
pub const MAX_PAGE_SIZE: usize = 1000;

/// One page of records, newest start first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordPage {
    /// The records.
    pub records: Vec<CallRecord>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<PageToken>,
}

/// Where a page of records continues: after the record of this start time and call. Opaque to
/// clients (`page_token`): [`fmt::Display`] writes it, [`std::str::FromStr`] reads it back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageToken {
    /// The last listed record's start, in milliseconds since the Unix epoch.
    pub started_at_ms: i64,
    /// The last listed record's call.
    pub call_ref: CallRef,
}

impl fmt::Display for PageToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.started_at_ms, self.call_ref.0.simple())
    }
}

/// A `page_token` that no page gave.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("page_token is not one this core gave")]
pub struct BadPageToken;

impl std::str::FromStr for PageToken {
    type Err = BadPageToken;

    fn from_str(s: &str) -> Result<Self, BadPageToken> {
        let (ms, uuid) = s.split_once('.').ok_or(BadPageToken)?;
        if uuid.len() != 32 {
            return Err(BadPageToken);
        }
        Ok(PageToken {
            started_at_ms: ms.parse().map_err(|_| BadPageToken)?,
            call_ref: CallRef(uuid::Uuid::try_parse(uuid).map_err(|_| BadPageToken)?),
        })
    }
}

/// What went wrong in a [`RecordStore`]. The writer logs and counts it; calls go on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed (cannot open, disk full, read-only, corrupt). The text says which file
    /// and why.
    #[error("{0}")]
    Database(String),
    /// The database was made by a newer core (a schema version this one does not know).
    #[error("{0}")]
    Schema(String),
}

/// Where call records are kept. The SQLite store ([`SqliteStore`]) is the default; an embedder
/// may implement it for another database (PostgreSQL for several nodes). Calls are made from the
/// writer thread ([`RecordStore::write`], [`RecordStore::close_abandoned`]) and from blocking tasks
/// serving `ListCallRecords` ([`RecordStore::list`]), never from the driver task; they may block.
pub trait RecordStore: Send + Sync + fmt::Debug + 'static {
    /// Applies `batch` in one transaction: live calls and finished records replace any row of the
    /// same `call_ref`; `alive_at`, when set, is kept for [`RecordStore::close_abandoned`].
    ///
    /// # Errors
    /// [`StoreError`] when nothing was written (the writer logs it, counts it and goes on).
    fn write(&self, batch: &Batch) -> Result<(), StoreError>;

    /// At startup, before the first [`RecordStore::write`]: closes every call left live by a
    /// process that died, as [`builder::close_abandoned`] says (reason `SERVER_SHUTDOWN`,
    /// `COMPLETED` if answered else `FAILED`, `end_estimated`, ended at the last time known).
    /// Returns how many it closed.
    ///
    /// # Errors
    /// [`StoreError`] when they could not be read or written.
    fn close_abandoned(&self) -> Result<usize, StoreError>;

    /// Finished records matching `query`, newest start first (live calls are not listed).
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be read.
    fn list(&self, query: &RecordQuery) -> Result<RecordPage, StoreError>;
}

/// Which call records the server keeps ([`crate::server::ServerConfig::records`], `--records`).
#[derive(Clone, Default)]
pub enum RecordsConfig {
    /// None: `ListCallRecords` answers `UNAVAILABLE`. The default of
    /// [`crate::server::ServerConfig::new`], so tests and embedders write no file unless asked.
    #[default]
    None,
    /// The SQLite database at this path, made if missing (the CLI's default:
    /// `records.sqlite3` in the core's data directory).
    Sqlite(PathBuf),
    /// The embedder's own store.
    Store(Arc<dyn RecordStore>),
}

impl fmt::Debug for RecordsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordsConfig::None => f.write_str("None"),
            RecordsConfig::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            RecordsConfig::Store(_) => f.write_str("Store(..)"),
        }
    }
}

/// Starts recording as `config` says: `Ok(None)` for [`RecordsConfig::None`], else the writer
/// over the store, its calls left live by a crash closed first. `clock` turns an event's
/// `Instant` into UTC ([`crate::clock::wall_clock`]).
///
/// # Errors
/// Why the store cannot be used (the SQLite file cannot be opened or migrated, no thread): the
/// server logs it and runs without records (section 9: "the core starts even when the records
/// path cannot be opened").
pub fn start(
    config: &RecordsConfig,
    clock: impl Fn(std::time::Instant) -> SystemTime + Send + 'static,
) -> Result<Option<Recorder>, String> {
    let store: Arc<dyn RecordStore> = match config {
        RecordsConfig::None => return Ok(None),
        RecordsConfig::Sqlite(path) => {
            Arc::new(SqliteStore::open(path.clone()).map_err(|e| e.to_string())?)
        }
        RecordsConfig::Store(store) => store.clone(),
    };
    Recorder::start(store, clock)
        .map(Some)
        .map_err(|e| format!("cannot start the records writer: {e}"))
}

/// `time` as milliseconds since the Unix epoch (negative before it).
pub fn unix_ms(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// The time `ms` milliseconds after the Unix epoch.
pub fn from_unix_ms(ms: i64) -> SystemTime {
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

/// `time` truncated to whole milliseconds (section 9: millisecond precision).
pub fn to_millis(time: SystemTime) -> SystemTime {
    from_unix_ms(unix_ms(time))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_refuse_strangers() {
        let token = PageToken {
            started_at_ms: 1_764_660_000_123,
            call_ref: CallRef(uuid::Uuid::from_u128(0x1234)),
        };
        assert_eq!(token.to_string().parse::<PageToken>(), Ok(token));
        for bad in [
            "",
            "x",
            "12",
            "12.",
            "a.00000000000000000000000000001234",
            "1.zz",
        ] {
            assert_eq!(bad.parse::<PageToken>(), Err(BadPageToken), "{bad:?}");
        }
    }

    #[test]
    fn names_round_trip() {
        for (reason, name) in [
            (ByeReason::NormalClearing, "NORMAL_CLEARING"),
            (ByeReason::HandedToPhone, "HANDED_TO_PHONE"),
            (ByeReason::EndedByOperator, "ENDED_BY_OPERATOR"),
        ] {
            assert_eq!(reason.name(), name);
            assert_eq!(ByeReason::from_name(name), Some(reason));
        }
        assert_eq!(ByeReason::from_name("REASON_UNSPECIFIED"), None);
        assert_eq!(ByeReason::from_name("no such reason"), None);
        for status in CallStatus::ALL {
            assert_eq!(CallStatus::from_name(status.name()), Some(status));
        }
        assert_eq!(CallStatus::Completed.name(), "COMPLETED");
        assert_eq!(Side::from_name(Side::Callee.name()), Some(Side::Callee));
    }

    #[test]
    fn milliseconds_truncate_and_round_trip() {
        let t = UNIX_EPOCH + Duration::from_micros(1_764_660_000_123_456);
        assert_eq!(unix_ms(t), 1_764_660_000_123);
        assert_eq!(from_unix_ms(unix_ms(t)), to_millis(t));
        assert_eq!(unix_ms(UNIX_EPOCH - Duration::from_millis(5)), -5);
    }
}
