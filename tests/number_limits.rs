//! Rate limits per number (PROTOCOL.md section 6): a number's budget of call attempts is
//! shared by all its terminals and survives reconnects, so a number reconnecting in a loop cannot
//! ring a victim faster than its per-number attempt rate; and one caller cannot ring one callee
//! more often than the per-callee rate, even with a large attempt budget. The server runs in this
//! process over real loopback sockets.

#[path = "support/in_process.rs"]
mod in_process;
#[path = "support/terminal.rs"]
mod terminal;

use in_process::{no_phones, Core};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use terminal::{channel, fixture, message, Kind, Terminal};
use tonic::transport::Channel;
use webterminal_core::proto::webterminal::web_terminal_message::Message;
use webterminal_core::proto::webterminal::{error, Ringing, WebTerminalMessage};

const SECRET: &[u8] = b"number-limits-test-secret";
const ATTACKER: &str = "+4791000001";
const VICTIM: &str = "+4791000002";
const OTHER: &str = "+4791000003";
const WAIT: Duration = Duration::from_secs(5);

/// A MultiPipe for `msisdn` on `channel`, 64 requests queued at most.
async fn open(channel: Channel, msisdn: &str) -> Terminal {
    Terminal::open_queued(channel, Kind::Multi, SECRET, msisdn, 64)
        .await
        .expect("the terminal opens")
}

fn offer(call_id: &str, to: &str) -> WebTerminalMessage {
    message(call_id, terminal::offer(&fixture("chromium-offer.sdp"), to))
}

/// A victim terminal that reads promptly, counts the calls offered to it and rings for each (so
/// that the caller hears Ringing).
async fn victim(addr: SocketAddr, msisdn: &str) -> Arc<AtomicUsize> {
    let offers = Arc::new(AtomicUsize::new(0));
    let mut terminal = open(channel(addr).await, msisdn).await;
    let counted = offers.clone();
    tokio::spawn(async move {
        while let Ok(Some(message)) = terminal.rx.message().await {
            if matches!(message.message, Some(Message::Offer(_))) {
                counted.fetch_add(1, Ordering::Relaxed);
                let ringing = WebTerminalMessage {
                    message: Some(Message::Ringing(Ringing {})),
                    call_id: message.call_id,
                };
                if terminal.tx.send(ringing).await.is_err() {
                    return;
                }
            }
        }
    });
    offers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_number_reconnecting_in_a_loop_cannot_exceed_its_attempt_rate_against_a_victim() {
    let config = no_phones(SECRET);
    // Every other limit at its default: per terminal 10 attempts a second (burst 20), per number
    // the same, shared across terminals and reconnects.
    let per_second = config.call_attempts_per_second;
    let core = Core::start(config).await;
    let addr = core.addr;
    let offered = victim(addr, VICTIM).await;
    let attacker_channel = channel(addr).await;

    let start = Instant::now();
    let mut reconnects = 0;
    while start.elapsed() < Duration::from_secs(3) {
        // A fresh terminal each round: the burst of a new terminal, as many calls as it may hold.
        let mut attacker = open(attacker_channel.clone(), ATTACKER).await;
        for _ in 0..16 {
            let id = uuid::Uuid::new_v4().to_string();
            attacker.tx.send(offer(&id, VICTIM)).await.unwrap();
        }
        // Wait for the offers to be answered (Ringing, RATE_LIMIT_HIT, Bye) before going, as
        // long as answers keep coming.
        let mut answered = 0;
        while answered < 16 {
            match tokio::time::timeout(Duration::from_millis(300), attacker.rx.message()).await {
                Ok(Ok(Some(_))) => answered += 1,
                Ok(end) => panic!("the attacker's rpc ended: {end:?}"),
                Err(_) => break,
            }
        }
        reconnects += 1;
    }
    // Let the last offers reach the victim.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let elapsed = start.elapsed().as_secs_f64();
    let offered = offered.load(Ordering::Relaxed);
    // A full bucket at the start, then the refill: 2N + N a second.
    let bound = 2.0 * f64::from(per_second) + f64::from(per_second) * elapsed;
    assert!(
        (offered as f64) <= bound + 1.0,
        "the victim was offered {offered} calls in {elapsed:.1} s over {reconnects} reconnects; \
         the number may attempt {per_second}/s (at most {bound:.0} here)"
    );
    assert!(
        offered >= 2 * per_second as usize,
        "the first burst goes through ({offered})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_caller_rings_one_callee_at_most_at_the_per_callee_rate() {
    let mut config = no_phones(SECRET);
    // A dialler: a large attempt budget, but one callee is rung at most once a second (burst 2).
    config.call_attempts_per_second = 100;
    config.call_attempts_per_second_per_number = Some(100);
    config.offers_per_second_per_callee = Some(1);
    let core = Core::start(config).await;
    let addr = core.addr;
    let offered_to_victim = victim(addr, VICTIM).await;
    let offered_to_other = victim(addr, OTHER).await;
    let mut caller = open(channel(addr).await, ATTACKER).await;

    let mut refused = vec![];
    for to in [VICTIM, OTHER] {
        for _ in 0..6 {
            let id = uuid::Uuid::new_v4().to_string();
            caller.tx.send(offer(&id, to)).await.unwrap();
        }
    }
    let mut answered = 0;
    while answered < 12 {
        let message = tokio::time::timeout(WAIT, caller.rx.message())
            .await
            .expect("an answer in time")
            .unwrap()
            .unwrap();
        match message.message {
            Some(Message::Error(e)) => {
                assert_eq!(e.err, error::Code::RateLimitHit as i32, "{e:?}");
                refused.push(message.call_id);
                answered += 1;
            }
            Some(Message::Ringing(_)) => answered += 1,
            _ => {}
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Six offers to each callee at once: two ring it, four are refused, for each of them.
    assert_eq!(offered_to_victim.load(Ordering::Relaxed), 2);
    assert_eq!(offered_to_other.load(Ordering::Relaxed), 2);
    assert_eq!(refused.len(), 8);
}
