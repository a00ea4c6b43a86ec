//! Honest drops (PROTOCOL.md 4.8 and section 6): a terminal dropped as a slow consumer
//! learns why — its rpc ends with `RESOURCE_EXHAUSTED` and a message saying so, not with OK — and
//! a terminal that reads promptly is never dropped for the answers to a burst of messages within
//! its rate limit (the outbound queue is sized from that limit). The server runs in this process
//! over real loopback sockets.

#[path = "support/in_process.rs"]
mod in_process;
#[path = "support/terminal.rs"]
mod terminal;

use in_process::{no_phones, Core};
use std::time::Duration;
use terminal::{Kind, Terminal};
use webterminal_core::proto::webterminal::web_terminal_message::Message;
use webterminal_core::proto::webterminal::{error, Ringing, WebTerminalMessage};

const SECRET: &[u8] = b"honest-drops-test-secret";
const WAIT: Duration = Duration::from_secs(10);

/// Opens a Pipe for `msisdn` on a connection of its own, and reads its greeting (Idle). The
/// connection carries at most `window` bytes toward the client before it reads them (its HTTP/2
/// stream and connection windows), as a real network path holds only so much in flight.
async fn open(core: &Core, msisdn: &str, window: u32) -> Terminal {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", core.addr))
        .unwrap()
        .initial_stream_window_size(window)
        .initial_connection_window_size(window)
        .connect()
        .await
        .unwrap();
    let mut pipe = Terminal::open_queued(channel, Kind::Pipe, SECRET, msisdn, 4096)
        .await
        .unwrap();
    let greeting = tokio::time::timeout(WAIT, pipe.rx.message()).await.unwrap();
    assert!(
        matches!(&greeting, Ok(Some(m)) if matches!(m.message, Some(Message::Idle(_)))),
        "{greeting:?}"
    );
    pipe
}

/// A message that earns an answer (`Error{NOT_INCALL}`: a Pipe with no call) and changes nothing.
fn ringing() -> WebTerminalMessage {
    WebTerminalMessage {
        message: Some(Message::Ringing(Ringing {})),
        call_id: String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_that_overflows_a_never_reading_terminals_queue_ends_its_rpc_with_resource_exhausted(
) {
    let core = Core::start(no_phones(SECRET)).await;
    // A small window, for the reason the next test gives.
    let Terminal { tx, mut rx } = open(&core, "+4792000001", 4 * 1024).await;
    // Every message earns an answer (NOT_INCALL, then RATE_LIMIT_HIT over the budget); none is
    // read until the server has let go of the terminal.
    let flood = tokio::spawn(async move {
        while tx.send(ringing()).await.is_ok() {}
        std::future::pending::<()>().await;
    });
    core.wait_for_terminals(0).await;
    flood.abort();

    // Now the client reads: whatever the server had sent before, then the status.
    let mut read = 0;
    let status = loop {
        match tokio::time::timeout(WAIT, rx.message())
            .await
            .expect("the rpc ends in time")
        {
            Ok(Some(_)) => read += 1,
            Ok(None) => panic!("the rpc ended with status OK after {read} messages"),
            Err(status) => break status,
        }
    };
    assert_eq!(
        status.code(),
        tonic::Code::ResourceExhausted,
        "{status:?} after {read} messages"
    );
    assert!(
        status.message().contains("slow consumer"),
        "the status says why: {status:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_reading_promptly_is_never_dropped_for_a_burst_at_its_rate_limit() {
    let mut config = no_phones(SECRET);
    // A budget of 1000 messages a second: a burst of 2000, each answered.
    config.messages_per_second = 1000;
    config.messages_per_second_per_number = Some(1000);
    let burst = 2 * config.messages_per_second as usize;
    let core = Core::start(config).await;
    // 4 KiB in flight: some fifty answers; the rest of the burst's answers wait in the server's
    // outbound queue. (Not much more: the client's own HTTP/2 library, h2 0.4.20 on, closes a
    // connection on which over 25,600 bytes of framing overhead, counted as 256 bytes less the
    // payload of each small DATA frame, sit unread; a 16 KiB window of 71-byte answers is twice
    // that, so such a client would hang up on itself, whatever the server does.)
    let Terminal { tx, mut rx } = open(&core, "+4792000002", 4 * 1024).await;

    // The burst, then one round trip (a slow mobile path) before the answers are read; from then
    // on every answer is read as soon as it is there.
    for _ in 0..burst {
        tx.send(ringing()).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut not_in_call = 0;
    while not_in_call < burst {
        let message = tokio::time::timeout(WAIT, rx.message())
            .await
            .expect("answers keep coming");
        match message {
            Ok(Some(m)) => match m.message {
                Some(Message::Error(e)) if e.err == error::Code::NotIncall as i32 => {
                    not_in_call += 1
                }
                other => panic!("after {not_in_call} answers: {other:?}"),
            },
            end => panic!("dropped after {not_in_call} of {burst} answers: {end:?}"),
        }
    }
    // Still registered: not dropped.
    assert_eq!(core.stats().await.terminals, 1);
    drop(tx);
}
