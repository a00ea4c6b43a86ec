//! [`Screen`]: what the trunk's socket ([`super::socket`]) lets through to the SIP stack, as a pure
//! function of the datagram, its source and the time (PROTOCOL.md section 13, "bad input"). A
//! datagram from the network is one of:
//!
//! - **passed** to the stack: a request or response that parses, keepalives (blank datagrams);
//! - **too large** (over [`MAX_MESSAGE_BYTES`], what the stack reads of a datagram): a request gets
//!   `413 Request Entity Too Large` (RFC 3261 section 21.4.11);
//! - **malformed** (rsipstack's parser refuses it, or a request lacks what RFC 3261 section 8.1.1
//!   requires of it: [`wire::request_fault`]): a request gets `400 Bad Request` naming the fault
//!   (section 21.4.1);
//! - **an unknown method** (a well-formed request line whose method the stack's parser does not
//!   know, such as `FROB`): `405 Method Not Allowed` with `Allow` (section 8.2.1);
//! - **over its source's INVITE rate**: a new INVITE (no To tag) beyond
//!   [`ScreenConfig::invites_per_second`] from one IP address gets `503 Service Unavailable` with
//!   `Retry-After: 1` (section 21.5.4), so that a flood from one source cannot take the trunk from
//!   the others.
//!
//! A refused request is answered statelessly ([`wire::stateless_response`]) when its Via, From, To,
//! Call-ID and CSeq can be read, and dropped when they cannot; a refused response is dropped.
//! Either way the stack never sees it: no transaction or dialog is made for it. The price is one
//! extra parse of every datagram (rsipstack's parser, which the stack runs again on what passes).

use super::wire;
use crate::pacing::TokenBucket;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

/// The methods the trunk takes: the `Allow` of every 405 it sends (RFC 3261 section 21.4.6).
pub const ALLOWED_METHODS: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO";

/// The largest datagram the stack is handed: rsipstack 0.7 reads UDP into a buffer of this size
/// (`MAX_UDP_BUF_SIZE`), so a longer one would reach it cut short.
pub const MAX_MESSAGE_BYTES: usize = 8192;

/// The default [`ScreenConfig::invites_per_second`] (`--sip-invites-per-second`): new INVITEs a
/// second from one IP address. A carrier sends every call from a few addresses, so this is the
/// trunk's inbound call rate per address, well above a busy contact centre's.
pub const DEFAULT_INVITES_PER_SECOND: u32 = 100;

/// How many sources the screen keeps a bucket for; past it, idle ones are forgotten, and when none
/// is idle a new source is refused as over its rate (a flood of spoofed addresses cannot grow the
/// table without bound).
pub const MAX_SOURCES: usize = 4096;

/// The screen's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScreenConfig {
    /// New INVITEs a second from one IP address, with a burst of twice as many; 0: no limit.
    pub invites_per_second: u32,
}

impl Default for ScreenConfig {
    fn default() -> Self {
        ScreenConfig {
            invites_per_second: DEFAULT_INVITES_PER_SECOND,
        }
    }
}

/// Why a datagram was refused: the label of `webterminal_sip_refused_total{reason}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Over [`MAX_MESSAGE_BYTES`].
    TooLarge,
    /// Not a SIP message the stack's parser takes.
    Malformed,
    /// A new INVITE over its source's rate.
    RateLimited,
    /// A well-formed request line with a method the stack does not know.
    UnknownMethod,
}

impl Refusal {
    /// Every refusal, for metrics shown from 0.
    pub const ALL: [Refusal; 4] = [
        Refusal::TooLarge,
        Refusal::Malformed,
        Refusal::RateLimited,
        Refusal::UnknownMethod,
    ];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::TooLarge => "too_large",
            Refusal::Malformed => "malformed",
            Refusal::RateLimited => "rate_limited",
            Refusal::UnknownMethod => "unknown_method",
        }
    }
}

/// What to do with one datagram from the network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Hand it to the stack.
    Pass,
    /// Refused: send `answer` back to its source, if any, and drop it.
    Refuse {
        /// Why.
        why: Refusal,
        /// The stateless response to send back (none: it cannot be answered).
        answer: Option<String>,
    },
}

/// The screen: its limits and a token bucket per recent source.
#[derive(Debug)]
pub struct Screen {
    config: ScreenConfig,
    invites: HashMap<IpAddr, TokenBucket>,
}

impl Screen {
    /// A screen with `config`'s limits and no source seen.
    pub fn new(config: ScreenConfig) -> Screen {
        Screen {
            config,
            invites: HashMap::new(),
        }
    }

    /// The verdict on `datagram`, received from `source` at `now`.
    pub fn check(&mut self, datagram: &[u8], source: IpAddr, now: Instant) -> Verdict {
        if datagram.iter().all(u8::is_ascii_whitespace) {
            return Verdict::Pass;
        }
        let text = String::from_utf8_lossy(datagram);
        if datagram.len() > MAX_MESSAGE_BYTES {
            return refuse(
                &text,
                Refusal::TooLarge,
                413,
                "Request Entity Too Large",
                &[],
            );
        }
        if rsipstack::sip::SipMessage::try_from(datagram).is_err() {
            if wire::has_unknown_method(&text) {
                let allow = [("Allow", ALLOWED_METHODS)];
                return refuse(
                    &text,
                    Refusal::UnknownMethod,
                    405,
                    "Method Not Allowed",
                    &allow,
                );
            }
            return refuse(&text, Refusal::Malformed, 400, "Bad Request", &[]);
        }
        if let Some(fault) = wire::request_fault(&text) {
            let reason = format!("Bad Request ({fault})");
            return refuse(&text, Refusal::Malformed, 400, &reason, &[]);
        }
        if is_new_invite(&text) && !self.take_invite(source, now) {
            return refuse(
                &text,
                Refusal::RateLimited,
                503,
                "Service Unavailable",
                &[("Retry-After", "1")],
            );
        }
        Verdict::Pass
    }

    /// Takes one INVITE from `source`'s bucket; false when it is empty (or the table is full of
    /// busy sources).
    fn take_invite(&mut self, source: IpAddr, now: Instant) -> bool {
        if self.config.invites_per_second == 0 {
            return true;
        }
        if !self.invites.contains_key(&source) && self.invites.len() >= MAX_SOURCES {
            self.invites.retain(|_, bucket| !bucket.is_full(now));
            if self.invites.len() >= MAX_SOURCES {
                return false;
            }
        }
        self.invites
            .entry(source)
            .or_insert_with(|| TokenBucket::new(self.config.invites_per_second, now))
            .take(now)
    }
}

/// Whether `text` is an INVITE outside a dialog (its To has no tag): a new call.
fn is_new_invite(text: &str) -> bool {
    wire::method_of(text) == Some("INVITE")
        && wire::header_value(text, "To", Some("t")).is_some_and(|to| !to.contains(";tag="))
}

fn refuse(text: &str, why: Refusal, status: u16, reason: &str, extra: &[(&str, &str)]) -> Verdict {
    Verdict::Refuse {
        why,
        answer: wire::stateless_response(text, status, reason, extra),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const INVITE: &str = "INVITE sip:+4799000002@127.0.0.1 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1\r\n\
        From: <sip:+4799000001@10.0.0.1>;tag=a\r\n\
        To: <sip:+4799000002@127.0.0.1>\r\n\
        Call-ID: c1\r\n\
        CSeq: 1 INVITE\r\n\
        Max-Forwards: 70\r\n\
        Content-Length: 0\r\n\r\n";

    fn source(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }

    fn status(verdict: &Verdict) -> Option<&str> {
        match verdict {
            Verdict::Refuse {
                answer: Some(answer),
                ..
            } => answer.split(' ').nth(1),
            _ => None,
        }
    }

    #[test]
    fn a_well_formed_message_and_keepalives_pass() {
        let mut screen = Screen::new(ScreenConfig::default());
        let now = Instant::now();
        assert_eq!(
            screen.check(INVITE.as_bytes(), source(1), now),
            Verdict::Pass
        );
        assert_eq!(screen.check(b"\r\n\r\n", source(1), now), Verdict::Pass);
        let ok = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\n\
                  To: <sip:c@d>;tag=2\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(screen.check(ok.as_bytes(), source(1), now), Verdict::Pass);
    }

    #[test]
    fn an_oversized_request_is_413_and_a_malformed_one_400() {
        let mut screen = Screen::new(ScreenConfig::default());
        let now = Instant::now();
        let big = INVITE.replace(
            "Max-Forwards: 70\r\n",
            &format!("X-Padding: {}\r\n", "a".repeat(MAX_MESSAGE_BYTES)),
        );
        let verdict = screen.check(big.as_bytes(), source(1), now);
        assert!(matches!(
            verdict,
            Verdict::Refuse {
                why: Refusal::TooLarge,
                ..
            }
        ));
        assert_eq!(status(&verdict), Some("413"));

        let malformed = INVITE.replace("CSeq: 1 INVITE", "CSeq: one INVITE");
        let verdict = screen.check(malformed.as_bytes(), source(1), now);
        assert!(
            matches!(
                verdict,
                Verdict::Refuse {
                    why: Refusal::Malformed,
                    ..
                }
            ),
            "{verdict:?}"
        );
        assert_eq!(status(&verdict), Some("400"));

        let unknown = INVITE.replace("INVITE", "FROB");
        let verdict = screen.check(unknown.as_bytes(), source(1), now);
        assert!(
            matches!(
                verdict,
                Verdict::Refuse {
                    why: Refusal::UnknownMethod,
                    ..
                }
            ),
            "{verdict:?}"
        );
        assert_eq!(status(&verdict), Some("405"));

        // Garbage with nothing to answer is dropped.
        let verdict = screen.check(b"\x00\x01 not SIP at all", source(1), now);
        assert_eq!(
            verdict,
            Verdict::Refuse {
                why: Refusal::Malformed,
                answer: None
            }
        );
    }

    #[test]
    fn a_flood_of_invites_from_one_source_is_503_and_others_pass() {
        let mut screen = Screen::new(ScreenConfig {
            invites_per_second: 5,
        });
        let now = Instant::now();
        // A burst of twice the rate passes, then 503 with Retry-After.
        for _ in 0..10 {
            assert_eq!(
                screen.check(INVITE.as_bytes(), source(1), now),
                Verdict::Pass
            );
        }
        let verdict = screen.check(INVITE.as_bytes(), source(1), now);
        assert!(matches!(
            verdict,
            Verdict::Refuse {
                why: Refusal::RateLimited,
                ..
            }
        ));
        assert_eq!(status(&verdict), Some("503"));
        let Verdict::Refuse {
            answer: Some(answer),
            ..
        } = verdict
        else {
            unreachable!()
        };
        assert!(answer.contains("Retry-After: 1\r\n"), "{answer}");
        // Another source, and requests inside a dialog, are not held back.
        assert_eq!(
            screen.check(INVITE.as_bytes(), source(2), now),
            Verdict::Pass
        );
        let reinvite = INVITE.replace(
            "To: <sip:+4799000002@127.0.0.1>",
            "To: <sip:+4799000002@127.0.0.1>;tag=b",
        );
        assert_eq!(
            screen.check(reinvite.as_bytes(), source(1), now),
            Verdict::Pass
        );
        // A second later, one source's bucket has 5 again.
        let later = now + Duration::from_secs(1);
        for _ in 0..5 {
            assert_eq!(
                screen.check(INVITE.as_bytes(), source(1), later),
                Verdict::Pass
            );
        }
        assert_ne!(
            screen.check(INVITE.as_bytes(), source(1), later),
            Verdict::Pass
        );
    }

    #[test]
    fn the_source_table_is_bounded() {
        let mut screen = Screen::new(ScreenConfig {
            invites_per_second: 1,
        });
        let now = Instant::now();
        for n in 0..MAX_SOURCES {
            let ip = IpAddr::from((n as u32 + 1).to_be_bytes());
            assert!(screen.take_invite(ip, now));
        }
        // Every known source is busy: a new one is refused, and the table does not grow.
        assert!(!screen.take_invite(source(250), now));
        assert_eq!(screen.invites.len(), MAX_SOURCES);
        // Once they are idle again, they are forgotten and the new one passes.
        assert!(screen.take_invite(source(250), now + Duration::from_secs(5)));
        assert_eq!(screen.invites.len(), 1);
    }

    #[test]
    fn no_limit_at_zero() {
        let mut screen = Screen::new(ScreenConfig {
            invites_per_second: 0,
        });
        let now = Instant::now();
        for _ in 0..1000 {
            assert_eq!(
                screen.check(INVITE.as_bytes(), source(1), now),
                Verdict::Pass
            );
        }
        assert!(screen.invites.is_empty());
    }
}
