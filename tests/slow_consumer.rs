//! A client that never reads (PROTOCOL.md 4.8, "a terminal goes away"): it is dropped as a slow
//! consumer once its bounded outbound queue is full, other terminals keep calling meanwhile, and the
//! server's memory stays flat however many such clients come. Alone in its test binary, so that the
//! process's memory is this test's.

use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use webterminal_core::auth::mint_token;
use webterminal_core::core::Msisdn;
use webterminal_core::driver::DriverHandle;
use webterminal_core::proto::common::PhoneNumber;
use webterminal_core::proto::webterminal::web_terminal_message::Message;
use webterminal_core::proto::webterminal::web_terminal_service_client::WebTerminalServiceClient;
use webterminal_core::proto::webterminal::{Answer, Bye, Offer, Ringing, WebTerminalMessage};
use webterminal_core::server::{Exchange, PhoneNetworkKind, ServerConfig};

const SECRET: &[u8] = b"limits-test-secret";
const WAIT: Duration = Duration::from_secs(10);

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/sdp/{name}", env!("CARGO_MANIFEST_DIR"));
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

    /// Polls the switch until it holds `terminals` terminals, whatever its calls.
    async fn wait_for_terminals(&self, terminals: usize) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.driver.stats().await.unwrap().terminals != terminals {
            assert!(
                tokio::time::Instant::now() < deadline,
                "expected {terminals} terminals"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
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
}

fn offer_to(msisdn: &str) -> Message {
    Message::Offer(Offer {
        sdp: fixture("chromium-offer.sdp"),
        msisdn: Some(PhoneNumber {
            e164: msisdn.into(),
        }),
        data: Default::default(),
    })
}

/// RSS of this process (the in-process server and its clients), in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// One deaf client: it floods messages that each earn an Error and never reads its stream, until
/// the server has unregistered it (the switch holds `others` terminals again); then it gives up.
async fn deaf_client(core: &Core, msisdn: &str, others: usize) {
    let deaf = core.open(msisdn, false).await.unwrap();
    let flood = tokio::spawn(async move {
        loop {
            let msg = WebTerminalMessage {
                message: Some(Message::Ringing(Ringing {})),
                call_id: String::new(),
            };
            if deaf.tx.send(msg).await.is_err() {
                // The server stopped reading and the rpc ended: nothing more goes in.
                std::future::pending::<()>().await;
            }
        }
    });
    // Dropped as a slow consumer once its outbound queue is full (PROTOCOL.md 4.8).
    core.wait_for_terminals(others).await;
    flood.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_dropped_and_others_keep_calling() {
    let core = start(|c| {
        c.messages_per_second = 0;
        c.call_attempts_per_second = 0;
    })
    .await;
    let (caller, callee) = ("+4791000021", "+4791000022");
    let mut a = core.open(caller, true).await.unwrap();
    let mut b = core.open(callee, true).await.unwrap();

    let deaf = tokio::spawn({
        let addr = core.addr;
        let driver = core.driver.clone();
        async move {
            let core = Core {
                addr,
                driver,
                _stop: oneshot::channel().0,
            };
            deaf_client(&core, "+4791000020", 2).await
        }
    });

    // Meanwhile two well-behaved terminals make calls, and every call completes.
    for _ in 0..20 {
        let id = uuid::Uuid::new_v4().to_string();
        a.send(&id, offer_to(callee)).await;
        let offered = b.recv().await;
        assert!(matches!(offered.message, Some(Message::Offer(_))));
        let b_id = offered.call_id;
        let answer = Answer {
            sdp: fixture("chromium-answer.sdp"),
        };
        b.send(&b_id, Message::Answer(answer)).await;
        assert!(matches!(a.recv().await.message, Some(Message::Answer(_))));
        a.send(&id, Message::Bye(Bye::default())).await;
        assert!(matches!(b.recv().await.message, Some(Message::Bye(_))));
    }
    tokio::time::timeout(WAIT, deaf)
        .await
        .expect("the deaf client was dropped")
        .unwrap();
    // Only the two good terminals are left, in no call.
    core.wait_for(2, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_flat_however_many_clients_never_read() {
    let core = start(|c| {
        c.messages_per_second = 0;
        c.call_attempts_per_second = 0;
    })
    .await;
    // The first deaf clients warm up the allocator and the runtime; later ones must not add to it.
    for i in 0..3 {
        deaf_client(&core, &format!("+479100010{i}"), 0).await;
    }
    core.wait_for(0, 0).await;
    let warm = rss_kib();
    for i in 3..9 {
        deaf_client(&core, &format!("+479100010{i}"), 0).await;
    }
    core.wait_for(0, 0).await;
    let grown = rss_kib().saturating_sub(warm);
    assert!(
        grown < 16 * 1024,
        "six more deaf clients grew RSS by {grown} KiB"
    );
}
