//! The server through real sockets: auth before any message, a call between two terminals,
//! a cancelled rpc leaving no call, and graceful shutdown (PROTOCOL.md 4.9).

use super::*;
use crate::core::Msisdn;
use crate::proto::common::PhoneNumber;
use crate::proto::webterminal::web_terminal_message::Message;
use crate::proto::webterminal::web_terminal_service_client::WebTerminalServiceClient;
use crate::proto::webterminal::{bye, Answer, Offer, WebTerminalMessage};
use std::net::SocketAddr;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Code, Streaming};

const SECRET: &[u8] = b"server test secret";
const A: &str = "+4799990001";
const B: &str = "+4799990002";

fn sdp(name: &str) -> String {
    let path = format!("{}/tests/fixtures/sdp/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path).unwrap()
}

struct Running {
    addr: SocketAddr,
    driver: driver::DriverHandle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    served: tokio::task::JoinHandle<Result<(), ServeError>>,
}

async fn start(phone_network: PhoneNetworkKind) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = ServerConfig::new(SECRET);
    config.phone_network = phone_network;
    let exchange = Exchange::start(config);
    let driver = exchange.driver().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(exchange.serve(listener, async {
        let _ = stopped.await;
    }));
    Running {
        addr,
        driver,
        stop: Some(stop),
        served,
    }
}

struct Terminal {
    tx: mpsc::Sender<WebTerminalMessage>,
    rx: Streaming<WebTerminalMessage>,
}

impl Terminal {
    async fn next(&mut self) -> WebTerminalMessage {
        tokio::time::timeout(std::time::Duration::from_secs(5), self.rx.message())
            .await
            .expect("a message in time")
            .expect("no status")
            .expect("stream open")
    }
}

async fn open(addr: SocketAddr, msisdn: &str, multi: bool) -> Result<Terminal, tonic::Status> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = WebTerminalServiceClient::new(channel);
    let token = auth::mint_token(
        SECRET,
        &Msisdn::parse(msisdn).unwrap(),
        auth::REQUIRED_SCOPE,
        Duration::from_secs(60),
    );
    let (tx, rx) = mpsc::channel(16);
    let mut request = tonic::Request::new(ReceiverStream::new(rx));
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let rx = if multi {
        client.multi_pipe(request).await?.into_inner()
    } else {
        client.pipe(request).await?.into_inner()
    };
    Ok(Terminal { tx, rx })
}

#[tokio::test]
async fn no_token_fails_before_any_message() {
    let server = start(PhoneNetworkKind::None).await;
    let channel = Channel::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = WebTerminalServiceClient::new(channel);
    let (_tx, rx) = mpsc::channel::<WebTerminalMessage>(1);
    let status = client
        .pipe(ReceiverStream::new(rx))
        .await
        .expect_err("unauthenticated");
    assert_eq!(status.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn call_then_shutdown_byes_everyone_and_ends_streams_ok() {
    let mut server = start(PhoneNetworkKind::Sim).await;
    let mut a = open(server.addr, A, false).await.unwrap();
    assert!(matches!(a.next().await.message, Some(Message::Idle(_))));
    let mut b = open(server.addr, B, true).await.unwrap();
    // B's registration is done once its rpc is open; A calls B.
    a.tx.send(WebTerminalMessage {
        message: Some(Message::Offer(Offer {
            sdp: sdp("chromium-offer.sdp"),
            msisdn: Some(PhoneNumber { e164: B.into() }),
            data: Default::default(),
        })),
        call_id: String::new(),
    })
    .await
    .unwrap();
    let offer = b.next().await;
    let Some(Message::Offer(o)) = &offer.message else {
        panic!("expected Offer, got {offer:?}")
    };
    assert_eq!(
        o.sdp,
        sdp("chromium-offer.sdp"),
        "SDP relayed byte for byte"
    );
    assert_eq!(o.msisdn.as_ref().unwrap().e164, A);
    b.tx.send(WebTerminalMessage {
        message: Some(Message::Answer(Answer {
            sdp: sdp("chromium-answer.sdp"),
        })),
        call_id: offer.call_id.clone(),
    })
    .await
    .unwrap();
    // B's simulated mobile phone is a fork too: it alerts, so A may see Ringing first.
    let mut answer = a.next().await;
    while matches!(answer.message, Some(Message::Ringing(_))) {
        answer = a.next().await;
    }
    assert!(
        matches!(answer.message, Some(Message::Answer(_))),
        "{answer:?}"
    );
    assert_eq!(server.driver.stats().await.unwrap().calls, 1);

    // A bad message is answered on the stream, which stays open.
    b.tx.send(WebTerminalMessage {
        message: None,
        call_id: "not-a-uuid".into(),
    })
    .await
    .unwrap();
    let error = b.next().await;
    assert_eq!(error.call_id, "not-a-uuid");
    assert!(matches!(error.message, Some(Message::Error(_))));

    server.stop.take().unwrap().send(()).unwrap();
    for terminal in [&mut a, &mut b] {
        let bye = terminal.next().await;
        assert_eq!(
            bye.message,
            Some(Message::Bye(crate::proto::webterminal::Bye {
                reason: bye::Reason::ServerShutdown as i32
            }))
        );
        let end = tokio::time::timeout(Duration::from_secs(5), terminal.rx.message())
            .await
            .expect("stream ends in time");
        assert!(matches!(end, Ok(None)), "ends with status OK: {end:?}");
    }
    tokio::time::timeout(Duration::from_secs(6), server.served)
        .await
        .expect("serve returns within the drain time")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn cancelled_rpc_leaves_no_call() {
    let server = start(PhoneNetworkKind::Sim).await;
    let mut a = open(server.addr, A, true).await.unwrap();
    let id = uuid::Uuid::new_v4().to_string();
    // B has no terminal: its simulated phone rings.
    a.tx.send(WebTerminalMessage {
        message: Some(Message::Offer(Offer {
            sdp: sdp("aiortc-offer.sdp"),
            msisdn: Some(PhoneNumber { e164: B.into() }),
            data: Default::default(),
        })),
        call_id: id.clone(),
    })
    .await
    .unwrap();
    let ringing = a.next().await;
    assert!(
        matches!(ringing.message, Some(Message::Ringing(_))),
        "{ringing:?}"
    );
    assert_eq!(ringing.call_id, id);
    assert_eq!(server.driver.stats().await.unwrap().calls, 1);
    drop(a);
    let mut stats = server.driver.stats().await.unwrap();
    for _ in 0..100 {
        if stats == driver::DriverStats::default() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        stats = server.driver.stats().await.unwrap();
    }
    assert_eq!(
        stats,
        driver::DriverStats::default(),
        "no terminal, no call left"
    );
}

#[tokio::test]
async fn half_closed_terminal_stays_registered_but_is_not_offered_calls() {
    let server = start(PhoneNetworkKind::None).await;
    let mut a = open(server.addr, A, false).await.unwrap();
    assert!(matches!(a.next().await.message, Some(Message::Idle(_))));
    let Terminal { tx, rx: a_rx } = a;
    drop(tx);
    let mut b = open(server.addr, B, false).await.unwrap();
    assert!(matches!(b.next().await.message, Some(Message::Idle(_))));
    // Give the half-close time to reach the driver (it travels on A's connection).
    tokio::time::sleep(Duration::from_millis(100)).await;
    b.tx.send(WebTerminalMessage {
        message: Some(Message::Offer(Offer {
            sdp: sdp("chromium-offer.sdp"),
            msisdn: Some(PhoneNumber { e164: A.into() }),
            data: Default::default(),
        })),
        call_id: String::new(),
    })
    .await
    .unwrap();
    let bye = b.next().await;
    assert_eq!(
        bye.message,
        Some(Message::Bye(crate::proto::webterminal::Bye {
            reason: bye::Reason::Busy as i32
        })),
        "A's only terminal half-closed: a device, but not eligible"
    );
    assert_eq!(server.driver.stats().await.unwrap().terminals, 2);
    drop(a_rx);
}
