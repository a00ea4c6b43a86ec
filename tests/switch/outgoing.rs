//! PROTOCOL.md 4.1: outgoing calls.

use crate::harness::*;
use webterminal_core::core::*;

#[test]
fn offer_ringing_answer_bye_between_two_pipes() {
    let mut net = Net::new();
    let a = net.pipe(A);
    let b = net.pipe(B);
    net.expect(a, None, NoticeBody::Idle);
    net.expect(b, None, NoticeBody::Idle);
    net.call(a, B, "chromium-offer");
    let b_id = net.expect_offer(b);
    net.silent(a);
    net.ok(b, None, RequestBody::Ringing);
    let a_id = match net.next(a) {
        Notice {
            call_id: Some(id),
            body: NoticeBody::Ringing,
        } => id,
        other => panic!("{other:?}"),
    };
    assert_ne!(a_id, b_id, "each side has its own id");
    net.ok(
        b,
        None,
        RequestBody::Answer {
            sdp: sdp("chromium-answer"),
        },
    );
    net.expect(
        a,
        Some(a_id),
        NoticeBody::Answer {
            sdp: sdp("chromium-answer"),
        },
    );
    net.ok(a, None, RequestBody::Bye);
    net.expect_bye(b, ByeReason::NormalClearing);
    net.silent(a);
    assert_eq!(net.switch.call_count(), 0);
}
