//! PROTOCOL.md section 9 over real sockets: a call that ends is found with `ListCallRecords`
//! within a second, with its status, reason, times, hold time and moves; a clean shutdown commits
//! at once; records off (or a records path that cannot be opened) never stops calls; requests are
//! checked (section 8: scope, page_token, msisdn).

use crate::support::*;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tempfile::TempDir;
use tonic::transport::Channel;
use tonic::Code;
use webterminal_core::auth::{mint_token, OPERATOR_SCOPE, REQUIRED_SCOPE};
use webterminal_core::core::Msisdn;
use webterminal_core::proto::operator::operator_client::OperatorClient;
use webterminal_core::proto::operator::{
    call_record, device, CallRecord, CallStatus, ListCallRecordsRequest,
};
use webterminal_core::records::{
    RecordPage, RecordQuery, RecordStore, RecordsConfig, SqliteStore, StoreError,
};
use webterminal_core::server::PhoneNetworkKind;

/// The records file in `dir`.
fn records_file(dir: &TempDir) -> PathBuf {
    dir.path().join("records.sqlite3")
}

async fn core_with_records(dir: &TempDir) -> TestCore {
    let mut config = TestCore::config(PhoneNetworkKind::None);
    config.records = RecordsConfig::Sqlite(records_file(dir));
    TestCore::start(config).await
}

/// An operator token with `scope`.
fn token(scope: &str) -> String {
    mint_token(
        SECRET,
        &Msisdn::parse("+4799990077").unwrap(),
        scope,
        Duration::from_secs(600),
    )
}

async fn operator_client(core: &TestCore) -> OperatorClient<Channel> {
    OperatorClient::new(core.channel().await)
}

/// `ListCallRecords` with a `webterminal.operator` token.
async fn list(
    client: &mut OperatorClient<Channel>,
    request: ListCallRecordsRequest,
) -> Result<(Vec<CallRecord>, String), tonic::Status> {
    list_as(client, OPERATOR_SCOPE, request).await
}

async fn list_as(
    client: &mut OperatorClient<Channel>,
    scope: &str,
    request: ListCallRecordsRequest,
) -> Result<(Vec<CallRecord>, String), tonic::Status> {
    let mut request = tonic::Request::new(request);
    request
        .metadata_mut()
        .insert("authorization", bearer(&token(scope)));
    let response = client.list_call_records(request).await?.into_inner();
    Ok((response.records, response.next_page_token))
}

fn time(ts: &Option<prost_types::Timestamp>) -> Option<SystemTime> {
    ts.map(|ts| SystemTime::try_from(ts).unwrap())
}

fn ms_of(t: SystemTime) -> u128 {
    t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_nanos() % 1_000_000
}

#[tokio::test]
async fn an_ended_call_is_listed_within_a_second_with_its_times_hold_and_pull() {
    let dir = tempfile::tempdir().unwrap();
    let core = core_with_records(&dir).await;
    let before = SystemTime::now();
    let mut a = core.open_idle(Kind::Multi, A).await;
    let mut b1 = core.open_idle(Kind::Multi, B).await;
    let (a_id, b_id) = establish(&mut a, &mut b1).await;
    // A holds for a while, then resumes (hold read from the re-offer's SDP direction).
    a.send(msg::reoffer(&a_id, &sdp("chromium-hold-offer.sdp")))
        .await;
    b1.expect_offer().await;
    b1.send(msg::answer(&b_id, &sdp("chromium-hold-answer.sdp")))
        .await;
    a.expect_answer().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.send(msg::reoffer(&a_id, &chromium_offer())).await;
    b1.expect_offer().await;
    b1.send(msg::answer(&b_id, &chromium_answer())).await;
    a.expect_answer().await;
    // B pulls the call to another terminal (4.5).
    let mut b2 = core.open(Kind::Pipe, B).await;
    b2.expect_in_call(&b_id, A).await;
    b2.send(msg::reoffer("", &aiortc_offer())).await;
    a.expect_offer_of(&aiortc_offer(), B).await;
    a.send(msg::answer(&a_id, &aiortc_answer())).await;
    b2.expect_answer_of(&b_id, &aiortc_answer()).await;
    b1.expect_bye_on(&b_id, Reason::Pulled).await;
    a.send(msg::bye(&a_id)).await;
    b2.expect_bye_on(&b_id, Reason::NormalClearing).await;
    let ended = SystemTime::now();

    let mut client = operator_client(&core).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    let record = loop {
        let (records, next) = list(
            &mut client,
            ListCallRecordsRequest {
                msisdn: A.into(),
                ..Default::default()
            },
        )
        .await
        .expect("ListCallRecords");
        if let Some(record) = records.into_iter().next() {
            assert_eq!(next, "", "one record, one page");
            break record;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the record is listed within a second of the call's end"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(is_uuid(&record.call_ref));
    assert_eq!((record.caller.as_str(), record.callee.as_str()), (A, B));
    assert_eq!(record.answered_by, B);
    assert_eq!(record.status, CallStatus::Completed as i32);
    assert_eq!(record.reason, Reason::NormalClearing as i32);
    assert!(!record.end_estimated);
    let started = time(&record.started_at).unwrap();
    let alerted = time(&record.alerted_at).expect("B rang");
    let answered = time(&record.answered_at).unwrap();
    let end = time(&record.ended_at).unwrap();
    let slack = Duration::from_millis(1);
    assert!(
        before - slack <= started && started <= alerted && alerted <= answered && answered <= end,
        "times in order"
    );
    assert!(end <= ended + slack);
    for t in [started, alerted, answered, end] {
        assert_eq!(ms_of(t), 0, "millisecond precision");
    }
    let ms = |from: SystemTime, to: SystemTime| to.duration_since(from).unwrap().as_millis() as u64;
    assert_eq!(record.setup_ms, ms(started, answered));
    assert_eq!(record.talk_ms, ms(answered, end));
    assert!(
        (250..=record.talk_ms).contains(&record.hold_ms),
        "held about 300 ms: {} ms",
        record.hold_ms
    );
    assert_eq!(record.moves.len(), 1, "{:?}", record.moves);
    let pull = &record.moves[0];
    assert_eq!(pull.side, call_record::Side::Callee as i32);
    assert_eq!(pull.reason, Reason::Pulled as i32);
    let (from, to) = (pull.from.clone().unwrap(), pull.to.clone().unwrap());
    assert_eq!(from.kind, device::Kind::Multipipe as i32, "from b1");
    assert_eq!(to.kind, device::Kind::Pipe as i32, "to b2");
    assert_ne!(from.terminal_id, to.terminal_id);
    assert_eq!((from.msisdn.as_str(), to.msisdn.as_str()), (B, B));
    let at = time(&pull.at).unwrap();
    assert!(answered <= at && at <= end);

    // Filters: B finds it too, a stranger and a later window do not.
    let count = |client: &mut OperatorClient<Channel>, request| {
        let mut client = client.clone();
        async move { list(&mut client, request).await.unwrap().0.len() }
    };
    assert_eq!(
        count(
            &mut client,
            ListCallRecordsRequest {
                msisdn: "4799990002".into(),
                ..Default::default()
            }
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &mut client,
            ListCallRecordsRequest {
                msisdn: C.into(),
                ..Default::default()
            }
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &mut client,
            ListCallRecordsRequest {
                since: Some(ended.into()),
                ..Default::default()
            }
        )
        .await,
        0
    );
    core.assert_no_calls_left().await;
}

#[tokio::test]
async fn unanswered_calls_are_recorded_and_paged_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let core = core_with_records(&dir).await;
    let mut a = core.open_idle(Kind::Multi, A).await;
    // No phone network and no terminal: each call fails at once with UNAVAILABLE.
    for _ in 0..3 {
        a.dial(NOBODY, &chromium_offer()).await;
        a.expect_bye(Reason::Unavailable).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut client = operator_client(&core).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    loop {
        let (records, _) = list(&mut client, Default::default()).await.unwrap();
        if records.len() == 3 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "3 records within a second"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let page = |token: String| ListCallRecordsRequest {
        msisdn: NOBODY.into(),
        page_size: 2,
        page_token: token,
        ..Default::default()
    };
    let (first, token) = list(&mut client, page(String::new())).await.unwrap();
    assert_eq!(first.len(), 2);
    assert!(!token.is_empty());
    let (second, last) = list(&mut client, page(token)).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(last, "", "the last page");
    let all: Vec<&CallRecord> = first.iter().chain(&second).collect();
    for pair in all.windows(2) {
        assert!(
            time(&pair[0].started_at) >= time(&pair[1].started_at),
            "newest first"
        );
    }
    for record in all {
        assert_eq!(record.status, CallStatus::Failed as i32);
        assert_eq!(record.reason, Reason::Unavailable as i32);
        assert_eq!(record.answered_by, "");
        assert_eq!((record.answered_at, record.alerted_at), (None, None));
        assert_eq!((record.setup_ms, record.talk_ms, record.hold_ms), (0, 0, 0));
        assert!(record.moves.is_empty());
    }
    core.assert_no_calls_left().await;
}

#[tokio::test]
async fn a_clean_shutdown_commits_the_calls_it_ends_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut core = core_with_records(&dir).await;
    let mut a = core.open_idle(Kind::Pipe, A).await;
    let mut b = core.open_idle(Kind::Multi, B).await;
    establish(&mut a, &mut b).await;
    core.shutdown().await.expect("a clean shutdown");
    // serve has returned: the record is on disk, without waiting for a batch.
    let store = SqliteStore::open_read_only(records_file(&dir)).unwrap();
    let records = store
        .list(&RecordQuery {
            page_size: 10,
            ..RecordQuery::default()
        })
        .unwrap()
        .records;
    assert_eq!(records.len(), 1, "{records:?}");
    let record = &records[0];
    assert_eq!(record.status, webterminal_core::core::CallStatus::Completed);
    assert_eq!(
        record.reason,
        Some(webterminal_core::core::ByeReason::ServerShutdown)
    );
    assert!(!record.end_estimated, "a clean shutdown knows the end");
    assert!(record.answered_at.is_some());
}

#[tokio::test]
async fn records_off_or_unopenable_answer_unavailable_and_calls_go_on() {
    // Off: the default of ServerConfig::new.
    let core = TestCore::new(PhoneNetworkKind::None).await;
    let status = list(&mut operator_client(&core).await, Default::default())
        .await
        .expect_err("no records kept");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("off"), "{status:?}");
    drop(core);

    // A path that cannot be opened: its directory is a regular file.
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-directory");
    std::fs::write(&blocker, b"").unwrap();
    let mut config = TestCore::config(PhoneNetworkKind::None);
    config.records = RecordsConfig::Sqlite(blocker.join("records.sqlite3"));
    let core = TestCore::start(config).await;
    let mut a = core.open_idle(Kind::Multi, A).await;
    let mut b = core.open_idle(Kind::Pipe, B).await;
    let (a_id, b_id) = establish(&mut a, &mut b).await;
    a.send(msg::bye(&a_id)).await;
    b.expect_bye_on(&b_id, Reason::NormalClearing).await;
    let status = list(&mut operator_client(&core).await, Default::default())
        .await
        .expect_err("the records could not be opened");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("unavailable"), "{status:?}");
    core.assert_no_calls_left().await;
}

#[tokio::test]
async fn list_call_records_checks_its_token_and_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let core = core_with_records(&dir).await;
    let mut client = operator_client(&core).await;
    let status = list_as(&mut client, REQUIRED_SCOPE, Default::default())
        .await
        .expect_err("a terminal's token");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let now = SystemTime::now();
    for (what, request) in [
        (
            "a page_token no page gave",
            ListCallRecordsRequest {
                page_token: "garbage".into(),
                ..Default::default()
            },
        ),
        (
            "a bad msisdn",
            ListCallRecordsRequest {
                msisdn: "+0123".into(),
                ..Default::default()
            },
        ),
        (
            "until before since",
            ListCallRecordsRequest {
                since: Some(now.into()),
                until: Some((now - Duration::from_secs(1)).into()),
                ..Default::default()
            },
        ),
    ] {
        let status = list(&mut client, request).await.expect_err(what);
        assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
    }
    let (records, token) = list(
        &mut client,
        ListCallRecordsRequest {
            page_size: 5000,
            ..Default::default()
        },
    )
    .await
    .expect("a page_size over the maximum is held to it");
    assert_eq!((records.len(), token.as_str()), (0, ""));
}

/// A store whose every write fails, as a full or failing disk does.
#[derive(Debug, Default)]
struct FailingDisk {
    writes: std::sync::atomic::AtomicUsize,
}

impl RecordStore for FailingDisk {
    fn write(&self, _: &webterminal_core::records::Batch) -> Result<(), StoreError> {
        self.writes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Err(StoreError::Database("disk full".into()))
    }
    fn close_abandoned(&self) -> Result<usize, StoreError> {
        Ok(0)
    }
    fn list(&self, _: &RecordQuery) -> Result<RecordPage, StoreError> {
        Ok(RecordPage::default())
    }
}

#[tokio::test]
async fn a_failing_disk_never_stops_calls_and_the_writer_goes_on() {
    let disk = Arc::new(FailingDisk::default());
    let mut config = TestCore::config(PhoneNetworkKind::None);
    config.records = RecordsConfig::Store(disk.clone());
    let core = TestCore::start(config).await;
    let writes = || disk.writes.load(std::sync::atomic::Ordering::SeqCst);
    let mut a = core.open_idle(Kind::Multi, A).await;
    let mut b = core.open_idle(Kind::Multi, B).await;
    for call in 1..=2 {
        let (a_id, b_id) = establish(&mut a, &mut b).await;
        a.send(msg::bye(&a_id)).await;
        b.expect_bye_on(&b_id, Reason::NormalClearing).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        while writes() < call {
            assert!(
                tokio::time::Instant::now() < deadline,
                "call {call}: the writer tried within a second ({} writes)",
                writes()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    core.assert_no_calls_left().await;
}
