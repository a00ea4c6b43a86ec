//! An embedder's own phone network behind the core (PROTOCOL.md section 7), plugged in with
//! `Exchange::with_phone_network`: the switch's commands reach it, and what it reports through
//! `PhoneReports` drives the calls of real gRPC terminals, both ways (calls to the network's phones
//! and calls from them, 4.11).

#[path = "support/in_process.rs"]
mod in_process;
#[path = "support/terminal.rs"]
mod terminal;

use std::time::Duration;
use terminal::{fixture, Kind, Terminal};
use tokio::sync::{mpsc, oneshot};
use webterminal_core::core::{
    ByeReason, CallContext, Msisdn, PhoneCommand, PhoneEvent, PhoneLegId, PhoneRejection, Route,
    Router, Sdp,
};
use webterminal_core::phone::{PhoneNetwork, PhoneReports};
use webterminal_core::proto::common::PhoneNumber;
use webterminal_core::proto::webterminal::web_terminal_message::Message;
use webterminal_core::proto::webterminal::{bye, Answer, Bye, Offer, Ringing, WebTerminalMessage};
use webterminal_core::server::{Exchange, ServerConfig};

const SECRET: &[u8] = b"embedding-test-secret";
const A: &str = "+4792000001";
const MOBILE: &str = "+4792000099";
const WAIT: Duration = Duration::from_secs(5);

/// The embedder's network, as a test double: every command goes to the test, which answers through
/// the `PhoneReports` it was connected with.
struct Network(mpsc::UnboundedSender<PhoneCommand>);

impl PhoneNetwork for Network {
    fn send(&mut self, command: PhoneCommand) {
        let _ = self.0.send(command);
    }
}

/// The shared in-process core with the test's network behind it: the commands it gives that
/// network, and the reports the test answers with (what the shared core alone has not).
struct Core {
    core: in_process::Core,
    commands: mpsc::UnboundedReceiver<PhoneCommand>,
    reports: PhoneReports,
}

impl Core {
    async fn start() -> Core {
        Self::start_routed(None).await
    }

    /// As [`Core::start`], with `router` as the routing hook when given.
    async fn start_routed(router: Option<Box<dyn Router>>) -> Core {
        let (commands_tx, commands) = mpsc::unbounded_channel();
        let (reports_tx, reports_rx) = oneshot::channel::<PhoneReports>();
        let mut config = ServerConfig::new(SECRET.to_vec());
        config.switch.reconnect_grace = Duration::ZERO;
        let exchange = Exchange::with_phone_network(config, move |reports| {
            reports_tx.send(reports).unwrap();
            Network(commands_tx)
        });
        let reports = reports_rx.await.unwrap();
        let driver = exchange.driver().clone();
        if let Some(router) = router {
            driver.set_router(router).await.unwrap();
        }
        Core {
            core: in_process::Core::serve(exchange).await,
            commands,
            reports,
        }
    }

    /// The next command the core gives the network.
    async fn command(&mut self) -> PhoneCommand {
        tokio::time::timeout(WAIT, self.commands.recv())
            .await
            .expect("a phone command in time")
            .expect("the core is running")
    }

    /// Opens a MultiPipe for `msisdn`.
    async fn multi_pipe(&self, msisdn: &str) -> Terminal {
        Terminal::open(self.core.channel().await, Kind::Multi, SECRET, msisdn)
            .await
            .unwrap()
    }

    async fn stop(self) {
        assert_eq!(self.core.stats().await.calls, 0);
        self.core.stop().await;
    }
}

#[tokio::test]
async fn an_embedders_phone_network_carries_calls_of_grpc_terminals() {
    let mut core = Core::start().await;
    let reports = core.reports.clone();
    // A MultiPipe terminal of A calls a number that lives only in the embedder's network.
    let mut a = core.multi_pipe(A).await;
    let id = uuid::Uuid::new_v4().to_string();
    let offer_sdp = fixture("chromium-offer.sdp");
    a.tx.send(WebTerminalMessage {
        message: Some(Message::Offer(Offer {
            sdp: offer_sdp.clone(),
            msisdn: Some(PhoneNumber {
                e164: MOBILE.into(),
            }),
            data: Default::default(),
        })),
        call_id: id.clone(),
    })
    .await
    .unwrap();

    // The network is asked to ring that number, with A as caller ID and A's SDP byte for byte.
    let command = core.command().await;
    let PhoneCommand::Ring {
        leg, to, from, sdp, ..
    } = command
    else {
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
    let command = core.command().await;
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
            data: Default::default(),
        })),
        call_id: id2.clone(),
    })
    .await
    .unwrap();
    let PhoneCommand::Ring { leg: leg2, .. } = core.command().await else {
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
    drop(a);
    core.stop().await;
}

/// PROTOCOL.md 4.11 through an embedder's network: a phone of the network calls A; A's terminal
/// rings and answers, the network hears the alerting and the answer, re-offers both ways work,
/// and the phone hangs up.
#[tokio::test]
async fn an_embedders_phone_network_brings_in_calls_from_its_phones() {
    let mut core = Core::start().await;
    let mut a = core.multi_pipe(A).await;
    // A registers.
    core.core.wait_for_terminals(1).await;
    let leg = PhoneLegId::from_network(7);
    let offer_sdp = fixture("aiortc-offer.sdp");
    assert!(core.reports.report(PhoneEvent::Incoming {
        leg,
        from: Msisdn::parse(MOBILE).unwrap(),
        to: Msisdn::parse(A).unwrap(),
        sdp: Sdp::parse(&offer_sdp, 65536).unwrap(),
        context: Default::default()
    }));
    let offered = a.recv().await;
    let id = offered.call_id.clone();
    match offered.message {
        Some(Message::Offer(offer)) => {
            assert_eq!(offer.sdp, offer_sdp, "relayed byte for byte");
            assert_eq!(
                offer.msisdn.unwrap().e164,
                MOBILE,
                "the calling phone's number"
            );
        }
        other => panic!("expected the Offer, got {other:?}"),
    }
    // A's own mobile phone is rung too; in this network it is off.
    let PhoneCommand::Ring {
        leg: a_phone, to, ..
    } = core.command().await
    else {
        panic!("expected A's phone to be rung");
    };
    assert_eq!(to.as_str(), A);
    core.reports.report(PhoneEvent::Rejected {
        leg: a_phone,
        reason: PhoneRejection::Unreachable,
    });

    a.send(&id, Message::Ringing(Ringing {})).await;
    assert_eq!(core.command().await, PhoneCommand::Alerting { leg });
    let answer_sdp = fixture("chromium-answer.sdp");
    a.send(
        &id,
        Message::Answer(Answer {
            sdp: answer_sdp.clone(),
        }),
    )
    .await;
    match core.command().await {
        PhoneCommand::Answer { leg: l, sdp } => {
            assert_eq!(l, leg);
            assert_eq!(sdp.as_str(), answer_sdp);
        }
        other => panic!("expected the answer toward the calling phone, got {other:?}"),
    }

    // The phone re-offers (hold); A answers; the answer goes back to the network.
    let hold = fixture("aiortc-hold-offer.sdp");
    core.reports.report(PhoneEvent::Offer {
        leg,
        sdp: Sdp::parse(&hold, 65536).unwrap(),
    });
    let reoffer = a.recv().await;
    assert_eq!(reoffer.call_id, id);
    assert!(matches!(reoffer.message, Some(Message::Offer(o)) if o.sdp == hold));
    a.send(
        &id,
        Message::Answer(Answer {
            sdp: fixture("chromium-hold-answer.sdp"),
        }),
    )
    .await;
    assert!(matches!(core.command().await, PhoneCommand::Answer { leg: l, .. } if l == leg));

    // The phone hangs up.
    core.reports.report(PhoneEvent::HungUp { leg });
    let bye = a.recv().await;
    assert_eq!(bye.call_id, id);
    match bye.message {
        Some(Message::Bye(b)) => assert_eq!(b.reason(), bye::Reason::NormalClearing),
        other => panic!("expected Bye, got {other:?}"),
    }
    drop(a);
    core.stop().await;
}

/// PROTOCOL.md section 5 through an embedder's routing hook: a call to the company number reaches
/// the terminal of the employee the hook picks, over real gRPC.
#[tokio::test]
async fn an_embedders_routing_hook_picks_who_rings() {
    struct ToEmployee;
    impl Router for ToEmployee {
        fn route(&mut self, _from: &Msisdn, to: &Msisdn, _context: &CallContext) -> Route {
            match to.as_str() {
                COMPANY => Route::Ring(Msisdn::parse(A).unwrap()),
                _ => Route::Reject(ByeReason::Unavailable),
            }
        }
    }
    const COMPANY: &str = "+4721000000";
    let mut core = Core::start_routed(Some(Box::new(ToEmployee))).await;
    let mut employee = core.multi_pipe(A).await;
    let customer = core.multi_pipe(MOBILE).await;
    // Both register.
    core.core.wait_for_terminals(2).await;
    let id = uuid::Uuid::new_v4().to_string();
    customer
        .send(
            &id,
            Message::Offer(Offer {
                sdp: fixture("chromium-offer.sdp"),
                msisdn: Some(PhoneNumber {
                    e164: COMPANY.into(),
                }),
                data: Default::default(),
            }),
        )
        .await;
    let offered = employee.recv().await;
    match offered.message {
        Some(Message::Offer(offer)) => {
            assert_eq!(offer.msisdn.unwrap().e164, MOBILE, "the customer calls");
        }
        other => panic!("expected the customer's Offer, got {other:?}"),
    }
    // A's own phone is rung too, through the embedder's network: it is off.
    let PhoneCommand::Ring { leg, to, .. } = core.command().await else {
        panic!("expected the employee's phone to be rung");
    };
    assert_eq!(to.as_str(), A);
    core.reports.report(PhoneEvent::Rejected {
        leg,
        reason: PhoneRejection::Unreachable,
    });
    customer.send(&id, Message::Bye(Bye::default())).await;
    let cancelled = employee.recv().await;
    assert!(matches!(cancelled.message, Some(Message::Bye(_))));
    drop((employee, customer));
    core.stop().await;
}
