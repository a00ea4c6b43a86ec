//! The simulated phones' SDPs: generated, valid WebRTC audio descriptions with no media behind them.

use crate::core::{Msisdn, Sdp};
use std::fmt::Write as _;

/// A generated SDP offer (RFC 8866, WebRTC/JSEP style) for `msisdn`'s simulated phone: one audio
/// section, opus, BUNDLE'd, `a=setup:actpass`, CRLF line endings. It is what a simulated phone offers
/// for a handover (PROTOCOL.md section 4.6).
///
/// **It carries no media**: the address is `0.0.0.0`, there are no ICE candidates, and the ICE
/// credentials and DTLS fingerprint are derived from `msisdn` and `session_id` (the `o=` session id),
/// not from any real key. It passes `Sdp::parse` and is returned as `Sdp::trusted`. The number itself
/// does not appear in the text.
pub fn generated_sdp(msisdn: &Msisdn, session_id: u64) -> Sdp {
    sdp_text(msisdn, session_id, "actpass")
}

/// A generated SDP answer for `msisdn`'s simulated phone: as [`generated_sdp`] but with
/// `a=setup:active`, since an answerer must pick its DTLS role (RFC 5763 section 5; browsers refuse
/// an answer with `actpass`). It is what a simulated phone answers a call or a re-offer with.
///
/// **It carries no media** (see [`generated_sdp`]). It has a single audio section with `a=mid:0`, so
/// it matches an offer of one audio section.
pub fn generated_answer_sdp(msisdn: &Msisdn, session_id: u64) -> Sdp {
    sdp_text(msisdn, session_id, "active")
}

fn sdp_text(msisdn: &Msisdn, session_id: u64, setup: &str) -> Sdp {
    // Not cryptographic: the values only need to look like, and be shaped like, real ones.
    let mut seed = mix(session_id);
    for b in msisdn.as_str().bytes() {
        seed = mix(seed ^ u64::from(b));
    }
    let mut words = std::iter::successors(Some(seed), |s| Some(mix(*s))).skip(1);
    let mut next = || words.next().unwrap_or_default();
    let ufrag = format!("{:08x}", next() as u32);
    let pwd = format!("{:016x}{:08x}", next(), next() as u32);
    let mut fingerprint = String::with_capacity(32 * 3);
    for _ in 0..4 {
        for byte in next().to_be_bytes() {
            if !fingerprint.is_empty() {
                fingerprint.push(':');
            }
            let _ = write!(fingerprint, "{byte:02X}");
        }
    }
    let lines = [
        "v=0".to_owned(),
        format!("o=- {session_id} 1 IN IP4 0.0.0.0"),
        "s=webterminal-core simulated phone (no media)".to_owned(),
        "t=0 0".to_owned(),
        "a=group:BUNDLE 0".to_owned(),
        "m=audio 9 UDP/TLS/RTP/SAVPF 111".to_owned(),
        "c=IN IP4 0.0.0.0".to_owned(),
        "a=mid:0".to_owned(),
        format!("a=ice-ufrag:{ufrag}"),
        format!("a=ice-pwd:{pwd}"),
        format!("a=fingerprint:sha-256 {fingerprint}"),
        format!("a=setup:{setup}"),
        "a=rtcp-mux".to_owned(),
        "a=sendrecv".to_owned(),
        "a=rtpmap:111 opus/48000/2".to_owned(),
    ];
    let mut text = lines.join("\r\n");
    text.push_str("\r\n");
    Sdp::trusted(text)
}

/// splitmix64's finaliser: spreads a 64-bit value over all bits.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn generated_sdp_validates_and_says_it_has_no_media() {
        for session in [0, 1, u64::MAX] {
            for setup in [
                generated_sdp(&n(A), session),
                generated_answer_sdp(&n(B), session),
            ] {
                let text = setup.as_str();
                Sdp::parse(text, 65536).expect("generated SDP parses");
                assert!(text.starts_with("v=0\r\n"));
                assert!(text.ends_with("\r\n"));
                assert!(!text.replace("\r\n", "").contains('\n'), "CRLF only");
                assert!(text.contains("s=webterminal-core simulated phone (no media)\r\n"));
                assert!(text.contains(&format!("o=- {session} 1 IN IP4")));
                assert!(text.contains("m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"));
                assert!(text.contains("a=rtpmap:111 opus/48000/2\r\n"));
                let fingerprint = text
                    .lines()
                    .find_map(|l| l.strip_prefix("a=fingerprint:sha-256 "))
                    .unwrap();
                assert_eq!(fingerprint.split(':').count(), 32);
                assert!(fingerprint
                    .split(':')
                    .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit())));
                assert!(
                    !text.contains(A) && !text.contains(B),
                    "no phone number in SDP"
                );
            }
        }
        assert_ne!(
            generated_sdp(&n(A), 1).as_str(),
            generated_sdp(&n(A), 2).as_str()
        );
        assert_ne!(
            generated_sdp(&n(A), 1).as_str(),
            generated_sdp(&n(B), 1).as_str()
        );
    }
}
