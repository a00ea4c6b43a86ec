//! The inbound-call notification (PROTOCOL.md section 10): what is pushed to Redis for each
//! answered group call, in the Teleforge/Enigma inbound-call format (v3.0.0 payload).
//!
//! Shape, as [`InboundCall::to_json`] writes it (compact JSON, keys in this order, nothing else):
//!
//! ```json
//! {"type":"call","payload":{"number":"+4790000009","dial_number":"+4721000000","hold_time":12,"call_ref":"6f1c…","contact_ref":"","call_dir":"inbound","ref":"101"}}
//! ```
//!
//! - `number`: the caller, E.164 with `+`.
//! - `dial_number`: the group's number, the one the caller dialled.
//! - `hold_time`: whole seconds from the call's arrival at the group to its answer, truncated, a
//!   JSON integer.
//! - `call_ref`: the call's UUID (section 8), hyphenated, lower case.
//! - `contact_ref`: the call context's `contact_ref` (section 1), or `""` when it has none.
//! - `call_dir`: always `"inbound"`.
//! - `ref`: the answering member's extension, from the routing file (`""` when it gives none).

use crate::core::{CallEvent, CallRef, CallStatus, Msisdn};
use serde::Serialize;
use std::fmt;

/// The call context key whose value goes in `contact_ref`.
pub const CONTACT_REF_KEY: &str = "contact_ref";

/// One inbound-call notification: the fields of the v3.0.0 payload ([module docs](self)).
///
/// `Debug` redacts the numbers (as [`Msisdn`] does) and the contact reference: they are personal
/// data.
#[derive(Clone, PartialEq, Eq)]
pub struct InboundCall {
    /// The caller (`number`).
    pub number: Msisdn,
    /// The group's number (`dial_number`).
    pub dial_number: Msisdn,
    /// Whole seconds from arrival to answer, truncated (`hold_time`).
    pub hold_time: u64,
    /// The call (`call_ref`).
    pub call_ref: CallRef,
    /// The call context's `contact_ref`, or `""` (`contact_ref`).
    pub contact_ref: String,
    /// The answering member's extension (`ref`).
    pub reference: String,
}

/// The envelope, field order as the contract writes it.
#[derive(Serialize)]
struct Envelope<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    payload: Payload<'a>,
}

/// The payload, field order as the contract writes it.
#[derive(Serialize)]
struct Payload<'a> {
    number: &'a str,
    dial_number: &'a str,
    hold_time: u64,
    call_ref: &'a str,
    contact_ref: &'a str,
    call_dir: &'static str,
    #[serde(rename = "ref")]
    reference: &'a str,
}

impl InboundCall {
    /// The notification for `event` when it is the `Answered` event of a call to a group (its
    /// [`CallEvent::group_answer`] is set); `None` for every other event.
    pub fn from_event(event: &CallEvent) -> Option<InboundCall> {
        let answer = event.group_answer.as_ref()?;
        if event.status != CallStatus::Answered {
            return None;
        }
        Some(InboundCall {
            number: event.caller.clone(),
            dial_number: answer.group.clone(),
            hold_time: answer.hold_time.as_secs(),
            call_ref: event.call_ref,
            contact_ref: event
                .context
                .get(CONTACT_REF_KEY)
                .unwrap_or_default()
                .to_owned(),
            reference: answer.extension.clone(),
        })
    }

    /// The message pushed to Redis: compact JSON, exactly the keys of the [module docs](self), in
    /// that order.
    pub fn to_json(&self) -> String {
        let call_ref = self.call_ref.to_string();
        let envelope = Envelope {
            kind: "call",
            payload: Payload {
                number: self.number.as_str(),
                dial_number: self.dial_number.as_str(),
                hold_time: self.hold_time,
                call_ref: &call_ref,
                contact_ref: &self.contact_ref,
                call_dir: "inbound",
                reference: &self.reference,
            },
        };
        serde_json::to_string(&envelope).expect("strings and integers always serialize")
    }
}

impl fmt::Debug for InboundCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InboundCall")
            .field("number", &self.number)
            .field("dial_number", &self.dial_number)
            .field("hold_time", &self.hold_time)
            .field("call_ref", &self.call_ref)
            .field(
                "contact_ref",
                &format_args!("<{} bytes>", self.contact_ref.len()),
            )
            .field("reference", &self.reference)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{CallContext, CallId, GroupAnswer};
    use std::time::{Duration, Instant};

    fn msisdn(s: &str) -> Msisdn {
        Msisdn::parse(s).unwrap()
    }

    fn answered(context: CallContext, hold_time: Duration) -> CallEvent {
        CallEvent {
            sequence: 7,
            at: Instant::now(),
            call_ref: CallRef(uuid::Uuid::from_u128(
                0x0123_4567_89ab_cdef_0123_4567_89ab_cdef,
            )),
            caller: msisdn("+4790000009"),
            callee: msisdn("+4790000001"),
            caller_call_id: CallId::random(),
            callee_call_id: CallId::random(),
            status: CallStatus::Answered,
            device: None,
            reason: None,
            context,
            group_answer: Some(GroupAnswer {
                group: msisdn("+4721000000"),
                extension: "101".into(),
                hold_time,
            }),
        }
    }

    #[test]
    fn the_json_is_exactly_the_contract() {
        let context =
            CallContext::parse([("contact_ref".to_owned(), "CRM-42".to_owned())]).unwrap();
        let call =
            InboundCall::from_event(&answered(context, Duration::from_millis(12_999))).unwrap();
        assert_eq!(
            call.to_json(),
            r#"{"type":"call","payload":{"number":"+4790000009","dial_number":"+4721000000","hold_time":12,"call_ref":"01234567-89ab-cdef-0123-456789abcdef","contact_ref":"CRM-42","call_dir":"inbound","ref":"101"}}"#
        );
    }

    #[test]
    fn strings_are_escaped_and_hold_time_is_an_integer() {
        let call = InboundCall {
            number: msisdn("+4790000009"),
            dial_number: msisdn("+4721000000"),
            hold_time: 0,
            call_ref: CallRef(uuid::Uuid::nil()),
            contact_ref: "a \"quoted\" \\ ref\nø".into(),
            reference: String::new(),
        };
        let value: serde_json::Value = serde_json::from_str(&call.to_json()).unwrap();
        assert_eq!(value["payload"]["contact_ref"], "a \"quoted\" \\ ref\nø");
        assert!(value["payload"]["hold_time"].is_u64());
        assert_eq!(value["payload"]["ref"], "");
        let keys: Vec<&str> = value["payload"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut expected = [
            "number",
            "dial_number",
            "hold_time",
            "call_ref",
            "contact_ref",
            "call_dir",
            "ref",
        ];
        let mut keys = keys;
        keys.sort_unstable();
        expected.sort_unstable();
        assert_eq!(keys, expected);
    }

    #[test]
    fn from_event_maps_the_answer_and_the_context() {
        let context = CallContext::parse([
            ("contact_ref".to_owned(), "T-1".to_owned()),
            ("display_name".to_owned(), "Kari".to_owned()),
        ])
        .unwrap();
        let event = answered(context, Duration::from_secs(3));
        let call = InboundCall::from_event(&event).unwrap();
        assert_eq!(
            call,
            InboundCall {
                number: msisdn("+4790000009"),
                dial_number: msisdn("+4721000000"),
                hold_time: 3,
                call_ref: event.call_ref,
                contact_ref: "T-1".into(),
                reference: "101".into(),
            }
        );
    }

    #[test]
    fn contact_ref_absent_is_empty() {
        let context = CallContext::parse([("display_name".to_owned(), "Kari".to_owned())]).unwrap();
        let call = InboundCall::from_event(&answered(context, Duration::ZERO)).unwrap();
        assert_eq!(call.contact_ref, "");
        let call =
            InboundCall::from_event(&answered(CallContext::default(), Duration::ZERO)).unwrap();
        assert_eq!(call.contact_ref, "");
    }

    #[test]
    fn hold_time_is_truncated_to_whole_seconds() {
        for (hold, secs) in [
            (Duration::ZERO, 0),
            (Duration::from_millis(999), 0),
            (Duration::from_millis(1000), 1),
            (Duration::from_millis(59_999), 59),
            (Duration::from_secs(301) + Duration::from_nanos(1), 301),
        ] {
            let call = InboundCall::from_event(&answered(CallContext::default(), hold)).unwrap();
            assert_eq!(call.hold_time, secs, "{hold:?}");
        }
    }

    #[test]
    fn only_a_group_answer_is_announced() {
        let mut event = answered(CallContext::default(), Duration::ZERO);
        event.group_answer = None;
        assert_eq!(InboundCall::from_event(&event), None, "a call to a number");
        let mut event = answered(CallContext::default(), Duration::ZERO);
        event.status = CallStatus::Completed;
        assert_eq!(InboundCall::from_event(&event), None, "not the answer");
    }

    #[test]
    fn debug_hides_the_contact_ref() {
        let context =
            CallContext::parse([("contact_ref".to_owned(), "secret-account".to_owned())]).unwrap();
        let call = InboundCall::from_event(&answered(context, Duration::ZERO)).unwrap();
        let text = format!("{call:?}");
        assert!(!text.contains("secret-account"), "{text}");
    }
}
