//! The SIP trunk as the phone network (PROTOCOL.md section 13), end to end: the real binary with
//! `--phone-network sip`, terminals on MultiPipe, and SIPp (Debian's `sip-tester`; `$SIPP`, else
//! `sipp` on the PATH, installed by scripts/install-test-tools) as the trunk's far end, playing the
//! scenarios in tests/sip/. Each SIPp run must end with its call successful: the scenarios check
//! what the core sends (numbers, X- headers, the BYE's Reason, the answer SDP) with `<ereg>`
//! checks, and a failed check fails the call.

#[path = "support/binary.rs"]
mod binary;

use binary::*;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use webterminal_core::proto::common::PhoneNumber;
use webterminal_core::proto::webterminal::bye::Reason;
use webterminal_core::proto::webterminal::web_terminal_message::Message;
use webterminal_core::proto::webterminal::{Answer, Bye, Offer, Ringing, WebTerminalMessage};

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

/// A free UDP port on 127.0.0.1 (bound, read, released): SIPp cannot report the port it bound, so
/// this is the one port in these tests chosen ahead.
fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Sipp {
    /// Starts SIPp with the scenario `tests/sip/<scenario>` for one call on a port of its own, as a
    /// UAS (`remote` none) or as a UAC calling `remote` (`127.0.0.1:port`).
    fn start(scenario: &str, remote: Option<String>) -> Sipp {
        Sipp::start_on(scenario, free_udp_port(), remote)
    }

    /// [`Sipp::start`] on `port`.
    fn start_on(scenario: &str, port: u16, remote: Option<String>) -> Sipp {
        Sipp::spawn(scenario, port, remote, &["-m", "1", "-l", "1"])
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
    let trunk = format!("sip:127.0.0.1:{trunk_port}");
    let mut all = vec![
        "--phone-network",
        "sip",
        "--sip-listen",
        "127.0.0.1:0",
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
    let started = serve_on_free_ports(&all, metrics);
    assert!(started.sip_port.is_some(), "{}", started.stdout);
    started
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

/// (c) A phone calls a subscriber: the terminal gets the Offer with SIPp's SDP, the caller's number
/// and the call context from `X-Contact-Ref`; it rings and answers; SIPp gets 180 and 200 with the
/// answer SDP (checked by the scenario), ACKs, then hangs up: the terminal gets
/// `Bye{NORMAL_CLEARING}`.
#[tokio::test]
async fn a_phone_calls_a_terminal_that_answers_then_the_phone_hangs_up() {
    // The trunk is SIPp itself; its port is chosen before the core starts, SIPp after it.
    let sipp_port = free_udp_port();
    let core = core(sipp_port, &[]);
    let (tx, mut rx) = open(core.port, SECRET, TERMINAL).await;
    // The terminal is registered once the core answers a message on its stream: an Error for a
    // Bye on a call it does not have.
    let probe = uuid::Uuid::new_v4().to_string();
    tx.send(message(&probe, Message::Bye(Bye::default())))
        .await
        .unwrap();
    assert!(matches!(
        next(&mut rx).await.message,
        Some(Message::Error(_))
    ));

    let mut sipp = Sipp::start_on(
        "uac_calls_terminal.xml",
        sipp_port,
        Some(format!("127.0.0.1:{}", core.sip_port.unwrap())),
    );
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
}

/// (d) An INVITE from a source outside `--sip-allow` gets 403 and nothing rings.
#[tokio::test]
async fn an_invite_from_a_source_not_allowed_is_403() {
    let sipp_port = free_udp_port();
    let core = core(sipp_port, &["--sip-allow", "10.0.0.0/8"]);
    let (tx, mut rx) = open(core.port, SECRET, TERMINAL).await;
    let probe = uuid::Uuid::new_v4().to_string();
    tx.send(message(&probe, Message::Bye(Bye::default())))
        .await
        .unwrap();
    assert!(matches!(
        next(&mut rx).await.message,
        Some(Message::Error(_))
    ));

    let mut sipp = Sipp::start_on(
        "uac_not_allowed.xml",
        sipp_port,
        Some(format!("127.0.0.1:{}", core.sip_port.unwrap())),
    );
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
