//! How the phone network's interface (PROTOCOL.md section 7) maps to SIP (section 13), as pure
//! functions: a status code, a header value or a [`ByeReason`] in, a decision out. No I/O and no SIP
//! stack types, so every rule is unit-tested here and the trunk only applies them.

use crate::core::{ByeReason, CallContext, Msisdn, PhoneRejection};
use std::fmt;
use std::net::IpAddr;

/// Why a call to a phone failed, from the INVITE's final response (PROTOCOL.md section 13, "the phone
/// hangs up / rejects"): 486 Busy Here and 600 Busy Everywhere are [`PhoneRejection::Busy`]; 603
/// Decline and 608 Rejected are [`PhoneRejection::Declined`]; everything else (480, 404, 408, 5xx, any
/// other 3xx–6xx) is [`PhoneRejection::Unreachable`], which the switch reports as `UNAVAILABLE`.
/// `status` is the response's status code (300–699).
pub fn rejection_of_status(status: u16) -> PhoneRejection {
    match status {
        486 | 600 => PhoneRejection::Busy,
        603 | 608 => PhoneRejection::Declined,
        _ => PhoneRejection::Unreachable,
    }
}

/// A transaction timeout (RFC 3261 Timer B, 32 s: no final response) counts as an unreachable phone
/// (PROTOCOL.md section 13).
pub const REJECTION_ON_TIMEOUT: PhoneRejection = PhoneRejection::Unreachable;

/// The ITU-T Q.850 cause a leg's end is reported with toward the network (RFC 3326 `Reason`), per
/// PROTOCOL.md section 13's "Reasons toward the network": `NORMAL_CLEARING` 16, `BUSY` 17,
/// `DECLINED` (and `DECLINED_ELSEWHERE`) 21, `NO_ANSWER` 19, `UNAVAILABLE` 20, `SERVER_SHUTDOWN` 41.
/// The reasons the section does not list end as 16 (the call ended normally: a pull, a transfer, an
/// operator) or 41 (a failure: the other leg vanished, a negotiation timed out).
pub fn q850_cause(reason: ByeReason) -> u16 {
    match reason {
        ByeReason::Busy => 17,
        ByeReason::Declined | ByeReason::DeclinedElsewhere => 21,
        ByeReason::NoAnswer => 19,
        ByeReason::Unavailable => 20,
        ByeReason::ServerShutdown | ByeReason::PeerGone | ByeReason::NegotiationFailed => 41,
        ByeReason::NormalClearing
        | ByeReason::Cancelled
        | ByeReason::AnsweredElsewhere
        | ByeReason::Pulled
        | ByeReason::HandedToPhone
        | ByeReason::Transferred
        | ByeReason::EndedByOperator => 16,
    }
}

/// The text Q.850 gives a cause, for the `Reason` header's `text` parameter.
fn q850_text(cause: u16) -> &'static str {
    match cause {
        16 => "Normal call clearing",
        17 => "User busy",
        19 => "No answer from user (user alerted)",
        20 => "Subscriber absent",
        21 => "Call rejected",
        _ => "Temporary failure",
    }
}

/// The value of the RFC 3326 `Reason` header a leg ends with: `Q.850;cause=N;text="..."`, or for
/// `ANSWERED_ELSEWHERE` `SIP;cause=200;text="Call completed elsewhere"` (RFC 3326 section 2, the
/// usual form for a CANCEL of a forked call).
pub fn reason_header(reason: ByeReason) -> String {
    if reason == ByeReason::AnsweredElsewhere {
        return "SIP;cause=200;text=\"Call completed elsewhere\"".to_owned();
    }
    let cause = q850_cause(reason);
    format!("Q.850;cause={cause};text=\"{}\"", q850_text(cause))
}

/// Which way a SIP leg was set up: the core sent the INVITE (a call to a phone) or received it (a
/// call from a phone, 4.11).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// The core is the UAC: `PhoneCommand::Ring`.
    Outgoing,
    /// The core is the UAS: `PhoneEvent::Incoming`.
    Incoming,
}

/// What releasing a leg sends toward the network (PROTOCOL.md section 13, "release a leg, with its
/// reason").
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Release {
    /// CANCEL the core's own INVITE (before its final response), with this `Reason` value.
    Cancel {
        /// The `Reason` header's value.
        reason: String,
    },
    /// Answer the network's INVITE with this final error response.
    Reject {
        /// The status code, 4xx–6xx.
        status: u16,
        /// The `Reason` header's value.
        reason: String,
    },
    /// BYE the established dialog, with this `Reason` value.
    Bye {
        /// The `Reason` header's value.
        reason: String,
    },
}

/// How a leg set up in `direction` ends for `reason`, before or after it was `answered`: before
/// answer a CANCEL (outgoing) or a final error response (incoming: `BUSY` 486, `DECLINED` 603,
/// `NO_ANSWER` and `UNAVAILABLE` 480, `SERVER_SHUTDOWN` 503, any other reason 480), after answer a
/// BYE; each with [`reason_header`].
pub fn release(direction: Direction, answered: bool, reason: ByeReason) -> Release {
    let header = reason_header(reason);
    if answered {
        return Release::Bye { reason: header };
    }
    match direction {
        Direction::Outgoing => Release::Cancel { reason: header },
        Direction::Incoming => Release::Reject {
            status: match reason {
                ByeReason::Busy => 486,
                ByeReason::Declined | ByeReason::DeclinedElsewhere => 603,
                ByeReason::ServerShutdown => 503,
                _ => 480,
            },
            reason: header,
        },
    }
}

/// Why a SIP URI or header carries no E.164 number.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    /// No `sip:`, `sips:` or `tel:` URI with a user part was found.
    #[error("no sip:, sips: or tel: URI with a number in {0:?}")]
    NoUri(String),
    /// The user part is not an E.164 number (with or without its `+`).
    #[error("{user:?} is not an E.164 number: {why}")]
    NotE164 {
        /// The URI's user part (or the `tel:` number).
        user: String,
        /// What rule it breaks.
        why: crate::core::MsisdnError,
    },
}

/// The URI of a name-addr or addr-spec header value (RFC 3261 section 20.10): what is between `<`
/// and `>`, else the value up to its first `;` (header parameters).
fn addr_uri(value: &str) -> &str {
    let value = value.trim();
    match (value.find('<'), value.find('>')) {
        (Some(start), Some(end)) if start < end => &value[start + 1..end],
        _ => value.split(';').next().unwrap_or(value).trim(),
    }
}

/// The number in a `sip:`/`sips:` URI's user part or a `tel:` URI, read as E.164 with or without its
/// `+` ([`Msisdn::parse_lenient`]); visual separators (`-`, `.`, `(`, `)`, RFC 3966) are dropped.
///
/// # Errors
/// [`NumberError`] when the URI has no user part or it is not E.164.
pub fn number_of_uri(uri: &str) -> Result<Msisdn, NumberError> {
    let uri = uri.trim();
    let lower = uri.to_ascii_lowercase();
    let user = if lower.starts_with("tel:") {
        uri[4..].split(';').next().unwrap_or_default()
    } else {
        let rest = if lower.starts_with("sip:") {
            &uri[4..]
        } else if lower.starts_with("sips:") {
            &uri[5..]
        } else {
            return Err(NumberError::NoUri(uri.to_owned()));
        };
        match rest.split_once('@') {
            // The user part may carry user parameters (`+4799;npdi@host`) and a password.
            Some((userinfo, _)) => userinfo.split([';', ':']).next().unwrap_or_default(),
            None => return Err(NumberError::NoUri(uri.to_owned())),
        }
    };
    let digits: String = user
        .chars()
        .filter(|c| !matches!(c, '-' | '.' | '(' | ')'))
        .collect();
    Msisdn::parse_lenient(&digits).map_err(|why| NumberError::NotE164 {
        user: user.to_owned(),
        why,
    })
}

/// The caller's number of an incoming INVITE (PROTOCOL.md section 13; RFC 3325 section 9.1): the
/// first `P-Asserted-Identity` entry with an E.164 number (a PAI may list a `sip:` and a `tel:` URI,
/// comma-separated), else the `From` header's URI. `pai` holds each `P-Asserted-Identity` header's
/// value; `from` the `From` header's value.
///
/// # Errors
/// [`NumberError`] of the `From` header when no identity carries a number.
pub fn caller_number<'a>(
    pai: impl IntoIterator<Item = &'a str>,
    from: &str,
) -> Result<Msisdn, NumberError> {
    let asserted = pai
        .into_iter()
        .flat_map(|value| value.split(','))
        .find_map(|entry| number_of_uri(addr_uri(entry)).ok());
    match asserted {
        Some(number) => Ok(number),
        None => number_of_uri(addr_uri(from)),
    }
}

/// The callee's number of an incoming INVITE: its Request-URI's user part (PROTOCOL.md section 13).
///
/// # Errors
/// [`NumberError`] when the Request-URI carries no E.164 number.
pub fn callee_number(request_uri: &str) -> Result<Msisdn, NumberError> {
    number_of_uri(request_uri)
}

/// The display name of a `From` (or any name-addr) header value, unquoted: `"Ada L" <sip:…>` gives
/// `Ada L`; none when the value has no display name or only an empty one.
pub fn display_name(from: &str) -> Option<String> {
    let from = from.trim();
    let start = from.find('<')?;
    let name = from[..start].trim();
    let name = name
        .strip_prefix('"')
        .and_then(|n| n.strip_suffix('"'))
        .map(|n| n.replace("\\\"", "\"").replace("\\\\", "\\"))
        .unwrap_or_else(|| name.to_owned());
    (!name.is_empty()).then_some(name)
}

/// `uri` (the trunk's, `sip:host[:port][;params]`) with `user` as its user part, replacing any it
/// had: the Request-URI and To of a call to `user` through the trunk (`INVITE sip:+B@<trunk>`).
pub fn uri_with_user(uri: &str, user: &str) -> String {
    let (scheme, rest) = match uri.split_once(':') {
        Some((scheme, rest)) => (scheme, rest),
        None => ("sip", uri),
    };
    let host = rest.split_once('@').map_or(rest, |(_, host)| host);
    format!("{scheme}:{user}@{host}")
}

/// The SIP header name a call context key travels under (PROTOCOL.md section 13): `X-`, then each
/// `_`- or `-`-separated word capitalised and joined with `-` (`contact_ref` → `X-Contact-Ref`).
pub fn header_name_of_key(key: &str) -> String {
    let words: Vec<String> = key
        .split(['_', '-'])
        .map(|word| {
            let mut chars = word.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect();
    format!("X-{}", words.join("-"))
}

/// The call context key an `X-` header carries (PROTOCOL.md section 13): the name after `X-`,
/// lower-cased, `-` read as `_` (`X-Contact-Ref` → `contact_ref`). None for a header that is not an
/// `X-` header.
pub fn key_of_header_name(name: &str) -> Option<String> {
    let rest = name
        .strip_prefix("X-")
        .or_else(|| name.strip_prefix("x-"))?;
    Some(rest.to_ascii_lowercase().replace('-', "_"))
}

/// Whether a value can go into a SIP header as it is: no control characters (a CR or LF would end
/// the header and let a caller write headers of its own), no leading or trailing blanks (they would
/// not survive the parser), not empty.
fn header_safe(value: &str) -> bool {
    !value.is_empty()
        && value.trim() == value
        && !value.chars().any(|c| c.is_control() && c != '\t')
}

/// The `X-` headers an outgoing INVITE carries for the caller's call context (PROTOCOL.md section 13),
/// as (name, value) pairs in key order. An entry whose value cannot travel in a header unchanged
/// (control characters, surrounding blanks, empty) is left out, and its key returned in the second
/// list so the trunk can log it.
pub fn x_headers(context: &CallContext) -> (Vec<(String, String)>, Vec<String>) {
    let mut headers = Vec::new();
    let mut left_out = Vec::new();
    for (key, value) in context.iter() {
        if header_safe(value) {
            headers.push((header_name_of_key(key), value.to_owned()));
        } else {
            left_out.push(key.to_owned());
        }
    }
    (headers, left_out)
}

/// The call context of an incoming INVITE (PROTOCOL.md section 13): each `X-` header of `headers`
/// (name, value) becomes an entry ([`key_of_header_name`]), and `display_name`, the From header's
/// display name, becomes `display_name` unless an `X-Display-Name` header gave one. Within section
/// 1's limits: an entry whose key or value breaks them, or that would take the context over them, is
/// left out (the first of a repeated header wins).
pub fn context_of_headers<'a>(
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    display_name: Option<&str>,
) -> CallContext {
    let mut entries: Vec<(String, String)> = Vec::new();
    let mut add = |key: String, value: String| {
        if entries.iter().any(|(k, _)| *k == key) {
            return;
        }
        entries.push((key, value));
        if CallContext::parse(entries.clone()).is_err() {
            entries.pop();
        }
    };
    for (name, value) in headers {
        if let Some(key) = key_of_header_name(name) {
            add(key, value.trim().to_owned());
        }
    }
    if let Some(name) = display_name {
        add("display_name".to_owned(), name.to_owned());
    }
    CallContext::parse(entries).unwrap_or_default()
}

/// An IP network in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`, or a bare address for one host):
/// who may send the trunk INVITEs (`--sip-allow`, PROTOCOL.md section 13).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// Why a `--sip-allow` value is not a CIDR.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// The address before `/` does not parse.
    #[error("{0:?} is not an IP address")]
    Address(String),
    /// The prefix length is not a number up to 32 (IPv4) or 128 (IPv6).
    #[error("{0:?} is not a prefix length for that address family")]
    Prefix(String),
}

impl Cidr {
    /// The network of one host (`/32` or `/128`).
    pub fn host(addr: IpAddr) -> Cidr {
        Cidr {
            network: addr,
            prefix: if addr.is_ipv4() { 32 } else { 128 },
        }
    }

    /// Parses `ADDR/PREFIX` or a bare `ADDR`. Host bits set below the prefix are ignored.
    ///
    /// # Errors
    /// [`CidrError`] names the part that does not parse.
    pub fn parse(s: &str) -> Result<Cidr, CidrError> {
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s.trim(), None),
        };
        let network: IpAddr = addr
            .parse()
            .map_err(|_| CidrError::Address(addr.to_owned()))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| CidrError::Prefix(p.to_owned()))?,
        };
        Ok(Cidr { network, prefix })
    }

    /// Whether `addr` is in the network. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) counts as
    /// its IPv4 address.
    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, addr) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl fmt::Debug for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::str::FromStr for Cidr {
    type Err = CidrError;

    /// The same as [`Cidr::parse`].
    fn from_str(s: &str) -> Result<Cidr, CidrError> {
        Cidr::parse(s)
    }
}

/// The address a request came from, read from its top `Via` header's value (RFC 3261 section
/// 18.2.1: the `received` parameter the transport adds when the packet's source differs from the
/// sent-by host, else the sent-by host). None when neither is an IP address.
pub fn source_of_via(via: &str) -> Option<IpAddr> {
    let via = via.split(',').next()?.trim();
    let mut parts = via.split(';');
    let sent_by = parts.next()?.split_whitespace().nth(1)?;
    let received = parts.find_map(|param| {
        let (name, value) = param.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("received")
            .then(|| value.trim())
    });
    if let Some(addr) = received.and_then(|r| r.trim_matches(['[', ']']).parse().ok()) {
        return Some(addr);
    }
    let host = if let Some(rest) = sent_by.strip_prefix('[') {
        rest.split(']').next()?
    } else {
        sent_by.split(':').next()?
    };
    host.parse().ok()
}

/// What the trunk answers an out-of-dialog INVITE before anything rings (PROTOCOL.md section 13).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Take the call: `100 Trying`, then `PhoneEvent::Incoming`.
    Accept,
    /// Refuse it with this final response, and the reason phrase to log.
    Refuse {
        /// 403 (source not allowed, no caller number), 404 (no callee number), 488 (no SDP offer).
        status: u16,
        /// Why, for the log (no personal data).
        why: &'static str,
    },
}

/// Whether an INVITE from `source` with (or without) an SDP body is admitted, under `allow`: a
/// source outside every allowed network gets 403 and nothing rings; an INVITE with no SDP (a delayed
/// offer the core cannot answer, it relays offers) gets 488. The source is checked first.
pub fn admit(source: Option<IpAddr>, allow: &[Cidr], has_sdp: bool) -> Admission {
    let allowed = source.is_some_and(|s| allow.iter().any(|net| net.contains(s)));
    if !allowed {
        Admission::Refuse {
            status: 403,
            why: "source not in --sip-allow",
        }
    } else if !has_sdp {
        Admission::Refuse {
            status: 488,
            why: "INVITE without an SDP offer",
        }
    } else {
        Admission::Accept
    }
}

/// A call to a phone that comes back to the core is refused with `482 Loop Detected` (PROTOCOL.md
/// section 13), and the outgoing leg it came from counts as that phone being unreachable.
pub const REJECTION_ON_LOOP: PhoneRejection = PhoneRejection::Unreachable;

/// What the trunk keeps of each INVITE it has sent and not yet seen end, to recognise it when the
/// network routes it back (a number whose calls the carrier sends to us; PROTOCOL.md section 13).
///
/// Recognising a loop the way SIP elements do, not with a private marker: RFC 3261 section 16.3
/// step 4 has a proxy look for its own branch in the Via headers of a request it receives (Kamailio
/// and OpenSIPS do so, beside Max-Forwards: see [`hop_limit_reached`]), and section 8.2.2.2 has a
/// UAS refuse with 482 a request whose Call-ID it has already seen (a merged request). A carrier that
/// proxies the INVITE keeps both: our Via (with its branch, which the stack makes unique per
/// transaction) under its own, and our Call-ID, which the trunk makes unique per leg. Either one
/// matching is a loop. A private `X-` header would also survive a carrier that is itself a B2BUA, but
/// many such carriers (and SBCs) strip unknown headers, and one that keeps them would deliver it to
/// terminals as call context; such a carrier renews Call-ID and Via, and its own Max-Forwards and loop
/// checks are what stop the loop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentInvite {
    /// The INVITE's Call-ID, chosen by the trunk before it is sent.
    pub call_id: String,
    /// The `branch` of the INVITE's own Via, once the stack has made the request; none before.
    pub branch: Option<String>,
}

impl SentInvite {
    /// Whether an INVITE received with `call_id` and the Via header values `vias` (each may hold
    /// several comma-separated via-parms) is this INVITE come back: its Call-ID, or a Via carrying
    /// its branch. Call-IDs compare exactly (RFC 3261 section 20.8); branches case-insensitively.
    pub fn came_back<'a>(&self, call_id: &str, vias: impl IntoIterator<Item = &'a str>) -> bool {
        if call_id.trim() == self.call_id {
            return true;
        }
        let Some(branch) = self.branch.as_deref() else {
            return false;
        };
        vias.into_iter()
            .flat_map(|value| value.split(','))
            .filter_map(via_branch)
            .any(|b| b.eq_ignore_ascii_case(branch))
    }
}

/// The `branch` parameter of one via-parm (`SIP/2.0/UDP host:port;branch=z9hG4bK...;rport`).
pub fn via_branch(via: &str) -> Option<&str> {
    via.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("branch")
            .then(|| value.trim())
    })
}

/// Whether an incoming INVITE's `Max-Forwards` value (none when absent) allows no further hop: 0
/// (RFC 3261 section 16.3 step 3, Kamailio's `mf_process_maxfwd_header`), answered `483 Too Many
/// Hops` as a loop that went through other elements. A value that is not a number is not a limit.
pub fn hop_limit_reached(max_forwards: Option<&str>) -> bool {
    max_forwards.is_some_and(|v| v.trim().parse::<u32>() == Ok(0))
}

/// A call to a phone while the trunk is down (its OPTIONS pings unanswered) fails at once as an
/// unreachable phone, `UNAVAILABLE` to the caller (PROTOCOL.md section 13), rather than after the
/// INVITE's 32 s timeout.
pub const REJECTION_WHILE_DOWN: PhoneRejection = PhoneRejection::Unreachable;

/// Why a handover (or a transfer to a phone) fails at once while the trunk is down, for the
/// terminal that asked (`HandOverFailed`).
pub const HANDOVER_WHILE_DOWN: &str = "the SIP trunk is down (no answer to OPTIONS)";

/// Why a handover's delayed-offer INVITE (PROTOCOL.md section 13) failed, for the terminal that
/// asked (`HandOverFailed`, sent in `Error.message`): `status` is the phone's final response, none
/// when none came (a transaction timeout). The same reading of the codes as a call's
/// ([`rejection_of_status`]).
pub fn handover_failure(status: Option<u16>) -> String {
    match status {
        None => "the phone did not answer".to_owned(),
        Some(status) => match rejection_of_status(status) {
            PhoneRejection::Busy => format!("the phone is busy (SIP {status})"),
            PhoneRejection::Declined => format!("the phone declined (SIP {status})"),
            PhoneRejection::Unreachable => format!("the phone is unreachable (SIP {status})"),
        },
    }
}

/// Why a handover fails when the phone's 2xx carries no usable offer (the core relays offers and
/// cannot make one).
pub const HANDOVER_WITHOUT_OFFER: &str = "the phone answered without a usable SDP offer";

/// Whether an OPTIONS ping's outcome shows the trunk up (PROTOCOL.md section 13): `status` is the
/// final response's code, none when no final response came in time. No answer, `408 Request
/// Timeout` (a proxy's own timeout toward the trunk) and any 5xx (the trunk failing or overloaded:
/// RFC 3261 section 21.5) are down; any other final answer, 405 or 403 included, shows a trunk
/// alive enough to answer.
pub fn trunk_answered(status: Option<u16>) -> bool {
    match status {
        None | Some(408) | Some(500..=599) => false,
        Some(_) => true,
    }
}

/// What the trunk does with a re-INVITE (or an UPDATE) from the network on an established leg
/// (PROTOCOL.md section 13, "a re-offer from the phone").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetworkReoffer {
    /// Another offer/answer exchange is pending on the leg, ours or the phone's: 491 Request
    /// Pending (RFC 3261 section 14.2), and the phone tries again later.
    Glare,
    /// A session refresh (RFC 4028): no SDP, or the SDP the phone last sent. Answered 200 with the
    /// SDP the trunk last sent; it never reaches a terminal.
    Refresh,
    /// A new offer: the phone's re-offer, relayed to the other party, whose answer goes in the 200.
    Relay,
}

/// Decides a re-INVITE from the network: `body` is its SDP (empty when none), `last_remote` the SDP
/// the phone last sent on the leg, `pending` whether an exchange is in progress on the leg.
pub fn network_reoffer(body: &str, last_remote: &str, pending: bool) -> NetworkReoffer {
    if pending {
        NetworkReoffer::Glare
    } else if body.trim().is_empty() || body == last_remote {
        NetworkReoffer::Refresh
    } else {
        NetworkReoffer::Relay
    }
}

/// The status that refuses the phone's re-offer when the other party's re-offer crossed it, or the
/// switch reports the re-offer failed (`OfferFailed`): 491 Request Pending.
pub const GLARE_STATUS: u16 = 491;

/// Why a re-offer toward the phone failed, from the re-INVITE's final response `status` (none: no
/// response): any refusal, 491 included, is [`PhoneRejection::Unreachable`], which the switch
/// reports to the terminal that re-offered as `TRY_AGAIN`, the call going on with the media it had.
/// `None` when the re-offer was answered (2xx).
pub fn reoffer_refused(status: Option<u16>) -> Option<PhoneRejection> {
    match status {
        Some(200..=299) => None,
        _ => Some(PhoneRejection::Unreachable),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_reoffers_are_glare_refresh_or_relayed() {
        assert_eq!(network_reoffer("v=1", "v=0", true), NetworkReoffer::Glare);
        assert_eq!(network_reoffer("v=0", "v=0", true), NetworkReoffer::Glare);
        assert_eq!(
            network_reoffer("v=0", "v=0", false),
            NetworkReoffer::Refresh
        );
        assert_eq!(network_reoffer("", "v=0", false), NetworkReoffer::Refresh);
        assert_eq!(
            network_reoffer(" \r\n", "v=0", false),
            NetworkReoffer::Refresh
        );
        assert_eq!(network_reoffer("v=1", "v=0", false), NetworkReoffer::Relay);
    }

    #[test]
    fn a_refused_reoffer_is_unreachable_and_an_answered_one_is_not_refused() {
        assert_eq!(reoffer_refused(Some(200)), None);
        assert_eq!(
            reoffer_refused(Some(491)),
            Some(PhoneRejection::Unreachable)
        );
        assert_eq!(
            reoffer_refused(Some(488)),
            Some(PhoneRejection::Unreachable)
        );
        assert_eq!(reoffer_refused(None), Some(PhoneRejection::Unreachable));
        assert_eq!(GLARE_STATUS, 491);
    }

    fn n(s: &str) -> Msisdn {
        Msisdn::parse(s).unwrap()
    }

    #[test]
    fn final_status_to_rejection() {
        for status in [486, 600] {
            assert_eq!(rejection_of_status(status), PhoneRejection::Busy);
        }
        for status in [603, 608] {
            assert_eq!(rejection_of_status(status), PhoneRejection::Declined);
        }
        for status in [480, 404, 408, 500, 503, 504, 403, 487, 302] {
            assert_eq!(rejection_of_status(status), PhoneRejection::Unreachable);
        }
        assert_eq!(REJECTION_ON_TIMEOUT, PhoneRejection::Unreachable);
    }

    #[test]
    fn handover_failures_read_the_codes_as_calls_do() {
        assert_eq!(handover_failure(Some(486)), "the phone is busy (SIP 486)");
        assert_eq!(handover_failure(Some(600)), "the phone is busy (SIP 600)");
        assert_eq!(handover_failure(Some(603)), "the phone declined (SIP 603)");
        assert_eq!(handover_failure(Some(608)), "the phone declined (SIP 608)");
        assert_eq!(
            handover_failure(Some(480)),
            "the phone is unreachable (SIP 480)"
        );
        assert_eq!(
            handover_failure(Some(503)),
            "the phone is unreachable (SIP 503)"
        );
        assert_eq!(handover_failure(None), "the phone did not answer");
    }

    #[test]
    fn reasons_toward_the_network() {
        // PROTOCOL.md section 13, "Reasons toward the network".
        let bye = |reason| release(Direction::Incoming, true, reason);
        let reject = |reason| release(Direction::Incoming, false, reason);
        assert_eq!(
            bye(ByeReason::NormalClearing),
            Release::Bye {
                reason: "Q.850;cause=16;text=\"Normal call clearing\"".into()
            }
        );
        assert_eq!(
            reject(ByeReason::Busy),
            Release::Reject {
                status: 486,
                reason: "Q.850;cause=17;text=\"User busy\"".into()
            }
        );
        assert_eq!(
            reject(ByeReason::Declined),
            Release::Reject {
                status: 603,
                reason: "Q.850;cause=21;text=\"Call rejected\"".into()
            }
        );
        let Release::Reject { status, reason } = reject(ByeReason::NoAnswer) else {
            panic!()
        };
        assert_eq!((status, reason.starts_with("Q.850;cause=19;")), (480, true));
        let Release::Reject { status, reason } = reject(ByeReason::Unavailable) else {
            panic!()
        };
        assert_eq!((status, reason.starts_with("Q.850;cause=20;")), (480, true));
        let Release::Reject { status, reason } = reject(ByeReason::ServerShutdown) else {
            panic!()
        };
        assert_eq!((status, reason.starts_with("Q.850;cause=41;")), (503, true));
        let Release::Bye { reason } = bye(ByeReason::ServerShutdown) else {
            panic!()
        };
        assert!(reason.starts_with("Q.850;cause=41;"));
        assert_eq!(
            release(Direction::Outgoing, false, ByeReason::AnsweredElsewhere),
            Release::Cancel {
                reason: "SIP;cause=200;text=\"Call completed elsewhere\"".into()
            }
        );
        let Release::Cancel { reason } = release(Direction::Outgoing, false, ByeReason::Cancelled)
        else {
            panic!()
        };
        assert!(reason.starts_with("Q.850;cause=16;"));
        assert!(matches!(
            release(Direction::Outgoing, true, ByeReason::NormalClearing),
            Release::Bye { .. }
        ));
    }

    #[test]
    fn every_reason_has_a_cause() {
        for reason in ByeReason::ALL {
            let Release::Reject { status, reason } = release(Direction::Incoming, false, reason)
            else {
                panic!()
            };
            assert!((400..700).contains(&status));
            assert!(reason.contains("cause="));
        }
    }

    #[test]
    fn caller_from_asserted_identity_else_from() {
        assert_eq!(
            caller_number(
                ["\"Ada\" <sip:+4799000001@carrier.example;user=phone>"],
                "<sip:anonymous@anonymous.invalid>;tag=1"
            ),
            Ok(n("+4799000001"))
        );
        // A PAI listing a sip: URI without a number and a tel: URI.
        assert_eq!(
            caller_number(
                ["<sip:ada@carrier.example>, <tel:+47-99-000-002>"],
                "<sip:x@y>;tag=1"
            ),
            Ok(n("+4799000002"))
        );
        // Two PAI headers, the second with the number.
        assert_eq!(
            caller_number(["<sip:ada@x>", "<tel:+4799000003>"], "<sip:x@y>"),
            Ok(n("+4799000003"))
        );
        // No PAI: From, with or without '+', name-addr or addr-spec.
        assert_eq!(
            caller_number([], "\"Bob\" <sip:4799000004@10.0.0.1:5060>;tag=abc"),
            Ok(n("+4799000004"))
        );
        assert_eq!(
            caller_number([], "sip:+4799000005@10.0.0.1;tag=abc"),
            Ok(n("+4799000005"))
        );
        assert!(matches!(
            caller_number([], "<sip:anonymous@anonymous.invalid>;tag=1"),
            Err(NumberError::NotE164 { .. })
        ));
        assert!(matches!(
            caller_number([], "<sip:10.0.0.1>;tag=1"),
            Err(NumberError::NoUri(_))
        ));
    }

    #[test]
    fn callee_from_request_uri() {
        assert_eq!(
            callee_number("sip:+4799000001@127.0.0.1:5060;user=phone"),
            Ok(n("+4799000001"))
        );
        assert_eq!(
            callee_number("sip:4799000001;npdi@core.example"),
            Ok(n("+4799000001"))
        );
        assert_eq!(callee_number("tel:+4799000001"), Ok(n("+4799000001")));
        assert!(callee_number("sip:service@core.example").is_err());
        assert!(callee_number("sip:+0123@core.example").is_err());
        assert!(callee_number("mailto:a@b").is_err());
    }

    #[test]
    fn display_names() {
        assert_eq!(
            display_name("\"Ada L\" <sip:+47@x>;tag=1").as_deref(),
            Some("Ada L")
        );
        assert_eq!(display_name("Ada <sip:+47@x>").as_deref(), Some("Ada"));
        assert_eq!(display_name("<sip:+47@x>;tag=1"), None);
        assert_eq!(display_name("\"\" <sip:+47@x>"), None);
        assert_eq!(display_name("sip:+47@x;tag=1"), None);
    }

    #[test]
    fn trunk_uri_gets_the_number() {
        assert_eq!(
            uri_with_user("sip:127.0.0.1:5090;transport=udp", "+4799000001"),
            "sip:+4799000001@127.0.0.1:5090;transport=udp"
        );
        assert_eq!(
            uri_with_user("sip:trunk@carrier.example", "+47"),
            "sip:+47@carrier.example"
        );
    }

    #[test]
    fn context_to_x_headers_and_back() {
        assert_eq!(header_name_of_key("contact_ref"), "X-Contact-Ref");
        assert_eq!(header_name_of_key("display_name"), "X-Display-Name");
        assert_eq!(header_name_of_key("crm.id"), "X-Crm.id");
        assert_eq!(
            key_of_header_name("X-Contact-Ref").as_deref(),
            Some("contact_ref")
        );
        assert_eq!(key_of_header_name("x-crm.ID").as_deref(), Some("crm.id"));
        assert_eq!(key_of_header_name("Contact"), None);

        let context = CallContext::parse([
            ("contact_ref".to_owned(), "T-1234".to_owned()),
            ("note".to_owned(), "line\r\nVia: evil".to_owned()),
            ("display_name".to_owned(), "Ada Lovelace".to_owned()),
        ])
        .unwrap();
        let (headers, left_out) = x_headers(&context);
        assert_eq!(
            headers,
            vec![
                ("X-Contact-Ref".to_owned(), "T-1234".to_owned()),
                ("X-Display-Name".to_owned(), "Ada Lovelace".to_owned()),
            ]
        );
        assert_eq!(left_out, vec!["note".to_owned()]);

        let back = context_of_headers(
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            Some("From Name"),
        );
        assert_eq!(back.get("contact_ref"), Some("T-1234"));
        // An X-Display-Name wins over the From display name.
        assert_eq!(back.get("display_name"), Some("Ada Lovelace"));
    }

    #[test]
    fn incoming_context_stays_within_limits() {
        let context = context_of_headers(
            [
                ("X-Ok", "1"),
                ("Via", "SIP/2.0/UDP x"),
                ("X-", "empty key"),
                ("X-Bad Key", "space"),
                ("X-Ok", "second, ignored"),
            ],
            Some("Bob"),
        );
        assert_eq!(context.get("ok"), Some("1"));
        assert_eq!(context.get("display_name"), Some("Bob"));
        assert_eq!(context.iter().count(), 2);

        let big = "v".repeat(1000);
        let names: Vec<String> = (0..20).map(|i| format!("X-K{i}")).collect();
        let context = context_of_headers(names.iter().map(|n| (n.as_str(), big.as_str())), None);
        // 4 entries of ~1000 bytes fit in 4096; the 5th would not.
        assert_eq!(context.iter().count(), 4);
        assert!(context_of_headers([], None).is_empty());
    }

    #[test]
    fn cidrs() {
        let net = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(net.contains("10.1.2.3".parse().unwrap()));
        assert!(!net.contains("11.0.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:10.0.0.1".parse().unwrap()));
        let host = Cidr::parse("127.0.0.1").unwrap();
        assert!(host.contains("127.0.0.1".parse().unwrap()));
        assert!(!host.contains("127.0.0.2".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains("2001:db8::1".parse().unwrap()));
        assert!(!v6.contains("10.0.0.1".parse().unwrap()));
        assert_eq!(v6.to_string(), "2001:db8::/32");
        assert!(matches!(
            Cidr::parse("10.0.0.0/33"),
            Err(CidrError::Prefix(_))
        ));
        assert!(matches!(Cidr::parse("ten/8"), Err(CidrError::Address(_))));
        assert_eq!(Cidr::host("::1".parse().unwrap()).to_string(), "::1/128");
    }

    #[test]
    fn via_source() {
        assert_eq!(
            source_of_via("SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK1"),
            Some("127.0.0.1".parse().unwrap())
        );
        assert_eq!(
            source_of_via("SIP/2.0/UDP pbx.example:5061;branch=z9;received=192.0.2.7;rport=5061"),
            Some("192.0.2.7".parse().unwrap())
        );
        assert_eq!(
            source_of_via("SIP/2.0/UDP [2001:db8::1]:5060;branch=z9"),
            Some("2001:db8::1".parse().unwrap())
        );
        assert_eq!(source_of_via("SIP/2.0/UDP pbx.example;branch=z9"), None);
    }

    #[test]
    fn admission() {
        let allow = [Cidr::parse("10.0.0.0/8").unwrap()];
        let inside = Some("10.0.0.9".parse().unwrap());
        let outside = Some("127.0.0.1".parse().unwrap());
        assert_eq!(admit(inside, &allow, true), Admission::Accept);
        assert!(matches!(
            admit(outside, &allow, true),
            Admission::Refuse { status: 403, .. }
        ));
        assert!(matches!(
            admit(outside, &allow, false),
            Admission::Refuse { status: 403, .. }
        ));
        assert!(matches!(
            admit(None, &allow, true),
            Admission::Refuse { status: 403, .. }
        ));
        assert!(matches!(
            admit(inside, &allow, false),
            Admission::Refuse { status: 488, .. }
        ));
    }

    #[test]
    fn own_invites_coming_back() {
        let sent = SentInvite {
            call_id: "a84b4c76e66710@core".into(),
            branch: Some("z9hG4bK776asdhds".into()),
        };
        // A proxying carrier: its own Via on top, ours below, our Call-ID.
        assert!(sent.came_back(
            "a84b4c76e66710@core",
            [
                "SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bKcarrier",
                "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK776asdhds;rport=5060"
            ]
        ));
        // Our Via alone (the Call-ID renewed), in a comma-separated Via value, branch case aside.
        assert!(sent.came_back(
            "other",
            ["SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKc, SIP/2.0/UDP 127.0.0.1;branch=Z9HG4BK776ASDHDS"]
        ));
        // Our Call-ID alone (a stateless element rewrote the Via).
        assert!(sent.came_back(
            " a84b4c76e66710@core",
            ["SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKc"]
        ));
        // Someone else's INVITE.
        assert!(!sent.came_back("b@elsewhere", ["SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKc"]));
        assert!(!sent.came_back("b@elsewhere", []));
        let early = SentInvite {
            branch: None,
            ..sent.clone()
        };
        assert!(!early.came_back("b", ["SIP/2.0/UDP 1.2.3.4;branch=z9hG4bK776asdhds"]));
        assert_eq!(REJECTION_ON_LOOP, PhoneRejection::Unreachable);
    }

    #[test]
    fn ping_outcomes() {
        for up in [200, 202, 403, 404, 405, 481, 603] {
            assert!(trunk_answered(Some(up)), "{up}");
        }
        for down in [408, 500, 503, 504, 599] {
            assert!(!trunk_answered(Some(down)), "{down}");
        }
        assert!(!trunk_answered(None));
    }

    #[test]
    fn via_branches_and_hop_limits() {
        assert_eq!(
            via_branch("SIP/2.0/UDP h:5060;rport;branch=z9hG4bK1"),
            Some("z9hG4bK1")
        );
        assert_eq!(
            via_branch("SIP/2.0/UDP h:5060 ; BRANCH = z9hG4bK2 "),
            Some("z9hG4bK2")
        );
        assert_eq!(via_branch("SIP/2.0/UDP h:5060"), None);
        assert!(hop_limit_reached(Some("0")));
        assert!(hop_limit_reached(Some(" 0 ")));
        assert!(!hop_limit_reached(Some("69")));
        assert!(!hop_limit_reached(Some("x")));
        assert!(!hop_limit_reached(None));
    }
}
