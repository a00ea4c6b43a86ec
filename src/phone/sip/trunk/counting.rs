//! The SIP message counts of PROTOCOL.md section 13's metrics, taken by the stack's message
//! inspector.

use super::*;

/// The request methods counted by name in [`crate::metric_names::SIP_REQUESTS`] (those the stack
/// knows); any other is `other`.
pub(super) use crate::phone::sip::wire::KNOWN_METHODS as COUNTED_METHODS;

/// The status classes of [`crate::metric_names::SIP_RESPONSES`].
pub(super) const STATUS_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "6xx"];

/// One direction's counters, resolved once.
pub(super) struct Counters {
    /// Per [`COUNTED_METHODS`], then `other`.
    pub(super) requests: Vec<metrics::Counter>,
    /// Per [`STATUS_CLASSES`].
    pub(super) responses: Vec<metrics::Counter>,
}

impl Counters {
    pub(super) fn new(direction: &'static str) -> Counters {
        use crate::metric_names::{SIP_REQUESTS, SIP_RESPONSES};
        Counters {
            requests: COUNTED_METHODS
                .iter()
                .chain(&["other"])
                .map(|method| {
                    metrics::counter!(SIP_REQUESTS, "direction" => direction, "method" => *method)
                })
                .collect(),
            responses: STATUS_CLASSES
                .iter()
                .map(|class| {
                    metrics::counter!(SIP_RESPONSES, "direction" => direction, "status" => *class)
                })
                .collect(),
        }
    }

    /// Counts `message`: an atomic increment, never blocking.
    pub(super) fn count(&self, message: &SipMessage) {
        match message {
            SipMessage::Request(request) => {
                let method = request.method.to_string();
                let at = COUNTED_METHODS
                    .iter()
                    .position(|m| m.eq_ignore_ascii_case(&method))
                    .unwrap_or(COUNTED_METHODS.len());
                self.requests[at].increment(1);
            }
            SipMessage::Response(response) => {
                let class = usize::from(u16::from(response.status_code.clone()) / 100);
                if let Some(counter) = class.checked_sub(1).and_then(|at| self.responses.get(at)) {
                    counter.increment(1);
                }
            }
        }
    }
}

/// Counts every SIP message the endpoint sends and takes in (PROTOCOL.md section 13's metrics:
/// [`crate::metric_names::SIP_REQUESTS`], [`crate::metric_names::SIP_RESPONSES`]), as the stack's
/// message inspector: it sees each transmission before it leaves (retransmissions included) and
/// each message received from the network once (the stack inspects a response a second time, with
/// no source address, as it hands it to its transaction: not counted). Retransmissions the stack
/// absorbs for transactions already ended are not seen.
pub(super) struct Counting {
    pub(super) received: Counters,
    pub(super) sent: Counters,
}

impl Counting {
    pub(super) fn new() -> Counting {
        Counting {
            received: Counters::new("in"),
            sent: Counters::new("out"),
        }
    }
}

impl rsipstack::transaction::endpoint::MessageInspector for Counting {
    fn before_send(&self, message: SipMessage, _to: Option<&SipAddr>) -> SipMessage {
        self.sent.count(&message);
        message
    }

    fn after_received(&self, message: SipMessage, from: Option<&SipAddr>) -> SipMessage {
        if from.is_some() {
            self.received.count(&message);
        }
        message
    }
}
