//! The call switch: terminals, calls, sides, legs, forks and timers (PROTOCOL.md sections 3–7),
//! for calls from terminals and from the phone network (4.11).
//!
//! Sans-IO, after quinn-proto and str0m: no tokio, no sockets, no clock. Every input carries `now`;
//! after each input the caller drains [`Switch::poll_output`] and arms a timer for
//! [`Switch::poll_timeout`]. Tests drive time by hand, so a 60 s ring timeout takes microseconds.
//! Call ids come from a generator seeded by the caller ([`Switch::new`]), so a run replays exactly.

mod config;
mod context;
mod events;
mod groups;
mod message;
mod reason;
mod router;
mod switch;
mod types;

pub use config::SwitchConfig;
pub use context::{CallContext, CallContextError};
pub use events::{
    CallEvent, CallRef, CallStatus, Device, DeviceKind, GroupAnswer, LiveCall, Presence,
    TerminalPresence,
};
pub use groups::{
    Group, GroupError, GroupTable, Member, Strategy, DEFAULT_MEMBER_RING_TIMEOUT,
    DEFAULT_QUEUE_TIMEOUT,
};
pub use message::{
    ErrorCode, Notice, NoticeBody, Output, PhoneCommand, PhoneEvent, PhoneRejection, Rejection,
    Request, RequestBody,
};
pub use reason::ByeReason;
pub use router::{Route, Router};
pub use switch::{RegisterError, Switch};
pub use types::{
    log_personal_data, CallId, Msisdn, MsisdnError, PhoneLegId, PipeKind, Sdp, SdpError, TerminalId,
};
