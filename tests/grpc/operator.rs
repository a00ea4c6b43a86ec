//! PROTOCOL.md section 8 over real gRPC: `webterminal.core.v1.Operator` — a watcher sees a call's
//! events in order with the right fields, `after_sequence` replays with no gap, `ListCalls` and
//! `GetPresence` during and after a call, `EndCall`, a watcher that does not read, and the
//! `webterminal.operator` scope.

use crate::support::*;
use std::time::Duration;
use tokio_stream::StreamExt;
use tonic::transport::Channel;
use tonic::{Code, Request, Streaming};
use webterminal_core::auth::{mint_token, OPERATOR_SCOPE};
use webterminal_core::core::Msisdn;
use webterminal_core::proto::operator::operator_client::OperatorClient;
use webterminal_core::proto::operator::{
    self as op, CallStatus, EndCallRequest, GetPresenceRequest, ListCallsRequest, WatchCallsRequest,
};
use webterminal_core::server::PhoneNetworkKind;

fn operator_token(scope: &str) -> String {
    mint_token(
        SECRET,
        &Msisdn::parse("+4790000000").unwrap(),
        scope,
        Duration::from_secs(600),
    )
}

/// `message` with the operator's token.
fn authorized<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", bearer(&operator_token(OPERATOR_SCOPE)));
    request
}

async fn operator(core: &TestCore) -> OperatorClient<Channel> {
    OperatorClient::new(core.channel().await)
}

async fn watch(core: &TestCore, msisdn: &str, after: u64) -> Streaming<op::CallEvent> {
    operator(core)
        .await
        .watch_calls(authorized(WatchCallsRequest {
            msisdn: msisdn.into(),
            after_sequence: after,
        }))
        .await
        .expect("WatchCalls")
        .into_inner()
}

async fn next_event(events: &mut Streaming<op::CallEvent>) -> op::CallEvent {
    tokio::time::timeout(RECV_TIMEOUT, events.next())
        .await
        .expect("an event in time")
        .expect("the stream goes on")
        .expect("an event, not a status")
}

fn status(event: &op::CallEvent) -> CallStatus {
    CallStatus::try_from(event.status).unwrap()
}

#[tokio::test]
async fn a_watcher_sees_a_calls_events_in_order_with_their_fields() {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    let mut events = watch(&core, "", 0).await;
    let mut a = core.open_idle(Kind::Multi, A).await;
    let mut b = core.open_idle(Kind::Pipe, B).await;
    let (a_id, b_id) = establish(&mut a, &mut b).await;
    a.send(msg::bye(&a_id)).await;
    b.expect_bye(Reason::NormalClearing).await;

    let started = next_event(&mut events).await;
    assert_eq!(status(&started), CallStatus::Started);
    assert_eq!((started.caller.as_str(), started.callee.as_str()), (A, B));
    assert_eq!(
        (
            started.caller_call_id.as_str(),
            started.callee_call_id.as_str()
        ),
        (a_id.as_str(), b_id.as_str())
    );
    assert!(is_uuid(&started.call_ref), "{started:?}");
    let device = started.device.clone().unwrap();
    assert_eq!(device.kind, op::device::Kind::Multipipe as i32);
    assert_eq!(device.msisdn, A);
    assert!(!device.terminal_id.is_empty());
    assert!(started.time.is_some());
    let mut rest = Vec::new();
    for _ in 0..3 {
        rest.push(next_event(&mut events).await);
    }
    let statuses: Vec<CallStatus> = rest.iter().map(status).collect();
    assert_eq!(
        statuses,
        [
            CallStatus::Ringing,
            CallStatus::Answered,
            CallStatus::Completed
        ]
    );
    assert!(rest.iter().all(|e| e.call_ref == started.call_ref));
    let sequences: Vec<u64> = std::iter::once(&started)
        .chain(&rest)
        .map(|e| e.sequence)
        .collect();
    assert_eq!(sequences, [1, 2, 3, 4]);
    assert_eq!(
        rest[1].device.as_ref().unwrap().kind,
        op::device::Kind::Pipe as i32
    );
    assert_eq!(rest[2].reason, Reason::NormalClearing as i32);
    core.assert_no_calls_left().await;
}

#[tokio::test]
async fn a_filtered_watcher_sees_only_its_numbers_calls() {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    let mut c_events = watch(&core, C, 0).await;
    let mut a = core.open_idle(Kind::Multi, A).await;
    let mut b = core.open_idle(Kind::Multi, B).await;
    let c = core.open_idle(Kind::Multi, C).await;
    let (a_id, _) = establish(&mut a, &mut b).await;
    a.send(msg::bye(&a_id)).await;
    let id = c.dial(A, &chromium_offer()).await;
    a.expect_offer().await;
    c.send(msg::bye(&id)).await;
    let first = next_event(&mut c_events).await;
    assert_eq!(status(&first), CallStatus::Started);
    assert_eq!(first.caller, C);
    assert!(first.sequence > 4, "the A-B call's events were left out");
    core.assert_no_calls_left().await;
}

#[tokio::test]
async fn list_calls_then_watch_after_its_sequence_misses_nothing() {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    let mut a = core.open_idle(Kind::Multi, A).await;
    let mut b = core.open_idle(Kind::Multi, B).await;
    let (a_id, _) = establish(&mut a, &mut b).await;
    let mut client = operator(&core).await;
    let listed = client
        .list_calls(authorized(ListCallsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.calls.len(), 1);
    let call = &listed.calls[0];
    assert_eq!(call.state, op::call::State::Established as i32);
    assert_eq!((call.caller.as_str(), call.callee.as_str()), (A, B));
    assert!(call.started_at.is_some() && call.answered_at.is_some());
    assert_eq!(call.caller_leg.as_ref().unwrap().msisdn, A);
    assert_eq!(call.callee_leg.as_ref().unwrap().msisdn, B);
    assert_eq!(listed.sequence, 3, "started, ringing, answered");
    // Replay from a point: everything after it, nothing before.
    let mut replayed = watch(&core, "", 1).await;
    assert_eq!(next_event(&mut replayed).await.sequence, 2);
    assert_eq!(next_event(&mut replayed).await.sequence, 3);
    // Continue from the snapshot: the next event is the end of the call, no gap, no repeat.
    let mut events = watch(&core, "", listed.sequence).await;
    a.send(msg::bye(&a_id)).await;
    let ended = next_event(&mut events).await;
    assert_eq!((ended.sequence, status(&ended)), (4, CallStatus::Completed));
    assert_eq!(next_event(&mut replayed).await.sequence, 4);
    let after = client
        .list_calls(authorized(ListCallsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert!(after.calls.is_empty());
    assert_eq!(after.sequence, 4);
    core.assert_no_calls_left().await;
}

#[tokio::test]
async fn a_sequence_beyond_the_last_event_is_out_of_range() {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    let status = operator(&core)
        .await
        .watch_calls(authorized(WatchCallsRequest {
            msisdn: String::new(),
            after_sequence: 500,
        }))
        .await
        .expect_err("from another run");
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    core.assert_no_calls_left().await;
}

#[tokio::test]
async fn a_sequence_no_longer_held_is_out_of_range() {
    let mut config = TestCore::config(PhoneNetworkKind::None);
    config.events.replay = 2;
    let core = TestCore::start(config).await;
    let mut a = core.open_idle(Kind::Multi, A).await;
    let mut b = core.open_idle(Kind::Multi, B).await;
    let (a_id, _) = establish(&mut a, &mut b).await;
    a.send(msg::bye(&a_id)).await;
    core.wait_for_stats("the call ends", |s| s.calls == 0).await;
    let status = operator(&core)
        .await
        .watch_calls(authorized(WatchCallsRequest {
            msisdn: String::new(),
            after_sequence: 1,
        }))
        .await
        .expect_err("events 2 and 3 are gone");
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    let mut held = watch(&core, "", 2).await;
    assert_eq!(next_event(&mut held).await.sequence, 3);
    core.assert_no_calls_left().await;
}

#[tokio::test]
async fn a_watcher_that_does_not_read_is_ended_and_calls_go_on() {
    let mut config = TestCore::config(PhoneNetworkKind::None);
    config.events.watcher_lag = 8;
    config.call_attempts_per_second = 0;
    config.messages_per_second = 0;
    let core = TestCore::start(config).await;
    let mut lazy = watch(&core, "", 0).await;
    let mut a = core.open_idle(Kind::Multi, A).await;
    // Calls to a number with no device end at once: two events each, carrying 4 KB of call context,
    // far more than the watcher's lag, its stream's buffers and HTTP/2's windows hold.
    let context: std::collections::HashMap<String, String> = (0..4)
        .map(|i| (format!("k{i}"), "x".repeat(1000)))
        .collect();
    let calls = 500;
    for _ in 0..calls {
        let mut offer = msg::offer(&uuid(), &chromium_offer(), C);
        if let Some(webterminal_core::proto::webterminal::web_terminal_message::Message::Offer(o)) =
            offer.message.as_mut()
        {
            o.data = context.clone();
        }
        a.send(offer).await;
    }
    for _ in 0..calls {
        a.expect_bye(Reason::Unavailable).await;
    }
    let end = tokio::time::timeout(RECV_TIMEOUT, async {
        loop {
            match lazy.next().await {
                Some(Ok(_)) => continue,
                Some(Err(status)) => return Some(status),
                None => return None,
            }
        }
    })
    .await
    .expect("the watcher is ended in time");
    let status = end.expect("ended with a status, not OK");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    // Calls go on.
    let mut b = core.open_idle(Kind::Multi, B).await;
    let (a_id, _) = establish(&mut a, &mut b).await;
    a.send(msg::bye(&a_id)).await;
    core.assert_no_calls_left().await;
}

#[tokio::test]
async fn presence_shows_terminals_and_calls_then_none() {
    let core = TestCore::new(PhoneNetworkKind::Sim).await;
    let mut client = operator(&core).await;
    let presence = |m: &str| authorized(GetPresenceRequest { msisdn: m.into() });
    let offline = client.get_presence(presence(B)).await.unwrap().into_inner();
    assert!(!offline.online && !offline.in_call && offline.terminals.is_empty());
    assert_eq!(offline.phone, op::presence::PhoneState::Reachable as i32);
    let mut a = core.open_idle(Kind::Multi, A).await;
    let mut b = core.open_idle(Kind::Pipe, B).await;
    let (a_id, _) = establish(&mut a, &mut b).await;
    let online = client.get_presence(presence(B)).await.unwrap().into_inner();
    assert!(online.online && online.in_call);
    assert_eq!(online.terminals.len(), 1);
    let t = &online.terminals[0];
    assert_eq!(
        (t.kind, t.calls, t.half_closed),
        (op::device::Kind::Pipe as i32, 1, false)
    );
    assert!(t.since.is_some());
    core.set_behaviour(B, webterminal_core::proto::simulator::Behaviour::Busy)
        .await;
    let busy = client.get_presence(presence(B)).await.unwrap().into_inner();
    assert_eq!(busy.phone, op::presence::PhoneState::Busy as i32);
    a.send(msg::bye(&a_id)).await;
    core.wait_for_stats("the call ends", |s| s.calls == 0).await;
    let after = client.get_presence(presence(B)).await.unwrap().into_inner();
    assert!(after.online && !after.in_call);
    core.assert_no_calls_left().await;
}

#[tokio::test]
async fn end_call_byes_every_leg_with_ended_by_operator() {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    let mut a = core.open_idle(Kind::Multi, A).await;
    let mut b = core.open_idle(Kind::Multi, B).await;
    let (a_id, b_id) = establish(&mut a, &mut b).await;
    let mut client = operator(&core).await;
    let calls = client
        .list_calls(authorized(ListCallsRequest { msisdn: A.into() }))
        .await
        .unwrap()
        .into_inner()
        .calls;
    let call_ref = calls[0].call_ref.clone();
    client
        .end_call(authorized(EndCallRequest {
            call_ref: call_ref.clone(),
        }))
        .await
        .expect("EndCall");
    a.expect_bye_on(&a_id, Reason::EndedByOperator).await;
    b.expect_bye_on(&b_id, Reason::EndedByOperator).await;
    let again = client
        .end_call(authorized(EndCallRequest { call_ref }))
        .await
        .expect_err("no longer live");
    assert_eq!(again.code(), Code::NotFound, "{again:?}");
    let bad = client
        .end_call(authorized(EndCallRequest {
            call_ref: "not-a-uuid".into(),
        }))
        .await
        .expect_err("not a UUID");
    assert_eq!(bad.code(), Code::InvalidArgument, "{bad:?}");
    core.assert_no_calls_left().await;
}

#[tokio::test]
async fn the_operator_scope_is_required() {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    let mut client = operator(&core).await;
    let none = client
        .list_calls(Request::new(ListCallsRequest::default()))
        .await
        .expect_err("no token");
    assert_eq!(none.code(), Code::Unauthenticated, "{none:?}");
    let mut terminal_token = Request::new(ListCallsRequest::default());
    terminal_token.metadata_mut().insert(
        "authorization",
        bearer(&operator_token("call.control.answer_and_initiate")),
    );
    let denied = client
        .list_calls(terminal_token)
        .await
        .expect_err("a terminal's token");
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    let mut watch_request = Request::new(WatchCallsRequest::default());
    watch_request
        .metadata_mut()
        .insert("authorization", "Bearer garbage".parse().unwrap());
    let bad = client
        .watch_calls(watch_request)
        .await
        .expect_err("garbage");
    assert_eq!(bad.code(), Code::Unauthenticated, "{bad:?}");
    core.assert_no_calls_left().await;
}

#[tokio::test]
async fn a_group_calls_answered_event_tells_the_group_the_members_extension_and_the_hold_time() {
    let dir = tempfile::tempdir().unwrap();
    let routing = dir.path().join("routing.toml");
    std::fs::write(
        &routing,
        format!("[[group]]\nnumber = \"+4721000000\"\nmembers = [ {{ msisdn = \"{B}\", extension = \"101\" }} ]\n"),
    )
    .unwrap();
    let mut config = TestCore::config(PhoneNetworkKind::None);
    config.routing = Some(routing);
    let core = TestCore::start(config).await;
    let mut events = watch(&core, A, 0).await;
    let mut b = core.open_idle(Kind::Multi, B).await;
    let mut a = core.open_idle(Kind::Multi, A).await;
    let a_id = a.dial("+4721000000", &chromium_offer()).await;
    a.expect_ringing().await;
    let b_id = b.expect_offer_of(&chromium_offer(), A).await;
    b.send(msg::answer(&b_id, &chromium_answer())).await;
    a.expect_answer_of(&a_id, &chromium_answer()).await;
    let seen: Vec<op::CallEvent> = [
        next_event(&mut events).await,
        next_event(&mut events).await,
        next_event(&mut events).await,
    ]
    .into();
    let statuses: Vec<CallStatus> = seen.iter().map(status).collect();
    assert_eq!(
        statuses,
        [
            CallStatus::Started,
            CallStatus::Ringing,
            CallStatus::Answered
        ]
    );
    assert_eq!(
        seen[0].callee, "+4721000000",
        "the caller dialled the group"
    );
    assert!(seen[0].group_answer.is_none() && seen[1].group_answer.is_none());
    assert_eq!(seen[2].callee, B, "the call is the member's once answered");
    let group = seen[2]
        .group_answer
        .as_ref()
        .expect("group_answer on ANSWERED");
    assert_eq!(
        (group.group.as_str(), group.extension.as_str()),
        ("+4721000000", "101")
    );
    assert!(group.hold_time_ms < RECV_TIMEOUT.as_millis() as u64);
    a.send(msg::bye(&a_id)).await;
    b.expect_bye_on(&b_id, Reason::NormalClearing).await;
    core.assert_no_calls_left().await;
}
