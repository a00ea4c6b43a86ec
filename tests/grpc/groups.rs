//! PROTOCOL.md section 10 over real sockets: groups from a routing file (`ServerConfig::routing`),
//! their strategies and timeouts, calls from terminals and phones, and the Redis notification of an
//! answered group call read back from a real `redis-server` with `BLPOP`.

use crate::for_all_transports;
use crate::support::*;
use std::path::PathBuf;
use std::time::Duration;
use webterminal_core::notifications::NotificationsConfig;
use webterminal_core::proto::common::PhoneNumber;
use webterminal_core::proto::webterminal::web_terminal_message::Message;
use webterminal_core::proto::webterminal::{Offer, WebTerminalMessage};
use webterminal_core::server::PhoneNetworkKind;

#[path = "../support/redis.rs"]
mod redis_support;

/// The group's number.
const SALES: &str = "+4721000000";

for_all_transports!(
    ring_all_offers_every_member_and_the_first_answer_wins,
    a_member_not_answering_in_time_is_passed_over_for_the_next,
    a_member_declining_passes_the_call_to_the_next,
    a_member_answering_another_call_is_passed_over_at_once,
    the_queue_timeout_ends_the_call_with_no_answer,
    a_queued_call_is_offered_to_a_member_who_registers,
    a_call_transferred_to_the_group_is_taken_by_the_member_who_pulls_it,
);

/// A routing file with one group, SALES: members B (extension 101) and C (102).
struct RoutingFile {
    dir: tempfile::TempDir,
}

impl RoutingFile {
    fn new(strategy: &str, member_ring: Duration, queue: Duration) -> RoutingFile {
        let file = RoutingFile {
            dir: tempfile::tempdir().unwrap(),
        };
        file.write(strategy, member_ring, queue);
        file
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("routing.toml")
    }

    fn write(&self, strategy: &str, member_ring: Duration, queue: Duration) {
        let text = format!(
            r#"[[group]]
number = "{SALES}"
strategy = "{strategy}"
member_ring_timeout = "{}ms"
queue_timeout = "{}ms"
members = [ {{ msisdn = "{B}", extension = "101" }}, {{ msisdn = "{C}", extension = "102" }} ]
"#,
            member_ring.as_millis(),
            queue.as_millis()
        );
        std::fs::write(self.path(), text).unwrap();
    }
}

/// A core whose routing file is `file`.
async fn core_with(file: &RoutingFile, phones: PhoneNetworkKind) -> TestCore {
    let mut config = TestCore::config(phones);
    config.routing = Some(file.path());
    TestCore::start(config).await
}

/// `caller` calls SALES and hears Ringing at once (it waits in the queue); returns its call id.
async fn call_group(caller: &mut Terminal) -> String {
    let id = caller.dial(SALES, &chromium_offer()).await;
    let ringing = caller.expect_ringing().await;
    caller.assert_own_call_id(&id, &ringing);
    ringing
}

async fn ring_all_offers_every_member_and_the_first_answer_wins(kind: Kind) {
    let file = RoutingFile::new("ring-all", Duration::from_secs(20), Duration::from_secs(60));
    let core = core_with(&file, PhoneNetworkKind::None).await;
    let mut b = core.open_idle(kind, B).await;
    let mut c = core.open_idle(kind.other(), C).await;
    let mut a = core.open_idle(Kind::Multi, A).await;
    let a_id = call_group(&mut a).await;
    let b_id = b.expect_offer_of(&chromium_offer(), A).await;
    let c_id = c.expect_offer_of(&chromium_offer(), A).await;
    c.send(msg::answer(&c_id, &chromium_answer())).await;
    a.expect_answer_of(&a_id, &chromium_answer()).await;
    b.expect_bye_on(&b_id, Reason::AnsweredElsewhere).await;
    a.send(msg::bye(&a_id)).await;
    c.expect_bye_on(&c_id, Reason::NormalClearing).await;
    core.assert_no_calls_left().await;
}

async fn a_member_not_answering_in_time_is_passed_over_for_the_next(kind: Kind) {
    let file = RoutingFile::new("round-robin", SHORT, Duration::from_secs(60));
    let core = core_with(&file, PhoneNetworkKind::None).await;
    let mut b = core.open_idle(kind, B).await;
    let mut c = core.open_idle(kind, C).await;
    let mut a = core.open_idle(Kind::Multi, A).await;
    let a_id = call_group(&mut a).await;
    let b_id = b.expect_offer_of(&chromium_offer(), A).await;
    b.send(msg::ringing(&b_id)).await;
    c.expect_silent(SILENCE / 2).await;
    b.expect_bye_on(&b_id, Reason::Cancelled).await;
    let c_id = c.expect_offer_of(&chromium_offer(), A).await;
    c.send(msg::answer(&c_id, &chromium_answer())).await;
    a.expect_answer_of(&a_id, &chromium_answer()).await;
    c.send(msg::bye(&c_id)).await;
    a.expect_bye_on(&a_id, Reason::NormalClearing).await;
    core.assert_no_calls_left().await;
}

async fn a_member_declining_passes_the_call_to_the_next(kind: Kind) {
    let file = RoutingFile::new(
        "round-robin",
        Duration::from_secs(20),
        Duration::from_secs(60),
    );
    let core = core_with(&file, PhoneNetworkKind::None).await;
    let mut b = core.open_idle(kind, B).await;
    let mut c = core.open_idle(kind, C).await;
    let mut a = core.open_idle(Kind::Multi, A).await;
    let a_id = call_group(&mut a).await;
    let b_id = b.expect_offer_of(&chromium_offer(), A).await;
    b.send(msg::bye(&b_id)).await;
    let c_id = c.expect_offer_of(&chromium_offer(), A).await;
    a.expect_silent(SILENCE).await; // a decline does not end a group call
    c.send(msg::answer(&c_id, &chromium_answer())).await;
    a.expect_answer_of(&a_id, &chromium_answer()).await;
    a.send(msg::bye(&a_id)).await;
    c.expect_bye_on(&c_id, Reason::NormalClearing).await;
    b.expect_silent(SILENCE).await;
    core.assert_no_calls_left().await;
}

async fn a_member_answering_another_call_is_passed_over_at_once(kind: Kind) {
    // A member ring timeout far beyond the test: the call moves on because B is busy.
    let file = RoutingFile::new(
        "round-robin",
        Duration::from_secs(60),
        Duration::from_secs(60),
    );
    let core = core_with(&file, PhoneNetworkKind::None).await;
    // B on a MultiPipe, which may take a direct call while the group call rings at it.
    let mut b = core.open_idle(Kind::Multi, B).await;
    let mut c = core.open_idle(kind, C).await;
    let mut a = core.open_idle(kind, A).await;
    let mut d = core.open_idle(Kind::Multi, D).await;
    let a_id = call_group(&mut a).await;
    let b_group = b.expect_offer_of(&chromium_offer(), A).await;
    let d_id = d.dial(B, &chromium_offer()).await;
    let b_direct = b.expect_offer_of(&chromium_offer(), D).await;
    b.send(msg::answer(&b_direct, &chromium_answer())).await;
    d.expect_answer_of(&d_id, &chromium_answer()).await;
    b.expect_bye_on(&b_group, Reason::Cancelled).await;
    let c_id = c.expect_offer_of(&chromium_offer(), A).await;
    c.send(msg::answer(&c_id, &chromium_answer())).await;
    a.expect_answer_of(&a_id, &chromium_answer()).await;
    a.send(msg::bye(&a_id)).await;
    c.expect_bye_on(&c_id, Reason::NormalClearing).await;
    d.send(msg::bye(&d_id)).await;
    b.expect_bye_on(&b_direct, Reason::NormalClearing).await;
    core.assert_no_calls_left().await;
}

async fn the_queue_timeout_ends_the_call_with_no_answer(kind: Kind) {
    let file = RoutingFile::new("ring-all", Duration::from_secs(20), SHORT);
    let core = core_with(&file, PhoneNetworkKind::None).await;
    let mut b = core.open_idle(kind, B).await;
    let mut a = core.open_idle(kind, A).await;
    let a_id = call_group(&mut a).await;
    let b_id = b.expect_offer_of(&chromium_offer(), A).await;
    a.expect_bye_on(&a_id, Reason::NoAnswer).await;
    b.expect_bye_on(&b_id, Reason::Cancelled).await;
    core.assert_no_calls_left().await;
}

async fn a_queued_call_is_offered_to_a_member_who_registers(kind: Kind) {
    let file = RoutingFile::new(
        "longest-idle",
        Duration::from_secs(20),
        Duration::from_secs(60),
    );
    let core = core_with(&file, PhoneNetworkKind::None).await;
    // C has a terminal (so the group is reachable) but it is busy in a call with D.
    let mut c = core.open_idle(Kind::Pipe, C).await;
    let mut d = core.open_idle(Kind::Multi, D).await;
    let (d_id, c_id) = establish(&mut d, &mut c).await;
    let mut a = core.open_idle(Kind::Multi, A).await;
    let a_id = call_group(&mut a).await;
    a.expect_silent(SILENCE).await;
    let mut b = core.open_idle(kind, B).await;
    let b_id = b.expect_offer_of(&chromium_offer(), A).await;
    b.send(msg::answer(&b_id, &chromium_answer())).await;
    a.expect_answer_of(&a_id, &chromium_answer()).await;
    for (t, id) in [(&mut a, &a_id), (&mut d, &d_id)] {
        t.send(msg::bye(id)).await;
    }
    b.expect_bye_on(&b_id, Reason::NormalClearing).await;
    c.expect_bye_on(&c_id, Reason::NormalClearing).await;
    core.assert_no_calls_left().await;
}

async fn a_call_transferred_to_the_group_is_taken_by_the_member_who_pulls_it(kind: Kind) {
    let file = RoutingFile::new(
        "round-robin",
        Duration::from_secs(20),
        Duration::from_secs(60),
    );
    let core = core_with(&file, PhoneNetworkKind::None).await;
    let mut b = core.open_idle(kind, B).await;
    let mut c = core.open_idle(Kind::Multi, C).await;
    let mut a = core.open_idle(Kind::Multi, A).await;
    let mut d = core.open_idle(kind, D).await;
    let (a_id, d_id) = establish(&mut a, &mut d).await;
    d.send(msg::transfer(&d_id, SALES)).await;
    d.expect_bye_on(&d_id, Reason::Transferred).await;
    let b_id = b.expect_any_in_call(A).await;
    let c_id = c.expect_any_in_call(A).await;
    assert_eq!(b_id, c_id, "one side, shown to every member");
    b.send(msg::reoffer(&b_id, &aiortc_offer())).await;
    c.expect_idle(&c_id).await;
    let reoffered = a.expect_offer().await;
    assert_eq!(
        (reoffered.call_id.as_str(), reoffered.from.as_str()),
        (a_id.as_str(), B)
    );
    a.send(msg::answer(&a_id, &aiortc_answer())).await;
    b.expect_answer_of(&b_id, &aiortc_answer()).await;
    b.send(msg::bye(&b_id)).await;
    a.expect_bye_on(&a_id, Reason::NormalClearing).await;
    core.assert_no_calls_left().await;
}

#[tokio::test]
async fn a_group_whose_members_have_no_terminal_is_unavailable() {
    let file = RoutingFile::new("ring-all", Duration::from_secs(20), Duration::from_secs(60));
    let core = core_with(&file, PhoneNetworkKind::Sim).await;
    let mut a = core.open_idle(Kind::Multi, A).await;
    let a_id = a.dial(SALES, &chromium_offer()).await;
    a.expect_bye_on(&a_id, Reason::Unavailable).await;
    core.assert_no_calls_left().await;
}

#[tokio::test]
async fn a_phone_calling_the_group_is_answered_by_a_member_and_members_phones_are_not_rung() {
    let file = RoutingFile::new("ring-all", Duration::from_secs(20), Duration::from_secs(60));
    let core = core_with(&file, PhoneNetworkKind::Sim).await;
    let mut b = core.open_idle(Kind::Multi, B).await;
    core.dial_from_phone(D, SALES).await;
    let b_id = b.expect_offer().await;
    assert_eq!(b_id.from, D);
    core.assert_phone_has_no_leg(C).await;
    b.send(msg::answer(&b_id.call_id, &chromium_answer())).await;
    b.expect_silent(SILENCE).await;
    assert_eq!(core.phone_hang_up(D).await, 1, "D's phone is in the call");
    b.expect_bye_on(&b_id.call_id, Reason::NormalClearing).await;
    core.assert_no_calls_left().await;
}

#[tokio::test]
async fn an_answered_group_call_is_announced_on_redis_in_the_teleforge_format() {
    let redis = redis_support::RedisServer::start();
    let file = RoutingFile::new(
        "round-robin",
        Duration::from_secs(20),
        Duration::from_secs(60),
    );
    let mut config = TestCore::config(PhoneNetworkKind::None);
    config.routing = Some(file.path());
    config.notifications = Some(NotificationsConfig::new(&redis.url()).unwrap());
    let core = TestCore::start(config).await;
    let mut c = core.open_idle(Kind::Multi, C).await;
    let mut a = core.open_idle(Kind::Multi, A).await;
    let a_id = a.new_call_id();
    a.send(WebTerminalMessage {
        message: Some(Message::Offer(Offer {
            sdp: chromium_offer(),
            msisdn: Some(PhoneNumber { e164: SALES.into() }),
            data: [("contact_ref".to_owned(), "CRM-7731".to_owned())].into(),
        })),
        call_id: a_id.clone(),
    })
    .await;
    a.expect_ringing().await;
    let c_id = c.expect_offer_of(&chromium_offer(), A).await;
    tokio::time::sleep(Duration::from_millis(1100)).await; // a hold time of one whole second
    c.send(msg::answer(&c_id, &chromium_answer())).await;
    a.expect_answer_of(&a_id, &chromium_answer()).await;

    let json = redis_blpop(&redis.url(), "enigma:notifications:inbound").await;
    let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
    let call_ref = parsed["payload"]["call_ref"].as_str().unwrap().to_owned();
    assert!(is_uuid(&call_ref), "{json}");
    assert_eq!(
        json,
        format!(
            r#"{{"type":"call","payload":{{"number":"{A}","dial_number":"{SALES}","hold_time":1,"call_ref":"{call_ref}","contact_ref":"CRM-7731","call_dir":"inbound","ref":"102"}}}}"#
        )
    );
    a.send(msg::bye(&a_id)).await;
    c.expect_bye_on(&c_id, Reason::NormalClearing).await;
    core.assert_no_calls_left().await;
}

/// The next message on `key`, read as a back office does (BLPOP, 5 s at most).
async fn redis_blpop(url: &str, key: &str) -> String {
    let client = redis::Client::open(url).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let popped: Option<(String, String)> = redis::cmd("BLPOP")
        .arg(key)
        .arg(5)
        .query_async(&mut connection)
        .await
        .unwrap();
    popped.expect("a notification within 5 s").1
}
