//! Audio both ways between a browser and a real SIP phone, through rtpengine (PROTOCOL.md section
//! 13): the real binary with `--phone-network sip --sip-trunk <baresip> --rtpengine <ng>`, a real
//! rtpengine (tests/support/rtpengine.rs), a real SIP phone (baresip, tests/support/baresip.rs:
//! G.711 only, its microphone a 1000 Hz sine, recording what it hears) and the softphone page in
//! headless Chromium (tests/support/softphone.rs; its fake microphone a 600 Hz sine from a WAV file).
//!
//! Each case checks what a person would: the page hears the phone (`getStats` inbound RTP packets
//! and audio energy rising, and a WebAudio analyser on the page's remote stream peaking at the
//! phone's 1000 Hz), the phone hears the page (the last second of baresip's recording is mostly
//! 600 Hz, by Goertzel), and rtpengine relays packets from both legs (ng `query`). The browser
//! speaks opus over DTLS-SRTP with ICE, the phone plain RTP with PCMU: rtpengine transcodes.
//!
//! Cases: (1) the page calls the phone, which answers; (2) the phone calls the page, which answers
//! (the core also rings the page's number's mobile phone through the trunk: baresip refuses that
//! fork with 404, as it has no account for the number); (3) the page holds and resumes a call with
//! the phone with its Hold button: each is a re-offer that reaches the phone as a re-INVITE
//! (`sendonly`, then `sendrecv`), the phone hears silence while held and both hear each other again
//! after.
//!
//! The tools come from Debian (`scripts/install-test-tools`; `scripts/test` exports `CHROMIUM`,
//! `CHROMEDRIVER`, `RTPENGINE` and `BARESIP`); without them these tests fail, never skip. Every
//! wait polls a condition against a deadline; screenshots of failures go to `browser-artifacts/`
//! in the target directory (or `BROWSER_ARTIFACTS`).

#[path = "support/baresip.rs"]
mod baresip;
#[path = "support/binary.rs"]
mod binary;
#[path = "support/owned_ports.rs"]
mod owned_ports;
#[path = "support/rtpengine.rs"]
mod rtpengine;
#[path = "support/softphone.rs"]
mod softphone;

use baresip::Baresip;
use rtpengine::RtpEngineProcess;
use serde_bencode::value::Value as Bencode;
use softphone::{Page, WebDriver, POLL, WAIT};
use std::time::{Duration, Instant};
use webterminal_core::auth;
use webterminal_core::core::Msisdn;
use webterminal_core::phone::sip::rtpengine::RtpEngine;

const SECRET: &str = "sip-audio-test-secret";
/// The page's number.
const BROWSER: &str = "+4799990001";
/// The SIP phone's number (baresip's account).
const PHONE: &str = "+4799000003";
/// The page's fake microphone: a sine at this frequency.
const BROWSER_TONE: u32 = 600;
/// baresip's microphone: a sine at this frequency.
const PHONE_TONE: u32 = 1000;
/// How many packets each leg must have sent rtpengine for media to count as flowing.
const PACKETS: i64 = 50;

// ---- rtpengine's view ------------------------------------------------------------------------

/// One ng `query` of call `call_id` at `engine`: the reply's dictionary (bencoded, read here as
/// values: the library's client keeps its replies' nested values to itself). Each query has a
/// cookie of its own: rtpengine answers a cookie it has seen from its cache.
fn query(engine: std::net::SocketAddr, call_id: &str) -> Bencode {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let cookie = format!("sip-audio-{}-{n} ", std::process::id());
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let body = Bencode::Dict(
        [("command", "query"), ("call-id", call_id)]
            .into_iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), Bencode::Bytes(v.as_bytes().to_vec())))
            .collect(),
    );
    let mut datagram = cookie.as_bytes().to_vec();
    datagram.extend(serde_bencode::to_bytes(&body).unwrap());
    socket.send_to(&datagram, engine).unwrap();
    let mut buffer = vec![0u8; 65_536];
    let (len, _) = socket.recv_from(&mut buffer).expect("rtpengine answers");
    let reply = buffer[..len]
        .strip_prefix(cookie.as_bytes())
        .expect("our cookie");
    serde_bencode::from_bytes(reply).expect("a bencoded reply")
}

fn field<'a>(value: &'a Bencode, key: &str) -> Option<&'a Bencode> {
    match value {
        Bencode::Dict(dict) => dict.get(key.as_bytes()),
        _ => None,
    }
}

fn list(value: Option<&Bencode>) -> &[Bencode] {
    match value {
        Some(Bencode::List(items)) => items,
        _ => &[],
    }
}

/// The RTP (and RTCP) packets rtpengine received from each leg of its only call, by leg (tag),
/// sorted by tag (ng `list`, then `query`).
async fn packets_by_leg(engine: &RtpEngine) -> Vec<(String, i64)> {
    let calls = engine.list(10).await.unwrap();
    let [call] = calls.as_slice() else {
        panic!("rtpengine holds {calls:?}, not one call");
    };
    let reply = query(engine.addr(), call);
    let Some(Bencode::Dict(tags)) = field(&reply, "tags") else {
        panic!("no tags in rtpengine's query: {reply:?}");
    };
    let mut legs: Vec<(String, i64)> = tags
        .iter()
        .map(|(tag, leg)| {
            let packets = list(field(leg, "medias"))
                .iter()
                .flat_map(|media| list(field(media, "streams")))
                .filter_map(|stream| match field(field(stream, "stats")?, "packets")? {
                    Bencode::Int(n) => Some(*n),
                    _ => None,
                })
                .sum();
            (String::from_utf8_lossy(tag).into_owned(), packets)
        })
        .collect();
    legs.sort();
    legs
}

/// Waits until rtpengine's call has two legs, each having sent it [`PACKETS`] more packets than in
/// `before` (empty: none); returns the counts.
async fn expect_packets_both_ways(
    engine: &RtpEngine,
    before: &[(String, i64)],
) -> Vec<(String, i64)> {
    let deadline = Instant::now() + WAIT;
    loop {
        let legs = packets_by_leg(engine).await;
        let grew = legs.len() == 2
            && legs.iter().all(|(tag, n)| {
                let was = before.iter().find(|(t, _)| t == tag).map_or(0, |(_, n)| *n);
                *n >= was + PACKETS
            });
        if grew {
            return legs;
        }
        assert!(
            Instant::now() < deadline,
            "rtpengine's legs received {legs:?} packets (before: {before:?})"
        );
        tokio::time::sleep(POLL).await;
    }
}

// ---- the phone's ears --------------------------------------------------------------------------

/// Waits until the last second of what `phone` heard is mostly the page's tone.
async fn expect_phone_hears_the_page(phone: &Baresip) {
    let deadline = Instant::now() + WAIT;
    loop {
        let heard = phone
            .heard()
            .and_then(|path| baresip::last_seconds_of(&path, 1.0, f64::from(BROWSER_TONE)));
        if heard.is_some_and(|t| t.rms > 300.0 && t.share > 0.5) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the phone does not hear the page's {BROWSER_TONE} Hz: {heard:?}; its events {:?}, \
             its log:\n{}",
            phone.events(),
            phone.log()
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until `phone` hears nothing of the page: the last second of its recording is silence, or
/// the recording has not grown for a second (no audio comes at all).
async fn expect_phone_hears_nothing(phone: &Baresip) {
    let deadline = Instant::now() + WAIT;
    let mut last = (None, Instant::now());
    loop {
        let path = phone.heard();
        let size = path
            .as_ref()
            .and_then(|p| Some((p.clone(), std::fs::metadata(p).ok()?.len())));
        if size != last.0 {
            last = (size, Instant::now());
        } else if last.1.elapsed() >= Duration::from_secs(1) {
            return;
        }
        let heard = path
            .as_deref()
            .and_then(|p| baresip::last_seconds_of(p, 1.0, f64::from(BROWSER_TONE)));
        if heard.is_some_and(|t| t.rms < 30.0) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the phone still hears the page: {heard:?}; its events {:?}, its log:\n{}",
            phone.events(),
            phone.log()
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until `phone` has seen `n` events that `matches`.
async fn expect_events(
    phone: &Baresip,
    what: &str,
    n: usize,
    matches: impl Fn(&str, &str) -> bool,
) {
    let deadline = Instant::now() + WAIT;
    while phone.count_where(&matches) < n {
        assert!(
            Instant::now() < deadline,
            "baresip: waited for {n} {what}; events {:?}; its log:\n{}",
            phone.events(),
            phone.log()
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until `phone` has seen `n` events of `kind`.
async fn expect_event(phone: &Baresip, kind: &str, n: usize) {
    expect_events(phone, kind, n, |k, _| k == kind).await;
}

/// Whether a baresip event is an offer received (`CALL_REMOTE_SDP` `offer`: the INVITE of a call to
/// it, and each re-INVITE).
fn is_offer(kind: &str, param: &str) -> bool {
    kind == "CALL_REMOTE_SDP" && param == "offer"
}

// ---- the whole rig -----------------------------------------------------------------------------

/// rtpengine, baresip, the core between them, and the page registered as [`BROWSER`].
struct Rig {
    page: Page,
    phone: Baresip,
    engine: RtpEngine,
    engine_process: RtpEngineProcess,
    core: binary::Started,
    _webdriver: WebDriver,
    _dir: tempfile::TempDir,
}

/// A failed case shows what rtpengine and baresip logged.
impl Drop for Rig {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- rtpengine's log:\n{}\n---- baresip's log:\n{}\n---- baresip's events: {:?}",
                self.engine_process.log(),
                self.phone.log(),
                self.phone.events()
            );
        }
    }
}

impl Rig {
    /// Starts rtpengine, baresip and the core while Chromium starts; then opens the page and
    /// registers it.
    async fn start(name: &str) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let tone = dir.path().join("page-tone.wav");
        baresip::write_tone_wav(&tone, 48_000, BROWSER_TONE, 1);
        let servers = tokio::task::spawn_blocking(|| {
            let engine = RtpEngineProcess::start();
            let phone = Baresip::start(PHONE, PHONE_TONE);
            let trunk = format!("sip:{}", phone.sip);
            let ng = engine.ng.to_string();
            let args = [
                "--phone-network",
                "sip",
                "--sip-listen",
                "127.0.0.1:0",
                "--sip-trunk",
                &trunk,
                "--rtpengine",
                &ng,
                "--jwt-secret",
                SECRET,
                "--records",
                "none",
            ];
            let core = binary::serve_on_free_ports(&args, false);
            (engine, phone, core)
        });
        let webdriver = WebDriver::start().await;
        let page = webdriver
            .launch(&format!("sip-audio-{name}"), Some(tone.as_path()))
            .await;
        let (engine_process, phone, core) = servers.await.unwrap();
        page.goto(&format!("http://127.0.0.1:{}/", core.port)).await;
        let token = auth::mint_token(
            SECRET.as_bytes(),
            &Msisdn::parse(BROWSER).unwrap(),
            auth::REQUIRED_SCOPE,
            Duration::from_secs(3600),
        );
        page.type_into("#token", &token).await;
        page.register().await;
        let engine = RtpEngine::connect(engine_process.ng).await.unwrap();
        Rig {
            page,
            phone,
            engine,
            engine_process,
            core,
            _webdriver: webdriver,
            _dir: dir,
        }
    }

    /// The page dials the phone, which answers; returns the page's call id.
    async fn page_calls_the_phone(&mut self) -> String {
        self.page.type_into("#number", PHONE).await;
        self.page.click("#call").await;
        let id = self.page.wait_call("active", Some(PHONE)).await;
        expect_event(&self.phone, "CALL_ESTABLISHED", 1).await;
        id
    }

    /// Audio both ways: the page hears the phone's tone, the phone the page's, rtpengine relays
    /// both legs (each beyond `before`); returns rtpengine's packet counts.
    async fn expect_audio_both_ways(
        &self,
        id: &str,
        before: &[(String, i64)],
    ) -> Vec<(String, i64)> {
        self.page.wait_audio(id).await;
        self.page.wait_tone(id, f64::from(PHONE_TONE)).await;
        expect_phone_hears_the_page(&self.phone).await;
        expect_packets_both_ways(&self.engine, before).await
    }

    /// Waits until rtpengine holds no call.
    async fn expect_engine_empty(&self) {
        let deadline = Instant::now() + WAIT;
        loop {
            let calls = self.engine.list(10).await.unwrap();
            if calls.is_empty() {
                return;
            }
            assert!(Instant::now() < deadline, "rtpengine still holds {calls:?}");
            tokio::time::sleep(POLL).await;
        }
    }

    async fn close(self) {
        let _ = self.page.client.clone().close().await;
    }
}

/// (1) The page calls the phone: baresip answers, each hears the other's tone through rtpengine
/// (opus and DTLS-SRTP toward the page, PCMU toward the phone); the page hangs up, the phone sees
/// the call end and rtpengine forgets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_calls_a_sip_phone_and_they_hear_each_other() {
    let mut rig = Rig::start("1").await;
    let id = rig.page_calls_the_phone().await;
    rig.expect_audio_both_ways(&id, &[]).await;
    rig.page.screenshot("in-call").await;

    rig.page.call_button(&id, "hangup").await;
    expect_event(&rig.phone, "CALL_CLOSED", 1).await;
    rig.expect_engine_empty().await;
    rig.close().await;
}

/// (2) The phone calls the page through the core: the page rings and answers, each hears the other;
/// the phone hangs up, the page's call ends and rtpengine forgets it. (The call is not forked back
/// to the trunk for the page's number's own phone: with rtpengine that fork once broke the page's
/// audio, docs/SIP_TRUNK.md.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sip_phone_calls_a_browser_and_they_hear_each_other() {
    let mut rig = Rig::start("2").await;
    let uri = format!("sip:{BROWSER}@127.0.0.1:{}", rig.core.sip_port.unwrap());
    rig.phone.dial(&uri);
    let id = rig.page.wait_call("incoming", Some(PHONE)).await;
    rig.page.click("#banner-accept").await;
    rig.page
        .wait_call_state(&id, "active", |c| c["state"] == "active")
        .await;
    expect_event(&rig.phone, "CALL_ESTABLISHED", 1).await;
    rig.expect_audio_both_ways(&id, &[]).await;
    rig.page.screenshot("in-call").await;

    rig.phone.hang_up();
    rig.page
        .wait_call_state(&id, "ended", |c| c["state"] == "ended")
        .await;
    rig.expect_engine_empty().await;
    rig.close().await;
}

/// (3) The page holds the call with its Hold button: a `sendonly` re-offer that reaches the phone as
/// a re-INVITE, which the phone answers; the page shows the call held and the phone hears silence.
/// Resume is another re-INVITE, after which both hear each other again and rtpengine relays both
/// legs anew.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_holds_and_resumes_a_call_with_a_sip_phone_through_re_invites() {
    let mut rig = Rig::start("3").await;
    let id = rig.page_calls_the_phone().await;
    rig.expect_audio_both_ways(&id, &[]).await;
    let offered = rig.phone.count_where(is_offer);

    rig.page.call_button(&id, "hold").await;
    rig.page
        .wait_call_state(&id, "held", |c| {
            c["held"] == true && c["negotiating"].is_null()
        })
        .await;
    expect_events(&rig.phone, "re-INVITE (hold)", offered + 1, is_offer).await;
    expect_phone_hears_nothing(&rig.phone).await;
    rig.page.screenshot("held").await;

    rig.page.call_button(&id, "hold").await;
    rig.page
        .wait_call_state(&id, "resumed", |c| {
            c["held"] == false && c["negotiating"].is_null()
        })
        .await;
    expect_events(&rig.phone, "re-INVITE (resume)", offered + 2, is_offer).await;
    let resumed = packets_by_leg(&rig.engine).await;
    rig.expect_audio_both_ways(&id, &resumed).await;
    rig.page.screenshot("resumed").await;
    assert_eq!(
        rig.phone.count("CALL_CLOSED"),
        0,
        "{:?}",
        rig.phone.events()
    );

    rig.page.call_button(&id, "hangup").await;
    expect_event(&rig.phone, "CALL_CLOSED", 1).await;
    rig.expect_engine_empty().await;
    rig.close().await;
}
