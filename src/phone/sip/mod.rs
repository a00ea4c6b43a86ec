//! A SIP trunk as the phone network (PROTOCOL.md section 13): calls to phones go out as INVITEs to
//! one trunk (a carrier, a PBX, an IMS), and INVITEs from the trunk's allowed sources are calls from
//! phones (4.11).
//!
//! [`mapping`] holds the rules, as pure functions; [`trunk`] applies them over the rsipstack
//! transaction and dialog layers, on UDP.

pub mod mapping;
