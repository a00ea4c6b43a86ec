//! The SIP trunk as the phone network (PROTOCOL.md section 13), end to end: the real binary with
//! `--phone-network sip`, terminals on MultiPipe, and SIPp (Debian's `sip-tester`; `$SIPP`, else
//! `sipp` on the PATH, installed by scripts/install-test-tools) as the trunk's far end, playing the
//! scenarios in tests/sip/. Each SIPp run must end with its call successful: the scenarios check
//! what the core sends (numbers, X- headers, the BYE's Reason, the answer SDP) with `<ereg>`
//! checks, and a failed check fails the call.
//!
//! Cases (g) to (j), and (k), (l) and (m) once more, anchor the media in a real rtpengine
//! (`$RTPENGINE`, else `rtpengine` on the PATH, installed by scripts/install-test-tools), started
//! per test on loopback by tests/support/rtpengine.rs, and look at its calls through the core's own
//! ng client.

#[path = "support/binary.rs"]
mod binary;
#[path = "support/owned_ports.rs"]
mod owned_ports;
#[path = "support/rtpengine.rs"]
mod rtpengine;

use binary::*;
// SIPp cannot report the port it bound: its port is the one chosen ahead in these tests.
use owned_ports::free_udp_port;
use rtpengine::RtpEngineProcess;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use webterminal_core::phone::sip::rtpengine::RtpEngine;
use webterminal_core::proto::common::PhoneNumber;
use webterminal_core::proto::webterminal::bye::Reason;
use webterminal_core::proto::webterminal::error::Code as ErrCode;
use webterminal_core::proto::webterminal::web_terminal_message::Message;
use webterminal_core::proto::webterminal::{
    action, Action, Answer, Bye, Offer, Ringing, ToPhone, Transfer, WebTerminalMessage,
};

const SECRET: &str = "sip-trunk-test-secret";
/// The terminal's number (a caller in (a) and (b), the callee in (c)).
const TERMINAL: &str = "+4799000002";
/// The phone's number behind the trunk in (a) and (b).
const PHONE: &str = "+4799000002";
/// The caller of (a) and (b), a terminal.
const CALLER: &str = "+4799000001";

/// A SIPp run, killed (and reaped) on drop; its message trace is kept to show on failure.
struct Sipp {
    child: Option<Child>,
    trace: tempfile::TempDir,
    port: u16,
}

impl Drop for Sipp {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Sipp {
    /// Starts SIPp with the scenario `tests/sip/<scenario>` for one call on a port of its own, as a
    /// UAS (`remote` none) or as a UAC calling `remote` (`127.0.0.1:port`).
    fn start(scenario: &str, remote: Option<String>) -> Sipp {
        Sipp::start_on(scenario, free_udp_port(), remote)
    }

    /// SIPp on `port` as a UAC playing `scenario` toward `core`'s SIP port: a phone calling in.
    fn call_the_core(scenario: &str, port: u16, core: &Started) -> Sipp {
        let remote = format!("127.0.0.1:{}", core.sip_port.unwrap());
        Sipp::start_on(scenario, port, Some(remote))
    }

    /// [`Sipp::start`] on `port`.
    fn start_on(scenario: &str, port: u16, remote: Option<String>) -> Sipp {
        Sipp::spawn(scenario, port, remote, &["-m", "1", "-l", "1"])
    }

    /// [`Sipp::start`] as a UAS for `calls` calls (all at once if they come so).
    fn start_calls(scenario: &str, calls: u32) -> Sipp {
        let calls = calls.to_string();
        Sipp::spawn(
            scenario,
            free_udp_port(),
            None,
            &["-m", &calls, "-l", &calls],
        )
    }

    /// SIPp as a UAS on `port` playing `tests/sip/<scenario>` for every call that comes, until it is
    /// dropped (killed).
    fn serve_on(scenario: &str, port: u16) -> Sipp {
        Sipp::spawn(scenario, port, None, &[])
    }

    /// SIPp with `limits` (`-m`, `-l`).
    fn spawn(scenario: &str, port: u16, remote: Option<String>, limits: &[&str]) -> Sipp {
        let sipp = std::env::var("SIPP").unwrap_or_else(|_| "sipp".into());
        let trace = tempfile::tempdir().unwrap();
        let media_port = free_udp_port();
        let path = format!("{}/tests/sip/{scenario}", env!("CARGO_MANIFEST_DIR"));
        let mut command = Command::new(&sipp);
        command
            .args(["-sf", &path, "-i", "127.0.0.1"])
            .args(limits)
            .args(["-p", &port.to_string(), "-mp", &media_port.to_string()])
            // A missing message fails the call instead of hanging the test.
            .args(["-recv_timeout", "15000", "-timeout", "30s"])
            .args(["-trace_msg", "-trace_err"])
            .current_dir(trace.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(remote) = remote {
            command.arg(remote);
        }
        let child = command.spawn().unwrap_or_else(|e| {
            panic!("SIPp ({sipp}) does not start: {e}; scripts/install-test-tools installs it")
        });
        Sipp {
            child: Some(child),
            trace,
            port,
        }
    }

    /// Waits (up to 20 s) for SIPp to end and fails the test, showing its trace, unless its call
    /// succeeded (exit status 0).
    fn expect_success(&mut self) {
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if status.is_some_and(|s| s.success()) {
            return;
        }
        let mut shown = String::new();
        for entry in std::fs::read_dir(self.trace.path()).unwrap().flatten() {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            shown.push_str(&format!("==> {}\n{text}\n", entry.path().display()));
        }
        panic!("SIPp's call failed (exit {status:?}):\n{shown}");
    }
}

/// The core with the SIP trunk pointed at `trunk_port`, on ports of its own, plus `args`.
fn core(trunk_port: u16, args: &[&str]) -> Started {
    core_with(trunk_port, args, false)
}

/// [`core`], serving metrics (and /readyz) on a port of its own when `metrics`. OPTIONS pings are
/// off unless `args` set `--sip-options-interval`: a scenario playing one call would take a ping
/// for an unexpected message.
fn core_with(trunk_port: u16, args: &[&str], metrics: bool) -> Started {
    core_listening(0, trunk_port, args, metrics)
}

/// [`core_with`], its SIP trunk listening on 127.0.0.1:`sip_port` (0: a port of its own; else the
/// port an earlier run reported, rebound).
fn core_listening(sip_port: u16, trunk_port: u16, args: &[&str], metrics: bool) -> Started {
    let trunk = format!("sip:127.0.0.1:{trunk_port}");
    let listen = format!("127.0.0.1:{sip_port}");
    let mut all = vec![
        "--phone-network",
        "sip",
        "--sip-listen",
        &listen,
        "--sip-trunk",
        &trunk,
        "--jwt-secret",
        SECRET,
        "--records",
        "none",
    ];
    if !args.contains(&"--sip-options-interval") {
        all.extend_from_slice(&["--sip-options-interval", "0"]);
    }
    all.extend_from_slice(args);
    let launch = binary::serve().args(&all);
    let launch = if metrics { launch.metrics() } else { launch };
    let started = match sip_port {
        0 => launch.start(),
        _ => launch.start_rebinding(),
    };
    assert!(started.sip_port.is_some(), "{}", started.stdout);
    started
}

/// Waits until the terminal on `tx`/`rx` is registered: the core answers a message on its stream
/// (an Error for a Bye on a call it does not have), so a call from a phone finds it.
async fn registered(tx: &tokio::sync::mpsc::Sender<WebTerminalMessage>, rx: &mut Stream) {
    let probe = uuid::Uuid::new_v4().to_string();
    tx.send(message(&probe, Message::Bye(Bye::default())))
        .await
        .unwrap();
    assert!(matches!(next(rx).await.message, Some(Message::Error(_))));
}

/// A minimal audio SDP (RTP/AVP, PCMU) named `name` in its `s=` line, so a scenario can find it.
fn sdp(name: &str) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns={name}\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    )
}

/// The terminal `CALLER` calls `PHONE` with call context `contact_ref = T-1234`; returns its call id.
async fn call_the_phone(tx: &tokio::sync::mpsc::Sender<WebTerminalMessage>) -> String {
    let id = uuid::Uuid::new_v4().to_string();
    let offer = Offer {
        sdp: sdp("terminal-offer"),
        msisdn: Some(PhoneNumber { e164: PHONE.into() }),
        data: [("contact_ref".to_owned(), "T-1234".to_owned())].into(),
    };
    tx.send(message(&id, Message::Offer(offer))).await.unwrap();
    id
}

/// (a) A terminal calls a phone: the trunk's UAS answers 180 then 200, the terminal gets Ringing
/// then Answer with SIPp's SDP; the terminal hangs up and SIPp gets a BYE with
/// `Reason: Q.850;cause=16` (checked by the scenario).
#[tokio::test]
async fn a_terminal_calls_a_phone_that_answers_and_hangs_up_with_a_q850_reason() {
    let mut sipp = Sipp::start("uas_answers.xml", None);
    let core = core(sipp.port, &[]);
    let (tx, mut rx) = open(core.port, SECRET, CALLER).await;
    let id = call_the_phone(&tx).await;

    let ringing = next(&mut rx).await;
    assert_eq!(ringing.call_id, id);
    assert!(
        matches!(ringing.message, Some(Message::Ringing(_))),
        "{ringing:?}"
    );
    let answer = next(&mut rx).await;
    match answer.message {
        Some(Message::Answer(Answer { sdp })) => {
            assert!(sdp.contains("s=sipp-uas-answer"), "SIPp's SDP: {sdp}")
        }
        other => panic!("expected Answer, got {other:?}"),
    }
    tx.send(message(&id, Message::Bye(Bye::default())))
        .await
        .unwrap();
    tokio::task::spawn_blocking(move || sipp.expect_success())
        .await
        .unwrap();
}

/// (b) The phone is busy (486): the terminal that called gets `Bye{BUSY}`.
#[tokio::test]
async fn a_busy_phone_is_bye_busy() {
    let mut sipp = Sipp::start("uas_busy.xml", None);
    let core = core(sipp.port, &[]);
    let (tx, mut rx) = open(core.port, SECRET, CALLER).await;
    let id = call_the_phone(&tx).await;
    let bye = next(&mut rx).await;
    assert_eq!(bye.call_id, id);
    match bye.message {
        Some(Message::Bye(bye)) => assert_eq!(bye.reason(), Reason::Busy),
        other => panic!("expected Bye, got {other:?}"),
    }
    tokio::task::spawn_blocking(move || sipp.expect_success())
        .await
        .unwrap();
}

/// (c) A phone calls a subscriber (and the call is not forked back to the trunk for the
/// subscriber's own phone): the terminal gets the Offer with SIPp's SDP, the caller's number
/// and the call context from `X-Contact-Ref`; it rings and answers; SIPp gets 180 and 200 with the
/// answer SDP (checked by the scenario), ACKs, then hangs up: the terminal gets
/// `Bye{NORMAL_CLEARING}`.
#[tokio::test]
async fn a_phone_calls_a_terminal_that_answers_then_the_phone_hangs_up() {
    // The trunk is SIPp itself; its port is chosen before the core starts, SIPp after it.
    let sipp_port = free_udp_port();
    let core = core_with(sipp_port, &[], true);
    let (tx, mut rx) = open(core.port, SECRET, TERMINAL).await;
    registered(&tx, &mut rx).await;

    let mut sipp = Sipp::call_the_core("uac_calls_terminal.xml", sipp_port, &core);
    let offered = next(&mut rx).await;
    let id = offered.call_id.clone();
    match offered.message {
        Some(Message::Offer(offer)) => {
            assert!(offer.sdp.contains("s=sipp-uac-offer"), "{}", offer.sdp);
            assert_eq!(offer.msisdn.unwrap().e164, "+4799000001");
            assert_eq!(
                offer.data.get("contact_ref").map(String::as_str),
                Some("T-42")
            );
            assert_eq!(
                offer.data.get("display_name").map(String::as_str),
                Some("Sipp Caller")
            );
        }
        other => panic!("expected Offer, got {other:?}"),
    }
    tx.send(message(&id, Message::Ringing(Ringing::default())))
        .await
        .unwrap();
    let answer = Answer {
        sdp: sdp("terminal-answer"),
    };
    tx.send(message(&id, Message::Answer(answer)))
        .await
        .unwrap();
    let bye = next(&mut rx).await;
    assert_eq!(bye.call_id, id);
    match bye.message {
        Some(Message::Bye(bye)) => assert_eq!(bye.reason(), Reason::NormalClearing),
        other => panic!("expected Bye, got {other:?}"),
    }
    tokio::task::spawn_blocking(move || sipp.expect_success())
        .await
        .unwrap();
    // The callee's own phone was not rung back through the trunk: no INVITE went out.
    let metrics = scrape(core.metrics_port.unwrap()).await;
    let invites = r#"webterminal_sip_requests_total{direction="out",method="INVITE"}"#;
    assert!(sample(&metrics, invites).unwrap_or(0.0) == 0.0, "{metrics}");
}

/// (d) An INVITE from a source outside `--sip-allow` gets 403 and nothing rings.
#[tokio::test]
async fn an_invite_from_a_source_not_allowed_is_403() {
    let sipp_port = free_udp_port();
    let core = core(sipp_port, &["--sip-allow", "10.0.0.0/8"]);
    let (tx, mut rx) = open(core.port, SECRET, TERMINAL).await;
    registered(&tx, &mut rx).await;

    let mut sipp = Sipp::call_the_core("uac_not_allowed.xml", sipp_port, &core);
    tokio::task::spawn_blocking(move || sipp.expect_success())
        .await
        .unwrap();
    // Nothing rang: the terminal was offered nothing.
    let nothing = tokio::time::timeout(Duration::from_millis(300), rx.message()).await;
    assert!(nothing.is_err(), "the terminal got {nothing:?}");
}

/// (e) The carrier routes the number back to us: SIPp, as the trunk, sends the core's own INVITE
/// back to it. The core refuses it with 482 Loop Detected (checked by the scenario) and cancels its
/// INVITE; the terminal that called gets `Bye{UNAVAILABLE}`, so no call loops.
#[tokio::test]
async fn an_invite_of_ours_that_comes_back_is_482_and_the_call_is_unavailable() {
    let mut sipp = Sipp::start("uas_loops_back.xml", None);
    let core = core(sipp.port, &[]);
    let (tx, mut rx) = open(core.port, SECRET, CALLER).await;
    let id = call_the_phone(&tx).await;
    let bye = next(&mut rx).await;
    assert_eq!(bye.call_id, id);
    match bye.message {
        Some(Message::Bye(bye)) => assert_eq!(bye.reason(), Reason::Unavailable),
        other => panic!("expected Bye, got {other:?}"),
    }
    tokio::task::spawn_blocking(move || sipp.expect_success())
        .await
        .unwrap();
}

/// Polls `GET /readyz` on `port` until its status is `want`; returns the body.
async fn expect_readyz(port: u16, want: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = http_get(port, "/readyz").await;
        if status == want {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz is {status}, not {want}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls the metrics on `port` until `series` is at least `min`; returns the scrape.
async fn expect_at_least(port: u16, series: &str, min: f64) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = scrape(port).await;
        if sample(&metrics, series).is_some_and(|v| v >= min) {
            return metrics;
        }
        assert!(
            Instant::now() < deadline,
            "{series} is not {min} or more:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// (f) OPTIONS pings and the trunk's health: while SIPp answers the pings the trunk is up
/// (`webterminal_sip_trunk_up 1`, /readyz 200; the SIP metrics count the OPTIONS sent and the
/// 200s received); once SIPp is killed it goes down within a few
/// intervals (`webterminal_sip_trunk_up 0`, /readyz 503 naming `sip_trunk_down`) and a call to a
/// phone ends with `Bye{UNAVAILABLE}` at once; a SIPp answering again brings it back up.
#[tokio::test]
async fn a_trunk_that_stops_answering_options_is_down_and_calls_fail_at_once() {
    let port = free_udp_port();
    let sipp = Sipp::serve_on("uas_options.xml", port);
    let core = core_with(port, &["--sip-options-interval", "200ms"], true);
    let metrics = core.metrics_port.unwrap();
    // Two answered pings: the trunk is up on evidence, not only as it starts.
    expect_at_least(
        metrics,
        r#"webterminal_sip_responses_total{direction="in",status="2xx"}"#,
        2.0,
    )
    .await;
    let scraped = expect_sample(metrics, "webterminal_sip_trunk_up", 1.0).await;
    let pings = sample(
        &scraped,
        r#"webterminal_sip_requests_total{direction="out",method="OPTIONS"}"#,
    );
    assert!(pings.is_some_and(|n| n >= 2.0), "{scraped}");
    assert_eq!(
        sample(
            &scraped,
            r#"webterminal_sip_requests_total{direction="in",method="INVITE"}"#
        ),
        Some(0.0),
        "{scraped}"
    );
    expect_readyz(core.port, 200).await;

    drop(sipp);
    expect_sample(metrics, "webterminal_sip_trunk_up", 0.0).await;
    let body = expect_readyz(core.port, 503).await;
    assert!(body.contains("sip_trunk_down"), "{body}");
    let (status, body) = http_get(metrics, "/readyz").await;
    assert_eq!(status, 503, "{body}");

    let (tx, mut rx) = open(core.port, SECRET, CALLER).await;
    let asked = Instant::now();
    let id = call_the_phone(&tx).await;
    let bye = next(&mut rx).await;
    assert_eq!(bye.call_id, id);
    match bye.message {
        Some(Message::Bye(bye)) => assert_eq!(bye.reason(), Reason::Unavailable),
        other => panic!("expected Bye, got {other:?}"),
    }
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );

    let _sipp = Sipp::serve_on("uas_options.xml", port);
    expect_sample(metrics, "webterminal_sip_trunk_up", 1.0).await;
    expect_readyz(core.port, 200).await;
}

/// The calls rtpengine at `engine` holds, once `want(calls)` holds (polled up to [`WAIT`]).
async fn expect_calls(engine: &RtpEngine, want: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = Instant::now() + WAIT;
    loop {
        let calls = engine.list(100).await.unwrap();
        if want(&calls) {
            return calls;
        }
        assert!(Instant::now() < deadline, "rtpengine's calls: {calls:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether `sdp` speaks WebRTC media: DTLS-SRTP over ICE with rtcp-mux.
fn assert_webrtc(sdp: &str) {
    for line in [
        "UDP/TLS/RTP/SAVPF",
        "a=ice-ufrag:",
        "a=ice-pwd:",
        "a=candidate:",
        "a=fingerprint:sha-256 ",
        "a=setup:",
        "a=rtcp-mux",
    ] {
        assert!(sdp.contains(line), "{line} in {sdp}");
    }
    assert!(!sdp.contains("a=crypto:"), "no SDES keys in {sdp}");
}

/// The terminal's WebRTC answer (PCMU) to rtpengine's offer, named `terminal-answer`.
fn webrtc_answer() -> String {
    webrtc_answer_named("terminal-answer")
}

/// The terminal's WebRTC answer (PCMU) to rtpengine's offer, named `name` in its `s=` line.
fn webrtc_answer_named(name: &str) -> String {
    let head = format!("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns={name}\r\nt=0 0\r\n");
    head + "\
     m=audio 52087 UDP/TLS/RTP/SAVPF 0\r\nc=IN IP4 127.0.0.1\r\na=rtpmap:0 PCMU/8000\r\n\
     a=candidate:1 1 udp 2122194687 127.0.0.1 52087 typ host\r\na=ice-ufrag:KjuP\r\n\
     a=ice-pwd:AGg67vqr4wcOMdnCMg7qjCRP\r\na=fingerprint:sha-256 \
     B7:6E:86:17:E4:DB:4B:E0:0E:C5:8F:1C:4C:CA:4B:53:7A:C3:33:2A:F9:B7:BE:18:68:3B:01:B7:32:E0:0D:8E\r\n\
     a=setup:active\r\na=mid:0\r\na=sendrecv\r\na=rtcp-mux\r\n"
}

/// A terminal's offer named `name`: a browser's (Chromium's) when `webrtc`, else [`sdp`].
fn terminal_offer(webrtc: bool, name: &str) -> String {
    if webrtc {
        fixture("chromium-offer.sdp").replace("\ns=-", &format!("\ns={name}"))
    } else {
        sdp(name)
    }
}

/// A terminal's answer named `name`: a browser's when `webrtc` ([`webrtc_answer_named`]), else
/// [`sdp`].
fn terminal_answer(webrtc: bool, name: &str) -> String {
    if webrtc {
        webrtc_answer_named(name)
    } else {
        sdp(name)
    }
}

/// (g) With `--rtpengine`, a terminal's WebRTC offer reaches the phone as plain RTP (RTP/AVP with
/// PCMU and PCMA, no ICE or fingerprint: checked by the scenario) and the phone's plain answer
/// reaches the terminal as WebRTC (ICE candidates, a DTLS fingerprint); rtpengine holds the call
/// while it is up and nothing once the terminal's Bye has ended it.
#[tokio::test]
async fn through_rtpengine_a_terminals_webrtc_offer_reaches_the_phone_as_plain_rtp() {
    let rtpengine = RtpEngineProcess::start();
    let engine = RtpEngine::connect(rtpengine.ng).await.unwrap();
    let mut sipp = Sipp::start("uas_answers_rtp.xml", None);
    let ng = rtpengine.ng.to_string();
    let core = core(sipp.port, &["--rtpengine", &ng]);
    let (tx, mut rx) = open(core.port, SECRET, CALLER).await;
    let id = uuid::Uuid::new_v4().to_string();
    let offer = Offer {
        sdp: fixture("chromium-offer.sdp"),
        msisdn: Some(PhoneNumber { e164: PHONE.into() }),
        data: [("contact_ref".to_owned(), "T-1234".to_owned())].into(),
    };
    tx.send(message(&id, Message::Offer(offer))).await.unwrap();

    let ringing = next(&mut rx).await;
    assert!(
        matches!(ringing.message, Some(Message::Ringing(_))),
        "{ringing:?}"
    );
    let answer = next(&mut rx).await;
    assert_eq!(answer.call_id, id);
    match answer.message {
        Some(Message::Answer(Answer { sdp })) => {
            assert!(sdp.contains("s=sipp-uas-answer"), "SIPp's answer: {sdp}");
            assert_webrtc(&sdp);
        }
        other => panic!("expected Answer, got {other:?}"),
    }
    let calls = expect_calls(&engine, |calls| calls.len() == 1).await;
    assert!(calls[0].starts_with("wt-"), "{calls:?}");
    let query = engine.query(&calls[0]).await.unwrap();
    assert_eq!(query.keys_of("tags").len(), 2, "{query:?}");

    tx.send(message(&id, Message::Bye(Bye::default())))
        .await
        .unwrap();
    tokio::task::spawn_blocking(move || sipp.expect_success())
        .await
        .unwrap();
    expect_calls(&engine, <[String]>::is_empty).await;
    drop(rtpengine);
}

/// (h) With `--rtpengine`, a phone's plain-RTP offer reaches the terminal as WebRTC (DTLS-SRTP over
/// ICE, rtcp-mux) and the terminal's WebRTC answer reaches the phone as plain RTP (checked by the
/// scenario); the phone's BYE ends the call and rtpengine's with it.
#[tokio::test]
async fn through_rtpengine_a_phones_plain_offer_reaches_the_terminal_as_webrtc() {
    let rtpengine = RtpEngineProcess::start();
    let engine = RtpEngine::connect(rtpengine.ng).await.unwrap();
    let sipp_port = free_udp_port();
    let ng = rtpengine.ng.to_string();
    let core = core(sipp_port, &["--rtpengine", &ng]);
    let (tx, mut rx) = open(core.port, SECRET, TERMINAL).await;
    registered(&tx, &mut rx).await;

    let mut sipp = Sipp::call_the_core("uac_calls_terminal_rtp.xml", sipp_port, &core);
    let offered = next(&mut rx).await;
    let id = offered.call_id.clone();
    match offered.message {
        Some(Message::Offer(offer)) => {
            assert!(offer.sdp.contains("s=sipp-uac-offer"), "{}", offer.sdp);
            assert_webrtc(&offer.sdp);
            assert!(offer.sdp.contains("opus/48000"), "{}", offer.sdp);
        }
        other => panic!("expected Offer, got {other:?}"),
    }
    // The phone's call, known to rtpengine by SIPp's Call-ID (`N-PID@127.0.0.1`) behind the
    // trunk's prefix. (The callee's own mobile phone is rung too, through the same trunk, as a call
    // of its own: that fork is CANCELed when the terminal answers.)
    let from_the_phone = |calls: &[String]| {
        calls
            .iter()
            .any(|c| c.starts_with("wt-") && c.ends_with("@127.0.0.1"))
    };
    expect_calls(&engine, from_the_phone).await;
    tx.send(message(&id, Message::Ringing(Ringing::default())))
        .await
        .unwrap();
    let answer = Answer {
        sdp: webrtc_answer(),
    };
    tx.send(message(&id, Message::Answer(answer)))
        .await
        .unwrap();
    let bye = next(&mut rx).await;
    assert_eq!(bye.call_id, id);
    match bye.message {
        Some(Message::Bye(bye)) => assert_eq!(bye.reason(), Reason::NormalClearing),
        other => panic!("expected Bye, got {other:?}"),
    }
    tokio::task::spawn_blocking(move || sipp.expect_success())
        .await
        .unwrap();
    expect_calls(&engine, |calls| !from_the_phone(calls)).await;
    drop(rtpengine);
}

/// (i) rtpengine dies: a call to a phone ends at once with `Bye{UNAVAILABLE}` (no INVITE leaves), a
/// phone's INVITE gets 503 with `Reason: Q.850;cause=41` (checked by the scenario) and rings
/// nothing, `webterminal_rtpengine_errors_total` counts the failed offers, a call between two
/// terminals goes on untouched, `webterminal_rtpengine_up` drops to 0 at the next ping, and the
/// core stays up.
#[tokio::test]
async fn a_dead_rtpengine_fails_phone_calls_fast_and_leaves_terminal_calls_alone() {
    let mut rtpengine = RtpEngineProcess::start();
    let sipp_port = free_udp_port();
    let ng = rtpengine.ng.to_string();
    let mut core = core_with(sipp_port, &["--rtpengine", &ng], true);
    let metrics = core.metrics_port.unwrap();
    let (caller_tx, mut caller_rx) = open(core.port, SECRET, CALLER).await;
    let (callee_tx, mut callee_rx) = open(core.port, SECRET, TERMINAL).await;
    registered(&callee_tx, &mut callee_rx).await;
    let scraped = expect_sample(metrics, "webterminal_rtpengine_up", 1.0).await;
    assert_eq!(
        sample(
            &scraped,
            r#"webterminal_rtpengine_errors_total{command="offer"}"#
        ),
        Some(0.0),
        "{scraped}"
    );
    assert!(
        scraped.contains("# HELP webterminal_rtpengine_errors_total"),
        "{scraped}"
    );
    rtpengine.kill();

    // A call to a phone (a number without a terminal).
    let asked = Instant::now();
    let id = uuid::Uuid::new_v4().to_string();
    let offer = Offer {
        sdp: fixture("chromium-offer.sdp"),
        msisdn: Some(PhoneNumber {
            e164: "+4799000003".into(),
        }),
        data: Default::default(),
    };
    caller_tx
        .send(message(&id, Message::Offer(offer)))
        .await
        .unwrap();
    let bye = next(&mut caller_rx).await;
    assert_eq!(bye.call_id, id);
    match bye.message {
        Some(Message::Bye(bye)) => assert_eq!(bye.reason(), Reason::Unavailable),
        other => panic!("expected Bye, got {other:?}"),
    }
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "{:?}",
        asked.elapsed()
    );
    expect_at_least(
        metrics,
        r#"webterminal_rtpengine_errors_total{command="offer"}"#,
        1.0,
    )
    .await;

    // A phone calls the terminal: 503, and the terminal is offered nothing.
    let mut sipp = Sipp::call_the_core("uac_gets_503.xml", sipp_port, &core);
    tokio::task::spawn_blocking(move || sipp.expect_success())
        .await
        .unwrap();
    expect_at_least(
        metrics,
        r#"webterminal_rtpengine_errors_total{command="offer"}"#,
        2.0,
    )
    .await;

    // A call between the two terminals: the SDP passes as it is, both ways.
    let id = uuid::Uuid::new_v4().to_string();
    let offer = Offer {
        sdp: sdp("terminal-offer"),
        msisdn: Some(PhoneNumber {
            e164: TERMINAL.into(),
        }),
        data: Default::default(),
    };
    caller_tx
        .send(message(&id, Message::Offer(offer)))
        .await
        .unwrap();
    let offered = next(&mut callee_rx).await;
    match &offered.message {
        Some(Message::Offer(offer)) => assert!(offer.sdp.contains("s=terminal-offer")),
        other => panic!("expected Offer, got {other:?}"),
    }
    callee_tx
        .send(message(
            &offered.call_id,
            Message::Answer(Answer {
                sdp: sdp("terminal-answer"),
            }),
        ))
        .await
        .unwrap();
    let answered = loop {
        let got = next(&mut caller_rx).await;
        if !matches!(got.message, Some(Message::Ringing(_))) {
            break got;
        }
    };
    assert_eq!(answered.call_id, id);
    match answered.message {
        Some(Message::Answer(Answer { sdp })) => assert!(sdp.contains("s=terminal-answer")),
        other => panic!("expected Answer, got {other:?}"),
    }
    // Its pings go unanswered too (one every 5 s).
    expect_sample(metrics, "webterminal_rtpengine_up", 0.0).await;
    assert!(
        core.server.0.try_wait().unwrap().is_none(),
        "the core is still running"
    );
}

/// (j) Calls a previous run left in rtpengine (it was killed before its legs' `delete`) are
/// deleted when the trunk starts again on the same SIP address: those with its call-id prefix, and
/// only those. The previous run binds a SIP port of its own; the next one rebinds it.
#[tokio::test]
async fn calls_a_previous_run_left_in_rtpengine_are_deleted_at_start() {
    use webterminal_core::phone::sip::media::{call_id_prefix, incoming_call_id, outgoing_call_id};
    let rtpengine = RtpEngineProcess::start();
    let engine = RtpEngine::connect(rtpengine.ng).await.unwrap();
    let ng = rtpengine.ng.to_string();
    // Its trunk's far end: nothing answers there.
    let trunk_port = free_udp_port();
    let mut previous = core_listening(0, trunk_port, &["--rtpengine", &ng], false);
    let sip_port = previous.sip_port.unwrap();
    previous.kill();
    let prefix = call_id_prefix(&format!("127.0.0.1:{sip_port}"));
    let ours = [
        outgoing_call_id(&prefix, "left-over"),
        incoming_call_id(&prefix, "1-2@192.0.2.1"),
    ];
    let theirs = outgoing_call_id(&call_id_prefix("192.0.2.9:5060"), "another-trunk");
    for call in ours.iter().chain([&theirs]) {
        engine
            .offer(call, "tag", &sdp("left-over"), &[])
            .await
            .unwrap();
    }
    expect_calls(&engine, |calls| calls.len() == 3).await;

    let _core = core_listening(sip_port, trunk_port, &["--rtpengine", &ng], false);
    let calls = expect_calls(&engine, |calls| calls.len() == 1).await;
    assert_eq!(calls, [theirs]);
}

/// A re-offer from a terminal on its call (no number): [`terminal_offer`] named `name`.
fn reoffer(call_id: &str, webrtc: bool, name: &str) -> WebTerminalMessage {
    let offer = Offer {
        sdp: terminal_offer(webrtc, name),
        ..Default::default()
    };
    message(call_id, Message::Offer(offer))
}

/// The phone's re-offer reaches the terminal on call `id`: an Offer whose SDP is named `name`
/// (`s=` line), WebRTC when the media pass rtpengine.
async fn expect_phones_reoffer(rx: &mut Stream, id: &str, name: &str, media: bool) {
    let offered = next(rx).await;
    assert_eq!(offered.call_id, id);
    match offered.message {
        Some(Message::Offer(offer)) => {
            assert!(offer.sdp.contains(&format!("s={name}")), "{}", offer.sdp);
            if media {
                assert_webrtc(&offer.sdp);
            }
        }
        other => panic!("expected the phone's re-offer, got {other:?}"),
    }
}

/// The terminal answers on call `id` with [`terminal_answer`] named `name`.
async fn answer_as_terminal(
    tx: &tokio::sync::mpsc::Sender<WebTerminalMessage>,
    id: &str,
    media: bool,
    name: &str,
) {
    let answer = Answer {
        sdp: terminal_answer(media, name),
    };
    tx.send(message(id, Message::Answer(answer))).await.unwrap();
}

/// Once the phone has had a moment for its ACK, the terminal re-offers (resume) and the phone's
/// answer reaches it.
async fn resume_and_get_the_phones_answer(
    tx: &tokio::sync::mpsc::Sender<WebTerminalMessage>,
    rx: &mut Stream,
    id: &str,
    media: bool,
) {
    // The phone's ACK comes before its next request is awaited: give the exchange a moment.
    tokio::time::sleep(Duration::from_millis(200)).await;
    tx.send(reoffer(id, media, "terminal-resume"))
        .await
        .unwrap();
    let answered = next(rx).await;
    assert_eq!(answered.call_id, id);
    match answered.message {
        Some(Message::Answer(Answer { sdp })) => {
            assert!(sdp.contains("s=sipp-resume-answer"), "{sdp}");
            if media {
                assert_webrtc(&sdp);
            }
        }
        other => panic!("expected Answer, got {other:?}"),
    }
}

/// (k) Re-offers on a call to a phone, both ways, with glare (SIPp checks each SDP): the terminal's
/// re-offer (hold) goes out as a re-INVITE; the phone's re-INVITE crossing it gets 491 from the core,
/// and the phone's 491 to ours gives the terminal `TRY_AGAIN`, the call going on; the phone's next
/// re-INVITE reaches the terminal as an Offer, whose Answer goes back in the 200; the terminal's
/// next re-offer (resume) is answered by the phone, and the Answer reaches the terminal.
#[tokio::test]
async fn re_offers_go_both_ways_and_glare_is_491_then_try_again() {
    re_offers_on_a_call_to_a_phone(false).await;
}

/// (k) through rtpengine: the same, each re-offer and answer passing rtpengine (the phone's
/// re-offer and answer reach the terminal as WebRTC).
#[tokio::test]
async fn through_rtpengine_re_offers_go_both_ways_and_glare_is_491_then_try_again() {
    re_offers_on_a_call_to_a_phone(true).await;
}

/// Case (k), with its media anchored in a real rtpengine when `media`.
async fn re_offers_on_a_call_to_a_phone(media: bool) {
    let rtpengine = media.then(RtpEngineProcess::start);
    let ng = rtpengine.as_ref().map(|r| r.ng.to_string());
    let args: Vec<&str> = ng.iter().flat_map(|ng| ["--rtpengine", ng]).collect();
    let mut sipp = Sipp::start("uas_reoffers.xml", None);
    let core = core(sipp.port, &args);
    let (tx, mut rx) = open(core.port, SECRET, CALLER).await;
    let id = uuid::Uuid::new_v4().to_string();
    let offer = Offer {
        sdp: terminal_offer(media, "terminal-offer"),
        msisdn: Some(PhoneNumber { e164: PHONE.into() }),
        data: Default::default(),
    };
    tx.send(message(&id, Message::Offer(offer))).await.unwrap();
    assert!(matches!(
        next(&mut rx).await.message,
        Some(Message::Ringing(_))
    ));
    assert!(matches!(
        next(&mut rx).await.message,
        Some(Message::Answer(_))
    ));

    tx.send(reoffer(&id, media, "terminal-hold")).await.unwrap();
    let refused = next(&mut rx).await;
    assert_eq!(refused.call_id, id);
    match refused.message {
        Some(Message::Error(e)) => assert_eq!(ErrCode::try_from(e.err), Ok(ErrCode::TryAgain)),
        other => panic!("expected Error TRY_AGAIN, got {other:?}"),
    }

    expect_phones_reoffer(&mut rx, &id, "sipp-reoffer", media).await;
    answer_as_terminal(&tx, &id, media, "terminal-reanswer").await;

    resume_and_get_the_phones_answer(&tx, &mut rx, &id, media).await;
    tx.send(message(&id, Message::Bye(Bye::default())))
        .await
        .unwrap();
    tokio::task::spawn_blocking(move || sipp.expect_success())
        .await
        .unwrap();
}

/// (l) Re-offers on a call from a phone, both ways (SIPp checks each SDP): the phone's re-INVITE
/// (hold) reaches the terminal as an Offer and its Answer goes back in the 200; the terminal's
/// re-offer (resume) goes out as a re-INVITE and the phone's answer reaches it; then the phone
/// hangs up.
#[tokio::test]
async fn a_phone_that_called_re_offers_and_is_re_offered() {
    re_offers_on_a_call_from_a_phone(false).await;
}

/// (l) through rtpengine: the same, each re-offer and answer passing rtpengine (the phone's
/// re-offer and answer reach the terminal as WebRTC).
#[tokio::test]
async fn through_rtpengine_a_phone_that_called_re_offers_and_is_re_offered() {
    re_offers_on_a_call_from_a_phone(true).await;
}

/// Case (l), with its media anchored in a real rtpengine when `media`.
async fn re_offers_on_a_call_from_a_phone(media: bool) {
    let rtpengine = media.then(RtpEngineProcess::start);
    let ng = rtpengine.as_ref().map(|r| r.ng.to_string());
    let args: Vec<&str> = ng.iter().flat_map(|ng| ["--rtpengine", ng]).collect();
    let sipp_port = free_udp_port();
    let core = core(sipp_port, &args);
    let (tx, mut rx) = open(core.port, SECRET, TERMINAL).await;
    registered(&tx, &mut rx).await;
    let mut sipp = Sipp::call_the_core("uac_reoffers.xml", sipp_port, &core);
    let offered = next(&mut rx).await;
    let id = offered.call_id.clone();
    assert!(matches!(offered.message, Some(Message::Offer(_))));
    tx.send(message(&id, Message::Ringing(Ringing::default())))
        .await
        .unwrap();
    answer_as_terminal(&tx, &id, media, "terminal-answer").await;

    expect_phones_reoffer(&mut rx, &id, "sipp-hold", media).await;
    answer_as_terminal(&tx, &id, media, "terminal-hold-answer").await;

    resume_and_get_the_phones_answer(&tx, &mut rx, &id, media).await;
    let bye = next(&mut rx).await;
    match bye.message {
        Some(Message::Bye(bye)) => assert_eq!(bye.reason(), Reason::NormalClearing),
        other => panic!("expected Bye, got {other:?}"),
    }
    tokio::task::spawn_blocking(move || sipp.expect_success())
        .await
        .unwrap();
}

/// How a call between a terminal and a phone is handed to another phone in cases (m) and (n).
#[derive(Clone, Copy, Debug)]
enum Handing {
    /// The terminal hands it over to its own mobile phone (4.6).
    ToPhone,
    /// The terminal transfers the far party to a number without a terminal (4.12).
    Transfer,
}

/// (m) Handover of a call between a terminal and a phone to the terminal's mobile phone: the
/// phone's INVITE goes with no SDP (a delayed offer, PROTOCOL.md section 13), its 200 carries its
/// offer, which the core re-offers to the far phone (a re-INVITE); that phone's answer goes back in
/// the ACK (SIPp checks each SDP). The terminal gets `InCall`; when the far phone hangs up, the
/// handed-over phone gets a BYE with `Reason: Q.850;cause=16`.
#[tokio::test]
async fn a_handover_to_the_mobile_phone_is_a_delayed_offer_answered_in_the_ack() {
    handing_a_call_to_a_phone(Handing::ToPhone, false).await;
}

/// (m) through rtpengine: the same, the handed-over phone's offer and the ACK's answer passing
/// rtpengine (the phone the offerer; SIPp checks the ACK's answer is plain RTP), and rtpengine
/// holding nothing once the call has ended.
#[tokio::test]
async fn through_rtpengine_a_handover_to_the_mobile_phone_is_answered_in_the_ack() {
    handing_a_call_to_a_phone(Handing::ToPhone, true).await;
}

/// (n) A transfer of a call between a terminal and a phone to a number without a terminal: the
/// same delayed offer to that number's phone; the terminal gets `Bye{TRANSFERRED}`.
#[tokio::test]
async fn a_transfer_to_a_phone_is_a_delayed_offer_answered_in_the_ack() {
    handing_a_call_to_a_phone(Handing::Transfer, false).await;
}

/// Cases (m) and (n), with the media anchored in a real rtpengine when `media`.
async fn handing_a_call_to_a_phone(how: Handing, media: bool) {
    let rtpengine = media.then(RtpEngineProcess::start);
    let ng = rtpengine.as_ref().map(|r| r.ng.to_string());
    let args: Vec<&str> = ng.iter().flat_map(|ng| ["--rtpengine", ng]).collect();
    let mut sipp = Sipp::start_calls("uas_delayed_offer.xml", 2);
    let core = core(sipp.port, &args);
    let (tx, mut rx) = open(core.port, SECRET, CALLER).await;
    let id = uuid::Uuid::new_v4().to_string();
    let offer = Offer {
        sdp: terminal_offer(media, "terminal-offer"),
        msisdn: Some(PhoneNumber { e164: PHONE.into() }),
        data: Default::default(),
    };
    tx.send(message(&id, Message::Offer(offer))).await.unwrap();
    let answered = next(&mut rx).await;
    assert_eq!(answered.call_id, id);
    match answered.message {
        Some(Message::Answer(Answer { sdp })) => {
            assert!(sdp.contains("s=sipp-uas-answer"), "{sdp}")
        }
        other => panic!("expected Answer, got {other:?}"),
    }
    let action = match how {
        Handing::ToPhone => action::Message::ToPhone(ToPhone {}),
        Handing::Transfer => action::Message::Transfer(Transfer {
            msisdn: Some(PhoneNumber {
                e164: "+4799000003".into(),
            }),
        }),
    };
    tx.send(message(
        &id,
        Message::Action(Action {
            message: Some(action),
        }),
    ))
    .await
    .unwrap();
    let moved = next(&mut rx).await;
    assert_eq!(moved.call_id, id);
    match (how, moved.message) {
        (Handing::ToPhone, Some(Message::InCall(in_call))) => {
            assert_eq!(in_call.msisdn.unwrap().e164, PHONE)
        }
        (Handing::Transfer, Some(Message::Bye(bye))) => {
            assert_eq!(bye.reason(), Reason::Transferred)
        }
        (how, other) => panic!("{how:?}: got {other:?}"),
    }
    tokio::task::spawn_blocking(move || sipp.expect_success())
        .await
        .unwrap();
    if let Some(rtpengine) = &rtpengine {
        let engine = RtpEngine::connect(rtpengine.ng).await.unwrap();
        expect_calls(&engine, <[String]>::is_empty).await;
    }
}

/// The credentials the trunk of (o) and (p) checks.
const TRUNK_CREDENTIALS: [&str; 4] = [
    "--sip-username",
    "trunk-user",
    "--sip-password",
    "trunk-secret",
];

/// (o) A trunk that challenges the INVITE with 401: the core sends it again once with a digest
/// `Authorization` for `--sip-username` / `--sip-password` (SIPp verifies it), the phone
/// answers, and the terminal's hangup reaches it as a BYE.
#[tokio::test]
async fn a_challenged_invite_is_sent_again_with_digest_credentials() {
    let mut sipp = Sipp::start("uas_digest.xml", None);
    let core = core(sipp.port, &TRUNK_CREDENTIALS);
    let (tx, mut rx) = open(core.port, SECRET, CALLER).await;
    let id = call_the_phone(&tx).await;
    let answer = next(&mut rx).await;
    assert_eq!(answer.call_id, id);
    match answer.message {
        Some(Message::Answer(Answer { sdp })) => {
            assert!(sdp.contains("s=sipp-uas-answer"), "SIPp's SDP: {sdp}")
        }
        other => panic!("expected Answer after the challenge, got {other:?}"),
    }
    tx.send(message(&id, Message::Bye(Bye::default())))
        .await
        .unwrap();
    tokio::task::spawn_blocking(move || sipp.expect_success())
        .await
        .unwrap();
}

/// (p) `--sip-register`: the core REGISTERs `sip:trunk-user@…` with the trunk, answers the 401
/// challenge with its digest (SIPp verifies it), and refreshes before the 2 s the trunk grants
/// run out (again challenged and answered); `webterminal_sip_registered` is 1.
#[tokio::test]
async fn with_sip_register_the_core_registers_and_refreshes_its_registration() {
    let mut sipp = Sipp::start("uas_registrar.xml", None);
    let mut args = TRUNK_CREDENTIALS.to_vec();
    args.push("--sip-register");
    let core = core_with(sipp.port, &args, true);
    let metrics = core.metrics_port.expect("metrics served");
    expect_at_least(metrics, "webterminal_sip_registered", 1.0).await;
    tokio::task::spawn_blocking(move || sipp.expect_success())
        .await
        .unwrap();
}

/// `--sip-register` without credentials is a usage error at start, naming what is missing.
#[test]
fn sip_register_without_credentials_is_refused_at_start() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_webterminal-core"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--phone-network",
            "sip",
            "--sip-trunk",
            "sip:127.0.0.1:5090",
            "--sip-listen",
            "127.0.0.1:0",
            "--jwt-secret",
            SECRET,
            "--records",
            "none",
            "--sip-register",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--sip-register needs --sip-username and --sip-password"),
        "{stderr}"
    );
}

/// A request from a UDP socket of the test's own, `Call-ID: call_id`, with `extra` headers.
fn raw_request(method: &str, call_id: &str, from: std::net::SocketAddr, extra: &str) -> String {
    format!(
        "{method} sip:+4799000002@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP {from};branch=z9hG4bK-{call_id}\r\n\
         From: <sip:+4799000001@{from}>;tag=t-{call_id}\r\n\
         To: <sip:+4799000002@127.0.0.1>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 {method}\r\n\
         Max-Forwards: 70\r\n\
         {extra}Content-Length: 0\r\n\r\n"
    )
}

/// Sends `request` to the trunk at `sip` and returns the first final response (not 1xx) whose
/// Call-ID is `call_id`.
async fn final_response(
    socket: &tokio::net::UdpSocket,
    sip: u16,
    request: &str,
    call_id: &str,
) -> String {
    socket
        .send_to(request.as_bytes(), ("127.0.0.1", sip))
        .await
        .unwrap();
    let mut buf = vec![0; 65_536];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let (n, _) = tokio::time::timeout(left, socket.recv_from(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no final response to {call_id}"))
            .unwrap();
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        let final_status = !text.starts_with("SIP/2.0 1");
        if final_status && text.contains(&format!("Call-ID: {call_id}\r\n")) {
            return text;
        }
    }
}

/// (q) Bad input on the SIP port: an oversized request gets 413, a malformed one 400 naming the
/// header at fault, an unknown method 405 with `Allow`, and INVITEs from one source over `--sip-invites-per-second` 503 with
/// `Retry-After`, each counted in `webterminal_sip_refused_total{reason}`; garbage with nothing to
/// answer is dropped; the trunk answers OPTIONS afterwards as before.
#[tokio::test]
async fn bad_sip_input_gets_its_answer_and_a_flood_is_503() {
    let core = core_with(free_udp_port(), &["--sip-invites-per-second", "2"], true);
    let sip = core.sip_port.unwrap();
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let me = socket.local_addr().unwrap();

    socket
        .send_to(b"\x00\x01garbage, not SIP", ("127.0.0.1", sip))
        .await
        .unwrap();
    let padding = format!("X-Padding: {}\r\n", "a".repeat(9000));
    let big = raw_request("OPTIONS", "too-large", me, &padding);
    assert!(final_response(&socket, sip, &big, "too-large")
        .await
        .starts_with("SIP/2.0 413 "));
    let malformed = raw_request("OPTIONS", "malformed", me, "").replace("CSeq: 1", "CSeq: one");
    let answer = final_response(&socket, sip, &malformed, "malformed").await;
    assert!(
        answer.starts_with("SIP/2.0 400 Bad Request (CSeq)"),
        "{answer}"
    );
    let unknown = raw_request("FROB", "unknown-method", me, "");
    let answer = final_response(&socket, sip, &unknown, "unknown-method").await;
    assert!(answer.starts_with("SIP/2.0 405 "), "{answer}");
    assert!(answer.contains("Allow: INVITE"), "{answer}");

    // A burst of twice the rate gets through (each INVITE has no SDP: 488), the next is 503.
    for n in 0..4 {
        let id = format!("flood-{n}");
        let answer = final_response(&socket, sip, &raw_request("INVITE", &id, me, ""), &id).await;
        assert!(answer.starts_with("SIP/2.0 488 "), "{answer}");
    }
    let answer = final_response(
        &socket,
        sip,
        &raw_request("INVITE", "flood-4", me, ""),
        "flood-4",
    )
    .await;
    assert!(answer.starts_with("SIP/2.0 503 "), "{answer}");
    assert!(answer.contains("Retry-After: 1\r\n"), "{answer}");

    let alive = raw_request("OPTIONS", "still-there", me, "");
    assert!(final_response(&socket, sip, &alive, "still-there")
        .await
        .starts_with("SIP/2.0 200 "));
    let metrics = core.metrics_port.unwrap();
    for reason in ["too_large", "malformed", "rate_limited", "unknown_method"] {
        let series = format!("webterminal_sip_refused_total{{reason=\"{reason}\"}}");
        expect_at_least(metrics, &series, 1.0).await;
    }
    // The garbage and the malformed request.
    expect_at_least(
        metrics,
        "webterminal_sip_refused_total{reason=\"malformed\"}",
        2.0,
    )
    .await;
}
