//! A client that never reads (PROTOCOL.md 4.8, "a terminal goes away"): it is dropped as a slow
//! consumer once its bounded outbound queue is full, other terminals keep calling meanwhile, and the
//! server's memory stays flat however many such clients come. Alone in its test binary, so that the
//! process's memory is this test's.

#[path = "support/in_process.rs"]
mod in_process;
#[path = "support/terminal.rs"]
mod terminal;

use in_process::{no_phones, Core};
use std::time::Duration;
use terminal::{fixture, offer, Kind, Terminal};
use webterminal_core::proto::webterminal::web_terminal_message::Message;
use webterminal_core::proto::webterminal::{Answer, Bye, Ringing, WebTerminalMessage};
use webterminal_core::server::ServerConfig;

const SECRET: &[u8] = b"limits-test-secret";
const WAIT: Duration = Duration::from_secs(10);

async fn start(configure: impl FnOnce(&mut ServerConfig)) -> Core {
    let mut config = no_phones(SECRET);
    configure(&mut config);
    Core::start(config).await
}

/// A Pipe (`multi` false) or a MultiPipe of `msisdn`, on a connection of its own, with room for
/// a flood of requests.
async fn open(core: &Core, msisdn: &str, multi: bool) -> Result<Terminal, tonic::Status> {
    let kind = if multi { Kind::Multi } else { Kind::Pipe };
    Terminal::open_queued(core.channel().await, kind, SECRET, msisdn, 4096).await
}

fn offer_to(msisdn: &str) -> Message {
    offer(&fixture("chromium-offer.sdp"), msisdn)
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
    let deaf = open(core, msisdn, false).await.unwrap();
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
    let core = std::sync::Arc::new(
        start(|c| {
            c.messages_per_second = 0;
            c.call_attempts_per_second = 0;
        })
        .await,
    );
    let (caller, callee) = ("+4791000021", "+4791000022");
    let mut a = open(&core, caller, true).await.unwrap();
    let mut b = open(&core, callee, true).await.unwrap();

    let deaf = tokio::spawn({
        let core = core.clone();
        async move { deaf_client(&core, "+4791000020", 2).await }
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
