//! A third-party WG2 client, unchanged, against this core (PROTOCOL.md sections 1 and 4.11): the
//! Python program `tests/wg2_client/voicebot.py`, written as WG2's voicebot is, with grpcio and stubs
//! compiled at test time from the upstream schema (no extension of this core). It connects with an
//! OAuth client-credentials token (issued here as an authorization server would, not by this core's
//! own minting code), names its subscriber in `wg2-msisdn` without the `+`, sends an empty keepalive
//! every 100 ms, and answers the call a simulated phone `Dial`s to it — an Offer that carries call
//! context (`Offer.data`), a field its schema does not have.
//!
//! Needs python3 with grpcio and grpcio-tools, which `scripts/install-test-tools` installs from PyPI;
//! the test fails (it never skips) when they are missing.

use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{ChildStdout, Command};
use tokio::sync::oneshot;
use webterminal_core::proto::simulator::simulated_phone_network_client::SimulatedPhoneNetworkClient;
use webterminal_core::proto::simulator::{DialRequest, PhoneRequest};
use webterminal_core::server::{Exchange, PhoneNetworkKind, ServerConfig};

const SECRET: &[u8] = b"the authorization server's key...";
const CALLER: &str = "+4799990001";
const SUBSCRIBER: &str = "+4799990002";

/// A client-credentials access token (RFC 6749 4.4, RFC 9068) for the application `voicebot`,
/// granting it `SUBSCRIBER`.
fn client_token() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({
        "iss": "https://auth.example.net/",
        "sub": "voicebot",
        "client_id": "voicebot",
        "aud": ["https://api.example.net/"],
        "scope": "call.control.answer_and_initiate",
        "msisdns": [SUBSCRIBER],
        "iat": now,
        "exp": now + 600,
        "jti": "7c4a1f0e-3b2d-4e5f-8a9b-0c1d2e3f4a5b",
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.typ = Some("at+jwt".into());
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

/// The next line the voicebot prints, within `within`.
async fn line(lines: &mut Lines<BufReader<ChildStdout>>, within: Duration) -> String {
    match tokio::time::timeout(within, lines.next_line()).await {
        Ok(Ok(Some(line))) => line,
        Ok(Ok(None)) => panic!("the voicebot exited early"),
        Ok(Err(e)) => panic!("reading the voicebot: {e}"),
        Err(_) => panic!("the voicebot said nothing for {within:?}"),
    }
}

#[tokio::test]
async fn the_wg2_voicebot_answers_a_call_from_a_phone_unchanged() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = ServerConfig::new(SECRET);
    config.phone_network = PhoneNetworkKind::Sim;
    let exchange = Exchange::start(config);
    let driver = exchange.driver().clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn(exchange.serve(listener, async {
        let _ = stopped.await;
    }));

    let root = env!("CARGO_MANIFEST_DIR");
    let mut bot = Command::new("python3")
        .arg(format!("{root}/tests/wg2_client/voicebot.py"))
        .arg(addr.to_string())
        .arg(SUBSCRIBER.trim_start_matches('+'))
        .arg(format!("{root}/tests/fixtures/sdp/aiortc-answer.sdp"))
        .env("WG2_TOKEN", client_token())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs (scripts/install-test-tools installs grpcio and grpcio-tools)");
    let mut lines = BufReader::new(bot.stdout.take().unwrap()).lines();
    assert_eq!(line(&mut lines, Duration::from_secs(60)).await, "READY");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while driver.stats().await.unwrap().terminals == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the voicebot did not register"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A second of keepalives (ten empty messages): the bot fails on any Error they would cause.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut simulator = SimulatedPhoneNetworkClient::new(channel);
    simulator
        .dial(DialRequest {
            from: CALLER.into(),
            to: SUBSCRIBER.into(),
            // Call context the upstream schema has no field for: the bot's stubs skip it.
            data: [("display_name".to_owned(), "Kari Nordmann".to_owned())].into(),
        })
        .await
        .expect("Dial");
    let offer = line(&mut lines, Duration::from_secs(10)).await;
    let fields: Vec<&str> = offer.split(' ').collect();
    assert_eq!(fields.len(), 3, "{offer}");
    assert_eq!(fields[0], "OFFER", "{offer}");
    assert!(uuid::Uuid::parse_str(fields[1]).is_ok(), "{offer}");
    assert_eq!(fields[2], CALLER, "the Offer names the calling phone");
    let call_id = fields[1].to_owned();

    // The bot answered; let it talk for a moment, then the caller hangs up.
    tokio::time::sleep(Duration::from_millis(500)).await;
    simulator
        .hang_up(PhoneRequest {
            msisdn: CALLER.into(),
        })
        .await
        .expect("the call is up on the calling phone");
    assert_eq!(
        line(&mut lines, Duration::from_secs(10)).await,
        format!("BYE {call_id}")
    );
    let status = tokio::time::timeout(Duration::from_secs(10), bot.wait())
        .await
        .expect("the voicebot exits")
        .unwrap();
    assert!(status.success(), "the voicebot failed: {status}");

    let _ = stop.send(());
    served.await.unwrap().unwrap();
}
