//! PROTOCOL.md section 5, the routing hook: an embedder's `Router` decides where every new call goes
//! (ring another number's devices, or reject it with a reason) before anything rings.

use crate::harness::*;
use std::collections::HashMap;
use webterminal_core::core::*;

/// A customer who dials the company number reaches the employee assigned to them; the company
/// number rejects everyone else as declined; other numbers ring as dialled.
struct Assigned {
    company: Msisdn,
    employees: HashMap<Msisdn, Msisdn>,
}

impl Router for Assigned {
    fn route(&mut self, from: &Msisdn, to: &Msisdn, _context: &CallContext) -> Route {
        if *to != self.company {
            return Route::Ring(to.clone());
        }
        match self.employees.get(from) {
            Some(employee) => Route::Ring(employee.clone()),
            None => Route::Reject(ByeReason::Declined),
        }
    }
}

const COMPANY: &str = "+4721000000";

fn net_with_router() -> Net {
    let mut net = Net::new();
    net.switch.set_router(Box::new(Assigned {
        company: msisdn(COMPANY),
        employees: [(msisdn(A), msisdn(B)), (msisdn(C), msisdn(C))].into(),
    }));
    net
}

#[test]
fn the_hook_rings_the_number_it_chooses() {
    let mut net = net_with_router();
    let a = net.multi(A);
    let b = net.multi(B);
    let a_id = net.call(a, COMPANY, "chromium-offer").unwrap();
    let b_id = net.expect_offer_from(b, A, "chromium-offer");
    net.ok(b, Some(b_id), answer("chromium-answer"));
    net.expect_answer(a, a_id, "chromium-answer");
    let events = net.take_full_events();
    assert_eq!(events[0].callee.as_str(), B, "the call is B's");
}

#[test]
fn the_hooks_rejection_ends_the_call_at_once_with_its_reason() {
    let mut net = net_with_router();
    let d = net.multi("+4790000004");
    let b = net.multi(B);
    let d_id = net.call(d, COMPANY, "chromium-offer").unwrap();
    net.expect(
        d,
        Some(d_id),
        NoticeBody::Bye {
            reason: ByeReason::Declined,
        },
    );
    net.silent(b);
    assert_eq!(
        net.take_events(),
        [
            (CallStatus::Started, None),
            (CallStatus::Rejected, Some(ByeReason::Declined))
        ]
    );
    assert_eq!(net.switch.call_count(), 0);
}

#[test]
fn a_call_routed_back_to_its_caller_is_unavailable() {
    let mut net = net_with_router();
    let c = net.multi(C);
    let c_id = net.call(c, COMPANY, "chromium-offer").unwrap();
    net.expect(
        c,
        Some(c_id),
        NoticeBody::Bye {
            reason: ByeReason::Unavailable,
        },
    );
    assert_eq!(net.switch.call_count(), 0);
}

#[test]
fn calls_from_the_phone_network_are_routed_too() {
    let mut net = net_with_router();
    let b = net.multi(B);
    net.dial(A, COMPANY, "aiortc-offer");
    net.expect_offer_from(b, A, "aiortc-offer");
}

#[test]
fn numbers_the_hook_leaves_alone_ring_as_dialled() {
    let mut net = net_with_router();
    let a = net.multi(A);
    let c = net.multi(C);
    net.call(a, C, "chromium-offer");
    net.expect_offer_from(c, A, "chromium-offer");
}

#[test]
fn a_transfer_goes_where_the_hook_routes_the_far_party() {
    let mut net = net_with_router();
    let a = net.multi(A);
    let c = net.multi(C);
    let b = net.multi(B);
    let (a_id, c_id) = net.connect(a, C, c);
    // A's assigned employee is B: a transfer of A to the company number shows the call to B.
    net.ok(c, Some(c_id), transfer(COMPANY));
    net.expect_bye(c, ByeReason::Transferred);
    let b_id = net.expect_in_call_any(b, A);
    net.ok(b, Some(b_id), reoffer("aiortc-offer"));
    net.expect_offer_of(a, a_id, B, "aiortc-offer");
    net.ok(a, Some(a_id), answer("aiortc-answer"));
    net.expect_answer(b, b_id, "aiortc-answer");
    net.ok(b, Some(b_id), RequestBody::Bye);
    net.expect_bye(a, ByeReason::NormalClearing);
}

#[test]
fn a_transfer_the_hook_rejects_is_invalid_argument_and_the_call_stays() {
    let mut net = net_with_router();
    let d = net.multi("+4790000004");
    let b = net.multi(B);
    let (_, b_id) = net.connect(d, B, b);
    // D has no employee: the hook rejects calls from D to the company.
    assert_eq!(
        net.refused(b, Some(b_id), transfer(COMPANY)),
        ErrorCode::InvalidArgument
    );
    net.silent(d);
    net.ok(b, Some(b_id), RequestBody::Bye);
    net.expect_bye(d, ByeReason::NormalClearing);
    assert_eq!(net.switch.call_count(), 0);
}
