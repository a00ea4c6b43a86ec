//! Call records for people and spreadsheets (PROTOCOL.md section 9, `webterminal-core records`):
//! an aligned table, CSV (RFC 4180), or JSON lines with the field names of `CallRecord`. Times are
//! RFC 3339 in UTC with milliseconds (`2026-12-02T07:18:56.123Z`).

use super::{CallRecord, Move};
use crate::core::{ByeReason, Device, DeviceKind};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::SystemTime;

/// A device kind's wire name: `PIPE`, `MULTIPIPE`, `PHONE` (`webterminal.core.v1.Device.Kind`).
pub fn device_kind_name(kind: DeviceKind) -> &'static str {
    match kind {
        DeviceKind::Pipe => "PIPE",
        DeviceKind::MultiPipe => "MULTIPIPE",
        DeviceKind::Phone => "PHONE",
    }
}

/// A terminal's opaque name as operators see it (`Device.terminal_id`).
pub fn terminal_id(device: &Device) -> Option<String> {
    device.terminal.map(|t| format!("t{}", t.0))
}

fn time(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// A record as one JSON object (field names as in `CallRecord`; absent times and reasons are
/// `null`, devices `{kind, terminal_id, msisdn}`), without a line break.
pub fn json_line(record: &CallRecord) -> String {
    serde_json::to_string(&JsonRecord::from(record)).expect("a record is JSON")
}

#[derive(Serialize)]
struct JsonRecord<'a> {
    call_ref: String,
    caller: &'a str,
    callee: &'a str,
    answered_by: Option<&'a str>,
    data: &'a BTreeMap<String, String>,
    started_at: String,
    alerted_at: Option<String>,
    answered_at: Option<String>,
    ended_at: String,
    end_estimated: bool,
    status: &'static str,
    reason: Option<&'static str>,
    setup_ms: u64,
    talk_ms: u64,
    hold_ms: u64,
    moves: Vec<JsonMove>,
}

#[derive(Serialize)]
struct JsonMove {
    at: String,
    side: &'static str,
    from: Option<JsonDevice>,
    to: Option<JsonDevice>,
    reason: Option<&'static str>,
}

#[derive(Serialize)]
struct JsonDevice {
    kind: &'static str,
    terminal_id: Option<String>,
    msisdn: String,
}

impl<'a> From<&'a CallRecord> for JsonRecord<'a> {
    fn from(r: &'a CallRecord) -> Self {
        JsonRecord {
            call_ref: r.call_ref.to_string(),
            caller: r.caller.as_str(),
            callee: r.callee.as_str(),
            answered_by: r.answered_by.as_ref().map(|m| m.as_str()),
            data: &r.data,
            started_at: time(r.started_at),
            alerted_at: r.alerted_at.map(time),
            answered_at: r.answered_at.map(time),
            ended_at: time(r.ended_at),
            end_estimated: r.end_estimated,
            status: r.status.name(),
            reason: r.reason.map(ByeReason::name),
            setup_ms: r.setup_ms,
            talk_ms: r.talk_ms,
            hold_ms: r.hold_ms,
            moves: r.moves.iter().map(JsonMove::from).collect(),
        }
    }
}

impl From<&Move> for JsonMove {
    fn from(m: &Move) -> Self {
        let device = |d: &Device| JsonDevice {
            kind: device_kind_name(d.kind),
            terminal_id: terminal_id(d),
            msisdn: d.msisdn.to_string(),
        };
        JsonMove {
            at: time(m.at),
            side: m.side.name(),
            from: m.from.as_ref().map(device),
            to: m.to.as_ref().map(device),
            reason: m.reason.map(ByeReason::name),
        }
    }
}

/// The CSV header line (no line break): the columns of [`csv_line`].
pub const CSV_HEADER: &str = "call_ref,caller,callee,answered_by,started_at,alerted_at,answered_at,ended_at,end_estimated,status,reason,setup_ms,talk_ms,hold_ms,moves,data";

/// A record as one CSV line (RFC 4180, no line break), written by [`csv::Writer`]: a field with a
/// comma, a quote or a line break is quoted, its quotes doubled. `moves` is written as
/// `SIDE FROM>TO REASON` items separated by `; `, `data` as a JSON object.
pub fn csv_line(r: &CallRecord) -> String {
    let opt = |t: Option<SystemTime>| t.map(time).unwrap_or_default();
    let fields = [
        r.call_ref.to_string(),
        r.caller.to_string(),
        r.callee.to_string(),
        r.answered_by
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_default(),
        time(r.started_at),
        opt(r.alerted_at),
        opt(r.answered_at),
        time(r.ended_at),
        r.end_estimated.to_string(),
        r.status.name().to_owned(),
        r.reason.map(ByeReason::name).unwrap_or_default().to_owned(),
        r.setup_ms.to_string(),
        r.talk_ms.to_string(),
        r.hold_ms.to_string(),
        moves_text(&r.moves),
        if r.data.is_empty() {
            String::new()
        } else {
            serde_json::to_string(&r.data).expect("a map of strings is JSON")
        },
    ];
    // RFC 4180 ends a record with CRLF; the caller ends the line, so the terminator is dropped.
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    writer
        .write_record(&fields)
        .expect("writing to a Vec cannot fail");
    let mut line = writer.into_inner().expect("writing to a Vec cannot fail");
    line.truncate(line.len() - b"\r\n".len());
    String::from_utf8(line).expect("CSV of UTF-8 fields is UTF-8")
}

fn device_text(device: Option<&Device>) -> String {
    match device {
        None => "-".to_owned(),
        Some(d) => match terminal_id(d) {
            Some(id) => format!("{}:{id}", device_kind_name(d.kind)),
            None => device_kind_name(d.kind).to_owned(),
        },
    }
}

fn moves_text(moves: &[Move]) -> String {
    moves
        .iter()
        .map(|m| {
            format!(
                "{} {}>{} {}",
                m.side.name(),
                device_text(m.from.as_ref()),
                device_text(m.to.as_ref()),
                m.reason.map(ByeReason::name).unwrap_or("-")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Records as an aligned text table with a header line; one line per record, each ending in a
/// line break. An estimated end is marked `~`.
pub fn table(records: &[CallRecord]) -> String {
    let header = [
        "started_at",
        "caller",
        "callee",
        "answered_by",
        "status",
        "reason",
        "setup_ms",
        "talk_ms",
        "hold_ms",
        "moves",
        "ended_at",
    ];
    let rows: Vec<[String; 11]> = records
        .iter()
        .map(|r| {
            [
                time(r.started_at),
                r.caller.to_string(),
                r.callee.to_string(),
                r.answered_by
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_else(|| "-".into()),
                r.status.name().to_owned(),
                r.reason.map(ByeReason::name).unwrap_or("-").to_owned(),
                r.setup_ms.to_string(),
                r.talk_ms.to_string(),
                r.hold_ms.to_string(),
                r.moves.len().to_string(),
                format!(
                    "{}{}",
                    if r.end_estimated { "~" } else { "" },
                    time(r.ended_at)
                ),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let text: Vec<String> = cells
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(text.join("  ").trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in &rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{ByeReason, CallRef, CallStatus, Msisdn, TerminalId};
    use crate::records::Side;
    use std::time::{Duration, UNIX_EPOCH};

    fn record() -> CallRecord {
        let b = Msisdn::parse("+4799990002").unwrap();
        CallRecord {
            call_ref: CallRef(uuid::Uuid::from_u128(1)),
            caller: Msisdn::parse("+4799990001").unwrap(),
            callee: b.clone(),
            answered_by: Some(b.clone()),
            data: BTreeMap::from([("note".to_owned(), "say \"hi\", then, bye".to_owned())]),
            started_at: UNIX_EPOCH + Duration::from_millis(1_764_660_000_123),
            alerted_at: None,
            answered_at: Some(UNIX_EPOCH + Duration::from_millis(1_764_660_001_123)),
            ended_at: UNIX_EPOCH + Duration::from_millis(1_764_660_002_123),
            end_estimated: true,
            status: CallStatus::Completed,
            reason: Some(ByeReason::ServerShutdown),
            setup_ms: 1_000,
            talk_ms: 1_000,
            hold_ms: 0,
            moves: vec![Move {
                at: UNIX_EPOCH + Duration::from_millis(1_764_660_001_500),
                side: Side::Callee,
                from: Some(Device {
                    kind: DeviceKind::Pipe,
                    terminal: Some(TerminalId(3)),
                    msisdn: b.clone(),
                }),
                to: Some(Device {
                    kind: DeviceKind::Phone,
                    terminal: None,
                    msisdn: b,
                }),
                reason: Some(ByeReason::HandedToPhone),
            }],
        }
    }

    #[test]
    fn json_has_the_field_names_of_call_record() {
        let value: serde_json::Value = serde_json::from_str(&json_line(&record())).unwrap();
        assert_eq!(value["call_ref"], "00000000-0000-0000-0000-000000000001");
        assert_eq!(value["started_at"], "2025-12-02T07:20:00.123Z");
        assert_eq!(value["alerted_at"], serde_json::Value::Null);
        assert_eq!(value["end_estimated"], true);
        assert_eq!(value["status"], "COMPLETED");
        assert_eq!(value["reason"], "SERVER_SHUTDOWN");
        assert_eq!(value["talk_ms"], 1000);
        assert_eq!(value["moves"][0]["side"], "CALLEE");
        assert_eq!(value["moves"][0]["from"]["terminal_id"], "t3");
        assert_eq!(value["moves"][0]["to"]["kind"], "PHONE");
        assert_eq!(value["data"]["note"], "say \"hi\", then, bye");
    }

    #[test]
    fn csv_reads_back_field_for_field() {
        let r = record();
        let line = csv_line(&r);
        let text = format!("{CSV_HEADER}\n{line}\n");
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let header = reader.headers().unwrap().clone();
        assert_eq!(header.len(), 16);
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 1, "{line}");
        let field = |name| &rows[0][header.iter().position(|h| h == name).unwrap()];
        assert_eq!(field("call_ref"), "00000000-0000-0000-0000-000000000001");
        assert_eq!(field("alerted_at"), "");
        assert_eq!(field("answered_by"), "+4799990002");
        assert_eq!(field("moves"), "CALLEE PIPE:t3>PHONE HANDED_TO_PHONE");
        let data: BTreeMap<String, String> = serde_json::from_str(field("data")).unwrap();
        assert_eq!(data, r.data);
    }

    #[test]
    fn csv_quotes_commas_and_quotes() {
        let line = csv_line(&record());
        assert_eq!(CSV_HEADER.split(',').count(), 16, "one header per column");
        assert!(line.starts_with("00000000-0000-0000-0000-000000000001,+4799990001,"));
        assert!(line.contains(",CALLEE PIPE:t3>PHONE HANDED_TO_PHONE,"));
        assert!(
            line.ends_with(r#","{""note"":""say \""hi\"", then, bye""}""#),
            "{line}"
        );
        assert_eq!(
            line,
            "00000000-0000-0000-0000-000000000001,+4799990001,+4799990002,+4799990002,\
             2025-12-02T07:20:00.123Z,,2025-12-02T07:20:01.123Z,2025-12-02T07:20:02.123Z,true,\
             COMPLETED,SERVER_SHUTDOWN,1000,1000,0,CALLEE PIPE:t3>PHONE HANDED_TO_PHONE,\
             \"{\"\"note\"\":\"\"say \\\"\"hi\\\"\", then, bye\"\"}\"",
            "the whole line, byte for byte"
        );
    }

    #[test]
    fn table_aligns_and_marks_estimated_ends() {
        let text = table(&[record()]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("started_at"));
        assert!(lines[1].contains("~2025-12-02T07:20:02.123Z"));
        assert_eq!(lines[0].find("caller"), lines[1].find("+4799990001"));
    }
}
