//! Typed values the switch works with. Raw strings from the wire become these at the edge
//! ("parse, don't validate"), so the switch never sees an unchecked number, id or SDP.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

static LOG_PERSONAL_DATA: AtomicBool = AtomicBool::new(false);

/// Whether `Debug` of a [`Msisdn`] or an [`Sdp`] shows personal data. Off by default: numbers are
/// redacted (`+47******01`) and SDP (addresses, ICE credentials) shows only its size. An operator
/// turns it on for debugging (`serve --log-personal-data`); it applies process-wide.
pub fn log_personal_data(on: bool) {
    LOG_PERSONAL_DATA.store(on, Ordering::Relaxed);
}

pub(super) fn personal_data_logged() -> bool {
    LOG_PERSONAL_DATA.load(Ordering::Relaxed)
}

/// A subscriber's phone number in E.164 form (ITU-T E.164): `+`, then 2 to 15 digits, the first not 0.
///
/// `Display` prints the full number (it goes on the wire); `Debug` prints it redacted
/// (`+47******01`), so `?msisdn` in a log line never leaks personal data (PROTOCOL.md section 2).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Msisdn(Arc<str>);

/// Why a string is not an E.164 number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MsisdnError {
    /// The string is empty.
    #[error("is empty")]
    Empty,
    /// It does not start with `+`.
    #[error("must start with '+'")]
    NoPlus,
    /// A character after `+` is not an ASCII digit.
    #[error("must have only digits after '+'")]
    NotDigits,
    /// Fewer than 2 or more than 15 digits (ITU-T E.164 section 6.1).
    #[error("must have 2 to 15 digits, has {0}")]
    Length(usize),
    /// The country code starts with 0.
    #[error("must not start with '+0'")]
    LeadingZero,
}

impl Msisdn {
    /// Parses an E.164 number with its leading `+`.
    ///
    /// # Errors
    /// [`MsisdnError`] says which rule the string breaks.
    pub fn parse(s: &str) -> Result<Self, MsisdnError> {
        let digits = match s.strip_prefix('+') {
            Some(d) => d,
            None if s.is_empty() => return Err(MsisdnError::Empty),
            None => return Err(MsisdnError::NoPlus),
        };
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(MsisdnError::NotDigits);
        }
        if !(2..=15).contains(&digits.len()) {
            return Err(MsisdnError::Length(digits.len()));
        }
        if digits.starts_with('0') {
            return Err(MsisdnError::LeadingZero);
        }
        Ok(Msisdn(Arc::from(s)))
    }

    /// Parses an E.164 number with or without its leading `+` (`+4799000000` or `4799000000`, as
    /// some clients send numbers; PROTOCOL.md section 1), under the same digit rules as
    /// [`Msisdn::parse`]. The number is kept, and printed, with its `+`.
    ///
    /// # Errors
    /// [`MsisdnError`] says which rule the string breaks (never [`MsisdnError::NoPlus`]).
    pub fn parse_lenient(s: &str) -> Result<Self, MsisdnError> {
        if s.is_empty() || s.starts_with('+') {
            Msisdn::parse(s)
        } else {
            Msisdn::parse(&format!("+{s}"))
        }
    }

    /// The number as E.164 text, with its `+`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for Msisdn {
    type Err = MsisdnError;

    /// The same as [`Msisdn::parse`].
    fn from_str(s: &str) -> Result<Self, MsisdnError> {
        Msisdn::parse(s)
    }
}

impl fmt::Display for Msisdn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Msisdn {
    /// Redacted: country code's first two digits and the last two digits stay (unless
    /// [`log_personal_data`] is on).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.0;
        if personal_data_logged() {
            return f.write_str(s);
        }
        let keep_head = 3.min(s.len());
        let keep_tail = 2.min(s.len() - keep_head);
        write!(
            f,
            "{}{}{}",
            &s[..keep_head],
            "*".repeat(s.len() - keep_head - keep_tail),
            &s[s.len() - keep_tail..]
        )
    }
}

/// A call id as one msisdn's terminals see it: a UUID (PROTOCOL.md section 2). The two sides of a
/// call have different ids, and ids are scoped per msisdn.
///
/// Two ids are equal when their UUIDs are (UUIDs compare case-insensitively, RFC 9562 section 4), but
/// the text a terminal chose is kept and sent back exactly as it came, so a client that matches
/// replies by string (upper-case or braced UUIDs) works unchanged. `Copy`: the text lives inline.
#[derive(Clone, Copy)]
pub struct CallId {
    uuid: uuid::Uuid,
    /// The id's text as the terminal wrote it, or empty for ids the core made (hyphenated lower case).
    text: [u8; CallId::MAX_TEXT],
    len: u8,
}

impl CallId {
    /// The longest UUID text accepted, in bytes: the `urn:uuid:` form.
    pub const MAX_TEXT: usize = 45;

    /// Parses a UUID string in any form the `uuid` crate accepts (hyphenated, simple, braced, urn; any
    /// case), keeping the text as given.
    ///
    /// # Errors
    /// `uuid::Error` when the string is not a UUID.
    pub fn parse(s: &str) -> Result<Self, uuid::Error> {
        let uuid = uuid::Uuid::parse_str(s)?;
        let mut text = [0u8; CallId::MAX_TEXT];
        // Every accepted form is ASCII and at most MAX_TEXT bytes long.
        text[..s.len()].copy_from_slice(s.as_bytes());
        Ok(CallId {
            uuid,
            text,
            len: s.len() as u8,
        })
    }

    /// A fresh random (version 4) id, as the core makes for callee sides and Pipe callers.
    pub fn random() -> Self {
        uuid::Uuid::new_v4().into()
    }

    /// The UUID itself.
    pub fn uuid(&self) -> uuid::Uuid {
        self.uuid
    }
}

impl From<uuid::Uuid> for CallId {
    fn from(uuid: uuid::Uuid) -> Self {
        CallId {
            uuid,
            text: [0; CallId::MAX_TEXT],
            len: 0,
        }
    }
}

impl PartialEq for CallId {
    fn eq(&self, other: &Self) -> bool {
        self.uuid == other.uuid
    }
}

impl Eq for CallId {}

impl std::hash::Hash for CallId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.uuid.hash(state)
    }
}

impl PartialOrd for CallId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for CallId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.uuid.cmp(&other.uuid)
    }
}

impl fmt::Display for CallId {
    /// The text the terminal chose, or the hyphenated lower-case UUID for ids the core made.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match std::str::from_utf8(&self.text[..self.len as usize]) {
            Ok(text) if !text.is_empty() => f.write_str(text),
            _ => self.uuid.hyphenated().fmt(f),
        }
    }
}

impl fmt::Debug for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CallId({self})")
    }
}

/// One registered terminal: one open `Pipe` or `MultiPipe` rpc. Chosen by the server, unique for the
/// life of the process.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct TerminalId(pub u64);

/// One call leg on a mobile phone in the phone network (PROTOCOL.md section 7). The switch chooses
/// the ids of the legs it asks for (ring, handover), all below [`PhoneLegId::FROM_NETWORK`]; the
/// network chooses the ids of the calls it brings in (4.11) with [`PhoneLegId::from_network`], so
/// the two never collide.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct PhoneLegId(pub u64);

impl PhoneLegId {
    /// The bit set in every id the phone network makes (2^63).
    pub const FROM_NETWORK: u64 = 1 << 63;

    /// The id of the `n`th call the phone network brings in (its own numbering, any `u64`; the top
    /// bit is set).
    pub fn from_network(n: u64) -> Self {
        PhoneLegId(n | Self::FROM_NETWORK)
    }

    /// Whether the phone network made this id (an incoming call's leg, 4.11).
    pub fn is_from_network(self) -> bool {
        self.0 & Self::FROM_NETWORK != 0
    }
}

/// Which rpc a terminal opened (PROTOCOL.md section 3).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum PipeKind {
    /// One call at a time; the core picks call ids.
    Pipe,
    /// Many calls at once, each addressed by a UUID call id.
    MultiPipe,
}

/// A session description (RFC 8866) that passed validation. The text is kept byte for byte and
/// relayed unchanged (PROTOCOL.md section 2); cloning is cheap. What the parser read of its media
/// direction is kept too ([`Sdp::is_hold`]), for call events (section 8).
#[derive(Clone)]
pub struct Sdp {
    text: Arc<str>,
    hold: bool,
}

impl PartialEq for Sdp {
    /// Two SDPs are equal when their texts are.
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for Sdp {}

/// Why an SDP was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// Zero bytes, or only whitespace.
    #[error("is empty")]
    Empty,
    /// Longer than the limit, in bytes.
    #[error("is {bytes} bytes, over the limit of {limit} bytes")]
    TooLarge {
        /// Its size, in bytes.
        bytes: usize,
        /// The limit, in bytes.
        limit: usize,
    },
    /// The SDP parser refused it; the text is the parser's reason.
    #[error("is not a valid session description: {0}")]
    Unparsable(String),
    /// It parses but has no `m=` section, so it could carry no media.
    #[error("has no media section (m=)")]
    NoMedia,
}

impl Sdp {
    /// Validates `text` as an SDP (RFC 8866) of at most `limit` bytes with at least one media section,
    /// using the `webrtc-sdp` parser (the one Firefox uses). The text is kept as it is.
    ///
    /// # Errors
    /// [`SdpError`] says what is wrong; size is checked before parsing, so a huge body costs nothing.
    pub fn parse(text: &str, limit: usize) -> Result<Self, SdpError> {
        if text.len() > limit {
            return Err(SdpError::TooLarge {
                bytes: text.len(),
                limit,
            });
        }
        if text.trim().is_empty() {
            return Err(SdpError::Empty);
        }
        let session =
            webrtc_sdp::parse_sdp(text, false).map_err(|e| SdpError::Unparsable(e.to_string()))?;
        if session.media.is_empty() {
            return Err(SdpError::NoMedia);
        }
        // RFC 3264 section 8.4: a media stream is put on hold by offering it sendonly (or inactive
        // when it was recvonly); a media section without a direction takes the session's, and
        // sendrecv is the default (RFC 8866 section 6.7).
        let session_direction = direction(&session.attribute);
        let hold = session.media.iter().all(|m| {
            matches!(
                direction(m.get_attributes()).or(session_direction),
                Some(Direction::Sendonly | Direction::Inactive)
            )
        });
        Ok(Sdp {
            text: Arc::from(text),
            hold,
        })
    }

    /// Wraps text that this process generated itself (the simulated phone network), unchecked; it
    /// counts as not on hold.
    pub fn trusted(text: impl Into<Arc<str>>) -> Self {
        Sdp {
            text: text.into(),
            hold: false,
        }
    }

    /// The SDP text, byte for byte as received.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether, as an offer, it puts its sender's media on hold: every media section `sendonly` or
    /// `inactive` (RFC 3264 section 8.4; PROTOCOL.md section 8, `HELD` / `RESUMED`).
    pub fn is_hold(&self) -> bool {
        self.hold
    }
}

#[derive(Clone, Copy)]
enum Direction {
    Sendrecv,
    Sendonly,
    Recvonly,
    Inactive,
}

/// The direction attribute among `attributes`, if there is one.
fn direction(attributes: &[webrtc_sdp::attribute_type::SdpAttribute]) -> Option<Direction> {
    use webrtc_sdp::attribute_type::SdpAttribute;
    attributes.iter().find_map(|a| match a {
        SdpAttribute::Sendrecv => Some(Direction::Sendrecv),
        SdpAttribute::Sendonly => Some(Direction::Sendonly),
        SdpAttribute::Recvonly => Some(Direction::Recvonly),
        SdpAttribute::Inactive => Some(Direction::Inactive),
        _ => None,
    })
}

impl fmt::Debug for Sdp {
    /// Only the size: SDP carries addresses and ICE credentials, which are personal data (unless
    /// [`log_personal_data`] is on).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if personal_data_logged() {
            return write!(f, "Sdp({:?})", self.text);
        }
        write!(f, "Sdp({} bytes)", self.text.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_rules() {
        assert!(Msisdn::parse("+4799990001").is_ok());
        assert_eq!(Msisdn::parse(""), Err(MsisdnError::Empty));
        assert_eq!(Msisdn::parse("4799990001"), Err(MsisdnError::NoPlus));
        assert_eq!(Msisdn::parse("+47 9999"), Err(MsisdnError::NotDigits));
        assert_eq!(Msisdn::parse("+1"), Err(MsisdnError::Length(1)));
        assert_eq!(
            Msisdn::parse("+1234567890123456"),
            Err(MsisdnError::Length(16))
        );
        assert_eq!(Msisdn::parse("+0479999"), Err(MsisdnError::LeadingZero));
    }

    #[test]
    fn call_id_keeps_the_terminals_text_and_compares_by_uuid() {
        let upper = CallId::parse("9F1B0C2E-5D4A-4E3B-8C7D-6A5B4C3D2E1F").unwrap();
        let lower = CallId::parse("9f1b0c2e-5d4a-4e3b-8c7d-6a5b4c3d2e1f").unwrap();
        assert_eq!(upper.to_string(), "9F1B0C2E-5D4A-4E3B-8C7D-6A5B4C3D2E1F");
        assert_eq!(upper, lower);
        let urn = "urn:uuid:9f1b0c2e-5d4a-4e3b-8c7d-6a5b4c3d2e1f";
        assert_eq!(CallId::parse(urn).unwrap().to_string(), urn);
        assert!(CallId::parse("not-a-uuid").is_err());
        let made = CallId::random();
        assert_eq!(made.to_string(), made.uuid().hyphenated().to_string());
    }

    #[test]
    fn hold_is_read_from_the_media_direction() {
        let fixture = |name: &str| {
            let path = format!("{}/tests/fixtures/sdp/{name}", env!("CARGO_MANIFEST_DIR"));
            Sdp::parse(&std::fs::read_to_string(path).unwrap(), 65536).unwrap()
        };
        for held in [
            "chromium-hold-offer.sdp",
            "aiortc-hold-offer.sdp",
            "chromium-icerestart-offer.sdp",
        ] {
            assert!(fixture(held).is_hold(), "{held}");
        }
        for live in [
            "chromium-offer.sdp",
            "aiortc-offer.sdp",
            "chromium-answer.sdp",
        ] {
            assert!(!fixture(live).is_hold(), "{live}");
        }
    }

    #[test]
    fn msisdn_debug_is_redacted() {
        let m = Msisdn::parse("+4799990001").unwrap();
        assert_eq!(format!("{m:?}"), "+47******01");
        assert_eq!(m.to_string(), "+4799990001");
    }
}
