//! PROTOCOL.md section 1, `Offer.data`: the caller's call context reaches every device the call is
//! offered to — forks, the callee's phone, a terminal that registers while it rings — and never a
//! renegotiation or pull. (Its limits are checked at the edge, where it is parsed: see
//! `CallContext::parse` and `tests/grpc/call_context.rs`.)

use crate::harness::*;
use webterminal_core::core::*;

fn ticket() -> CallContext {
    context(&[("contact_ref", "T-4711"), ("operator_name", "Bob")])
}

#[test]
fn context_reaches_every_fork_and_the_callees_phone() {
    let mut net = Net::with_phones();
    let a = net.multi(A);
    let b1 = net.multi(B);
    let b2 = net.idle_pipe(B);
    net.ok(
        a,
        Some(CallId::random()),
        offer_with_context(B, "chromium-offer", &ticket()),
    );
    net.expect_offer_with_context(b1, &ticket());
    net.expect_offer_with_context(b2, &ticket());
    match net.next_phone() {
        PhoneCommand::Ring { context, .. } => assert_eq!(context, ticket()),
        other => panic!("expected Ring, got {other:?}"),
    }
}

#[test]
fn context_reaches_a_terminal_that_registers_while_the_call_rings() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b1 = net.multi(B);
    net.ok(
        a,
        Some(CallId::random()),
        offer_with_context(B, "chromium-offer", &ticket()),
    );
    let id = net.expect_offer_with_context(b1, &ticket());
    let b2 = net.multi(B);
    assert_eq!(net.expect_offer_with_context(b2, &ticket()), id);
}

#[test]
fn a_call_without_context_offers_none() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.multi(B);
    net.call(a, B, "chromium-offer");
    net.expect_offer_with_context(b, &CallContext::default());
}

#[test]
fn context_from_the_phone_network_reaches_the_callees_terminals() {
    let mut net = Net::new();
    let b = net.multi(B);
    let name = context(&[("display_name", "Kari Nordmann")]);
    net.phone_event(PhoneEvent::Incoming {
        leg: PhoneLegId::from_network(1),
        from: msisdn(A),
        to: msisdn(B),
        sdp: sdp("aiortc-offer"),
        context: name.clone(),
    });
    let id = net.expect_offer_with_context(b, &name);
    net.ok(b, Some(id), RequestBody::Bye);
}

#[test]
fn re_offers_and_pulls_carry_no_context() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.multi(B);
    let b2 = net.multi(B);
    let a_id = CallId::random();
    net.ok(
        a,
        Some(a_id),
        offer_with_context(B, "chromium-offer", &ticket()),
    );
    let b_id = net.expect_offer_with_context(b, &ticket());
    net.expect_offer_with_context(b2, &ticket());
    net.ok(b, Some(b_id), answer("chromium-answer"));
    net.take(a);
    net.take(b2);
    // A re-offers: B's Offer has no context.
    net.ok(a, Some(a_id), reoffer("chromium-hold-offer"));
    net.expect_offer_with_context(b, &CallContext::default());
    net.ok(b, Some(b_id), answer("chromium-hold-answer"));
    net.take(a);
    // B's other terminal pulls: A's Offer has no context.
    net.ok(b2, Some(b_id), reoffer("aiortc-offer"));
    net.expect_offer_with_context(a, &CallContext::default());
}

#[test]
fn a_re_offer_or_pull_with_context_is_invalid_argument_and_changes_nothing() {
    let mut net = Net::new();
    let a = net.multi(A);
    let b = net.multi(B);
    let b2 = net.multi(B);
    let (a_id, b_id) = net.connect(a, B, b);
    net.take(b2);
    let with_context = |fixture: &str| RequestBody::Offer {
        sdp: sdp(fixture),
        to: None,
        context: ticket(),
    };
    for (t, id) in [(a, a_id), (b2, b_id)] {
        let err = net
            .send(t, Some(id), with_context("chromium-hold-offer"))
            .expect_err("context on a renegotiation");
        assert_eq!(err.code, ErrorCode::InvalidArgument);
        assert!(err.message.contains("offer.data"), "names the field: {err}");
    }
    net.silent(a);
    net.silent(b);
    net.silent(b2);
    // The same re-offer without context goes through.
    net.ok(a, Some(a_id), reoffer("chromium-hold-offer"));
    net.expect_offer(b);
}
