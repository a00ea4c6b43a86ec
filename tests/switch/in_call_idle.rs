//! PROTOCOL.md 4.4 and section 3 "on open": InCall and Idle.

use crate::harness::*;
use webterminal_core::core::*;

#[test]
fn pipe_opening_while_its_number_is_in_no_call_gets_idle_without_call_id() {
    let mut net = Net::new();
    let b = net.pipe(B);
    net.expect(b, None, NoticeBody::Idle);
    net.silent(b);
}

#[test]
fn pipe_opening_during_an_established_call_gets_in_call_with_that_sides_id() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.multi(B);
    let (a_id, b_id) = net.connect(a, B, b);
    let b2 = net.pipe(B);
    net.expect_in_call(b2, b_id, A);
    let a2 = net.pipe(A);
    net.expect_in_call(a2, a_id, B);
}

#[test]
fn pipe_opening_while_a_call_only_rings_gets_idle() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.multi(B);
    net.call(a, B, "chromium-offer");
    net.expect_offer(b);
    let a2 = net.pipe(A);
    net.expect(a2, None, NoticeBody::Idle);
    net.silent(a2);
}

#[test]
fn multipipe_gets_nothing_on_open_even_during_a_call() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.multi(B);
    net.connect(a, B, b);
    let b2 = net.multi(B);
    net.silent(b2);
    let c = net.multi(C);
    net.silent(c);
}

#[test]
fn every_other_terminal_of_both_numbers_gets_in_call_when_the_call_is_established() {
    let mut net = Net::new();
    let a = net.multi(A);
    let a2 = net.multi(A);
    let a3 = net.idle_pipe(A);
    let b = net.multi(B);
    let b2 = net.idle_pipe(B);
    // b2 is a Pipe fork; it loses and so learns of the call through Bye then InCall.
    let (a_id, b_id) = net.connect(a, B, b);
    net.expect_in_call(a2, a_id, B);
    net.expect_in_call(a3, a_id, B);
    net.expect_offer(b2);
    net.expect_bye(b2, ByeReason::AnsweredElsewhere);
    net.expect_in_call(b2, b_id, A);
    // The active legs are told nothing about their own call.
    net.silent(a);
    net.silent(b);
}

#[test]
fn ringing_call_is_not_announced_to_the_callers_other_terminals() {
    let mut net = Net::new();
    let a = net.multi(A);
    let a2 = net.multi(A);
    let a3 = net.idle_pipe(A);
    let b = net.multi(B);
    net.call(a, B, "chromium-offer");
    net.expect_offer(b);
    net.silent(a2);
    net.silent(a3);
}

#[test]
fn observers_get_idle_when_the_call_ends_a_pipe_without_call_id() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.multi(B);
    let (a_id, b_id) = net.connect(a, B, b);
    let a_pipe = net.pipe(A);
    net.expect_in_call(a_pipe, a_id, B);
    let b_multi = net.multi(B);
    let b_pipe = net.pipe(B);
    net.expect_in_call(b_pipe, b_id, A);
    net.ok(a, Some(a_id), RequestBody::Bye);
    net.expect(a_pipe, None, NoticeBody::Idle);
    net.expect(b_pipe, None, NoticeBody::Idle);
    // A MultiPipe that opened during the call was told nothing on open, but it is a terminal of
    // B that is not the active leg, so it gets Idle (with B's id) when the call ends (4.4).
    net.expect(b_multi, Some(b_id), NoticeBody::Idle);
}

#[test]
fn multipipe_gets_in_call_and_idle_per_call_with_each_sides_id() {
    let mut net = Net::new();
    let b_obs = net.multi(B);
    net.half_close(b_obs); // only observes: no forks reach it
    let a = net.multi(A);
    let c = net.multi(C);
    let b1 = net.multi(B);
    let b2 = net.multi(B);
    let (_, ab) = net.connect(a, B, b1);
    net.expect_in_call(b_obs, ab, A);
    net.expect_offer(b2);
    net.expect_bye(b2, ByeReason::AnsweredElsewhere);
    net.expect_in_call(b2, ab, A);
    let (c_id, cb) = net.connect(c, B, b2);
    assert_ne!(ab, cb);
    net.expect_in_call(b_obs, cb, C);
    net.expect_offer(b1);
    net.expect_bye(b1, ByeReason::AnsweredElsewhere);
    net.expect_in_call(b1, cb, C);
    net.ok(c, Some(c_id), RequestBody::Bye);
    net.expect_bye(b2, ByeReason::NormalClearing);
    net.expect(b_obs, Some(cb), NoticeBody::Idle);
    net.expect(b1, Some(cb), NoticeBody::Idle);
    // b2 no longer carries a call of its own and still observes A-B: nothing new for it.
    net.silent(b2);
    net.silent(b_obs);
    net.silent(b1);
}

#[test]
fn pipe_reflects_only_the_most_recently_established_call() {
    let mut net = Net::new();
    let b_pipe = net.idle_pipe(B);
    net.half_close(b_pipe); // keeps it out of the forks so only InCall/Idle reach it
    let a = net.multi(A);
    let c = net.multi(C);
    let b1 = net.multi(B);
    let (_, ab) = net.connect(a, B, b1);
    net.expect_in_call(b_pipe, ab, A);
    let (_, cb) = net.connect(c, B, b1);
    net.expect_in_call(b_pipe, cb, C);
    net.silent(b_pipe);
}

#[test]
fn pipe_gets_in_call_for_the_remaining_call_not_idle_when_the_latest_one_ends() {
    let mut net = Net::new();
    let b_pipe = net.idle_pipe(B);
    net.half_close(b_pipe);
    let a = net.multi(A);
    let c = net.multi(C);
    let b1 = net.multi(B);
    let (_, ab) = net.connect(a, B, b1);
    let (c_id, _) = net.connect(c, B, b1);
    net.take(b_pipe);
    net.ok(c, Some(c_id), RequestBody::Bye);
    net.expect_in_call(b_pipe, ab, A);
    net.silent(b_pipe);
}

#[test]
fn pipe_gets_idle_only_once_no_established_call_of_its_number_remains() {
    let mut net = Net::new();
    let b_pipe = net.idle_pipe(B);
    net.half_close(b_pipe);
    let a = net.multi(A);
    let c = net.multi(C);
    let b1 = net.multi(B);
    let (a_id, _) = net.connect(a, B, b1);
    let (c_id, _) = net.connect(c, B, b1);
    net.take(b_pipe);
    // The older call ends first: the Pipe still reflects the newer one and is told nothing.
    net.ok(a, Some(a_id), RequestBody::Bye);
    net.silent(b_pipe);
    net.ok(c, Some(c_id), RequestBody::Bye);
    net.expect(b_pipe, None, NoticeBody::Idle);
}

#[test]
fn pipe_busy_in_a_call_of_its_own_gets_no_in_call_for_another_call() {
    let mut net = Net::new();
    let a = net.multi(A);
    let c = net.multi(C);
    let b_pipe = net.idle_pipe(B);
    let (a_id, _) = net.connect(a, B, b_pipe);
    let b_multi = net.multi(B);
    net.connect(c, B, b_multi);
    net.silent(b_pipe);
    assert_eq!(net.switch.call_count(), 2);
    // Its own call ends as usual.
    net.ok(a, Some(a_id), RequestBody::Bye);
    net.expect_bye(b_pipe, ByeReason::NormalClearing);
}

#[test]
fn pipe_freed_from_its_own_call_gets_in_call_for_the_call_still_up() {
    // Choice: the ending call's Bye puts the Pipe back to idle; if its number is still in another
    // established call it is then told InCall for it, as it would be on open (section 3).
    let mut net = Net::new();
    let a = net.multi(A);
    let c = net.multi(C);
    let b_pipe = net.idle_pipe(B);
    let (a_id, _) = net.connect(a, B, b_pipe);
    let b_multi = net.multi(B);
    let (_, cb) = net.connect(c, B, b_multi);
    net.ok(a, Some(a_id), RequestBody::Bye);
    net.expect_bye(b_pipe, ByeReason::NormalClearing);
    net.expect_in_call(b_pipe, cb, C);
    net.silent(b_pipe);
}

#[test]
fn pipe_active_leg_gets_bye_and_no_idle_when_its_call_ends() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.idle_pipe(B);
    let (a_id, _) = net.connect(a, B, b);
    net.ok(a, Some(a_id), RequestBody::Bye);
    net.expect_bye(b, ByeReason::NormalClearing);
    net.silent(b);
}

#[test]
fn terminals_of_an_unrelated_number_hear_nothing_of_a_call() {
    let mut net = Net::new();
    let c_pipe = net.idle_pipe(C);
    let c_multi = net.multi(C);
    let a = net.multi(A);
    let b = net.multi(B);
    let (a_id, _) = net.connect(a, B, b);
    net.ok(a, Some(a_id), RequestBody::Bye);
    net.silent(c_pipe);
    net.silent(c_multi);
}
