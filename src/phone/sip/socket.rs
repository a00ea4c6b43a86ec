//! [`SipSocket`]: the trunk's UDP socket, as rsipstack's transport sees it. Everything the stack
//! sends and receives passes here, which lets the trunk do what rsipstack 0.7.14 has no hook for:
//!
//! - **the ACK of a delayed offer** (PROTOCOL.md section 13: a handover's INVITE has no SDP, the
//!   phone's 2xx carries the offer and the ACK the answer). rsipstack's INVITE transaction ACKs a
//!   2xx itself, at once and with no body, before the trunk has the answer (it comes from the far
//!   side, through the switch). For a Call-ID the trunk holds ([`SipSocket::hold_acks`]) the socket
//!   keeps that ACK back instead of sending it, and sends it with the answer as its body once the
//!   trunk has one ([`SipSocket::release_ack`]); a later ACK of the same call (the phone
//!   retransmitting its 2xx) gets the same body. The rewriting is [`wire::ack_with_body`];
//! - **bad input** (PROTOCOL.md section 13): every datagram received goes through the [`Screen`]
//!   first; one it refuses (too large, malformed, an INVITE flood) is answered statelessly where it
//!   can be and never reaches the stack, counted in `webterminal_sip_refused_total{reason}` and
//!   logged once per burst.

use super::screen::{Refusal, Screen, ScreenConfig, Verdict};
use super::wire;
use crate::pacing::LogThrottle;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// How often a burst of refused datagrams is logged (one line with the count).
const REFUSED_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The longest datagram read whole: UDP's limit, so that a datagram over
/// [`super::screen::MAX_MESSAGE_BYTES`] is seen as too large rather than cut short.
const DATAGRAM_BYTES: usize = 65_536;

/// What the socket does with the ACKs of one held call.
#[derive(Debug)]
enum Held {
    /// No answer yet: an ACK is kept back (the last one, with where it was going).
    Waiting(Option<(Vec<u8>, SocketAddr)>),
    /// Answered: every ACK goes with this body (none: as the stack built it).
    Answered(Option<String>),
}

/// The trunk's UDP socket (see the module's documentation).
pub struct SipSocket {
    socket: tokio::net::UdpSocket,
    /// Held calls, by Call-ID. Held briefly, never across an await.
    held: Mutex<HashMap<String, Held>>,
    /// What is let through to the stack, and the log of what is not. Held briefly, never across an
    /// await.
    screen: Mutex<(Screen, LogThrottle)>,
    /// `webterminal_sip_refused_total`, per [`Refusal::ALL`].
    refused: [metrics::Counter; Refusal::ALL.len()],
    /// Where a datagram is read whole (the stack's reads come one at a time).
    datagram: tokio::sync::Mutex<Vec<u8>>,
}

impl SipSocket {
    /// Wraps a bound socket, screening what it receives with `screen`'s limits.
    pub fn new(socket: tokio::net::UdpSocket, screen: ScreenConfig) -> SipSocket {
        SipSocket {
            socket,
            held: Mutex::new(HashMap::new()),
            screen: Mutex::new((Screen::new(screen), LogThrottle::new(REFUSED_LOG_INTERVAL))),
            refused: Refusal::ALL.map(
                |why| metrics::counter!(crate::metric_names::SIP_REFUSED, "reason" => why.label()),
            ),
            datagram: tokio::sync::Mutex::new(vec![0; DATAGRAM_BYTES]),
        }
    }

    /// The screen's verdict on `datagram` from `from`, counted and logged when it is a refusal.
    fn screen(&self, datagram: &[u8], from: SocketAddr) -> Verdict {
        let now = Instant::now();
        let mut guard = self.screen.lock().unwrap_or_else(PoisonError::into_inner);
        let (screen, log) = &mut *guard;
        let verdict = screen.check(datagram, from.ip(), now);
        if let Verdict::Refuse { why, answer } = &verdict {
            let at = Refusal::ALL.iter().position(|r| r == why).unwrap_or(0);
            self.refused[at].increment(1);
            if let Some(count) = log.due(now) {
                tracing::info!(
                    %from,
                    reason = why.label(),
                    answered = answer.is_some(),
                    refused = count,
                    "SIP trunk: datagram refused (one line per burst, \
                     webterminal_sip_refused_total counts them all)"
                );
            }
        }
        verdict
    }

    fn held(&self) -> MutexGuard<'_, HashMap<String, Held>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// From now on, the ACKs of call `call_id` are kept back until [`SipSocket::release_ack`].
    pub fn hold_acks(&self, call_id: &str) {
        self.held().insert(call_id.to_owned(), Held::Waiting(None));
    }

    /// Sends the ACK kept back for `call_id`, with `answer` as its body (or as built, without one),
    /// and sends every later ACK of the call the same way. Returns whether an ACK was kept back
    /// (false: none came yet; the next one goes out with the answer).
    pub async fn release_ack(&self, call_id: &str, answer: Option<&str>) -> bool {
        let kept = {
            let mut held = self.held();
            let previous = held.insert(
                call_id.to_owned(),
                Held::Answered(answer.map(str::to_owned)),
            );
            match previous {
                Some(Held::Waiting(kept)) => kept,
                _ => None,
            }
        };
        let Some((ack, to)) = kept else {
            return false;
        };
        let ack = rewrite(&ack, answer);
        if let Err(e) = self.socket.send_to(&ack, to).await {
            tracing::debug!(error = %e, "SIP trunk: ACK not sent");
        }
        true
    }

    /// Stops holding call `call_id`; an ACK still kept back goes out as built.
    pub async fn forget(&self, call_id: &str) {
        let kept = match self.held().remove(call_id) {
            Some(Held::Waiting(kept)) => kept,
            _ => None,
        };
        if let Some((ack, to)) = kept {
            let _ = self.socket.send_to(&ack, to).await;
        }
    }

    /// What to send for the datagram `buf` to `to`: `None` to keep it back, else the bytes (`buf`
    /// itself unless it is an ACK of an answered held call).
    fn outgoing(&self, buf: &[u8], to: SocketAddr) -> Option<Vec<u8>> {
        if !buf.starts_with(b"ACK ") {
            return Some(buf.to_vec());
        }
        let Some(call_id) = std::str::from_utf8(buf).ok().and_then(wire::call_id_of) else {
            return Some(buf.to_vec());
        };
        let mut held = self.held();
        match held.get_mut(call_id) {
            None => Some(buf.to_vec()),
            Some(Held::Waiting(kept)) => {
                *kept = Some((buf.to_vec(), to));
                None
            }
            Some(Held::Answered(answer)) => Some(rewrite(buf, answer.as_deref())),
        }
    }
}

/// `ack` with `answer` as its body, or as it is.
fn rewrite(ack: &[u8], answer: Option<&str>) -> Vec<u8> {
    match (answer, std::str::from_utf8(ack)) {
        (Some(answer), Ok(text)) => wire::ack_with_body(text, answer).into_bytes(),
        _ => ack.to_vec(),
    }
}

#[async_trait::async_trait]
impl rsipstack::platform::net::UdpSocket for SipSocket {
    async fn recv_from(&self, buf: &mut [u8]) -> rsipstack::Result<(usize, SocketAddr)> {
        let mut datagram = self.datagram.lock().await;
        loop {
            let (len, from) = self.socket.recv_from(&mut datagram).await?;
            match self.screen(&datagram[..len], from) {
                Verdict::Pass if len <= buf.len() => {
                    buf[..len].copy_from_slice(&datagram[..len]);
                    return Ok((len, from));
                }
                // Only when the stack reads with less than MAX_MESSAGE_BYTES: cut, as a socket would.
                Verdict::Pass => {
                    let len = buf.len();
                    buf.copy_from_slice(&datagram[..len]);
                    return Ok((len, from));
                }
                Verdict::Refuse { answer, .. } => {
                    if let Some(answer) = answer {
                        if let Err(e) = self.socket.send_to(answer.as_bytes(), from).await {
                            tracing::debug!(error = %e, "SIP trunk: refusal not sent");
                        }
                    }
                }
            }
        }
    }

    async fn send_to(&self, buf: &[u8], addr: SocketAddr) -> rsipstack::Result<usize> {
        match self.outgoing(buf, addr) {
            Some(bytes) => {
                self.socket.send_to(&bytes, addr).await?;
                Ok(buf.len())
            }
            None => Ok(buf.len()),
        }
    }

    fn local_addr(&self) -> rsipstack::Result<SocketAddr> {
        Ok(self.socket.local_addr()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACK: &str =
        "ACK sip:x@127.0.0.1 SIP/2.0\r\nCall-ID: held\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n";

    async fn socket() -> (SipSocket, tokio::net::UdpSocket) {
        let ours = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let peer = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        (SipSocket::new(ours, ScreenConfig::default()), peer)
    }

    async fn received(peer: &tokio::net::UdpSocket) -> String {
        let mut buf = vec![0; 4096];
        let (n, _) =
            tokio::time::timeout(std::time::Duration::from_secs(2), peer.recv_from(&mut buf))
                .await
                .expect("a datagram")
                .unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[tokio::test]
    async fn a_held_ack_waits_for_the_answer_and_later_ones_carry_it() {
        use rsipstack::platform::net::UdpSocket as _;
        let (socket, peer) = socket().await;
        let to = peer.local_addr().unwrap();
        // Not held: as it is.
        let other = ACK.replace("held", "other");
        socket.send_to(other.as_bytes(), to).await.unwrap();
        assert_eq!(received(&peer).await, other);

        socket.hold_acks("held");
        assert_eq!(socket.send_to(ACK.as_bytes(), to).await.unwrap(), ACK.len());
        assert!(socket.release_ack("held", Some("v=0\r\n")).await);
        let sent = received(&peer).await;
        assert!(sent.ends_with("Content-Length: 5\r\n\r\nv=0\r\n"), "{sent}");
        // The phone's 2xx again: the stack's ACK again, with the answer.
        socket.send_to(ACK.as_bytes(), to).await.unwrap();
        assert_eq!(received(&peer).await, sent);
        // Other messages of the call pass as they are.
        let bye = ACK.replace("ACK", "BYE");
        socket.send_to(bye.as_bytes(), to).await.unwrap();
        assert_eq!(received(&peer).await, bye);
        socket.forget("held").await;
        socket.send_to(ACK.as_bytes(), to).await.unwrap();
        assert_eq!(received(&peer).await, ACK);
    }

    #[tokio::test]
    async fn a_forgotten_call_lets_its_kept_ack_go_as_built() {
        use rsipstack::platform::net::UdpSocket as _;
        let (socket, peer) = socket().await;
        let to = peer.local_addr().unwrap();
        socket.hold_acks("held");
        socket.send_to(ACK.as_bytes(), to).await.unwrap();
        socket.forget("held").await;
        assert_eq!(received(&peer).await, ACK);
        // Released before any ACK came: nothing to send yet, the next one carries the answer.
        socket.hold_acks("held");
        assert!(!socket.release_ack("held", Some("v=0\r\n")).await);
        socket.send_to(ACK.as_bytes(), to).await.unwrap();
        assert!(received(&peer).await.ends_with("v=0\r\n"));
    }
}
