//! Inbound-call notifications (PROTOCOL.md section 10) against a real `redis-server` on loopback:
//! the exact JSON a consumer's `BLPOP` reads; notifications queued while Redis is down all arrive,
//! in order, once it is back; a Redis that never comes up changes nothing for calls or startup;
//! past the queue's bound the oldest are dropped and counted; the binary's `--redis` flags.

#[path = "support/redis.rs"]
mod redis_support;

#[path = "support/binary.rs"]
mod binary;

#[path = "support/in_process.rs"]
mod in_process;

use binary::terminal::{fixture, Kind, Terminal};
use in_process::Core;
use redis_support::{free_port, RedisServer};
use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use webterminal_core::core::{
    CallContext, CallEvent, CallId, CallRef, CallStatus, GroupAnswer, Msisdn,
};
use webterminal_core::notifications::{
    InboundCall, NotificationStats, NotificationsConfig, Notifier, DEFAULT_KEY, FLUSH_TIMEOUT,
};
use webterminal_core::proto::common::PhoneNumber;
use webterminal_core::proto::webterminal::web_terminal_message::Message;
use webterminal_core::proto::webterminal::{bye, Answer, Bye, Offer, WebTerminalMessage};
use webterminal_core::server::{Exchange, PhoneNetworkKind, ServerConfig};

/// How long a test waits for something that should happen before it fails (a guard against a hang,
/// not a speed requirement).
const WAIT: Duration = Duration::from_secs(20);

const CALLER: &str = "+4790000009";
const GROUP: &str = "+4721000000";

fn msisdn(s: &str) -> Msisdn {
    Msisdn::parse(s).unwrap()
}

/// The `n`th test notification: its call_ref is the UUID of the number `n`.
fn call(n: u128) -> InboundCall {
    InboundCall {
        number: msisdn(CALLER),
        dial_number: msisdn(GROUP),
        hold_time: 2,
        call_ref: CallRef(uuid::Uuid::from_u128(n)),
        contact_ref: format!("CRM-{n}"),
        reference: "101".into(),
    }
}

/// The number of a pushed test notification, from its JSON.
fn number_of(json: &str) -> u128 {
    let value: serde_json::Value = serde_json::from_str(json).unwrap();
    let call_ref = value["payload"]["call_ref"].as_str().unwrap();
    uuid::Uuid::parse_str(call_ref).unwrap().as_u128()
}

fn config(url: &str, bound: usize) -> NotificationsConfig {
    let mut config = NotificationsConfig::new(url).unwrap();
    config.queue_bound = bound;
    config
}

/// A consumer's connection, allowed to block in BLPOP.
async fn consumer(url: &str) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(url).unwrap();
    let config = redis::AsyncConnectionConfig::new().set_response_timeout(Some(WAIT * 2));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap()
}

/// The next message on `key`, read as a consumer does (BLPOP); fails the test after [`WAIT`].
async fn blpop(connection: &mut redis::aio::MultiplexedConnection, key: &str) -> String {
    let popped: Option<(String, String)> = redis::cmd("BLPOP")
        .arg(key)
        .arg(WAIT.as_secs())
        .query_async(connection)
        .await
        .unwrap();
    popped.expect("a notification within the wait").1
}

async fn llen(connection: &mut redis::aio::MultiplexedConnection, key: &str) -> i64 {
    redis::cmd("LLEN")
        .arg(key)
        .query_async(connection)
        .await
        .unwrap()
}

/// Waits until `done` holds of the counters; fails the test after [`WAIT`].
async fn until(stats: &NotificationStats, what: &str, done: impl Fn(&NotificationStats) -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done(stats) {
        assert!(Instant::now() < deadline, "never: {what} ({stats:?})");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn answered_group_call(contact_ref: Option<&str>) -> CallEvent {
    let context =
        CallContext::parse(contact_ref.map(|c| ("contact_ref".to_owned(), c.to_owned()))).unwrap();
    CallEvent {
        sequence: 3,
        at: std::time::Instant::now(),
        call_ref: CallRef(uuid::Uuid::parse_str("5f0c6a52-8e0e-4a3b-9a43-0d8f7a9b1c2d").unwrap()),
        caller: msisdn(CALLER),
        callee: msisdn("+4790000001"),
        caller_call_id: CallId::random(),
        callee_call_id: CallId::random(),
        status: CallStatus::Answered,
        device: None,
        reason: None,
        context,
        group_answer: Some(GroupAnswer {
            group: msisdn(GROUP),
            extension: "102".into(),
            hold_time: Duration::from_millis(17_800),
        }),
    }
}

#[tokio::test]
async fn a_consumer_reads_exactly_the_contract_json_with_blpop() {
    let redis = RedisServer::start();
    let notifier = Notifier::start(&config(&redis.url(), 10_000));
    let handle = notifier.handle();
    let mut consumer = consumer(&redis.url()).await;

    // Not a group answer: nothing is pushed for it (FIFO: it would come first).
    let mut plain = answered_group_call(Some("CRM-0"));
    plain.group_answer = None;
    handle.notify(&plain);
    handle.notify(&answered_group_call(Some("CRM-7731")));
    handle.notify(&answered_group_call(None));

    let first = blpop(&mut consumer, DEFAULT_KEY).await;
    assert_eq!(
        first,
        r#"{"type":"call","payload":{"number":"+4790000009","dial_number":"+4721000000","hold_time":17,"call_ref":"5f0c6a52-8e0e-4a3b-9a43-0d8f7a9b1c2d","contact_ref":"CRM-7731","call_dir":"inbound","ref":"102"}}"#
    );
    let value: serde_json::Value = serde_json::from_str(&first).unwrap();
    let keys = |v: &serde_json::Value| -> BTreeSet<String> {
        v.as_object().unwrap().keys().cloned().collect()
    };
    assert_eq!(
        keys(&value),
        BTreeSet::from(["type".into(), "payload".into()])
    );
    assert_eq!(
        keys(&value["payload"]),
        [
            "number",
            "dial_number",
            "hold_time",
            "call_ref",
            "contact_ref",
            "call_dir",
            "ref"
        ]
        .into_iter()
        .map(String::from)
        .collect::<BTreeSet<_>>()
    );
    assert!(value["payload"]["hold_time"].is_u64(), "a JSON integer");

    let second: serde_json::Value =
        serde_json::from_str(&blpop(&mut consumer, DEFAULT_KEY).await).unwrap();
    assert_eq!(
        second["payload"]["contact_ref"], "",
        "no contact_ref: empty"
    );

    until(notifier.stats(), "both counted as pushed", |s| {
        s.pushed.load(Ordering::Relaxed) == 2
    })
    .await;
    assert_eq!(llen(&mut consumer, DEFAULT_KEY).await, 0, "nothing else");
    assert_eq!(notifier.stats().queued.load(Ordering::Relaxed), 0);
    assert_eq!(notifier.close(FLUSH_TIMEOUT).await, 0);
}

#[tokio::test]
async fn notifications_queued_while_redis_is_down_all_arrive_in_order_once_it_is_back() {
    let mut redis = RedisServer::start();
    let mut config = config(&redis.url(), 10_000);
    config.key = "contact-centre:inbound".into();
    let key = config.key.clone();
    let notifier = Notifier::start(&config);
    let handle = notifier.handle();

    // Connected and delivering.
    handle.push(call(0));
    let mut consumer_conn = consumer(&redis.url()).await;
    assert_eq!(number_of(&blpop(&mut consumer_conn, &key).await), 0);
    until(notifier.stats(), "the first is delivered", |s| {
        s.pushed.load(Ordering::Relaxed) == 1
    })
    .await;

    redis.stop();
    for n in 1..=50 {
        handle.push(call(n));
    }
    assert_eq!(
        notifier.stats().queued.load(Ordering::Relaxed),
        50,
        "all kept while Redis is down"
    );
    redis.restart();
    for n in 51..=60 {
        handle.push(call(n));
    }

    let mut consumer_conn = consumer(&redis.url()).await;
    let mut arrived = Vec::new();
    for _ in 1..=60 {
        arrived.push(number_of(&blpop(&mut consumer_conn, &key).await));
    }
    assert_eq!(arrived, (1..=60).collect::<Vec<_>>(), "every one, in order");
    until(notifier.stats(), "all counted as pushed", |s| {
        s.pushed.load(Ordering::Relaxed) == 61
    })
    .await;
    assert_eq!(notifier.stats().queued.load(Ordering::Relaxed), 0);
    assert_eq!(notifier.stats().dropped.load(Ordering::Relaxed), 0);
    assert_eq!(llen(&mut consumer_conn, &key).await, 0, "no duplicate");
    assert_eq!(notifier.close(FLUSH_TIMEOUT).await, 0);
}

#[tokio::test]
async fn past_the_bound_the_oldest_are_dropped_and_counted() {
    // Redis comes up only once the queue has overflowed, on the port the pusher was told about.
    let port = free_port();
    let notifier = Notifier::start(&config(&format!("redis://127.0.0.1:{port}"), 5));
    let handle = notifier.handle();
    for n in 0..12 {
        handle.push(call(n));
    }
    assert_eq!(notifier.stats().dropped.load(Ordering::Relaxed), 7);
    assert_eq!(notifier.stats().queued.load(Ordering::Relaxed), 5);
    // Let the pusher fail a few times first: failures keep what is queued.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(notifier.stats().queued.load(Ordering::Relaxed), 5);

    let redis = RedisServer::start_on(port);
    let mut consumer_conn = consumer(&redis.url()).await;
    let mut arrived = Vec::new();
    for _ in 0..5 {
        arrived.push(number_of(&blpop(&mut consumer_conn, DEFAULT_KEY).await));
    }
    assert_eq!(arrived, [7, 8, 9, 10, 11], "the newest five, in order");
    until(notifier.stats(), "the five counted as pushed", |s| {
        s.pushed.load(Ordering::Relaxed) == 5
    })
    .await;
    assert_eq!(llen(&mut consumer_conn, DEFAULT_KEY).await, 0);
    assert_eq!(notifier.stats().dropped.load(Ordering::Relaxed), 7);
    assert_eq!(notifier.close(FLUSH_TIMEOUT).await, 0);
}

/// One thread: the pusher task cannot run while the test pushes, so pushing cannot be waiting on
/// it (or on Redis).
#[tokio::test(flavor = "current_thread")]
async fn with_redis_never_up_queueing_never_waits_and_close_gives_up_in_bounded_time() {
    let port = free_port();
    let notifier = Notifier::start(&config(&format!("redis://127.0.0.1:{port}"), 10_000));
    let handle = notifier.handle();
    for n in 0..25_000 {
        handle.push(call(n));
    }
    assert_eq!(notifier.stats().queued.load(Ordering::Relaxed), 10_000);
    assert_eq!(notifier.stats().dropped.load(Ordering::Relaxed), 15_000);
    // Let the pusher fail a few times.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(notifier.stats().pushed.load(Ordering::Relaxed), 0);
    let left = tokio::time::timeout(WAIT, notifier.close(FLUSH_TIMEOUT))
        .await
        .expect("close gives up instead of hanging");
    assert_eq!(left, 10_000, "reported as lost");
}

// --- A real server with a Redis that is never up ---------------------------------------------

const SECRET: &[u8] = b"redis notifications test secret";
const A: &str = "+4799991001";
const B: &str = "+4799991002";

/// The next message other than Ringing.
async fn next(terminal: &mut Terminal) -> WebTerminalMessage {
    loop {
        let message = terminal.recv().await;
        if !matches!(message.message, Some(Message::Ringing(_))) {
            return message;
        }
    }
}

async fn multi_pipe(core: &Core, msisdn: &str) -> Terminal {
    Terminal::open(core.channel().await, Kind::Multi, SECRET, msisdn)
        .await
        .unwrap()
}

#[tokio::test]
async fn with_redis_never_up_the_server_starts_and_calls_work() {
    let redis_port = free_port();
    let mut config = ServerConfig::new(SECRET);
    config.phone_network = PhoneNetworkKind::None;
    config.notifications =
        Some(NotificationsConfig::new(&format!("redis://127.0.0.1:{redis_port}")).unwrap());
    let exchange = Exchange::start(config);
    assert!(exchange.notifications_stats().is_some(), "the pusher runs");
    let core = Core::serve(exchange).await;

    let mut a = multi_pipe(&core, A).await;
    let mut b = multi_pipe(&core, B).await;
    let call_id = uuid::Uuid::new_v4().to_string();
    a.send(
        &call_id,
        Message::Offer(Offer {
            sdp: fixture("chromium-offer.sdp"),
            msisdn: Some(PhoneNumber { e164: B.into() }),
            data: [("contact_ref".to_owned(), "CRM-1".to_owned())].into(),
        }),
    )
    .await;
    let offer = next(&mut b).await;
    assert!(
        matches!(offer.message, Some(Message::Offer(_))),
        "{offer:?}"
    );
    b.send(
        &offer.call_id,
        Message::Answer(Answer {
            sdp: fixture("chromium-answer.sdp"),
        }),
    )
    .await;
    let answer = next(&mut a).await;
    assert!(
        matches!(answer.message, Some(Message::Answer(_))),
        "{answer:?}"
    );
    assert_eq!(answer.call_id, call_id);
    assert_eq!(core.stats().await.calls, 1);
    a.send(
        &call_id,
        Message::Bye(Bye {
            reason: bye::Reason::NormalClearing as i32,
        }),
    )
    .await;
    let bye = next(&mut b).await;
    assert!(matches!(bye.message, Some(Message::Bye(_))), "{bye:?}");

    // Shutdown does not wait on Redis.
    core.stop().await;
}

// --- The binary ------------------------------------------------------------------------------

fn serve(extra: &[&str]) -> binary::Launch {
    binary::serve()
        .args(["--jwt-secret", "redis-test", "--phone-network", "none"])
        .args(["--records", "none"])
        .args(extra)
        .env_remove("WEBTERMINAL_REDIS_URL")
        .env("RUST_LOG", "warn")
}

#[test]
fn the_binary_refuses_a_bad_redis_url_at_startup() {
    for bad in [
        "not a url",
        "http://127.0.0.1:6379",
        "rediss://127.0.0.1:6379",
    ] {
        let output = serve(&["--redis", bad]).output();
        assert!(!output.status.success(), "{bad:?} must be refused");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("--redis"), "{bad:?}: {stderr}");
    }
    let output = serve(&["--redis", "redis://127.0.0.1:1", "--redis-queue", "100"]).output();
    assert!(!output.status.success(), "a queue under 10000 is refused");
}

#[tokio::test]
async fn the_binary_starts_with_redis_down_and_exports_the_notification_metrics() {
    // A port nothing listens on: Redis is down.
    let redis = format!("redis://127.0.0.1:{}", free_port());
    let mut core = serve(&["--redis", &redis]).metrics().start();
    let metrics_port = core.metrics_port.unwrap();
    assert!(core.stdout.contains("listening on"), "{}", core.stdout);

    // The pusher (and its metrics) starts a moment after the listener: scrape until they show.
    let series = [
        "webterminal_notifications_pushed_total 0",
        "webterminal_notifications_queued 0",
        "webterminal_notifications_dropped_total 0",
    ];
    let deadline = Instant::now() + WAIT;
    loop {
        let response = binary::scrape(metrics_port).await;
        if series.iter().all(|s| response.lines().any(|l| l == *s)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{series:?} not all there:\n{response}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(core.running(), "still serving with Redis down");
}
