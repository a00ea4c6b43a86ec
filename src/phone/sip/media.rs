//! How a SIP leg's media is anchored in rtpengine (PROTOCOL.md section 13, `--rtpengine`), as pure
//! functions: which ng flags each offer/answer step takes, and which rtpengine call-ids are the
//! trunk's. No I/O; [`super::trunk`] applies them through [`super::rtpengine`].
//!
//! Every SDP between a terminal and a SIP leg passes rtpengine once, in one of four [`Step`]s: the
//! WebRTC side gets ICE, DTLS-SRTP and rtcp-mux; the SIP side plain `RTP/AVP` with ICE and DTLS
//! removed and G.711 offered besides the browser's codecs, so that rtpengine transcodes.
//!
//! Call-ids: rtpengine knows each leg by a call-id starting with the trunk's [`call_id_prefix`],
//! made from the SIP address the trunk listens on. A call to a phone's SIP Call-ID is itself
//! `<prefix><random>@webterminal-core` and is its rtpengine call-id; a call from a phone is known to
//! rtpengine as `<prefix>` followed by the network's Call-ID. At start the trunk deletes the calls
//! rtpengine lists with its prefix: leftovers of a previous run that ended without deleting them.

use super::rtpengine::Param;
use crate::core::{ByeReason, PhoneRejection};
use std::time::Duration;

/// A call to a phone whose media step fails ends for the terminal as an unreachable phone
/// (`UNAVAILABLE`, PROTOCOL.md section 13).
pub const REJECTION_ON_FAILURE: PhoneRejection = PhoneRejection::Unreachable;

/// A call from a phone whose media step fails is refused with 503 Service Unavailable.
pub const STATUS_ON_FAILURE: u16 = 503;

/// The `Reason` a SIP leg ends with when its media step fails (a BYE after the answer, the 503
/// before): Q.850 cause 41, temporary failure.
pub const REASON_ON_FAILURE: ByeReason = ByeReason::NegotiationFailed;

/// How often rtpengine is pinged (`webterminal_rtpengine_up`), and leftovers looked for until the
/// first answered ping.
pub const PING_INTERVAL: Duration = Duration::from_secs(5);

/// How many call-ids one `list` at start asks for (its reply fits in one datagram).
pub const LEFTOVERS_LISTED: u32 = 1000;

/// At most one log line per this interval for rtpengine failures (the rest are counted in it).
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// One pass of an SDP through rtpengine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// A terminal's offer toward a phone (a call to a phone): `offer`.
    WebRtcOfferToSip,
    /// The phone's answer back to the terminal: `answer`.
    SipAnswerToWebRtc,
    /// A phone's offer toward a terminal (a call from a phone): `offer`.
    SipOfferToWebRtc,
    /// The terminal's answer back to the phone: `answer`.
    WebRtcAnswerToSip,
}

/// Whether `step` is an ng `offer` (else an `answer`).
pub fn is_offer(step: Step) -> bool {
    matches!(step, Step::WebRtcOfferToSip | Step::SipOfferToWebRtc)
}

/// The ng flags of `step`, as checked against rtpengine 10.5 with a browser on one side and plain
/// RTP on the other:
/// - toward SIP, an offer: `ICE=remove`, `DTLS=off`, `SDES=[off]`, `transport-protocol=RTP/AVP`,
///   `rtcp-mux=[demux]`, `replace=[origin, session-connection]`, `codec.transcode=[PCMU, PCMA]`;
/// - toward the browser, the answer to it: `ICE=force`, `rtcp-mux=[require]`;
/// - toward the browser, an offer: `ICE=force`, `DTLS=passive`, `SDES=[off]` (else rtpengine 10.5
///   adds a dozen `a=crypto` lines the browser has no use for: it keys SRTP with DTLS),
///   `transport-protocol=UDP/TLS/RTP/SAVPF`, `rtcp-mux=[offer, require]`, `codec.transcode=[opus]`;
/// - toward SIP, the answer to it: `ICE=remove`, `DTLS=off`, `rtcp-mux=[demux]`.
pub fn flags(step: Step) -> &'static [(&'static str, Param)] {
    match step {
        Step::WebRtcOfferToSip => &[
            ("ICE", Param::Text("remove")),
            ("DTLS", Param::Text("off")),
            ("SDES", Param::List(&["off"])),
            ("transport-protocol", Param::Text("RTP/AVP")),
            ("rtcp-mux", Param::List(&["demux"])),
            ("replace", Param::List(&["origin", "session-connection"])),
            (
                "codec",
                Param::Dict(&[("transcode", Param::List(&["PCMU", "PCMA"]))]),
            ),
        ],
        Step::SipAnswerToWebRtc => &[
            ("ICE", Param::Text("force")),
            ("rtcp-mux", Param::List(&["require"])),
        ],
        Step::SipOfferToWebRtc => &[
            ("ICE", Param::Text("force")),
            ("DTLS", Param::Text("passive")),
            ("SDES", Param::List(&["off"])),
            ("transport-protocol", Param::Text("UDP/TLS/RTP/SAVPF")),
            ("rtcp-mux", Param::List(&["offer", "require"])),
            (
                "codec",
                Param::Dict(&[("transcode", Param::List(&["opus"]))]),
            ),
        ],
        Step::WebRtcAnswerToSip => &[
            ("ICE", Param::Text("remove")),
            ("DTLS", Param::Text("off")),
            ("rtcp-mux", Param::List(&["demux"])),
        ],
    }
}

/// The trunk's rtpengine call-id prefix: `wt-`, 8 hex digits of a hash (FNV-1a, 32 bits) of
/// `local`, the SIP address the trunk listens on (`host:port`), and `-`. The same address gives the
/// same prefix from one run to the next, so that a restarted trunk finds its leftovers; trunks on
/// other addresses sharing the rtpengine have other prefixes.
pub fn call_id_prefix(local: &str) -> String {
    let hash = local.bytes().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    });
    format!("wt-{hash:08x}-")
}

/// The SIP Call-ID of a call to a phone (also its rtpengine call-id): the prefix, `unique` (a
/// random string), `@webterminal-core`.
pub fn outgoing_call_id(prefix: &str, unique: &str) -> String {
    format!("{prefix}{unique}@webterminal-core")
}

/// The rtpengine call-id of a call from a phone whose INVITE has Call-ID `sip_call_id`.
pub fn incoming_call_id(prefix: &str, sip_call_id: &str) -> String {
    format!("{prefix}{sip_call_id}")
}

/// Whether rtpengine's call `call_id` belongs to the trunk with `prefix` (a leftover to delete at
/// start).
pub fn is_ours(prefix: &str, call_id: &str) -> bool {
    call_id.starts_with(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(step: Step) -> Vec<&'static str> {
        flags(step).iter().map(|(key, _)| *key).collect()
    }

    #[test]
    fn toward_sip_ice_and_dtls_go_and_g711_is_offered() {
        let offer = flags(Step::WebRtcOfferToSip);
        assert!(offer.contains(&("ICE", Param::Text("remove"))));
        assert!(offer.contains(&("DTLS", Param::Text("off"))));
        assert!(offer.contains(&("transport-protocol", Param::Text("RTP/AVP"))));
        assert!(offer.contains(&(
            "codec",
            Param::Dict(&[("transcode", Param::List(&["PCMU", "PCMA"]))])
        )));
        let answer = flags(Step::WebRtcAnswerToSip);
        assert!(answer.contains(&("ICE", Param::Text("remove"))));
        assert!(answer.contains(&("DTLS", Param::Text("off"))));
        assert!(answer.contains(&("rtcp-mux", Param::List(&["demux"]))));
    }

    #[test]
    fn toward_the_browser_ice_dtls_and_rtcp_mux_are_required() {
        let offer = flags(Step::SipOfferToWebRtc);
        assert!(offer.contains(&("ICE", Param::Text("force"))));
        assert!(offer.contains(&("SDES", Param::List(&["off"]))));
        assert!(offer.contains(&("transport-protocol", Param::Text("UDP/TLS/RTP/SAVPF"))));
        assert!(offer.contains(&("rtcp-mux", Param::List(&["offer", "require"]))));
        assert!(offer.contains(&(
            "codec",
            Param::Dict(&[("transcode", Param::List(&["opus"]))])
        )));
        assert_eq!(keys(Step::SipAnswerToWebRtc), ["ICE", "rtcp-mux"]);
        assert!(flags(Step::SipAnswerToWebRtc).contains(&("rtcp-mux", Param::List(&["require"]))));
    }

    #[test]
    fn offers_and_answers() {
        assert!(is_offer(Step::WebRtcOfferToSip));
        assert!(is_offer(Step::SipOfferToWebRtc));
        assert!(!is_offer(Step::SipAnswerToWebRtc));
        assert!(!is_offer(Step::WebRtcAnswerToSip));
    }

    #[test]
    fn call_ids_carry_the_trunks_prefix() {
        let prefix = call_id_prefix("127.0.0.1:5060");
        assert_eq!(prefix, call_id_prefix("127.0.0.1:5060"));
        assert_ne!(prefix, call_id_prefix("127.0.0.1:5061"));
        assert!(prefix.starts_with("wt-") && prefix.ends_with('-'));
        assert_eq!(prefix.len(), 12);
        // FNV-1a of the empty string is its offset basis.
        assert_eq!(call_id_prefix(""), "wt-811c9dc5-");
        let out = outgoing_call_id(&prefix, "abc");
        assert_eq!(out, format!("{prefix}abc@webterminal-core"));
        assert!(is_ours(&prefix, &out));
        let incoming = incoming_call_id(&prefix, "xyz@carrier");
        assert!(is_ours(&prefix, &incoming));
        assert!(incoming.ends_with("xyz@carrier"));
        assert!(!is_ours(&prefix, "xyz@carrier"));
        assert!(!is_ours(
            &prefix,
            &outgoing_call_id(&call_id_prefix("other"), "abc")
        ));
    }
}
