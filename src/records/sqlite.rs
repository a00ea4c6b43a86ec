//! The SQLite record store (PROTOCOL.md section 9): one file, WAL mode, its schema versioned with
//! `rusqlite_migration` (the version lives in SQLite's `user_version`).
//!
//! One table, `call_records`, holds a row per call: written while the call is live (`live = 1`, as
//! it would be closed by a crash) and replaced by the finished record at its end. A single-row
//! table, `heartbeat`, keeps the last time the writer knew the core alive with live calls, so that
//! [`RecordStore::close_abandoned`] can estimate when a call the process died in ended.
//!
//! One records file serves one core process at a time: a starting core closes every live row it
//! finds. The writer has a connection of its own; each `list` borrows a reader connection from a
//! small pool, so readers never wait for the writer (WAL).

use super::builder::close_abandoned;
use super::{
    from_unix_ms, unix_ms, Batch, CallRecord, LiveCallRecord, Move, PageToken, RecordPage,
    RecordQuery, RecordStore, Side, StoreError, MAX_PAGE_SIZE,
};
use crate::core::{ByeReason, CallRef, CallStatus, Device, DeviceKind, Msisdn, TerminalId};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row};
use rusqlite_migration::{Migrations, M};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// The schema, one migration per version; never edit a released one, add the next.
fn migrations() -> Migrations<'static> {
    Migrations::new(vec![M::up(
        // A rowid table: rows are appended in the order calls start, and only the small index on
        // call_ref (a random UUID) takes scattered writes (a table keyed by call_ref dirtied one
        // random page per record, and cost a busy core 30 % more CPU per call once it was large).
        "CREATE TABLE call_records (
            call_ref TEXT NOT NULL UNIQUE,
            caller TEXT NOT NULL,
            callee TEXT NOT NULL,
            answered_by TEXT,
            data TEXT NOT NULL,
            started_at_ms INTEGER NOT NULL,
            alerted_at_ms INTEGER,
            answered_at_ms INTEGER,
            ended_at_ms INTEGER NOT NULL,
            end_estimated INTEGER NOT NULL,
            status TEXT NOT NULL,
            reason TEXT,
            setup_ms INTEGER NOT NULL,
            talk_ms INTEGER NOT NULL,
            hold_ms INTEGER NOT NULL,
            moves TEXT NOT NULL,
            live INTEGER NOT NULL,
            held INTEGER NOT NULL
        );
        CREATE INDEX call_records_by_start ON call_records (started_at_ms DESC, call_ref DESC);
        CREATE INDEX call_records_by_caller ON call_records (caller, started_at_ms DESC);
        CREATE INDEX call_records_by_callee ON call_records (callee, started_at_ms DESC);
        CREATE INDEX call_records_live ON call_records (live) WHERE live = 1;
        CREATE TABLE heartbeat (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            alive_at_ms INTEGER NOT NULL
        );",
    )])
}

/// The schema version this core writes (the number of migrations).
pub const SCHEMA_VERSION: usize = 1;

/// Call records in a SQLite file. See the module docs.
pub struct SqliteStore {
    path: PathBuf,
    /// The writer's connection; `None` for a store opened read-only.
    writer: Option<Mutex<Connection>>,
    /// Idle reader connections.
    readers: Mutex<Vec<Connection>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("read_only", &self.writer.is_none())
            .finish_non_exhaustive()
    }
}

fn db_error(path: &Path, what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Database(format!("{what} {}: {e}", path.display()))
}

impl SqliteStore {
    /// Opens (or makes) the records database at `path`, its directory included, brings its schema
    /// to [`SCHEMA_VERSION`] and turns on WAL. Does not close abandoned calls: the caller does
    /// that once ([`RecordStore::close_abandoned`]) before writing.
    ///
    /// # Errors
    /// [`StoreError::Database`] when the file or its directory cannot be made, opened or written;
    /// [`StoreError::Schema`] when a newer core made it.
    pub fn open(path: impl Into<PathBuf>) -> Result<SqliteStore, StoreError> {
        let path = path.into();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| db_error(dir, "cannot make", e))?;
        }
        let mut conn = Connection::open(&path).map_err(|e| db_error(&path, "cannot open", e))?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(|e| db_error(&path, "cannot set up", e))?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(|e| db_error(&path, "cannot use", e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %path.display(), mode, "the records database is not in WAL mode");
        }
        // WAL with synchronous=NORMAL: commits do not wait for the disk; a power cut may lose the
        // last commits, never corrupt the file.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| db_error(&path, "cannot set up", e))?;
        // 16 MiB of page cache (the default is 2 MiB): the indexes of a large file stay in memory.
        conn.pragma_update(None, "cache_size", -16_384)
            .map_err(|e| db_error(&path, "cannot set up", e))?;
        migrate(&mut conn, &path)?;
        Ok(SqliteStore {
            path,
            writer: Some(Mutex::new(conn)),
            readers: Mutex::new(Vec::new()),
        })
    }

    /// Opens an existing records database for reading only (the `records` command): no schema
    /// change, no closing of live calls, so it is safe beside a running core.
    ///
    /// # Errors
    /// [`StoreError::Database`] when the file is missing or unreadable; [`StoreError::Schema`]
    /// when its schema is not one this core reads.
    pub fn open_read_only(path: impl Into<PathBuf>) -> Result<SqliteStore, StoreError> {
        let path = path.into();
        let store = SqliteStore {
            path,
            writer: None,
            readers: Mutex::new(Vec::new()),
        };
        let conn = store.reader()?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(|e| db_error(&store.path, "cannot read", e))?;
        if version != SCHEMA_VERSION as i64 {
            return Err(StoreError::Schema(format!(
                "{} has records schema version {version}; this core reads version {SCHEMA_VERSION}{}",
                store.path.display(),
                if version == 0 {
                    " (is it a records database?)"
                } else {
                    ""
                }
            )));
        }
        store.readers.lock().expect("readers").push(conn);
        Ok(store)
    }

    /// Where the database is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn reader(&self) -> Result<Connection, StoreError> {
        if let Some(conn) = self.readers.lock().expect("readers").pop() {
            return Ok(conn);
        }
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| db_error(&self.path, "cannot open", e))?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(|e| db_error(&self.path, "cannot set up", e))?;
        Ok(conn)
    }

    fn writer(&self) -> Result<std::sync::MutexGuard<'_, Connection>, StoreError> {
        let writer = self.writer.as_ref().ok_or_else(|| {
            StoreError::Database(format!("{} is open read-only", self.path.display()))
        })?;
        Ok(writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()))
    }
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let migrations = migrations();
    match migrations.to_latest(conn) {
        Ok(()) => Ok(()),
        Err(rusqlite_migration::Error::MigrationDefinition(
            rusqlite_migration::MigrationDefinitionError::DatabaseTooFarAhead,
        )) => Err(StoreError::Schema(format!(
            "{} was made by a newer core (schema past version {SCHEMA_VERSION}): use that core, or another --records file",
            path.display()
        ))),
        Err(e) => Err(db_error(path, "cannot migrate", e)),
    }
}

impl RecordStore for SqliteStore {
    fn write(&self, batch: &Batch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut conn = self.writer()?;
        let failed = |e: rusqlite::Error| db_error(&self.path, "cannot write", e);
        let tx = conn.transaction().map_err(failed)?;
        {
            let mut upsert = tx.prepare_cached(UPSERT).map_err(failed)?;
            for live in &batch.live {
                upsert
                    .execute(row_params(&live.record, true, live.held).as_params())
                    .map_err(failed)?;
            }
            for record in &batch.finished {
                upsert
                    .execute(row_params(record, false, false).as_params())
                    .map_err(failed)?;
            }
            if let Some(alive) = batch.alive_at {
                tx.execute(
                    "INSERT INTO heartbeat (id, alive_at_ms) VALUES (1, ?1)
                     ON CONFLICT (id) DO UPDATE SET alive_at_ms = max(alive_at_ms, excluded.alive_at_ms)",
                    params![unix_ms(alive)],
                )
                .map_err(failed)?;
            }
        }
        tx.commit().map_err(failed)
    }

    fn close_abandoned(&self) -> Result<usize, StoreError> {
        let mut conn = self.writer()?;
        let failed = |e: rusqlite::Error| db_error(&self.path, "cannot recover", e);
        let tx = conn.transaction().map_err(failed)?;
        let alive_at: Option<i64> = tx
            .query_row(
                "SELECT alive_at_ms FROM heartbeat WHERE id = 1",
                [],
                |row| row.get(0),
            )
            .optional()
            .map_err(failed)?;
        let abandoned: Vec<LiveCallRecord> = {
            let mut select = tx
                .prepare(&format!("{SELECT} WHERE live = 1"))
                .map_err(failed)?;
            let rows = select
                .query_map([], |row| {
                    Ok(LiveCallRecord {
                        record: record_from_row(row)?,
                        held: row.get::<_, bool>("held")?,
                    })
                })
                .map_err(failed)?;
            rows.collect::<Result<_, _>>().map_err(failed)?
        };
        {
            let mut upsert = tx.prepare_cached(UPSERT).map_err(failed)?;
            for live in &abandoned {
                let closed = close_abandoned(live.clone(), alive_at.map(from_unix_ms));
                tracing::warn!(
                    call = %closed.call_ref,
                    status = closed.status.name(),
                    "closing a call left live when the core stopped unexpectedly; its end is estimated"
                );
                upsert
                    .execute(row_params(&closed, false, false).as_params())
                    .map_err(failed)?;
            }
        }
        tx.execute("DELETE FROM heartbeat", []).map_err(failed)?;
        tx.commit().map_err(failed)?;
        Ok(abandoned.len())
    }

    fn list(&self, query: &RecordQuery) -> Result<RecordPage, StoreError> {
        let conn = self.reader()?;
        let result = list(&conn, query).map_err(|e| db_error(&self.path, "cannot read", e));
        if result.is_ok() {
            self.readers.lock().expect("readers").push(conn);
        }
        result
    }
}

const UPSERT: &str = "INSERT INTO call_records (call_ref, caller, callee, answered_by,
    data, started_at_ms, alerted_at_ms, answered_at_ms, ended_at_ms, end_estimated, status, reason,
    setup_ms, talk_ms, hold_ms, moves, live, held)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)
    ON CONFLICT (call_ref) DO UPDATE SET caller = excluded.caller, callee = excluded.callee,
    answered_by = excluded.answered_by, data = excluded.data, started_at_ms = excluded.started_at_ms,
    alerted_at_ms = excluded.alerted_at_ms, answered_at_ms = excluded.answered_at_ms,
    ended_at_ms = excluded.ended_at_ms, end_estimated = excluded.end_estimated,
    status = excluded.status, reason = excluded.reason, setup_ms = excluded.setup_ms,
    talk_ms = excluded.talk_ms, hold_ms = excluded.hold_ms, moves = excluded.moves,
    live = excluded.live, held = excluded.held";

const SELECT: &str = "SELECT call_ref, caller, callee, answered_by, data, started_at_ms,
    alerted_at_ms, answered_at_ms, ended_at_ms, end_estimated, status, reason, setup_ms, talk_ms,
    hold_ms, moves, held FROM call_records";

/// The values of one row, in [`UPSERT`]'s order.
struct RowParams {
    text: [String; 6],
    answered_by: Option<String>,
    reason: Option<&'static str>,
    times: [Option<i64>; 4],
    numbers: [i64; 3],
    flags: [bool; 3],
}

impl RowParams {
    fn as_params(&self) -> [&dyn rusqlite::ToSql; 18] {
        [
            &self.text[0],
            &self.text[1],
            &self.text[2],
            &self.answered_by,
            &self.text[3],
            &self.times[0],
            &self.times[1],
            &self.times[2],
            &self.times[3],
            &self.flags[0],
            &self.text[4],
            &self.reason,
            &self.numbers[0],
            &self.numbers[1],
            &self.numbers[2],
            &self.text[5],
            &self.flags[1],
            &self.flags[2],
        ]
    }
}

fn row_params(record: &CallRecord, live: bool, held: bool) -> RowParams {
    let ms = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    RowParams {
        text: [
            record.call_ref.to_string(),
            record.caller.to_string(),
            record.callee.to_string(),
            serde_json::to_string(&record.data).expect("a map of strings is JSON"),
            record.status.name().to_owned(),
            serde_json::to_string(
                &record
                    .moves
                    .iter()
                    .map(StoredMove::from)
                    .collect::<Vec<_>>(),
            )
            .expect("moves are JSON"),
        ],
        answered_by: record.answered_by.as_ref().map(Msisdn::to_string),
        reason: record.reason.map(ByeReason::name),
        times: [
            Some(unix_ms(record.started_at)),
            record.alerted_at.map(unix_ms),
            record.answered_at.map(unix_ms),
            Some(unix_ms(record.ended_at)),
        ],
        numbers: [ms(record.setup_ms), ms(record.talk_ms), ms(record.hold_ms)],
        flags: [record.end_estimated, live, held],
    }
}

/// A text column that does not hold what this core writes.
fn corrupt(column: &str, value: impl std::fmt::Display) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        format!("column {column} holds {value}, not a value this core writes").into(),
    )
}

fn msisdn(column: &str, text: String) -> rusqlite::Result<Msisdn> {
    Msisdn::parse(&text).map_err(|_| corrupt(column, "a number that is not E.164"))
}

fn record_from_row(row: &Row<'_>) -> rusqlite::Result<CallRecord> {
    let call_ref: String = row.get("call_ref")?;
    let data: String = row.get("data")?;
    let moves: String = row.get("moves")?;
    let status: String = row.get("status")?;
    let reason: Option<String> = row.get("reason")?;
    let stored_moves: Vec<StoredMove> =
        serde_json::from_str(&moves).map_err(|e| corrupt("moves", e))?;
    let u = |v: i64| u64::try_from(v).unwrap_or(0);
    Ok(CallRecord {
        call_ref: CallRef(uuid::Uuid::parse_str(&call_ref).map_err(|e| corrupt("call_ref", e))?),
        caller: msisdn("caller", row.get("caller")?)?,
        callee: msisdn("callee", row.get("callee")?)?,
        answered_by: row
            .get::<_, Option<String>>("answered_by")?
            .map(|m| msisdn("answered_by", m))
            .transpose()?,
        data: serde_json::from_str(&data).map_err(|e| corrupt("data", e))?,
        started_at: from_unix_ms(row.get("started_at_ms")?),
        alerted_at: row
            .get::<_, Option<i64>>("alerted_at_ms")?
            .map(from_unix_ms),
        answered_at: row
            .get::<_, Option<i64>>("answered_at_ms")?
            .map(from_unix_ms),
        ended_at: from_unix_ms(row.get("ended_at_ms")?),
        end_estimated: row.get("end_estimated")?,
        status: CallStatus::from_name(&status).ok_or_else(|| corrupt("status", &status))?,
        reason: reason
            .map(|r| ByeReason::from_name(&r).ok_or_else(|| corrupt("reason", &r)))
            .transpose()?,
        setup_ms: u(row.get("setup_ms")?),
        talk_ms: u(row.get("talk_ms")?),
        hold_ms: u(row.get("hold_ms")?),
        moves: stored_moves
            .into_iter()
            .map(Move::try_from)
            .collect::<Result<_, _>>()
            .map_err(|e| corrupt("moves", e))?,
    })
}

fn list(conn: &Connection, query: &RecordQuery) -> rusqlite::Result<RecordPage> {
    let page_size = query.page_size.clamp(1, MAX_PAGE_SIZE);
    let mut sql = format!("{SELECT} WHERE live = 0");
    let mut values: Vec<rusqlite::types::Value> = Vec::new();
    let mut bind = |sql: &mut String, clause: &str, value: rusqlite::types::Value| {
        values.push(value);
        sql.push_str(&clause.replace('?', &format!("?{}", values.len())));
    };
    if let Some(m) = &query.msisdn {
        // Two parameters of the same value: each side of the OR may use its own index.
        bind(&mut sql, " AND (caller = ?", m.to_string().into());
        bind(&mut sql, " OR callee = ?)", m.to_string().into());
    }
    if let Some(since) = query.since {
        bind(&mut sql, " AND started_at_ms >= ?", unix_ms(since).into());
    }
    if let Some(until) = query.until {
        bind(&mut sql, " AND started_at_ms < ?", unix_ms(until).into());
    }
    if let Some(after) = &query.after {
        bind(
            &mut sql,
            " AND (started_at_ms < ?",
            after.started_at_ms.into(),
        );
        bind(
            &mut sql,
            " OR (started_at_ms = ?",
            after.started_at_ms.into(),
        );
        bind(
            &mut sql,
            " AND call_ref < ?))",
            after.call_ref.to_string().into(),
        );
    }
    bind(
        &mut sql,
        " ORDER BY started_at_ms DESC, call_ref DESC LIMIT ?",
        i64::try_from(page_size + 1).unwrap_or(i64::MAX).into(),
    );
    let mut statement = conn.prepare_cached(&sql)?;
    let mut records: Vec<CallRecord> = statement
        .query_map(rusqlite::params_from_iter(values), record_from_row)?
        .collect::<Result<_, _>>()?;
    let next = if records.len() > page_size {
        records.truncate(page_size);
        records.last().map(|last| PageToken {
            started_at_ms: unix_ms(last.started_at),
            call_ref: last.call_ref,
        })
    } else {
        None
    };
    Ok(RecordPage { records, next })
}

/// A move as the `moves` column keeps it (JSON).
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredMove {
    at_ms: i64,
    side: String,
    from: Option<StoredDevice>,
    to: Option<StoredDevice>,
    reason: Option<String>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StoredDevice {
    kind: String,
    terminal: Option<u64>,
    msisdn: String,
}

impl From<&Move> for StoredMove {
    fn from(mv: &Move) -> Self {
        StoredMove {
            at_ms: unix_ms(mv.at),
            side: mv.side.name().to_owned(),
            from: mv.from.as_ref().map(StoredDevice::from),
            to: mv.to.as_ref().map(StoredDevice::from),
            reason: mv.reason.map(|r| r.name().to_owned()),
        }
    }
}

impl TryFrom<StoredMove> for Move {
    type Error = String;

    fn try_from(mv: StoredMove) -> Result<Self, String> {
        Ok(Move {
            at: from_unix_ms(mv.at_ms),
            side: Side::from_name(&mv.side).ok_or_else(|| format!("side {}", mv.side))?,
            from: mv.from.map(Device::try_from).transpose()?,
            to: mv.to.map(Device::try_from).transpose()?,
            reason: mv
                .reason
                .map(|r| ByeReason::from_name(&r).ok_or_else(|| format!("reason {r}")))
                .transpose()?,
        })
    }
}

impl From<&Device> for StoredDevice {
    fn from(device: &Device) -> Self {
        StoredDevice {
            kind: super::format::device_kind_name(device.kind).to_owned(),
            terminal: device.terminal.map(|t| t.0),
            msisdn: device.msisdn.to_string(),
        }
    }
}

impl TryFrom<StoredDevice> for Device {
    type Error = String;

    fn try_from(device: StoredDevice) -> Result<Self, String> {
        Ok(Device {
            kind: match device.kind.as_str() {
                "PIPE" => DeviceKind::Pipe,
                "MULTIPIPE" => DeviceKind::MultiPipe,
                "PHONE" => DeviceKind::Phone,
                other => return Err(format!("device kind {other}")),
            },
            terminal: device.terminal.map(TerminalId),
            msisdn: Msisdn::parse(&device.msisdn).map_err(|_| "a device number".to_owned())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{ByeReason, CallStatus};
    use std::collections::BTreeMap;
    use std::time::{SystemTime, UNIX_EPOCH};

    /// A fresh directory under the system's temporary one, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            let dir = std::env::temp_dir().join(format!("wtc-records-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
        fn file(&self) -> PathBuf {
            self.0.join("records.sqlite3")
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn at(ms: i64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(1_764_660_000_000 + ms as u64)
    }

    fn record(n: u128, caller: &str, callee: &str, start_ms: i64) -> CallRecord {
        CallRecord {
            call_ref: CallRef(uuid::Uuid::from_u128(n)),
            caller: Msisdn::parse(caller).unwrap(),
            callee: Msisdn::parse(callee).unwrap(),
            answered_by: Some(Msisdn::parse(callee).unwrap()),
            data: BTreeMap::from([("contact_ref".to_owned(), "T-1".to_owned())]),
            started_at: at(start_ms),
            alerted_at: Some(at(start_ms + 100)),
            answered_at: Some(at(start_ms + 1_000)),
            ended_at: at(start_ms + 5_000),
            end_estimated: false,
            status: CallStatus::Completed,
            reason: Some(ByeReason::NormalClearing),
            setup_ms: 1_000,
            talk_ms: 4_000,
            hold_ms: 0,
            moves: vec![Move {
                at: at(start_ms + 2_000),
                side: Side::Callee,
                from: Some(Device {
                    kind: DeviceKind::MultiPipe,
                    terminal: Some(TerminalId(7)),
                    msisdn: Msisdn::parse(callee).unwrap(),
                }),
                to: Some(Device {
                    kind: DeviceKind::Phone,
                    terminal: None,
                    msisdn: Msisdn::parse(callee).unwrap(),
                }),
                reason: Some(ByeReason::HandedToPhone),
            }],
        }
    }

    fn all(store: &SqliteStore) -> Vec<CallRecord> {
        store
            .list(&RecordQuery {
                page_size: MAX_PAGE_SIZE,
                ..RecordQuery::default()
            })
            .unwrap()
            .records
    }

    #[test]
    fn migrations_are_valid() {
        migrations().validate().unwrap();
    }

    #[test]
    fn an_empty_file_gets_the_schema_and_wal_and_a_record_round_trips() {
        let dir = TempDir::new();
        // A zero-byte file, as `touch` leaves it.
        std::fs::write(dir.file(), b"").unwrap();
        let store = SqliteStore::open(dir.file()).unwrap();
        let conn = store.reader().unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION as i64);
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let r = record(1, "+4799990001", "+4799990002", 0);
        store
            .write(&Batch {
                finished: vec![r.clone()],
                ..Batch::default()
            })
            .unwrap();
        assert_eq!(all(&store), vec![r]);
    }

    #[test]
    fn reopening_an_existing_file_keeps_its_records_and_version() {
        let dir = TempDir::new();
        let r = record(1, "+4799990001", "+4799990002", 0);
        {
            let store = SqliteStore::open(dir.file()).unwrap();
            store
                .write(&Batch {
                    finished: vec![r.clone()],
                    ..Batch::default()
                })
                .unwrap();
        }
        let store = SqliteStore::open(dir.file()).unwrap();
        assert_eq!(store.close_abandoned().unwrap(), 0);
        assert_eq!(all(&store), vec![r.clone()]);
        assert_eq!(
            all(&SqliteStore::open_read_only(dir.file()).unwrap()),
            vec![r]
        );
    }

    #[test]
    fn a_file_from_a_newer_core_or_not_a_database_is_refused() {
        let dir = TempDir::new();
        {
            let conn = Connection::open(dir.file()).unwrap();
            conn.pragma_update(None, "user_version", 99).unwrap();
        }
        assert!(matches!(
            SqliteStore::open(dir.file()),
            Err(StoreError::Schema(_))
        ));
        assert!(matches!(
            SqliteStore::open_read_only(dir.file()),
            Err(StoreError::Schema(_))
        ));
        std::fs::write(
            dir.file(),
            b"not a database, just text that is long enough to be a header",
        )
        .unwrap();
        let _ = std::fs::remove_file(dir.0.join("records.sqlite3-wal"));
        assert!(SqliteStore::open(dir.file()).is_err());
        assert!(SqliteStore::open_read_only(dir.0.join("missing.sqlite3")).is_err());
    }

    #[test]
    fn paging_is_newest_first_with_no_gap_or_repeat() {
        let dir = TempDir::new();
        let store = SqliteStore::open(dir.file()).unwrap();
        // 25 records; pairs share a start time, so the call_ref breaks ties.
        let records: Vec<CallRecord> = (0..25)
            .map(|i| record(i as u128 + 1, "+4799990001", "+4799990002", (i / 2) * 1_000))
            .collect();
        store
            .write(&Batch {
                finished: records.clone(),
                ..Batch::default()
            })
            .unwrap();
        let mut seen = Vec::new();
        let mut after = None;
        let mut pages = 0;
        loop {
            let page = store
                .list(&RecordQuery {
                    page_size: 7,
                    after,
                    ..RecordQuery::default()
                })
                .unwrap();
            pages += 1;
            assert!(page.records.len() <= 7);
            seen.extend(page.records);
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        assert_eq!(pages, 4);
        let mut expected = records;
        expected.sort_by(|a, b| {
            (b.started_at, b.call_ref.to_string()).cmp(&(a.started_at, a.call_ref.to_string()))
        });
        assert_eq!(seen, expected);
    }

    #[test]
    fn filters_by_number_on_either_side_and_by_start_time() {
        let dir = TempDir::new();
        let store = SqliteStore::open(dir.file()).unwrap();
        let ab = record(1, "+4799990001", "+4799990002", 0);
        let ba = record(2, "+4799990002", "+4799990001", 10_000);
        let cd = record(3, "+4799990003", "+4799990004", 20_000);
        store
            .write(&Batch {
                finished: vec![ab.clone(), ba.clone(), cd.clone()],
                ..Batch::default()
            })
            .unwrap();
        let list = |msisdn: Option<&str>, since: Option<i64>, until: Option<i64>| {
            store
                .list(&RecordQuery {
                    msisdn: msisdn.map(|m| Msisdn::parse(m).unwrap()),
                    since: since.map(at),
                    until: until.map(at),
                    page_size: 100,
                    after: None,
                })
                .unwrap()
                .records
                .into_iter()
                .map(|r| r.call_ref)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            list(Some("+4799990001"), None, None),
            [ba.call_ref, ab.call_ref]
        );
        assert_eq!(list(Some("+4799990004"), None, None), [cd.call_ref]);
        assert_eq!(list(Some("+4799990009"), None, None), []);
        assert_eq!(list(None, Some(10_000), None), [cd.call_ref, ba.call_ref]);
        assert_eq!(list(None, None, Some(10_000)), [ab.call_ref]);
        assert_eq!(
            list(Some("+4799990002"), Some(5_000), Some(15_000)),
            [ba.call_ref]
        );
    }

    #[test]
    fn calls_live_at_a_crash_are_closed_estimated_at_the_next_start() {
        let dir = TempDir::new();
        let answered = record(1, "+4799990001", "+4799990002", 0);
        let mut ringing = record(2, "+4799990003", "+4799990004", 1_000);
        ringing.answered_at = None;
        ringing.answered_by = None;
        ringing.setup_ms = 0;
        ringing.talk_ms = 0;
        ringing.ended_at = at(1_100);
        let as_live = |mut r: CallRecord| {
            r.end_estimated = true;
            r.reason = Some(ByeReason::ServerShutdown);
            r.status = CallStatus::of_end(r.answered_at.is_some(), ByeReason::ServerShutdown);
            LiveCallRecord {
                record: r,
                held: false,
            }
        };
        let finished = record(3, "+4799990005", "+4799990006", 2_000);
        {
            let store = SqliteStore::open(dir.file()).unwrap();
            store
                .write(&Batch {
                    live: vec![as_live(answered.clone()), as_live(ringing.clone())],
                    finished: vec![finished.clone()],
                    alive_at: Some(at(9_000)),
                })
                .unwrap();
            assert_eq!(
                all(&store),
                vec![finished.clone()],
                "live calls are not listed"
            );
            // The process dies here: nothing more is written.
        }
        let store = SqliteStore::open(dir.file()).unwrap();
        assert_eq!(store.close_abandoned().unwrap(), 2);
        let records = all(&store);
        assert_eq!(records.len(), 3);
        let find = |r: &CallRecord| records.iter().find(|x| x.call_ref == r.call_ref).unwrap();
        let a = find(&answered);
        assert!(a.end_estimated);
        assert_eq!(a.status, CallStatus::Completed);
        assert_eq!(a.reason, Some(ByeReason::ServerShutdown));
        assert_eq!(
            a.ended_at,
            at(9_000),
            "the last time the core was known alive"
        );
        assert_eq!(a.talk_ms, 8_000);
        let r = find(&ringing);
        assert!(r.end_estimated);
        assert_eq!(r.status, CallStatus::Failed);
        assert_eq!(r.reason, Some(ByeReason::ServerShutdown));
        assert_eq!(r.ended_at, at(9_000));
        assert_eq!(find(&finished), &finished, "finished records are untouched");
        // Closed once: the next start finds nothing to close.
        drop(store);
        assert_eq!(
            SqliteStore::open(dir.file())
                .unwrap()
                .close_abandoned()
                .unwrap(),
            0
        );
    }
}
