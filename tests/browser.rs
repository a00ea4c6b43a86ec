//! The softphone page (PROTOCOL.md section 11) in real Chromium, driven through WebDriver
//! (chromedriver, with fantoccini) against the real core on a loopback port: a bad token's error
//! shown, pages call each other with their own buttons, audio flows both ways (RTP counters and audio
//! energy from `getStats`, level meters), hold and resume, mute, a second page of the same number
//! pulls the call, To phone and the pull back, a simulated phone's `Dial` rings a page that answers,
//! the call is transferred to a number whose page takes it, a ringing page declines, and the page
//! fits a phone's width. A second test runs the binary: demo tokens only on its own stored secret.
//!
//! The page is driven with tests/support/softphone.rs. Chromium and chromedriver come from Debian:
//! `scripts/install-test-tools` installs them and prints their paths, which `scripts/test` exports
//! as `CHROMIUM` and `CHROMEDRIVER` (default `/usr/bin/chromium` and `/usr/bin/chromedriver`).
//! Without them this test fails: it never skips. Screenshots of every step go to
//! `browser-artifacts/` in the target directory (or `BROWSER_ARTIFACTS`).
//!
//! Every wait is on a condition the page reports through `window.softphone.state()` and
//! `window.softphone.stats()`, with generous timeouts; no sleep decides an outcome.

#[path = "support/binary.rs"]
mod binary;
#[path = "support/in_process.rs"]
mod in_process;
#[path = "support/softphone.rs"]
mod softphone;

use fantoccini::Locator;
use in_process::Core;
use serde_json::Value;
use softphone::{calls, WebDriver, POLL, WAIT};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use webterminal_core::auth;
use webterminal_core::core::Msisdn;
use webterminal_core::proto::simulator::simulated_phone_network_client::SimulatedPhoneNetworkClient;
use webterminal_core::proto::simulator::{DialRequest, PhoneRequest};
use webterminal_core::server::DemoTokens;
use webterminal_core::server::{PhoneNetworkKind, ServerConfig};

const SECRET: &[u8] = b"browser-test-secret";
const A: &str = "+4799990001";
const B: &str = "+4799990002";
const PHONE: &str = "+4799990003";

/// The core in this process, the simulated phone network behind it, demo tokens for A and B.
async fn start_core() -> Core {
    let mut config = ServerConfig::new(SECRET);
    config.phone_network = PhoneNetworkKind::Sim;
    config.demo_tokens = Some(DemoTokens::new(vec![
        Msisdn::parse(A).unwrap(),
        Msisdn::parse(B).unwrap(),
    ]));
    let mut core = Core::start(config).await;
    // A page's WebSocket is open before the switch has registered it, on a loaded machine too.
    core.wait = WAIT;
    core
}

fn url(core: &Core) -> String {
    format!("http://{}/", core.addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn softphone_pages_call_hold_pull_answer_a_phone_and_take_a_transfer() {
    let core = start_core().await;
    let webdriver = WebDriver::start().await;
    let a = webdriver.open(&url(&core), "a", None).await;
    let b = webdriver.open(&url(&core), "b", None).await;
    let b2 = webdriver.open(&url(&core), "b2", None).await;

    // A mints a demo token with the page's own button; B and B2 paste one.
    a.type_into("#demo-number", A).await;
    a.click("#mint").await;
    let token_field = a.client.find(Locator::Css("#token")).await.unwrap();
    let deadline = Instant::now() + WAIT;
    while token_field
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default()
        .is_empty()
    {
        assert!(Instant::now() < deadline, "no demo token minted");
        tokio::time::sleep(POLL).await;
    }
    let b_token = auth::mint_token(
        SECRET,
        &Msisdn::parse(B).unwrap(),
        auth::REQUIRED_SCOPE,
        Duration::from_secs(3600),
    );
    // A bad token: the gateway's error frame is shown, and the page can register again.
    b.type_into("#token", "not-a-token").await;
    b.click("#register").await;
    b.wait_text("#status", "invalid access token").await;
    for page in [&b, &b2] {
        page.type_into("#token", &b_token).await;
    }
    a.register().await;
    b.register().await;
    b2.register().await;
    core.wait_for_terminals(3).await;
    a.screenshot("01-registered").await;

    // A dials B on the dial pad; both of B's pages ring; B answers from the banner.
    for key in B.trim_start_matches('+').chars() {
        a.click(&format!(r#".keypad button[data-key="{key}"]"#))
            .await;
    }
    a.click("#call").await;
    let a_id = a.wait_call("ringing-out", Some(B)).await;
    let b_id = b.wait_call("incoming", Some(A)).await;
    b2.wait_call("incoming", Some(A)).await;
    b.screenshot("02-incoming").await;
    b.click("#banner-accept").await;
    a.wait_call_state(&a_id, "active", |c| c["state"] == "active")
        .await;
    b.wait_call_state(&b_id, "active", |c| c["state"] == "active")
        .await;
    // B2 was a fork: answered elsewhere, it sees the call as InCall.
    b2.wait_call_state(&b_id, "on another device", |c| c["state"] == "elsewhere")
        .await;

    // Audio both ways, and the level meters (AnalyserNodes on both streams) have shown it (their
    // peaks: the fake microphone beeps, and a poll may fall between beeps).
    a.wait_audio(&a_id).await;
    b.wait_audio(&b_id).await;
    let level = |c: &Value, which: &str| c["levels"][which].as_f64().unwrap_or(0.0);
    a.wait_call_state(&a_id, "the microphone's meter moving", |c| {
        level(c, "peakLocal") > 0.05
    })
    .await;
    a.wait_call_state(&a_id, "the other party's meter moving", |c| {
        level(c, "peakRemote") > 0.05
    })
    .await;
    // For the picture (docs/softphone.png, shown in the README): a moment when both meters show a beep, if one
    // comes within a few seconds; the screenshot is taken either way.
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        let state = a.state().await.unwrap_or_default();
        if calls(&state)
            .iter()
            .any(|c| level(c, "local") > 0.1 && level(c, "remote") > 0.1)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a.screenshot("03-in-call").await;
    b.screenshot("03-in-call").await;

    // A holds: a sendonly re-offer; B answers recvonly and stops sending; then A resumes.
    a.call_button(&a_id, "hold").await;
    a.wait_call_state(&a_id, "held", |c| {
        c["held"] == true && c["negotiating"].is_null()
    })
    .await;
    b.wait_call_state(&b_id, "held by the peer", |c| c["heldByPeer"] == true)
        .await;
    a.wait_silence(&a_id).await;
    a.screenshot("04-on-hold").await;
    b.screenshot("04-held").await;
    a.call_button(&a_id, "hold").await;
    a.wait_call_state(&a_id, "resumed", |c| {
        c["held"] == false && c["negotiating"].is_null()
    })
    .await;
    b.wait_call_state(&b_id, "no longer held", |c| c["heldByPeer"] == false)
        .await;
    a.wait_audio(&a_id).await;
    b.wait_audio(&b_id).await;
    a.screenshot("05-resumed").await;

    // A mutes: B hears silence (no audio energy over seconds that hold several of the fake
    // microphone's beeps); A unmutes and B hears it again.
    a.call_button(&a_id, "mute").await;
    a.wait_call_state(&a_id, "muted", |c| c["muted"] == true)
        .await;
    b.wait_quiet(&b_id).await;
    a.call_button(&a_id, "mute").await;
    a.wait_call_state(&a_id, "unmuted", |c| c["muted"] == false)
        .await;
    b.wait_audio(&b_id).await;

    // B2 pulls the call: A gets a re-offer from a new peer, B's leg ends (PULLED) and shows InCall.
    b2.call_button(&b_id, "pull").await;
    b2.wait_call_state(&b_id, "active here", |c| c["state"] == "active")
        .await;
    b.wait_call_state(&b_id, "on another device", |c| c["state"] == "elsewhere")
        .await;
    b2.wait_audio(&b_id).await;
    a.wait_audio(&a_id).await;
    b2.screenshot("06-pulled").await;
    b.screenshot("06-pulled-away").await;

    // A hands the call to its mobile phone (4.6): B2 gets a re-offer from the simulated phone, A's
    // page shows the call on another device; then A pulls it back from the phone (4.5).
    a.call_button(&a_id, "to-phone").await;
    a.wait_call_state(&a_id, "on the mobile phone", |c| c["state"] == "elsewhere")
        .await;
    b2.wait_call_state(&b_id, "still active", |c| c["state"] == "active")
        .await;
    a.screenshot("07-on-the-phone").await;
    a.call_button(&a_id, "pull").await;
    a.wait_call_state(&a_id, "pulled back", |c| c["state"] == "active")
        .await;
    a.wait_audio(&a_id).await;
    b2.wait_audio(&b_id).await;

    // A hangs up: every page of B sees the end.
    a.call_button(&a_id, "hangup").await;
    b2.wait_call_state(&b_id, "ended", |c| c["state"] == "ended")
        .await;
    b.wait_for("the call gone", |s| {
        calls(s)
            .iter()
            .all(|c| c["callId"] != b_id.as_str() || c["state"] == "ended")
    })
    .await;
    let deadline = Instant::now() + WAIT;
    while core.driver.stats().await.unwrap().calls != 0 {
        assert!(Instant::now() < deadline, "calls left after hang-up");
        tokio::time::sleep(POLL).await;
    }

    // A simulated phone dials A (PROTOCOL.md 4.11): the page rings and answers.
    let mut simulator = SimulatedPhoneNetworkClient::new(core.channel().await);
    simulator
        .dial(DialRequest {
            from: PHONE.into(),
            to: A.into(),
            data: [("display_name".to_owned(), "Simulated Phone".to_owned())].into(),
        })
        .await
        .expect("Dial");
    let phone_call = a.wait_call("incoming", Some(PHONE)).await;
    a.screenshot("08-phone-rings").await;
    a.click("#banner-accept").await;
    a.wait_call_state(&phone_call, "active", |c| c["state"] == "active")
        .await;
    a.screenshot("09-phone-answered").await;

    // A transfers the phone to B (4.12): B's pages are told of a call waiting; B takes it.
    a.type_into(
        &format!(r#"li.call[data-call-id="{phone_call}"] input[name="transfer-to"]"#),
        B,
    )
    .await;
    a.call_button(&phone_call, "transfer").await;
    a.wait_call_state(&phone_call, "transferred away", |c| c["state"] == "ended")
        .await;
    let taken = b.wait_call("waiting", Some(PHONE)).await;
    b.screenshot("10-transfer-waiting").await;
    b.click("#banner-accept").await;
    b.wait_call_state(&taken, "active", |c| c["state"] == "active")
        .await;
    b2.wait_call_state(&taken, "on another device", |c| c["state"] == "elsewhere")
        .await;
    b.screenshot("11-transfer-taken").await;

    // The phone hangs up: B's call ends.
    let legs = simulator
        .hang_up(PhoneRequest {
            msisdn: PHONE.into(),
        })
        .await
        .expect("HangUp")
        .into_inner()
        .legs;
    assert_eq!(legs, 1, "the phone was in the call");
    b.wait_call_state(&taken, "ended", |c| c["state"] == "ended")
        .await;

    // A calls B again; B2 declines from its banner: A hears DECLINED, B's ringing stops.
    a.type_into("#number", B).await;
    a.click("#call").await;
    let declined = a.wait_call("ringing-out", Some(B)).await;
    let b_ringing = b.wait_call("incoming", Some(A)).await;
    b2.wait_call("incoming", Some(A)).await;
    b2.click("#banner-reject").await;
    a.wait_call_state(&declined, "declined", |c| c["state"] == "ended")
        .await;
    b.wait_call_state(&b_ringing, "declined elsewhere", |c| c["state"] == "ended")
        .await;
    a.screenshot("13-declined").await;

    // On a phone-sized screen the page fits the width: one column, nothing to scroll sideways.
    b.client.set_window_size(390, 844).await.unwrap();
    let fits = b
        .client
        .execute(
            "return document.documentElement.scrollWidth <= window.innerWidth",
            vec![],
        )
        .await
        .unwrap();
    b.screenshot("12-phone-sized").await;
    assert_eq!(
        fits,
        Value::Bool(true),
        "the page scrolls sideways at 390 px"
    );

    for page in [a, b, b2] {
        page.close().await;
    }
}

/// `webterminal-core serve` on a port of its own with a data directory of its own, `extra`
/// arguments after; killed when dropped.
fn start_binary(data: &std::path::Path, extra: &[&str]) -> binary::Started {
    binary::serve()
        .args(["--records", "none"])
        .args(extra)
        .env("XDG_DATA_HOME", data)
        .env("HOME", data)
        .start()
}

/// One HTTP/1.1 request to `addr`; the status and the body.
fn request(addr: SocketAddr, method: &str, path: &str, json_body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{json_body}",
        json_body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn the_binary_mints_demo_tokens_only_on_its_own_secret() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let body = format!(r#"{{"msisdn":"{B}"}}"#);

    // Its own stored secret: the page may mint tokens, signed with that secret.
    let server = start_binary(data, &[]);
    let (status, page) = request(server.addr, "GET", "/", "");
    assert_eq!(status, 200);
    assert!(page.contains("/softphone/app.js"), "{page}");
    let (status, info) = request(server.addr, "GET", "/demo", "");
    assert_eq!(
        (status, info.as_str()),
        (
            200,
            r#"{"numbers":["+4799990001","+4799990002"],"ttl_seconds":86400}"#
        )
    );
    let (status, minted) = request(server.addr, "POST", "/demo/token", &body);
    assert_eq!(status, 200, "{minted}");
    let minted: Value = serde_json::from_str(&minted).unwrap();
    let secret = std::fs::read_to_string(data.join("webterminal-core").join("jwt-secret")).unwrap();
    let verified = auth::Verifier::hs256(secret.trim().as_bytes())
        .verify(minted["token"].as_str().unwrap())
        .unwrap();
    assert_eq!(verified.as_str(), B);
    drop(server);

    // A secret given, or a production token policy: no demo routes; the page is still served.
    let key = format!("{}/tests/keys/rsa-1.pub.pem", env!("CARGO_MANIFEST_DIR"));
    for extra in [
        &["--jwt-secret", "a secret of the operator's"][..],
        &["--public-key", key.as_str()][..],
    ] {
        let server = start_binary(data, extra);
        assert_eq!(request(server.addr, "GET", "/", "").0, 200, "{extra:?}");
        assert_eq!(request(server.addr, "GET", "/demo", "").0, 404, "{extra:?}");
        assert_eq!(
            request(server.addr, "POST", "/demo/token", &body).0,
            404,
            "{extra:?}"
        );
    }
}
