//! PROTOCOL.md section 1, `Offer.data` over real gRPC: a caller's call context reaches the callee's
//! devices; its limits and its absence from renegotiations are enforced with `Error{INVALID_ARGUMENT}`
//! naming the fault; a client compiled against the upstream schema, without the field, still gets
//! the Offer.

use crate::for_all_transports;
use crate::support::*;
use prost::Message as _;
use std::collections::HashMap;
use webterminal_core::proto::common::PhoneNumber;
use webterminal_core::proto::simulator::DialRequest;
use webterminal_core::proto::webterminal::web_terminal_message::Message;
use webterminal_core::proto::webterminal::{Offer, WebTerminalMessage};
use webterminal_core::server::PhoneNetworkKind;

for_all_transports!(
    a_multipipe_callers_context_reaches_the_callee,
    a_dialled_phones_context_reaches_the_callee,
);

fn data(entries: &[(&str, &str)]) -> HashMap<String, String> {
    entries
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn ticket() -> HashMap<String, String> {
    data(&[
        ("contact_ref", "T-4711"),
        ("operator_name", "Bob"),
        ("display_name", "Acme Support"),
    ])
}

fn offer_with(
    call_id: &str,
    to: Option<&str>,
    data: HashMap<String, String>,
) -> WebTerminalMessage {
    WebTerminalMessage {
        message: Some(Message::Offer(Offer {
            sdp: chromium_offer(),
            msisdn: to.map(|to| PhoneNumber { e164: to.into() }),
            data,
        })),
        call_id: call_id.into(),
    }
}

async fn a_multipipe_callers_context_reaches_the_callee(callee: Kind) {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    let mut a = core.open_idle(Kind::Multi, A).await;
    let mut b = core.open_idle(callee, B).await;
    let id = uuid();
    a.send(offer_with(&id, Some(B), ticket())).await;
    let offered = b.expect_offer().await;
    assert_eq!(offered.data, ticket(), "relayed unchanged");
    b.send(msg::answer(&offered.call_id, &chromium_answer()))
        .await;
    a.expect_answer().await;
    // A renegotiation carries none.
    a.send(msg::reoffer(&id, &sdp("chromium-hold-offer.sdp")))
        .await;
    let reoffered = b.expect_offer().await;
    assert!(reoffered.data.is_empty(), "{:?}", reoffered.data);
    a.send(msg::bye(&id)).await;
    core.assert_no_calls_left().await;
}

async fn a_dialled_phones_context_reaches_the_callee(callee: Kind) {
    let core = TestCore::new(PhoneNetworkKind::Sim).await;
    let mut b = core.open_idle(callee, B).await;
    let name = data(&[("display_name", "Kari Nordmann")]);
    core.simulator()
        .await
        .dial(DialRequest {
            from: A.into(),
            to: B.into(),
            data: name.clone(),
        })
        .await
        .expect("Dial");
    let offered = b.expect_offer().await;
    assert_eq!(offered.data, name);
    assert_eq!(core.phone_hang_up(A).await, 1);
    b.expect_bye_on(&offered.call_id, Reason::Cancelled).await;
    core.assert_no_calls_left().await;
}

#[tokio::test]
async fn each_limit_is_invalid_argument_naming_the_fault() {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    let mut a = core.open_idle(Kind::Multi, A).await;
    let mut b = core.open_idle(Kind::Multi, B).await;
    let too_many: HashMap<String, String> =
        (0..17).map(|i| (format!("k{i}"), "v".into())).collect();
    let in_all: HashMap<String, String> = (0..5)
        .map(|i| (format!("k{i}"), "x".repeat(1000)))
        .collect();
    let cases = [
        (too_many, "17 entries"),
        (data(&[("Contact-Ref", "T-1")]), "Contact-Ref"),
        (data(&[("", "T-1")]), "key"),
        (
            data(&[("note", &"x".repeat(1025))]),
            "\"note\" is 1025 bytes",
        ),
        (in_all, "5010 bytes in all"),
    ];
    for (data, fault) in cases {
        let id = uuid();
        a.send(offer_with(&id, Some(B), data)).await;
        let message = a.expect_error(ErrCode::InvalidArgument, &id).await;
        assert!(
            message.contains("offer.data") && message.contains(fault),
            "{message:?} names the field and {fault:?}"
        );
    }
    b.expect_silent(SILENCE).await;
    core.assert_no_calls_left().await;
}

#[tokio::test]
async fn a_re_offer_with_context_is_invalid_argument() {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    let mut a = core.open_idle(Kind::Multi, A).await;
    let mut b = core.open_idle(Kind::Multi, B).await;
    let (a_id, _) = establish(&mut a, &mut b).await;
    a.send(offer_with(&a_id, None, ticket())).await;
    let message = a.expect_error(ErrCode::InvalidArgument, &a_id).await;
    assert!(message.contains("offer.data"), "{message:?}");
    b.expect_silent(SILENCE).await;
    a.send(msg::bye(&a_id)).await;
    core.assert_no_calls_left().await;
}

#[tokio::test]
async fn a_dial_with_bad_context_is_invalid_argument() {
    let core = TestCore::new(PhoneNetworkKind::Sim).await;
    let status = core
        .simulator()
        .await
        .dial(DialRequest {
            from: A.into(),
            to: B.into(),
            data: data(&[("Bad Key", "v")]),
        })
        .await
        .expect_err("refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("data"), "{status:?}");
    core.assert_no_calls_left().await;
}

/// `wgtwo.webterminal.v0.Offer` as the upstream schema has it: no field 3.
#[derive(Clone, PartialEq, prost::Message)]
struct UpstreamOffer {
    #[prost(string, tag = "1")]
    sdp: String,
    #[prost(message, optional, tag = "2")]
    msisdn: Option<PhoneNumber>,
}

/// `wgtwo.webterminal.v0.WebTerminalMessage` as an old client decodes it: only the Offer case.
#[derive(Clone, PartialEq, prost::Message)]
struct UpstreamMessage {
    #[prost(message, optional, tag = "1")]
    offer: Option<UpstreamOffer>,
    #[prost(string, tag = "10")]
    call_id: String,
}

#[tokio::test]
async fn a_client_compiled_without_the_field_still_gets_the_offer() {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    let a = core.open_idle(Kind::Multi, A).await;
    let mut b = core.open_idle(Kind::Multi, B).await;
    let id = uuid();
    a.send(offer_with(&id, Some(B), ticket())).await;
    let offered = b.expect_offer().await;
    // The bytes on the wire, as an old client's generated code reads them: field 3 is skipped.
    let wire = WebTerminalMessage {
        message: Some(Message::Offer(Offer {
            sdp: offered.sdp.clone(),
            msisdn: Some(PhoneNumber {
                e164: offered.from.clone(),
            }),
            data: offered.data.clone(),
        })),
        call_id: offered.call_id.clone(),
    }
    .encode_to_vec();
    let old = UpstreamMessage::decode(wire.as_slice()).expect("an old client decodes it");
    let offer = old.offer.expect("the Offer");
    assert_eq!(offer.sdp, chromium_offer());
    assert_eq!(offer.msisdn.unwrap().e164, A);
    assert_eq!(old.call_id, offered.call_id);
    b.send(msg::bye(&offered.call_id)).await;
    core.assert_no_calls_left().await;
}
