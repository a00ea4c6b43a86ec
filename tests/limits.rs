//! Limits over real gRPC: per-terminal rate limits answered with `Error{RATE_LIMIT_HIT}` (PROTOCOL.md
//! section 6), and terminal limits answered with RESOURCE_EXHAUSTED when the rpc starts. The client
//! that never reads has its own test binary (`slow_consumer.rs`), so that its memory reading is its own.

use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::Code;
use webterminal_core::core::Msisdn;
use webterminal_core::proto::common::PhoneNumber;
use webterminal_core::proto::webterminal::web_terminal_message::Message;
use webterminal_core::proto::webterminal::web_terminal_service_client::WebTerminalServiceClient;
use webterminal_core::proto::webterminal::{bye, error, Offer, Ringing, WebTerminalMessage};
use webterminal_core::server::auth::mint_token;
use webterminal_core::server::driver::DriverHandle;
use webterminal_core::server::{Exchange, PhoneNetworkKind, ServerConfig};

const SECRET: &[u8] = b"limits-test-secret";
const WAIT: Duration = Duration::from_secs(10);

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/../shared/fixtures/sdp/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

struct Core {
    addr: SocketAddr,
    driver: DriverHandle,
    _stop: oneshot::Sender<()>,
}

async fn start(configure: impl FnOnce(&mut ServerConfig)) -> Core {
    let mut config = ServerConfig::new(SECRET.to_vec());
    config.phone_network = PhoneNetworkKind::None;
    configure(&mut config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let exchange = Exchange::start(config);
    let driver = exchange.driver().clone();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(exchange.serve(listener, async {
        let _ = stopped.await;
    }));
    Core {
        addr,
        driver,
        _stop: stop,
    }
}

impl Core {
    async fn open(&self, msisdn: &str, multi: bool) -> Result<Terminal, tonic::Status> {
        let mut client = WebTerminalServiceClient::connect(format!("http://{}", self.addr))
            .await
            .unwrap();
        let (tx, rx) = mpsc::channel(4096);
        let mut request = tonic::Request::new(ReceiverStream::new(rx));
        let token = mint_token(
            SECRET,
            &Msisdn::parse(msisdn).unwrap(),
            "call.control.answer_and_initiate",
            Duration::from_secs(600),
        );
        let bearer = format!("Bearer {token}").parse().unwrap();
        request.metadata_mut().insert("authorization", bearer);
        let response = if multi {
            client.multi_pipe(request).await?
        } else {
            client.pipe(request).await?
        };
        Ok(Terminal {
            tx,
            rx: response.into_inner(),
        })
    }

    /// Polls the switch until it holds `terminals` terminals and `calls` calls.
    async fn wait_for(&self, terminals: usize, calls: usize) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let stats = self.driver.stats().await.unwrap();
            if stats.terminals == terminals && stats.calls == calls {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "expected {terminals} terminals and {calls} calls, have {stats:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

struct Terminal {
    tx: mpsc::Sender<WebTerminalMessage>,
    rx: tonic::Streaming<WebTerminalMessage>,
}

impl Terminal {
    async fn send(&self, call_id: &str, body: Message) {
        let msg = WebTerminalMessage {
            message: Some(body),
            call_id: call_id.into(),
        };
        self.tx.send(msg).await.unwrap();
    }

    async fn recv(&mut self) -> WebTerminalMessage {
        tokio::time::timeout(WAIT, self.rx.next())
            .await
            .expect("a message in time")
            .expect("the stream is open")
            .expect("the stream carries messages")
    }

    async fn recv_error(&mut self) -> (error::Code, String) {
        let msg = self.recv().await;
        match msg.message {
            Some(Message::Error(e)) => (e.err(), msg.call_id),
            other => panic!("expected an Error, got {other:?}"),
        }
    }
}

fn offer_to(msisdn: &str) -> Message {
    Message::Offer(Offer {
        sdp: fixture("chromium-offer.sdp"),
        msisdn: Some(PhoneNumber {
            e164: msisdn.into(),
        }),
    })
}

#[tokio::test]
async fn a_flood_of_messages_gets_rate_limit_hit_and_the_stream_stays_usable() {
    let core = start(|c| c.messages_per_second = 5).await;
    let mut a = core.open("+4791000001", false).await.unwrap();
    assert!(matches!(a.recv().await.message, Some(Message::Idle(_))));
    // The bucket holds 10 messages; 30 at once overflow it.
    for i in 0..30 {
        a.send(&format!("flood-{i}"), Message::Ringing(Ringing {}))
            .await;
    }
    let mut limited = Vec::new();
    for i in 0..30 {
        let (code, call_id) = a.recv_error().await;
        // Every Error carries the call_id of the message it answers, in order.
        assert_eq!(call_id, format!("flood-{i}"));
        match code {
            error::Code::NotIncall => assert!(limited.is_empty(), "in-budget before limited"),
            error::Code::RateLimitHit => limited.push(i),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        limited.len(),
        20,
        "10 messages fit the burst, 20 are over it"
    );
    // After a pause the budget refills and the stream works as before.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    a.send("", Message::Ringing(Ringing {})).await;
    assert_eq!(a.recv_error().await.0, error::Code::NotIncall);
}

#[tokio::test]
async fn too_many_call_attempts_get_rate_limit_hit_with_their_call_id() {
    let core = start(|c| c.call_attempts_per_second = 1).await;
    let mut a = core.open("+4791000011", true).await.unwrap();
    let ids: Vec<String> = (0..3).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    for id in &ids {
        a.send(id, offer_to("+4791000012")).await;
    }
    // The burst of 2 goes through (nobody is there: UNAVAILABLE); the third is over the limit.
    for id in &ids[..2] {
        let msg = a.recv().await;
        assert_eq!(&msg.call_id, id);
        match msg.message {
            Some(Message::Bye(b)) => assert_eq!(b.reason(), bye::Reason::Unavailable),
            other => panic!("expected Bye, got {other:?}"),
        }
    }
    assert_eq!(
        a.recv_error().await,
        (error::Code::RateLimitHit, ids[2].clone())
    );
    core.wait_for(1, 0).await;
}

#[tokio::test]
async fn terminals_over_the_limits_fail_with_resource_exhausted() {
    let core = start(|c| {
        c.switch.max_terminals_per_msisdn = 2;
        c.switch.max_terminals = 3;
    })
    .await;
    let _a1 = core.open("+4791000031", true).await.unwrap();
    let _a2 = core.open("+4791000031", true).await.unwrap();
    let third = core.open("+4791000031", true).await.err().unwrap();
    assert_eq!(third.code(), Code::ResourceExhausted);
    let _b = core.open("+4791000032", false).await.unwrap();
    let fourth = core.open("+4791000033", false).await.err().unwrap();
    assert_eq!(fourth.code(), Code::ResourceExhausted);
    core.wait_for(3, 0).await;
}
