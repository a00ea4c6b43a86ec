//! A client of rtpengine's ng control protocol (PROTOCOL.md section 13, `--rtpengine`): the media
//! relay that turns a browser's WebRTC media (ICE, DTLS-SRTP, rtcp-mux, opus) into what SIP phones
//! speak (plain RTP, G.711) and back.
//!
//! The protocol: one UDP datagram per request, `<cookie> <bencoded dictionary>`, with the command in
//! its `command` key; the reply echoes the cookie, then a dictionary whose `result` is `ok` (`pong`
//! for `ping`) or `error` with an `error-reason`. Each request gets a fresh cookie and waits for the
//! reply carrying it, up to [`Timing::timeout`]; it is sent again, with the same cookie (rtpengine
//! answers a repeated cookie from its cache instead of acting twice), up to [`Timing::tries`] times
//! in all. Every failed request counts in [`crate::metric_names::RTPENGINE_ERRORS`] by command.
//!
//! Nothing here blocks: a request is a future, and an rtpengine that is down, slow or answering
//! garbage costs its caller at most `tries × timeout`.

use serde_bencode::value::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::oneshot;

/// The default [`Timing`]: 500 ms per try, 3 tries (a dead rtpengine fails a request in 1.5 s).
pub const DEFAULT_TIMING: Timing = Timing {
    timeout: Duration::from_millis(500),
    tries: 3,
};

/// The largest datagram read: rtpengine's replies (SDP, `list`, `query`) fit in one UDP datagram.
const MAX_DATAGRAM: usize = 65_535;

/// How long a request waits and how often it is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// How long one try waits for its reply.
    pub timeout: Duration,
    /// How many times a request is sent before it fails with [`RtpEngineError::Timeout`] (at least
    /// one).
    pub tries: u32,
}

/// Why an rtpengine request failed.
#[derive(Debug, thiserror::Error)]
pub enum RtpEngineError {
    /// No reply came: rtpengine is down, unreachable or too slow.
    #[error("rtpengine {command}: no reply after {tries} tries of {timeout:?} each")]
    Timeout {
        /// The ng command.
        command: &'static str,
        /// How many times it was sent.
        tries: u32,
        /// How long each try waited.
        timeout: Duration,
    },
    /// rtpengine answered `result: error` (or another result than `ok`).
    #[error("rtpengine {command}: refused ({result}): {reason}")]
    Refused {
        /// The ng command.
        command: &'static str,
        /// The `result` it answered (`error`, `load limit`, ...).
        result: String,
        /// Its `error-reason`, or empty.
        reason: String,
    },
    /// The reply is not a bencoded dictionary with a `result`, or lacks what the command returns
    /// (an offer's `sdp`).
    #[error("rtpengine {command}: reply not understood: {why}")]
    Garbage {
        /// The ng command.
        command: &'static str,
        /// What is wrong with it.
        why: String,
    },
    /// The request could not be sent.
    #[error("rtpengine {command}: {source}")]
    Io {
        /// The ng command.
        command: &'static str,
        /// The socket's error.
        #[source]
        source: std::io::Error,
    },
}

impl RtpEngineError {
    /// The ng command that failed.
    pub fn command(&self) -> &'static str {
        match self {
            RtpEngineError::Timeout { command, .. }
            | RtpEngineError::Refused { command, .. }
            | RtpEngineError::Garbage { command, .. }
            | RtpEngineError::Io { command, .. } => command,
        }
    }

    /// Whether rtpengine may have acted on the request although no reply said so (a timeout or a
    /// send error): a call it may hold should still be deleted.
    pub fn maybe_done(&self) -> bool {
        matches!(
            self,
            RtpEngineError::Timeout { .. } | RtpEngineError::Io { .. }
        )
    }
}

/// One value of a request's dictionary (a flag and its setting), as static data so that the flag
/// sets are constants ([`super::media`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Param {
    /// A string (`ICE: "remove"`).
    Text(&'static str),
    /// A list of strings (`rtcp-mux: ["demux"]`).
    List(&'static [&'static str]),
    /// A dictionary (`codec: {transcode: [...]}`).
    Dict(&'static [(&'static str, Param)]),
}

impl Param {
    fn value(self) -> Value {
        match self {
            Param::Text(text) => bytes(text),
            Param::List(items) => Value::List(items.iter().map(|item| bytes(item)).collect()),
            Param::Dict(entries) => Value::Dict(
                entries
                    .iter()
                    .map(|(key, value)| (key.as_bytes().to_vec(), value.value()))
                    .collect(),
            ),
        }
    }
}

fn bytes(text: &str) -> Value {
    Value::Bytes(text.as_bytes().to_vec())
}

/// A successful reply's dictionary.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply(HashMap<Vec<u8>, Value>);

impl Reply {
    /// The string under `key`, when there is one and it is UTF-8.
    pub fn text(&self, key: &str) -> Option<&str> {
        match self.0.get(key.as_bytes())? {
            Value::Bytes(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// The strings of the list under `key` (items that are not UTF-8 strings left out); empty when
    /// there is none.
    pub fn texts(&self, key: &str) -> Vec<String> {
        match self.0.get(key.as_bytes()) {
            Some(Value::List(items)) => items
                .iter()
                .filter_map(|item| match item {
                    Value::Bytes(b) => String::from_utf8(b.clone()).ok(),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The keys of the dictionary under `key` (e.g. a `query`'s `tags`); empty when there is none.
    pub fn keys_of(&self, key: &str) -> Vec<String> {
        match self.0.get(key.as_bytes()) {
            Some(Value::Dict(entries)) => entries
                .keys()
                .filter_map(|k| String::from_utf8(k.clone()).ok())
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// A request as it goes on the wire: `cookie`, a space, the bencoded dictionary of `command` and
/// `params` (keys sorted, as bencode wants).
pub fn encode_request(cookie: &str, command: &str, params: &[(&str, Value)]) -> Vec<u8> {
    let mut dict: HashMap<Vec<u8>, Value> = params
        .iter()
        .map(|(key, value)| (key.as_bytes().to_vec(), value.clone()))
        .collect();
    dict.insert(b"command".to_vec(), bytes(command));
    let mut datagram = format!("{cookie} ").into_bytes();
    // A dictionary of byte strings, integers and lists always encodes.
    datagram.extend(serde_bencode::to_bytes(&Value::Dict(dict)).unwrap_or_default());
    datagram
}

/// Splits a datagram into its cookie and the rest; `None` when it has no cookie.
pub fn split_cookie(datagram: &[u8]) -> Option<(&str, &[u8])> {
    let space = datagram.iter().position(|&b| b == b' ')?;
    let cookie = std::str::from_utf8(&datagram[..space]).ok()?;
    (!cookie.is_empty()).then(|| (cookie, &datagram[space + 1..]))
}

/// The reply to `command` (its dictionary, after the cookie): the dictionary when its `result` is
/// `ok` or `pong`.
///
/// # Errors
/// [`RtpEngineError::Refused`] for any other `result` (with `error-reason`),
/// [`RtpEngineError::Garbage`] when it is not a bencoded dictionary with a `result`.
pub fn decode_reply(command: &'static str, body: &[u8]) -> Result<Reply, RtpEngineError> {
    let garbage = |why: String| RtpEngineError::Garbage { command, why };
    let value: Value =
        serde_bencode::from_bytes(body).map_err(|e| garbage(format!("not bencode: {e}")))?;
    let Value::Dict(dict) = value else {
        return Err(garbage("not a dictionary".to_owned()));
    };
    let reply = Reply(dict);
    match reply.text("result") {
        Some("ok" | "pong") => Ok(reply),
        Some(result) => Err(RtpEngineError::Refused {
            command,
            result: result.to_owned(),
            reason: reply.text("error-reason").unwrap_or_default().to_owned(),
        }),
        None => Err(garbage("no result".to_owned())),
    }
}

/// The replies awaited, by cookie.
type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<Vec<u8>>>>>;

/// An rtpengine's ng control socket. Cheap to clone (clones share the socket); the task reading
/// replies ends when the last clone is dropped.
#[derive(Clone, Debug)]
pub struct RtpEngine {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    socket: Arc<UdpSocket>,
    addr: SocketAddr,
    timing: Timing,
    pending: Pending,
    /// This client's cookie prefix (random), then a counter.
    cookie_prefix: String,
    next: AtomicU64,
    receiver: tokio::task::JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.receiver.abort();
    }
}

impl RtpEngine {
    /// A client of the ng socket at `addr` (rtpengine's `--listen-ng`), on a UDP socket of its own
    /// (any port) of `addr`'s family, with [`DEFAULT_TIMING`].
    ///
    /// # Errors
    /// The socket's bind error.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub async fn connect(addr: SocketAddr) -> std::io::Result<RtpEngine> {
        RtpEngine::with_timing(addr, DEFAULT_TIMING).await
    }

    /// [`RtpEngine::connect`] with its own `timing`.
    ///
    /// # Errors
    /// The socket's bind error.
    pub async fn with_timing(addr: SocketAddr, timing: Timing) -> std::io::Result<RtpEngine> {
        let local: SocketAddr = if addr.is_ipv4() {
            "0.0.0.0:0".parse().expect("an address")
        } else {
            "[::]:0".parse().expect("an address")
        };
        let socket = Arc::new(UdpSocket::bind(local).await?);
        let pending: Pending = Arc::default();
        let receiver = tokio::spawn(receive(socket.clone(), addr, pending.clone()));
        Ok(RtpEngine {
            inner: Arc::new(Inner {
                socket,
                addr,
                timing,
                pending,
                cookie_prefix: uuid::Uuid::new_v4().simple().to_string()[..8].to_owned(),
                next: AtomicU64::new(1),
                receiver,
            }),
        })
    }

    /// Where it sends.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// Sends `command` with `params` and waits for its reply (see the module's doc); counts a
    /// failure in [`crate::metric_names::RTPENGINE_ERRORS`].
    ///
    /// # Errors
    /// [`RtpEngineError`].
    pub async fn request(
        &self,
        command: &'static str,
        params: &[(&str, Value)],
    ) -> Result<Reply, RtpEngineError> {
        let result = self.exchange(command, params).await;
        if result.is_err() {
            metrics::counter!(crate::metric_names::RTPENGINE_ERRORS, "command" => command)
                .increment(1);
        }
        result
    }

    async fn exchange(
        &self,
        command: &'static str,
        params: &[(&str, Value)],
    ) -> Result<Reply, RtpEngineError> {
        let inner = &self.inner;
        let cookie = format!(
            "{}_{}",
            inner.cookie_prefix,
            inner.next.fetch_add(1, Ordering::Relaxed)
        );
        let datagram = encode_request(&cookie, command, params);
        let (tx, mut rx) = oneshot::channel();
        let _forget = Forget {
            pending: &inner.pending,
            cookie: &cookie,
        };
        inner
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(cookie.clone(), tx);
        let tries = inner.timing.tries.max(1);
        for _ in 0..tries {
            inner
                .socket
                .send_to(&datagram, inner.addr)
                .await
                .map_err(|source| RtpEngineError::Io { command, source })?;
            match tokio::time::timeout(inner.timing.timeout, &mut rx).await {
                Ok(Ok(body)) => return decode_reply(command, &body),
                Ok(Err(_)) => break,
                Err(_) => {}
            }
        }
        Err(RtpEngineError::Timeout {
            command,
            tries,
            timeout: inner.timing.timeout,
        })
    }

    /// `ping`: whether rtpengine answers (`pong`).
    ///
    /// # Errors
    /// [`RtpEngineError`].
    pub async fn ping(&self) -> Result<(), RtpEngineError> {
        self.request("ping", &[]).await.map(|_| ())
    }

    /// `offer`: rtpengine takes `sdp`, the offer of the party tagged `from_tag` in call `call_id`,
    /// applies `flags`, and returns the offer to send on.
    ///
    /// # Errors
    /// [`RtpEngineError`]; [`RtpEngineError::Garbage`] when the reply has no `sdp`.
    pub async fn offer(
        &self,
        call_id: &str,
        from_tag: &str,
        sdp: &str,
        flags: &[(&'static str, Param)],
    ) -> Result<String, RtpEngineError> {
        let params = call_params(call_id, from_tag, sdp, flags);
        let reply = self.request("offer", &params).await?;
        sdp_of(reply, "offer")
    }

    /// `answer`: rtpengine takes `sdp`, the answer of the party tagged `to_tag` to the offer of
    /// `from_tag` in call `call_id`, applies `flags`, and returns the answer to send on.
    ///
    /// # Errors
    /// [`RtpEngineError`]; [`RtpEngineError::Garbage`] when the reply has no `sdp`.
    pub async fn answer(
        &self,
        call_id: &str,
        from_tag: &str,
        to_tag: &str,
        sdp: &str,
        flags: &[(&'static str, Param)],
    ) -> Result<String, RtpEngineError> {
        let mut params = call_params(call_id, from_tag, sdp, flags);
        params.push(("to-tag", bytes(to_tag)));
        let reply = self.request("answer", &params).await?;
        sdp_of(reply, "answer")
    }

    /// `delete`: rtpengine forgets call `call_id`, every leg of it, and frees its ports.
    ///
    /// # Errors
    /// [`RtpEngineError`] (`Refused` when rtpengine does not know the call).
    pub async fn delete(&self, call_id: &str) -> Result<(), RtpEngineError> {
        self.request("delete", &[("call-id", bytes(call_id))])
            .await
            .map(|_| ())
    }

    /// `query`: what rtpengine holds for call `call_id` (its `tags`, `totals`, ...).
    ///
    /// # Errors
    /// [`RtpEngineError`] (`Refused` when rtpengine does not know the call).
    pub async fn query(&self, call_id: &str) -> Result<Reply, RtpEngineError> {
        self.request("query", &[("call-id", bytes(call_id))]).await
    }

    /// `list`: the call-ids rtpengine holds, at most `limit` of them.
    ///
    /// # Errors
    /// [`RtpEngineError`].
    pub async fn list(&self, limit: u32) -> Result<Vec<String>, RtpEngineError> {
        let reply = self
            .request("list", &[("limit", Value::Int(i64::from(limit)))])
            .await?;
        Ok(reply.texts("calls"))
    }
}

/// The parameters every offer and answer carries: the call, the offerer's tag, the SDP, the flags.
fn call_params(
    call_id: &str,
    from_tag: &str,
    sdp: &str,
    flags: &[(&'static str, Param)],
) -> Vec<(&'static str, Value)> {
    let mut params = vec![
        ("call-id", bytes(call_id)),
        ("from-tag", bytes(from_tag)),
        ("sdp", bytes(sdp)),
    ];
    params.extend(flags.iter().map(|(key, value)| (*key, value.value())));
    params
}

/// The `sdp` of an offer's or answer's reply.
fn sdp_of(reply: Reply, command: &'static str) -> Result<String, RtpEngineError> {
    reply
        .text("sdp")
        .map(str::to_owned)
        .ok_or_else(|| RtpEngineError::Garbage {
            command,
            why: "no sdp in the reply".to_owned(),
        })
}

/// Takes a request's cookie out of the pending table when the request ends, however it ends.
struct Forget<'a> {
    pending: &'a Pending,
    cookie: &'a str,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(self.cookie);
    }
}

/// Reads replies and hands each to the request waiting for its cookie. Datagrams from elsewhere
/// than `from`, without a cookie, or for no pending request (a late reply to a retried request) are
/// dropped.
async fn receive(socket: Arc<UdpSocket>, from: SocketAddr, pending: Pending) {
    let mut buf = vec![0; MAX_DATAGRAM];
    loop {
        let (len, source) = match socket.recv_from(&mut buf).await {
            Ok(got) => got,
            Err(e) => {
                // ICMP port unreachable surfaces here on some systems: the request times out.
                tracing::trace!(error = %e, "rtpengine: receive");
                continue;
            }
        };
        if source != from {
            continue;
        }
        let Some((cookie, body)) = split_cookie(&buf[..len]) else {
            tracing::debug!("rtpengine: a datagram without a cookie dropped");
            continue;
        };
        let waiting = pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(cookie);
        if let Some(tx) = waiting {
            let _ = tx.send(body.to_vec());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_the_cookie_then_a_sorted_dictionary() {
        let datagram = encode_request(
            "c1",
            "offer",
            &[
                ("sdp", bytes("v=0")),
                ("call-id", bytes("x")),
                ("rtcp-mux", Param::List(&["demux"]).value()),
                (
                    "codec",
                    Param::Dict(&[("transcode", Param::List(&["PCMU", "PCMA"]))]).value(),
                ),
                ("limit", Value::Int(5)),
            ],
        );
        assert_eq!(
            String::from_utf8(datagram).unwrap(),
            "c1 d7:call-id1:x5:codecd9:transcodel4:PCMU4:PCMAee7:command5:offer\
             5:limiti5e8:rtcp-muxl5:demuxe3:sdp3:v=0e"
        );
    }

    #[test]
    fn replies_decode_by_result() {
        let ok = decode_reply("offer", b"d6:result2:ok3:sdp3:v=0e").unwrap();
        assert_eq!(ok.text("sdp"), Some("v=0"));
        assert!(decode_reply("ping", b"d6:result4:ponge").is_ok());
        let list = decode_reply("list", b"d6:result2:ok5:callsl1:a1:bee").unwrap();
        assert_eq!(list.texts("calls"), ["a", "b"]);
        assert_eq!(list.texts("nothing"), Vec::<String>::new());
        match decode_reply(
            "answer",
            b"d6:result5:error12:error-reason15:Unknown call-ide",
        ) {
            Err(RtpEngineError::Refused {
                command, reason, ..
            }) => {
                assert_eq!(command, "answer");
                assert_eq!(reason, "Unknown call-id");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decode_reply("ping", b"not bencode"),
            Err(RtpEngineError::Garbage { .. })
        ));
        assert!(matches!(
            decode_reply("ping", b"li1ee"),
            Err(RtpEngineError::Garbage { .. })
        ));
        assert!(matches!(
            decode_reply("ping", b"d3:foo3:bare"),
            Err(RtpEngineError::Garbage { .. })
        ));
    }

    #[test]
    fn cookies_split_at_the_first_space() {
        assert_eq!(
            split_cookie(b"abc_1 d6:result2:oke"),
            Some(("abc_1", &b"d6:result2:oke"[..]))
        );
        assert_eq!(split_cookie(b"nospace"), None);
        assert_eq!(split_cookie(b" d6:result2:oke"), None);
    }

    /// A fake rtpengine on a port of its own: answers each request with what `answer` makes of
    /// its cookie and body (none: stays silent), and counts the datagrams it got.
    async fn fake(
        answer: impl Fn(&str, &[u8]) -> Option<Vec<u8>> + Send + 'static,
    ) -> (SocketAddr, Arc<AtomicU64>) {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let got = Arc::new(AtomicU64::new(0));
        let counted = got.clone();
        tokio::spawn(async move {
            let mut buf = vec![0; MAX_DATAGRAM];
            while let Ok((len, from)) = socket.recv_from(&mut buf).await {
                counted.fetch_add(1, Ordering::Relaxed);
                let (cookie, body) = split_cookie(&buf[..len]).unwrap();
                if let Some(reply) = answer(cookie, body) {
                    let _ = socket.send_to(&reply, from).await;
                }
            }
        });
        (addr, got)
    }

    const QUICK: Timing = Timing {
        timeout: Duration::from_millis(100),
        tries: 2,
    };

    #[tokio::test]
    async fn an_offer_gets_the_sdp_of_the_reply_with_its_cookie() {
        let (addr, _) = fake(|cookie, body| {
            let request: Value = serde_bencode::from_bytes(body).unwrap();
            let Value::Dict(dict) = request else { panic!() };
            assert_eq!(dict[&b"command"[..]], bytes("offer"));
            assert_eq!(dict[&b"call-id"[..]], bytes("call-1"));
            assert_eq!(dict[&b"from-tag"[..]], bytes("tag-1"));
            assert_eq!(dict[&b"ICE"[..]], bytes("remove"));
            assert_eq!(dict[&b"sdp"[..]], bytes("v=0"));
            Some(format!("{cookie} d6:result2:ok3:sdp7:v=0 newe").into_bytes())
        })
        .await;
        let engine = RtpEngine::with_timing(addr, QUICK).await.unwrap();
        let sdp = engine
            .offer("call-1", "tag-1", "v=0", &[("ICE", Param::Text("remove"))])
            .await
            .unwrap();
        assert_eq!(sdp, "v=0 new");
        // Cookies differ from one request to the next, and nothing stays pending.
        engine
            .offer("call-1", "tag-1", "v=0", &[("ICE", Param::Text("remove"))])
            .await
            .unwrap();
        assert!(engine.inner.pending.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_silent_rtpengine_times_out_after_the_tries() {
        let (addr, got) = fake(|_, _| None).await;
        let engine = RtpEngine::with_timing(addr, QUICK).await.unwrap();
        let started = tokio::time::Instant::now();
        let error = engine.ping().await.unwrap_err();
        assert!(
            matches!(error, RtpEngineError::Timeout { tries: 2, .. }),
            "{error}"
        );
        assert!(error.maybe_done());
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(got.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn a_retry_that_is_answered_succeeds() {
        let (addr, got) = fake({
            let seen = AtomicU64::new(0);
            move |cookie, _| {
                (seen.fetch_add(1, Ordering::Relaxed) > 0)
                    .then(|| format!("{cookie} d6:result4:ponge").into_bytes())
            }
        })
        .await;
        let engine = RtpEngine::with_timing(addr, QUICK).await.unwrap();
        engine.ping().await.unwrap();
        assert_eq!(got.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn errors_and_garbage_are_typed() {
        let (addr, _) = fake(|cookie, body| {
            let text = String::from_utf8_lossy(body);
            Some(if text.contains("6:delete") {
                format!("{cookie} d6:result5:error12:error-reason15:Unknown call-ide").into_bytes()
            } else if text.contains("5:query") {
                format!("{cookie} garbage").into_bytes()
            } else {
                format!("{cookie} d6:result2:oke").into_bytes()
            })
        })
        .await;
        let engine = RtpEngine::with_timing(addr, QUICK).await.unwrap();
        let refused = engine.delete("x").await.unwrap_err();
        assert!(
            matches!(&refused, RtpEngineError::Refused { reason, .. } if reason == "Unknown call-id"),
            "{refused}"
        );
        assert!(!refused.maybe_done());
        assert!(matches!(
            engine.query("x").await,
            Err(RtpEngineError::Garbage {
                command: "query",
                ..
            })
        ));
        // An offer answered without an SDP.
        assert!(matches!(
            engine.offer("x", "t", "v=0", &[]).await,
            Err(RtpEngineError::Garbage {
                command: "offer",
                ..
            })
        ));
        assert_eq!(engine.list(10).await.unwrap(), Vec::<String>::new());
    }
}
