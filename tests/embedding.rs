//! An embedder's own phone network behind the core (PROTOCOL.md section 7), plugged in with
//! `Exchange::with_phone_network`: the switch's commands reach it, and what it reports through
//! `PhoneReports` drives the calls of real gRPC terminals.

use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use webterminal_core::core::{ByeReason, Msisdn, PhoneCommand, PhoneEvent, Sdp};
use webterminal_core::phone::{PhoneNetwork, PhoneReports};
use webterminal_core::proto::common::PhoneNumber;
use webterminal_core::proto::webterminal::web_terminal_message::Message;
use webterminal_core::proto::webterminal::web_terminal_service_client::WebTerminalServiceClient;
use webterminal_core::proto::webterminal::{bye, Bye, Offer, WebTerminalMessage};
use webterminal_core::server::auth::mint_token;
use webterminal_core::server::{Exchange, ServerConfig};

const SECRET: &[u8] = b"embedding-test-secret";
const A: &str = "+4792000001";
const MOBILE: &str = "+4792000099";
const WAIT: Duration = Duration::from_secs(5);

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/sdp/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The embedder's network, as a test double: every command goes to the test, which answers through
/// the `PhoneReports` it was connected with.
struct Network(mpsc::UnboundedSender<PhoneCommand>);

impl PhoneNetwork for Network {
    fn send(&mut self, command: PhoneCommand) {
        let _ = self.0.send(command);
    }
}

struct Terminal {
    tx: mpsc::Sender<WebTerminalMessage>,
    rx: tonic::Streaming<WebTerminalMessage>,
}

impl Terminal {
    async fn recv(&mut self) -> WebTerminalMessage {
        tokio::time::timeout(WAIT, self.rx.next())
            .await
            .expect("a message in time")
            .unwrap()
            .unwrap()
    }
}

#[tokio::test]
async fn an_embedders_phone_network_carries_calls_of_grpc_terminals() {
    let (commands_tx, mut commands) = mpsc::unbounded_channel();
    let (reports_tx, reports_rx) = oneshot::channel::<PhoneReports>();
    let mut config = ServerConfig::new(SECRET.to_vec());
    config.switch.reconnect_grace = Duration::ZERO;
    let exchange = Exchange::with_phone_network(config, move |reports| {
        reports_tx.send(reports).unwrap();
        Network(commands_tx)
    });
    let reports = reports_rx.await.unwrap();
    let driver = exchange.driver().clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn(exchange.serve(listener, async {
        let _ = stopped.await;
    }));

    // A MultiPipe terminal of A calls a number that lives only in the embedder's network.
    let mut client = WebTerminalServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let (tx, rx) = mpsc::channel(16);
    let mut request = tonic::Request::new(ReceiverStream::new(rx));
    let token = mint_token(
        SECRET,
        &Msisdn::parse(A).unwrap(),
        "call.control.answer_and_initiate",
        Duration::from_secs(600),
    );
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let rx = client.multi_pipe(request).await.unwrap().into_inner();
    let mut a = Terminal { tx, rx };
    let id = uuid::Uuid::new_v4().to_string();
    let offer_sdp = fixture("chromium-offer.sdp");
    a.tx.send(WebTerminalMessage {
        message: Some(Message::Offer(Offer {
            sdp: offer_sdp.clone(),
            msisdn: Some(PhoneNumber {
                e164: MOBILE.into(),
            }),
        })),
        call_id: id.clone(),
    })
    .await
    .unwrap();

    // The network is asked to ring that number, with A as caller ID and A's SDP byte for byte.
    let command = tokio::time::timeout(WAIT, commands.recv())
        .await
        .unwrap()
        .unwrap();
    let PhoneCommand::Ring { leg, to, from, sdp } = command else {
        panic!("expected Ring, got {command:?}");
    };
    assert_eq!((to.as_str(), from.as_str()), (MOBILE, A));
    assert_eq!(sdp.as_str(), offer_sdp);

    // It reports the phone ringing, then answering: A gets Ringing, then the phone's SDP.
    let answer_sdp = fixture("aiortc-answer.sdp");
    assert!(reports.report(PhoneEvent::Ringing { leg }));
    let ringing = a.recv().await;
    assert!(matches!(ringing.message, Some(Message::Ringing(_))));
    assert_eq!(ringing.call_id, id);
    assert!(reports.report(PhoneEvent::Answered {
        leg,
        sdp: Sdp::parse(&answer_sdp, 65536).unwrap(),
    }));
    match a.recv().await.message {
        Some(Message::Answer(answer)) => assert_eq!(answer.sdp, answer_sdp),
        other => panic!("expected the phone's Answer, got {other:?}"),
    }

    // A hangs up: the network is told to release the leg, with the reason.
    a.tx.send(WebTerminalMessage {
        message: Some(Message::Bye(Bye::default())),
        call_id: id.clone(),
    })
    .await
    .unwrap();
    let command = tokio::time::timeout(WAIT, commands.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        command,
        PhoneCommand::Release {
            leg,
            reason: ByeReason::NormalClearing
        }
    );

    // A second call the phone hangs up on once answered: A gets Bye{NORMAL_CLEARING}.
    let id2 = uuid::Uuid::new_v4().to_string();
    a.tx.send(WebTerminalMessage {
        message: Some(Message::Offer(Offer {
            sdp: offer_sdp.clone(),
            msisdn: Some(PhoneNumber {
                e164: MOBILE.into(),
            }),
        })),
        call_id: id2.clone(),
    })
    .await
    .unwrap();
    let Some(PhoneCommand::Ring { leg: leg2, .. }) = commands.recv().await else {
        panic!("expected a second Ring");
    };
    reports.report(PhoneEvent::Answered {
        leg: leg2,
        sdp: Sdp::parse(&answer_sdp, 65536).unwrap(),
    });
    assert!(matches!(a.recv().await.message, Some(Message::Answer(_))));
    reports.report(PhoneEvent::HungUp { leg: leg2 });
    let hung_up = a.recv().await;
    assert_eq!(hung_up.call_id, id2);
    match hung_up.message {
        Some(Message::Bye(b)) => assert_eq!(b.reason(), bye::Reason::NormalClearing),
        other => panic!("expected Bye, got {other:?}"),
    }
    assert_eq!(driver.stats().await.unwrap().calls, 0);

    drop(a);
    let _ = stop.send(());
    tokio::time::timeout(WAIT, served)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
