//! PROTOCOL.md section 10: calls to groups (hunt groups, contact-centre queues). The caller waits in
//! the queue, hearing `Ringing` at once; members are offered the call as the group's strategy says;
//! the first answer wins and the call becomes the caller's and that member's.

use crate::harness::*;
use std::time::Duration;
use webterminal_core::core::*;

/// The group's number.
const SALES: &str = "+4721000000";
/// Members, in the file's order.
const M1: &str = "+4790000011";
const M2: &str = "+4790000012";
const M3: &str = "+4790000013";

const MEMBER_RING: Duration = Duration::from_secs(20);
const QUEUE: Duration = Duration::from_secs(300);

fn table(strategy: &str) -> GroupTable {
    let member = |msisdn: &str, extension: &str| Member {
        msisdn: Msisdn::parse(msisdn).unwrap(),
        extension: extension.into(),
    };
    GroupTable::new([Group {
        number: Msisdn::parse(SALES).unwrap(),
        strategy: Strategy::from_name(strategy).expect("a strategy"),
        member_ring_timeout: MEMBER_RING,
        queue_timeout: QUEUE,
        members: vec![member(M1, "101"), member(M2, "102"), member(M3, "103")],
    }])
    .unwrap()
}

fn net_with(strategy: &str) -> Net {
    let mut net = Net::new();
    net.switch.set_router(Box::new(table(strategy)));
    net
}

/// `caller` calls the group and hears Ringing at once; returns its call id.
fn call_group(net: &mut Net, caller: TerminalId) -> CallId {
    let id = net.call(caller, SALES, "chromium-offer").unwrap();
    net.expect(caller, Some(id), NoticeBody::Ringing);
    id
}

/// `member` answers group call `id` (offered to it); the caller gets the answer.
fn answer_as(net: &mut Net, member: TerminalId, id: CallId, caller: TerminalId, caller_id: CallId) {
    net.ok(member, Some(id), answer("chromium-answer"));
    net.expect_answer(caller, caller_id, "chromium-answer");
}

/// Ends established call `id` from `t`.
fn hang_up(net: &mut Net, t: TerminalId, id: CallId) {
    net.ok(t, Some(id), RequestBody::Bye);
}

#[test]
fn ring_all_offers_every_member_and_the_first_answer_wins() {
    let mut net = net_with("ring-all");
    let (m1, m2, m3) = (net.multi(M1), net.multi(M2), net.multi(M3));
    let a = net.multi(A);
    let a_id = call_group(&mut net, a);
    let id = net.expect_offer_from(m1, A, "chromium-offer");
    for m in [m2, m3] {
        assert_eq!(net.expect_offer_from(m, A, "chromium-offer"), id, "one id");
    }
    net.advance(MEMBER_RING * 3);
    net.silent(m1); // ring-all rings until the queue timeout, not the member ring timeout
    answer_as(&mut net, m2, id, a, a_id);
    net.expect_bye(m1, ByeReason::AnsweredElsewhere);
    net.expect_bye(m3, ByeReason::AnsweredElsewhere);

    let events = net.take_full_events();
    let statuses: Vec<_> = events.iter().map(|e| e.status).collect();
    assert_eq!(
        statuses,
        [
            CallStatus::Started,
            CallStatus::Ringing,
            CallStatus::Answered
        ]
    );
    assert_eq!(events[0].callee.as_str(), SALES);
    let answered = &events[2];
    assert_eq!(answered.callee.as_str(), M2, "the call is the member's now");
    let group = answered.group_answer.as_ref().expect("a group answer");
    assert_eq!(group.group.as_str(), SALES);
    assert_eq!(group.extension, "102");
    assert_eq!(group.hold_time, MEMBER_RING * 3);
    hang_up(&mut net, a, a_id);
    net.expect_bye(m2, ByeReason::NormalClearing);
}

#[test]
fn round_robin_offers_one_member_at_a_time_starting_after_the_last_to_answer() {
    let mut net = net_with("round-robin");
    let (m1, m2, m3) = (net.multi(M1), net.multi(M2), net.multi(M3));
    let a = net.multi(A);

    let a_id = call_group(&mut net, a);
    let id = net.expect_offer_from(m1, A, "chromium-offer");
    net.silent(m2);
    net.silent(m3);
    answer_as(&mut net, m1, id, a, a_id);
    hang_up(&mut net, a, a_id);
    net.expect_bye(m1, ByeReason::NormalClearing);

    // M1 took the last call: the next goes to M2, then M3, then M1 again.
    for next in [m2, m3, m1] {
        let a_id = call_group(&mut net, a);
        let id = net.expect_offer_from(next, A, "chromium-offer");
        for other in [m1, m2, m3] {
            net.silent(other);
        }
        answer_as(&mut net, next, id, a, a_id);
        hang_up(&mut net, next, id);
        net.expect_bye(a, ByeReason::NormalClearing);
    }
}

#[test]
fn a_member_who_does_not_answer_in_time_is_passed_over_with_bye_cancelled() {
    let mut net = net_with("round-robin");
    let (m1, m2) = (net.multi(M1), net.multi(M2));
    let a = net.multi(A);
    let a_id = call_group(&mut net, a);
    let id = net.expect_offer_from(m1, A, "chromium-offer");
    net.ok(m1, Some(id), RequestBody::Ringing);
    net.advance(MEMBER_RING - Duration::from_millis(1));
    net.silent(m2);
    net.advance(Duration::from_millis(1));
    assert_eq!(net.expect_bye(m1, ByeReason::Cancelled), id);
    assert_eq!(net.expect_offer_from(m2, A, "chromium-offer"), id);
    net.silent(a); // the caller waits on, told nothing

    // M2 does not answer either: the round starts again with M1.
    net.advance(MEMBER_RING);
    net.expect_bye(m2, ByeReason::Cancelled);
    assert_eq!(net.expect_offer_from(m1, A, "chromium-offer"), id);
    answer_as(&mut net, m1, id, a, a_id);
    hang_up(&mut net, m1, id);
    net.expect_bye(a, ByeReason::NormalClearing);
}

#[test]
fn a_member_who_declines_is_passed_over_and_never_offered_the_call_again() {
    let mut net = net_with("round-robin");
    let (m1, m2) = (net.multi(M1), net.multi(M2));
    let m1_other = net.multi(M1);
    let a = net.multi(A);
    let a_id = call_group(&mut net, a);
    let id = net.expect_offer_from(m1, A, "chromium-offer");
    net.expect_offer_from(m1_other, A, "chromium-offer");
    net.ok(m1, Some(id), RequestBody::Bye);
    net.expect_bye(m1_other, ByeReason::DeclinedElsewhere);
    assert_eq!(net.expect_offer_from(m2, A, "chromium-offer"), id);
    net.silent(a);

    // M2 lets it ring out; M1 declined, so M2 is offered it again, not M1.
    net.advance(MEMBER_RING);
    net.expect_bye(m2, ByeReason::Cancelled);
    net.expect_offer_from(m2, A, "chromium-offer");
    net.silent(m1);
    net.silent(m1_other);
    net.ok(a, Some(a_id), RequestBody::Bye);
    net.expect_bye(m2, ByeReason::Cancelled);
    assert_eq!(
        net.take_events().last(),
        Some(&(CallStatus::Unanswered, Some(ByeReason::Cancelled)))
    );
}

#[test]
fn ring_all_every_member_declining_leaves_the_caller_waiting_until_the_queue_timeout() {
    let mut net = net_with("ring-all");
    let (m1, m2) = (net.multi(M1), net.multi(M2));
    let a = net.multi(A);
    let a_id = call_group(&mut net, a);
    for m in [m1, m2] {
        let id = net.expect_offer_from(m, A, "chromium-offer");
        net.ok(m, Some(id), RequestBody::Bye);
    }
    net.silent(a);
    // A member who registers meanwhile is offered it.
    let m3 = net.multi(M3);
    net.expect_offer_from(m3, A, "chromium-offer");
    net.advance(QUEUE);
    net.expect(
        a,
        Some(a_id),
        NoticeBody::Bye {
            reason: ByeReason::NoAnswer,
        },
    );
    net.expect_bye(m3, ByeReason::Cancelled);
    net.silent(m1);
    net.silent(m2);
}

#[test]
fn longest_idle_offers_the_member_idle_longest_first() {
    let mut net = net_with("longest-idle");
    let m1 = net.multi(M1);
    net.advance(Duration::from_secs(1));
    let m2 = net.multi(M2);
    net.advance(Duration::from_secs(1));
    let m3 = net.multi(M3);
    let a = net.multi(A);
    let b = net.multi(B);

    // M1 registered first, so it has been idle longest; then it takes a call and is idle since
    // that call's end, after M2 and M3 registered.
    let a_id = call_group(&mut net, a);
    let id = net.expect_offer_from(m1, A, "chromium-offer");
    answer_as(&mut net, m1, id, a, a_id);
    net.advance(Duration::from_secs(5));
    hang_up(&mut net, m1, id);
    net.expect_bye(a, ByeReason::NormalClearing);

    let b_id = call_group(&mut net, b);
    let id = net.expect_offer_from(m2, B, "chromium-offer");
    net.silent(m1);
    net.silent(m3);
    // M2 lets it ring out: M3 (idle since registering) before M1 (idle since its call ended).
    net.advance(MEMBER_RING);
    net.expect_bye(m2, ByeReason::Cancelled);
    assert_eq!(net.expect_offer_from(m3, B, "chromium-offer"), id);
    answer_as(&mut net, m3, id, b, b_id);
    hang_up(&mut net, b, b_id);
    net.expect_bye(m3, ByeReason::NormalClearing);
}

#[test]
fn a_queued_call_waits_for_a_member_to_register_then_is_offered_at_once() {
    let mut net = net_with("round-robin");
    let busy = net.multi(M1);
    let b = net.multi(B);
    let (b_id, _) = net.connect(b, M1, busy); // M1 is in a call: not offered group calls
    let a = net.multi(A);
    let a_id = call_group(&mut net, a);
    net.advance(Duration::from_secs(60));
    net.silent(busy);
    assert_eq!(net.switch.queued_call_count(), 1, "waiting");
    let sales = Msisdn::parse(SALES).unwrap();
    assert_eq!(
        net.switch.queued_calls_by_group(),
        [(sales, 1)].into_iter().collect(),
        "waiting in SALES's queue"
    );
    let changes = net.switch.queue_changes();
    let m2 = net.multi(M2);
    let id = net.expect_offer_from(m2, A, "chromium-offer");
    assert_eq!(
        net.switch.queued_call_count(),
        1,
        "offered, not yet answered"
    );
    answer_as(&mut net, m2, id, a, a_id);
    assert_eq!(net.switch.queued_call_count(), 0, "answered");
    assert!(net.switch.queued_calls_by_group().is_empty());
    assert_eq!(net.switch.queue_changes(), changes + 1, "it left the queue");
    let events = net.take_full_events();
    let answered = events
        .iter()
        .find(|e| e.status == CallStatus::Answered && e.caller.as_str() == A);
    assert_eq!(
        answered.unwrap().group_answer.as_ref().unwrap().hold_time,
        Duration::from_secs(60)
    );
    hang_up(&mut net, a, a_id);
    net.expect_bye(m2, ByeReason::NormalClearing);
    hang_up(&mut net, b, b_id);
    net.take(busy);
}

#[test]
fn a_member_ending_a_call_is_offered_the_oldest_waiting_call() {
    let mut net = net_with("ring-all");
    let m1 = net.multi(M1);
    let b = net.multi(B);
    let (b_id, m1_b) = net.connect(b, M1, m1);
    let a = net.multi(A);
    let c = net.multi(C);
    let a_id = call_group(&mut net, a);
    let c_id = call_group(&mut net, c);
    net.silent(m1);
    hang_up(&mut net, b, b_id);
    assert_eq!(net.expect_bye(m1, ByeReason::NormalClearing), m1_b);
    // A waited longer than C: A's call first; C's only once M1 is free again.
    let id = net.expect_offer_from(m1, A, "chromium-offer");
    net.silent(m1);
    answer_as(&mut net, m1, id, a, a_id);
    hang_up(&mut net, a, a_id);
    net.expect_bye(m1, ByeReason::NormalClearing);
    let id = net.expect_offer_from(m1, C, "chromium-offer");
    answer_as(&mut net, m1, id, c, c_id);
    hang_up(&mut net, m1, id);
    net.expect_bye(c, ByeReason::NormalClearing);
}

#[test]
fn the_queue_timeout_ends_the_call_with_no_answer_and_cancels_the_members_ringing() {
    let mut net = net_with("ring-all");
    let m1 = net.multi(M1);
    let a = net.multi(A);
    let a_id = call_group(&mut net, a);
    net.expect_offer_from(m1, A, "chromium-offer");
    // A group call is governed by its queue timeout, not the switch's ring timeout (60 s).
    net.advance(Duration::from_secs(61));
    net.silent(a);
    net.advance(QUEUE - Duration::from_secs(61));
    net.expect(
        a,
        Some(a_id),
        NoticeBody::Bye {
            reason: ByeReason::NoAnswer,
        },
    );
    net.expect_bye(m1, ByeReason::Cancelled);
    assert_eq!(net.switch.queued_call_count(), 0);
    assert_eq!(
        net.take_events(),
        [
            (CallStatus::Started, None),
            (CallStatus::Ringing, None),
            (CallStatus::Unanswered, Some(ByeReason::NoAnswer)),
        ]
    );
}

#[test]
fn a_group_whose_members_have_no_terminal_is_unavailable_at_once() {
    let mut net = net_with("ring-all");
    let a = net.multi(A);
    let a_id = net.call(a, SALES, "chromium-offer").unwrap();
    net.expect(
        a,
        Some(a_id),
        NoticeBody::Bye {
            reason: ByeReason::Unavailable,
        },
    );
    assert_eq!(net.switch.call_count(), 0);
}

#[test]
fn a_member_calling_its_own_group_is_not_offered_the_call() {
    let mut net = net_with("ring-all");
    let m1 = net.multi(M1);
    let m2 = net.multi(M2);
    let m1_id = call_group(&mut net, m1);
    let id = net.expect_offer_from(m2, M1, "chromium-offer");
    net.silent(m1);
    answer_as(&mut net, m2, id, m1, m1_id);
    hang_up(&mut net, m2, id);
    net.expect_bye(m1, ByeReason::NormalClearing);
}

#[test]
fn a_member_terminal_going_away_passes_the_call_to_the_next_member() {
    let mut net = net_with("round-robin");
    let (m1, m2) = (net.multi(M1), net.multi(M2));
    let a = net.multi(A);
    let a_id = call_group(&mut net, a);
    let id = net.expect_offer_from(m1, A, "chromium-offer");
    net.gone(m1);
    assert_eq!(net.expect_offer_from(m2, A, "chromium-offer"), id);
    net.silent(a);
    answer_as(&mut net, m2, id, a, a_id);
    hang_up(&mut net, a, a_id);
    net.expect_bye(m2, ByeReason::NormalClearing);
}

#[test]
fn a_member_terminal_registering_while_its_member_is_offered_the_call_is_offered_it_too() {
    let mut net = net_with("round-robin");
    let m1 = net.multi(M1);
    let a = net.multi(A);
    let a_id = call_group(&mut net, a);
    let id = net.expect_offer_from(m1, A, "chromium-offer");
    let m1_late = net.pipe(M1);
    net.expect(m1_late, None, NoticeBody::Idle);
    net.expect_offer_from(m1_late, A, "chromium-offer");
    net.ok(m1_late, None, answer("chromium-answer"));
    net.expect_answer(a, a_id, "chromium-answer");
    net.expect_bye(m1, ByeReason::AnsweredElsewhere);
    net.expect_in_call(m1, id, A);
    hang_up(&mut net, a, a_id);
    net.expect(
        m1_late,
        Some(id),
        NoticeBody::Bye {
            reason: ByeReason::NormalClearing,
        },
    );
    net.take(m1);
}

#[test]
fn the_caller_cancelling_in_the_queue_cancels_the_members_ringing() {
    let mut net = net_with("ring-all");
    let (m1, m2) = (net.multi(M1), net.multi(M2));
    let a = net.multi(A);
    let a_id = call_group(&mut net, a);
    net.expect_offer_from(m1, A, "chromium-offer");
    net.expect_offer_from(m2, A, "chromium-offer");
    net.ok(a, Some(a_id), RequestBody::Bye);
    net.expect_bye(m1, ByeReason::Cancelled);
    net.expect_bye(m2, ByeReason::Cancelled);
    // M1 is free again: nothing else is offered.
    net.silent(m1);
}

#[test]
fn a_group_call_once_answered_is_pulled_and_handed_to_the_phone_like_any_call() {
    let mut net = Net::with_phones();
    net.switch.set_router(Box::new(table("round-robin")));
    let m1 = net.multi(M1);
    let a = net.multi(A);
    let a_id = call_group(&mut net, a);
    let id = net.expect_offer_from(m1, A, "chromium-offer");
    assert!(
        net.phone.is_empty(),
        "members' phones are not rung: {:?}",
        net.phone
    );
    answer_as(&mut net, m1, id, a, a_id);

    // A second terminal of M1 sees the call and pulls it.
    let m1_desk = net.multi(M1);
    net.ok(m1_desk, Some(id), reoffer("aiortc-offer"));
    net.expect_offer_of(a, a_id, M1, "aiortc-offer");
    net.ok(a, Some(a_id), answer("aiortc-answer"));
    net.expect_answer(m1_desk, id, "aiortc-answer");
    net.expect_bye(m1, ByeReason::Pulled);
    net.expect_in_call(m1, id, A);

    // And hands it to M1's phone.
    net.ok(m1_desk, Some(id), RequestBody::ToPhone);
    match net.next_phone() {
        PhoneCommand::HandOver {
            msisdn: m, peer, ..
        } => {
            assert_eq!((m.as_str(), peer.as_str()), (M1, A));
        }
        other => panic!("expected HandOver, got {other:?}"),
    }
    hang_up(&mut net, a, a_id);
    net.take(m1);
    net.take(m1_desk);
    net.phone.clear();
}

#[test]
fn a_call_from_the_phone_network_to_a_group_is_queued_like_any_other() {
    let mut net = Net::with_phones();
    net.switch.set_router(Box::new(table("ring-all")));
    let m1 = net.multi(M1);
    let leg = net.dial(A, SALES, "chromium-offer");
    assert_eq!(net.next_phone(), PhoneCommand::Alerting { leg });
    let id = net.expect_offer_from(m1, A, "chromium-offer");
    net.ok(m1, Some(id), answer("chromium-answer"));
    net.expect_phone_answer(leg, "chromium-answer");
    net.ok(m1, Some(id), RequestBody::Bye);
    net.expect_release(leg, ByeReason::NormalClearing);
}

#[test]
fn a_new_routing_table_leaves_queued_calls_with_the_group_they_joined() {
    let mut net = net_with("round-robin");
    let m1 = net.multi(M1);
    let a = net.multi(A);
    let a_id = call_group(&mut net, a);
    let id = net.expect_offer_from(m1, A, "chromium-offer");
    net.switch.set_router(Box::new(GroupTable::default()));
    answer_as(&mut net, m1, id, a, a_id);
    hang_up(&mut net, a, a_id);
    net.expect_bye(m1, ByeReason::NormalClearing);
    // The group is gone: its number is an ordinary number nobody has.
    let a_id = net.call(a, SALES, "chromium-offer").unwrap();
    net.expect(
        a,
        Some(a_id),
        NoticeBody::Bye {
            reason: ByeReason::Unavailable,
        },
    );
}

#[test]
fn a_call_transferred_to_a_group_is_shown_to_every_member_and_the_first_pull_takes_it() {
    let mut net = net_with("round-robin");
    let (m1, m2) = (net.multi(M1), net.idle_pipe(M2));
    let (a, b, a_id, b_id) = a_with_b(&mut net);
    net.ok(b, Some(b_id), transfer(SALES));
    net.expect_bye(b, ByeReason::Transferred);
    let id = net.expect_in_call_any(m1, A);
    net.expect_in_call(m2, id, A);
    net.silent(a);

    // M2 pulls first: it claims the call; M1 no longer sees it.
    net.ok(m2, None, reoffer("aiortc-offer"));
    net.expect(m1, Some(id), NoticeBody::Idle);
    net.expect_offer_of(a, a_id, M2, "aiortc-offer");
    net.ok(a, Some(a_id), answer("aiortc-answer"));
    net.expect_answer(m2, id, "aiortc-answer");
    assert_eq!(
        net.refused(m1, Some(id), reoffer("chromium-offer")),
        ErrorCode::InvalidCallId,
        "the call is M2's now"
    );
    let moved = net.take_full_events();
    assert_eq!(
        (moved[0].status, moved[0].reason, moved[0].callee.as_str()),
        (CallStatus::Moved, Some(ByeReason::Transferred), M2)
    );
    net.ok(m2, None, RequestBody::Bye);
    net.expect_bye(a, ByeReason::NormalClearing);
    net.silent(m1);
}

#[test]
fn a_call_transferred_to_a_group_nobody_pulls_ends_with_no_answer_and_members_get_idle() {
    let mut net = net_with("ring-all");
    let m1 = net.multi(M1);
    let (a, b, a_id, b_id) = a_with_b(&mut net);
    net.ok(b, Some(b_id), transfer(SALES));
    net.expect_bye(b, ByeReason::Transferred);
    let id = net.expect_in_call_any(m1, A);
    net.advance(Duration::from_secs(60)); // the ring timeout
    net.expect(
        a,
        Some(a_id),
        NoticeBody::Bye {
            reason: ByeReason::NoAnswer,
        },
    );
    net.expect(m1, Some(id), NoticeBody::Idle);
    assert_eq!(net.switch.call_count(), 0);
}

#[test]
fn a_transfer_to_a_group_with_no_member_terminal_is_unavailable_and_with_busy_members_busy() {
    let mut net = net_with("ring-all");
    let (a, b, a_id, b_id) = a_with_b(&mut net);
    net.ok(b, Some(b_id), transfer(SALES));
    net.expect_bye(b, ByeReason::Transferred);
    net.expect(
        a,
        Some(a_id),
        NoticeBody::Bye {
            reason: ByeReason::Unavailable,
        },
    );

    // M1's only terminal is a Pipe in a call: busy.
    let m1 = net.idle_pipe(M1);
    let c = net.multi(C);
    let (c_id, _) = net.connect(c, M1, m1);
    let (a, b, a_id, b_id) = a_with_b(&mut net);
    net.ok(b, Some(b_id), transfer(SALES));
    net.expect_bye(b, ByeReason::Transferred);
    net.expect(
        a,
        Some(a_id),
        NoticeBody::Bye {
            reason: ByeReason::Busy,
        },
    );
    net.ok(c, Some(c_id), RequestBody::Bye);
    net.take(m1);
}

#[test]
fn a_member_offered_a_group_call_has_no_side_to_act_on_until_it_answers() {
    let mut net = net_with("ring-all");
    let m1 = net.multi(M1);
    let a = net.multi(A);
    let a_id = call_group(&mut net, a);
    let id = net.expect_offer_from(m1, A, "chromium-offer");
    for body in [reoffer("aiortc-offer"), RequestBody::ToPhone, transfer(C)] {
        assert_eq!(net.refused(m1, Some(id), body), ErrorCode::NotInCall);
    }
    net.ok(a, Some(a_id), RequestBody::Bye);
    net.expect_bye(m1, ByeReason::Cancelled);
}

#[test]
fn a_member_who_answers_another_call_while_offered_a_group_call_is_passed_over_at_once() {
    let mut net = net_with("round-robin");
    let (m1, m2) = (net.multi(M1), net.multi(M2));
    let (a, b) = (net.multi(A), net.multi(B));
    let a_id = call_group(&mut net, a);
    let id = net.expect_offer_from(m1, A, "chromium-offer");
    net.silent(m2);

    // M1 takes a direct call on the same terminal: busy, so the group call moves on now, not
    // after the member ring timeout.
    let b_id = net.call(b, M1, "chromium-offer").unwrap();
    let direct = net.expect_offer_from(m1, B, "chromium-offer");
    net.ok(m1, Some(direct), answer("chromium-answer"));
    net.expect_answer(b, b_id, "chromium-answer");
    assert_eq!(net.expect_bye(m1, ByeReason::Cancelled), id);
    assert_eq!(net.expect_offer_from(m2, A, "chromium-offer"), id);
    net.silent(a); // the caller waits on, told nothing
    answer_as(&mut net, m2, id, a, a_id);
    hang_up(&mut net, a, a_id);
    net.expect_bye(m2, ByeReason::NormalClearing);
    hang_up(&mut net, b, b_id);
    net.expect_bye(m1, ByeReason::NormalClearing);
}

#[test]
fn ring_all_withdraws_a_member_who_answers_another_call_and_offers_it_again_once_free() {
    let mut net = net_with("ring-all");
    let (m1, m2) = (net.multi(M1), net.multi(M2));
    let (a, b) = (net.multi(A), net.multi(B));
    let a_id = call_group(&mut net, a);
    let id = net.expect_offer_from(m1, A, "chromium-offer");
    assert_eq!(net.expect_offer_from(m2, A, "chromium-offer"), id);

    let (b_id, _) = net.connect(b, M1, m1);
    assert_eq!(net.expect_bye(m1, ByeReason::Cancelled), id);
    net.silent(m2); // still ringing
    hang_up(&mut net, b, b_id);
    net.expect_bye(m1, ByeReason::NormalClearing);
    assert_eq!(net.expect_offer_from(m1, A, "chromium-offer"), id);
    answer_as(&mut net, m1, id, a, a_id);
    net.expect_bye(m2, ByeReason::AnsweredElsewhere);
    hang_up(&mut net, m1, id);
    net.expect_bye(a, ByeReason::NormalClearing);
}

#[test]
fn a_member_whose_pull_of_a_transferred_call_is_refused_does_not_claim_it() {
    // Found by the model-based test: the far party of a call transferred to the group went away
    // (reconnect grace), and a member's pull, refused with TRY_AGAIN, claimed the call all the
    // same: the other members were told Idle and could never take it (4.5, 4.12, section 10:
    // a refused message changes nothing; the first pull that goes through claims the call).
    let mut net = Net::with(SwitchConfig {
        reconnect_grace: Duration::from_secs(15),
        phone_network: false,
        ..Net::config()
    });
    net.switch.set_router(Box::new(table("ring-all")));
    let (m1, m2) = (net.idle_pipe(M1), net.multi(M2));
    let (a, b, _, b_id) = a_with_b(&mut net);
    net.ok(b, Some(b_id), transfer(SALES));
    net.expect_bye(b, ByeReason::Transferred);
    let id = net.expect_in_call_any(m1, A);
    net.expect_in_call(m2, id, A);
    net.gone(a);
    assert_eq!(
        net.refused(m1, None, reoffer("aiortc-offer")),
        ErrorCode::TryAgain,
        "nobody could answer the pull"
    );
    net.silent(m2); // still shown the call
    net.silent(m1);
    net.advance(Duration::from_secs(15)); // A's grace ends with nobody back
    net.expect(m1, None, NoticeBody::Idle);
    net.expect(m2, Some(id), NoticeBody::Idle);
    assert_eq!(net.switch.call_count(), 0);
}

#[test]
fn a_member_at_its_call_cap_cannot_claim_a_transferred_call_and_another_member_can() {
    let mut net = Net::with_call_cap(1);
    net.switch.set_router(Box::new(table("ring-all")));
    let (m1, m2) = (net.multi(M1), net.multi(M2));
    let c = net.multi(C);
    let (c_id, _) = net.connect(c, M1, m1); // M1's MultiPipe is at its cap of one call
    let (a, b, a_id, b_id) = a_with_b(&mut net);
    net.ok(b, Some(b_id), transfer(SALES));
    net.expect_bye(b, ByeReason::Transferred);
    let id = net.expect_in_call_any(m1, A);
    net.expect_in_call(m2, id, A);
    assert_eq!(
        net.refused(m1, Some(id), reoffer("aiortc-offer")),
        ErrorCode::RateLimitHit
    );
    net.silent(m2); // still shown the call: M1 did not claim it
    net.silent(a);
    net.ok(m2, Some(id), reoffer("aiortc-offer"));
    net.expect(m1, Some(id), NoticeBody::Idle);
    net.expect_offer_of(a, a_id, M2, "aiortc-offer");
    net.ok(a, Some(a_id), answer("aiortc-answer"));
    net.expect_answer(m2, id, "aiortc-answer");
    hang_up(&mut net, m2, id);
    net.expect_bye(a, ByeReason::NormalClearing);
    hang_up(&mut net, c, c_id);
    net.expect_bye(m1, ByeReason::NormalClearing);
}
