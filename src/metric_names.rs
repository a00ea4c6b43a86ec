//! The names of the core's Prometheus metrics (PROTOCOL.md section 12), in a leaf module of their
//! own so that every part that counts — the driver, the records writer, the notification pusher —
//! uses the same names without importing the server. [`crate::telemetry::metrics`] describes them
//! and serves them.
//!
//! Names start with `webterminal_` and follow Prometheus conventions: `_total` for counters, base
//! units (seconds).

/// Terminals registered, by kind (`pipe`, `multipipe`).
pub const TERMINALS: &str = "webterminal_terminals";
/// Calls held, by state (`ringing`, `established`).
pub const CALLS: &str = "webterminal_calls";
/// Calls ended, by final status and Bye reason (wire names, lower case).
pub const CALLS_ENDED: &str = "webterminal_calls_ended_total";
/// Messages received from terminals, by kind (the oneof field, or `refused` for one that failed
/// the edge's checks).
pub const MESSAGES_IN: &str = "webterminal_messages_in_total";
/// Messages sent to terminals, by kind.
pub const MESSAGES_OUT: &str = "webterminal_messages_out_total";
/// `Error`s sent to terminals, by code (wire names).
pub const ERRORS_SENT: &str = "webterminal_errors_sent_total";
/// Messages refused with `RATE_LIMIT_HIT`.
pub const RATE_LIMIT_HITS: &str = "webterminal_rate_limit_hits_total";
/// Terminals dropped as slow consumers.
pub const SLOW_CONSUMERS: &str = "webterminal_slow_consumers_dropped_total";
/// Call setup time, offered to answered, in seconds (a histogram).
pub const CALL_SETUP: &str = "webterminal_call_setup_seconds";
/// Inputs waiting in the driver's queue.
pub const DRIVER_QUEUE: &str = "webterminal_driver_input_queue_depth";
/// Call records committed.
pub const RECORDS_WRITTEN: &str = "webterminal_records_written_total";
/// Call record writes that failed (each may hold several records).
pub const RECORDS_FAILED: &str = "webterminal_records_failed_total";
/// Call events the records writer's queue dropped.
pub const RECORDS_DROPPED: &str = "webterminal_records_dropped_events_total";
/// Whether call records are kept: 1 when they are, 0 when configured but unavailable (the records
/// file could not be opened at start). Absent with `--records none`.
pub const RECORDS_UP: &str = "webterminal_records_up";
/// Call records lost because records were unavailable: one per call that ended meanwhile.
pub const RECORDS_LOST: &str = "webterminal_records_lost_total";
/// Inbound-call notifications Redis accepted (section 10).
pub const NOTIFICATIONS_PUSHED: &str = "webterminal_notifications_pushed_total";
/// Inbound-call notifications waiting for Redis.
pub const NOTIFICATIONS_QUEUED: &str = "webterminal_notifications_queued";
/// Inbound-call notifications dropped because their queue was full (the oldest go first).
pub const NOTIFICATIONS_DROPPED: &str = "webterminal_notifications_dropped_total";
/// Routing file reloads on SIGHUP, by `result` (`reloaded`, `failed`; section 10).
pub const ROUTING_RELOADS: &str = "webterminal_routing_reloads_total";
/// Calls waiting in group queues, not yet answered, by `group` (the group's number; section 10).
pub const QUEUED_CALLS: &str = "webterminal_queued_calls";
/// How long answered group calls waited, from arrival to a member's answer, in seconds (a
/// histogram), by `group` (the group's number, from the routing file).
pub const QUEUE_HOLD: &str = "webterminal_queue_hold_seconds";
/// Whether the SIP trunk answers its OPTIONS pings: 1 up, 0 down (PROTOCOL.md section 13). Absent
/// without a SIP trunk or with `--sip-options-interval 0`.
pub const SIP_TRUNK_UP: &str = "webterminal_sip_trunk_up";
/// Whether the trunk holds our registration (`--sip-register`): 1 after a REGISTER got 2xx, 0
/// before, after a failed one and at the end (PROTOCOL.md section 13). Absent without
/// `--sip-register`.
pub const SIP_REGISTERED: &str = "webterminal_sip_registered";
/// Datagrams the SIP trunk refused before its stack saw them, by `reason`: `too_large` (413),
/// `malformed` (400), `rate_limited` (an INVITE over its source's rate: 503) (PROTOCOL.md section
/// 13).
pub const SIP_REFUSED: &str = "webterminal_sip_refused_total";
/// SIP requests the trunk sent (`direction="out"`) and received (`"in"`), by `method` (upper case as
/// on the wire; methods the trunk does not know are `other`). Each transmission counts, request
/// retransmissions included (PROTOCOL.md section 13).
pub const SIP_REQUESTS: &str = "webterminal_sip_requests_total";
/// SIP responses the trunk sent (`direction="out"`) and received (`"in"`), by `status` class (`1xx`
/// to `6xx`), as Kamailio's core counters (`rcv_replies_4xx`, ...) do: bounded, and what alerts
/// watch; the exact codes are in the logs.
pub const SIP_RESPONSES: &str = "webterminal_sip_responses_total";
/// rtpengine requests that failed (no reply in time, `result: error`, a reply not understood), by
/// ng `command` (`offer`, `answer`, `delete`, `ping`, `list`, `query`; PROTOCOL.md section 13).
/// Absent without `--rtpengine`.
pub const RTPENGINE_ERRORS: &str = "webterminal_rtpengine_errors_total";
/// Whether rtpengine answers its `ping` (sent every 5 s): 1 up, 0 down (PROTOCOL.md section 13).
/// Absent without `--rtpengine`.
pub const RTPENGINE_UP: &str = "webterminal_rtpengine_up";
