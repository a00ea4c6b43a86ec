//! The operator API's protobuf messages from the core's values, in one place: call events, live
//! calls, devices and call records (PROTOCOL.md sections 8 and 9). Bye reasons go through
//! [`crate::wire`], as they do for terminals.

use crate::core::{
    ByeReason, CallEvent, CallStatus, Device, DeviceKind, LiveCall, Msisdn, TerminalId,
};
use crate::proto::operator::{self as pb};
use crate::records::{self, CallRecord};
use crate::wire;
use std::time::Instant;

/// A call record as `ListCallRecords` sends it.
pub fn record_to_proto(record: &CallRecord) -> pb::CallRecord {
    pb::CallRecord {
        call_ref: record.call_ref.to_string(),
        caller: record.caller.to_string(),
        callee: record.callee.to_string(),
        answered_by: record
            .answered_by
            .as_ref()
            .map(Msisdn::to_string)
            .unwrap_or_default(),
        data: record.data.clone().into_iter().collect(),
        started_at: Some(record.started_at.into()),
        alerted_at: record.alerted_at.map(Into::into),
        answered_at: record.answered_at.map(Into::into),
        ended_at: Some(record.ended_at.into()),
        end_estimated: record.end_estimated,
        status: status_to_proto(record.status) as i32,
        reason: reason_to_proto(record.reason),
        setup_ms: record.setup_ms,
        talk_ms: record.talk_ms,
        hold_ms: record.hold_ms,
        moves: record
            .moves
            .iter()
            .map(|m| pb::call_record::Move {
                at: Some(m.at.into()),
                side: match m.side {
                    records::Side::Caller => pb::call_record::Side::Caller,
                    records::Side::Callee => pb::call_record::Side::Callee,
                } as i32,
                from: m.from.as_ref().map(device_to_proto),
                to: m.to.as_ref().map(device_to_proto),
                reason: reason_to_proto(m.reason),
            })
            .collect(),
    }
}

pub(super) fn timestamp(at: Instant) -> prost_types::Timestamp {
    crate::clock::wall_clock(at).into()
}

/// A terminal's opaque name for operators.
pub(super) fn terminal_id(terminal: TerminalId) -> String {
    format!("t{}", terminal.0)
}

pub(super) fn device_kind(kind: DeviceKind) -> pb::device::Kind {
    match kind {
        DeviceKind::Pipe => pb::device::Kind::Pipe,
        DeviceKind::MultiPipe => pb::device::Kind::Multipipe,
        DeviceKind::Phone => pb::device::Kind::Phone,
    }
}

fn device_to_proto(device: &Device) -> pb::Device {
    pb::Device {
        kind: device_kind(device.kind) as i32,
        terminal_id: device.terminal.map(terminal_id).unwrap_or_default(),
        msisdn: device.msisdn.to_string(),
    }
}

/// The wire value of a call status.
pub fn status_to_proto(status: CallStatus) -> pb::CallStatus {
    match status {
        CallStatus::Started => pb::CallStatus::Started,
        CallStatus::Ringing => pb::CallStatus::Ringing,
        CallStatus::Answered => pb::CallStatus::Answered,
        CallStatus::Held => pb::CallStatus::Held,
        CallStatus::Resumed => pb::CallStatus::Resumed,
        CallStatus::Moved => pb::CallStatus::Moved,
        CallStatus::Completed => pb::CallStatus::Completed,
        CallStatus::Unanswered => pb::CallStatus::Unanswered,
        CallStatus::Rejected => pb::CallStatus::Rejected,
        CallStatus::Failed => pb::CallStatus::Failed,
    }
}

fn reason_to_proto(reason: Option<ByeReason>) -> i32 {
    reason.map_or(0, |r| wire::bye_reason_to_proto(r) as i32)
}

/// A call event as `WatchCalls` sends it.
pub fn event_to_proto(event: &CallEvent) -> pb::CallEvent {
    pb::CallEvent {
        sequence: event.sequence,
        time: Some(timestamp(event.at)),
        call_ref: event.call_ref.to_string(),
        caller: event.caller.to_string(),
        callee: event.callee.to_string(),
        caller_call_id: event.caller_call_id.to_string(),
        callee_call_id: event.callee_call_id.to_string(),
        status: status_to_proto(event.status) as i32,
        device: event.device.as_ref().map(device_to_proto),
        reason: reason_to_proto(event.reason),
        data: event
            .context
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        group_answer: event.group_answer.as_ref().map(|g| pb::GroupAnswer {
            group: g.group.to_string(),
            extension: g.extension.clone(),
            hold_time_ms: u64::try_from(g.hold_time.as_millis()).unwrap_or(u64::MAX),
        }),
    }
}

pub(super) fn call_to_proto(call: &LiveCall) -> pb::Call {
    pb::Call {
        call_ref: call.call_ref.to_string(),
        caller: call.caller.to_string(),
        callee: call.callee.to_string(),
        caller_call_id: call.caller_call_id.to_string(),
        callee_call_id: call.callee_call_id.to_string(),
        state: if call.established {
            pb::call::State::Established
        } else {
            pb::call::State::Ringing
        } as i32,
        started_at: Some(timestamp(call.started_at)),
        answered_at: call.answered_at.map(timestamp),
        held: call.held,
        caller_leg: call.caller_leg.as_ref().map(device_to_proto),
        callee_leg: call.callee_leg.as_ref().map(device_to_proto),
        data: call
            .context
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_core_names_call_statuses_as_the_operator_api_does() {
        for status in CallStatus::ALL {
            let name = format!("CALL_STATUS_{}", status.name());
            assert_eq!(status_to_proto(status).as_str_name(), name);
        }
    }
}
