//! One HTTP/2 connection carrying hundreds of terminals — a gateway multiplexing its users, as WG2's
//! WebSocket gateway does — survives a saturated driver. While the switch is stalled, each
//! terminal's reader waits for the driver and stops reading its stream, so the terminals' small
//! messages wait unread in the server's HTTP/2 buffers. h2 budgets the framing overhead of unread
//! small DATA frames per connection (256 bytes less each payload) and closes the connection with
//! `GOAWAY(ENHANCE_YOUR_CALM)` when it runs out: with h2's default budget, a few thousand waiting
//! messages would close the gateway's connection and end every one of its terminals' calls. Here 500
//! terminals on one connection each send messages while the switch is held for two seconds; when it
//! is free again, every terminal gets every answer, in order, and the connection is still up.
//!
//! The server runs in this process over real loopback sockets; the stall is a routing hook that
//! holds the switch's task (PROTOCOL.md section 5 asks hooks to answer at once: this one does not,
//! on purpose).

#[path = "support/in_process.rs"]
mod in_process;
#[path = "support/terminal.rs"]
mod terminal;

use in_process::{no_phones, Core};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use terminal::message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use webterminal_core::core::{CallContext, Msisdn, Route, Router};
use webterminal_core::proto::common::PhoneNumber;
use webterminal_core::proto::webterminal::web_terminal_message::Message;
use webterminal_core::proto::webterminal::web_terminal_service_client::WebTerminalServiceClient;
use webterminal_core::proto::webterminal::{error, Offer, Ringing};
use webterminal_core::server::Exchange;

const SECRET: &[u8] = b"multiplexed-connection-test-secret";
const TERMINALS: usize = 500;
/// Messages each terminal sends while the switch is held: 500 × 16 small frames, twice what h2's
/// default budget lets a connection hold unread, and under half what the server's window allows.
const MESSAGES: usize = 16;
/// Calls to this number hold the switch's task.
const STALL: &str = "+4700000000";
const STALL_FOR: Duration = Duration::from_secs(2);
const WAIT: Duration = Duration::from_secs(30);

/// A routing hook that holds the switch for [`STALL_FOR`] on a call to [`STALL`], once it is armed.
struct Stall(Arc<AtomicBool>);

impl Router for Stall {
    fn route(&mut self, _from: &Msisdn, to: &Msisdn, _context: &CallContext) -> Route {
        if to.as_str() == STALL && self.0.swap(false, Ordering::SeqCst) {
            std::thread::sleep(STALL_FOR);
            return Route::Reject(webterminal_core::core::ByeReason::Unavailable);
        }
        Route::Ring(to.clone())
    }
}

fn number(i: usize) -> Msisdn {
    Msisdn::parse(&format!("+4791{i:06}")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundreds_of_terminals_on_one_connection_survive_a_stalled_switch() {
    let exchange = Exchange::start(no_phones(SECRET));
    let armed = Arc::new(AtomicBool::new(false));
    exchange.set_router(Stall(armed.clone())).await.unwrap();
    let core = Core::serve(exchange).await;
    let addr = core.addr;

    // One connection for every terminal.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut terminals = Vec::new();
    for i in 0..TERMINALS {
        let mut client = WebTerminalServiceClient::new(channel.clone());
        let (tx, rx) = mpsc::channel(MESSAGES + 8);
        let mut request = tonic::Request::new(ReceiverStream::new(rx));
        terminal::authorize(&mut request, SECRET, number(i).as_str());
        let responses = client.multi_pipe(request).await.unwrap().into_inner();
        terminals.push((tx, responses));
    }

    // Hold the switch, then have every terminal send its messages: each a Ringing for a call the
    // terminal does not have, which the switch answers with Error{INVALID_CALL_ID}.
    armed.store(true, Ordering::SeqCst);
    let staller = &terminals[0].0;
    let offer = Offer {
        sdp: "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:111 opus/48000/2\r\n".into(),
        msisdn: Some(PhoneNumber { e164: STALL.into() }),
        data: Default::default(),
    };
    let stall_call = uuid::Uuid::new_v4().to_string();
    staller
        .send(message(&stall_call, Message::Offer(offer)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // One message per terminal at a time, as people and bots send them, so that each travels in
    // a DATA frame of its own (a client coalesces messages queued together into one frame).
    let sent: Vec<Vec<String>> = (0..TERMINALS)
        .map(|_| {
            (0..MESSAGES)
                .map(|_| uuid::Uuid::new_v4().to_string())
                .collect()
        })
        .collect();
    for round in 0..MESSAGES {
        for ((tx, _), ids) in terminals.iter().zip(&sent) {
            if tx
                .send(message(&ids[round], Message::Ringing(Ringing {})))
                .await
                .is_err()
            {
                // Its rpc ended: the reader below reports why.
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Every terminal gets an answer to each message, in order, once the switch is free.
    let mut readers = Vec::new();
    for (i, ((tx, mut responses), ids)) in terminals.into_iter().zip(sent).enumerate() {
        readers.push(tokio::spawn(async move {
            let mut answered = Vec::new();
            while answered.len() < ids.len() {
                let next = tokio::time::timeout(WAIT, responses.next())
                    .await
                    .unwrap_or_else(|_| panic!("terminal {i}: no answer in time"));
                let message = match next {
                    Some(Ok(message)) => message,
                    Some(Err(status)) => panic!("terminal {i}: its rpc failed: {status:?}"),
                    None => panic!("terminal {i}: its rpc ended"),
                };
                match message.message {
                    Some(Message::Error(e)) if e.err == error::Code::InvalidCallId as i32 => {
                        answered.push(message.call_id)
                    }
                    // The staller's own call is refused (its Bye) before its Ringing answers.
                    Some(Message::Bye(_)) if i == 0 => {}
                    other => panic!("terminal {i}: unexpected {other:?}"),
                }
            }
            assert_eq!(answered, ids, "terminal {i}: every answer, in order");
            (tx, responses)
        }));
    }
    let mut terminals = Vec::new();
    for reader in readers {
        terminals.push(reader.await.unwrap());
    }

    // The connection is still up: a new rpc on it works, and so do the old ones.
    let (tx, mut responses) = terminals.pop().unwrap();
    let id = uuid::Uuid::new_v4().to_string();
    tx.send(message(&id, Message::Ringing(Ringing {})))
        .await
        .unwrap();
    let answer = tokio::time::timeout(WAIT, responses.next())
        .await
        .expect("an answer in time")
        .expect("the rpc is open")
        .expect("no error");
    assert_eq!(answer.call_id, id);
}
