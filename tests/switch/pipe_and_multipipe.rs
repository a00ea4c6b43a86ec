//! PROTOCOL.md section 3: the call_id the core sets on what a Pipe and a MultiPipe get. (Calls at
//! once: errors.rs and routing.rs; on open: in_call_idle.rs; half-close: half_close.rs.)

use crate::harness::*;
use webterminal_core::core::*;

/// Takes `watched` (a terminal of B) through every kind of notice: Offer, Bye{ANSWERED_ELSEWHERE},
/// InCall, Answer (its pull), Offer (a re-offer), Bye{PULLED}, Idle. Returns them all, and B's id.
fn everything_b_sees(net: &mut Net, watched: TerminalId) -> (Vec<Notice>, CallId) {
    let a = net.multi(A);
    let b = net.multi(B);
    let (a_id, b_id) = net.connect(a, B, b);
    let w = net.id_for(watched, b_id);
    // Pull to `watched`.
    net.ok(watched, w, reoffer("aiortc-offer"));
    net.expect_offer(a);
    net.ok(a, Some(a_id), answer("aiortc-answer"));
    // A re-offers `watched`, which answers.
    net.ok(a, Some(a_id), reoffer("chromium-hold-offer"));
    net.ok(watched, w, answer("chromium-hold-answer"));
    // b pulls it back.
    net.take(b);
    net.ok(b, Some(b_id), reoffer("chromium-offer"));
    net.ok(a, Some(a_id), answer("chromium-answer"));
    // The call ends.
    net.ok(a, Some(a_id), RequestBody::Bye);
    let got = net.take(watched);
    let kinds: Vec<&str> = got
        .iter()
        .map(|n| match n.body {
            NoticeBody::Offer { .. } => "Offer",
            NoticeBody::Answer { .. } => "Answer",
            NoticeBody::Bye { .. } => "Bye",
            NoticeBody::InCall { .. } => "InCall",
            NoticeBody::Idle => "Idle",
            NoticeBody::Ringing => "Ringing",
            NoticeBody::Error(_) => "Error",
        })
        .collect();
    assert_eq!(
        kinds,
        ["Offer", "Bye", "InCall", "Answer", "Offer", "Bye", "InCall", "Idle"]
    );
    (got, b_id)
}

#[test]
fn core_sets_the_call_id_on_every_message_to_a_pipe_except_idle() {
    let mut net = Net::new();
    let watched = net.idle_pipe(B);
    let (got, b_id) = everything_b_sees(&mut net, watched);
    for n in got {
        let want = if n.body == NoticeBody::Idle {
            None
        } else {
            Some(b_id)
        };
        assert_eq!(n.call_id, want, "{n:?}");
    }
}

#[test]
fn core_sets_the_call_id_on_every_message_to_a_multipipe() {
    let mut net = Net::new();
    let watched = net.multi(B);
    let (got, b_id) = everything_b_sees(&mut net, watched);
    for n in got {
        assert_eq!(n.call_id, Some(b_id), "{n:?}");
    }
}

#[test]
fn pipes_messages_are_about_its_current_call_without_call_id() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.idle_pipe(B);
    let a_id = net.call(a, B, "chromium-offer").unwrap();
    net.expect_offer(b);
    net.ok(b, None, RequestBody::Ringing);
    net.expect(a, Some(a_id), NoticeBody::Ringing);
    net.ok(b, None, answer("chromium-answer"));
    net.expect_answer(a, a_id, "chromium-answer");
    net.ok(b, None, RequestBody::Bye);
    net.expect_bye(a, ByeReason::NormalClearing);
}
