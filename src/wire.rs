//! The one place where `wgtwo.webterminal.v0` protobuf messages and the core's typed messages meet
//! (docs/ARCHITECTURE.md: "Parse, don't validate" and "One error type per layer, mapped to the wire in one place").
//!
//! Inbound, [`parse_request`] applies the first three checks of PROTOCOL.md section 6 in order
//! (call_id format on MultiPipe, a oneof set, field validity); call state is the switch's business.
//! Outbound, [`notice_to_proto`] and [`rejection_to_proto`] build the messages a terminal receives.

use crate::core::{
    ByeReason, CallContext, CallId, ErrorCode, Msisdn, Notice, NoticeBody, PipeKind, Rejection,
    Request, RequestBody, Sdp,
};
use crate::proto::common::PhoneNumber;
use crate::proto::webterminal::{
    self as pb, action, bye, error, web_terminal_message::Message, WebTerminalMessage,
};

/// Default largest SDP body accepted in an `Offer` or `Answer`, in bytes (64 KiB). Real WebRTC offers
/// are 2 to 10 KiB; a larger one is refused with `Error{INVALID_ARGUMENT}` (PROTOCOL.md section 6).
pub const DEFAULT_MAX_SDP_BYTES: usize = 64 * 1024;

/// Size limits of message fields checked at the edge (PROTOCOL.md section 6, "field over its size
/// limit").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest SDP text accepted, in bytes. Default [`DEFAULT_MAX_SDP_BYTES`].
    pub max_sdp_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_sdp_bytes: DEFAULT_MAX_SDP_BYTES,
        }
    }
}

/// Whether `msg` is a keepalive: no field of the oneof set and an empty `call_id` (PROTOCOL.md
/// section 1; WG2's voicebot sends one every 100 ms while it has nothing to say). It is set aside
/// before [`parse_request`]: ignored and answered with nothing, though it counts toward the
/// terminal's message rate limit. A message with no oneof but a `call_id` is not one.
pub fn is_keepalive(msg: &WebTerminalMessage) -> bool {
    msg.message.is_none() && msg.call_id.is_empty()
}

/// Whether `msg` tries to ring a number, for the call-attempt rate limits (PROTOCOL.md section 6):
/// an `Offer` with an msisdn (a new call, 4.1) or an `Action{Transfer}` (4.12, which shows the call
/// to the target's terminals or rings its phone). Read from the message as sent, before
/// [`parse_request`], so that a terminal over its budget costs no parsing.
pub fn attempts_a_call(msg: &WebTerminalMessage) -> bool {
    match &msg.message {
        Some(Message::Offer(offer)) => offer.msisdn.is_some(),
        Some(Message::Action(action)) => {
            matches!(action.message, Some(action::Message::Transfer(_)))
        }
        _ => false,
    }
}

/// Parses one message a terminal sent on a `kind` rpc into a core [`Request`] (PROTOCOL.md
/// sections 3 and 6). What depends on who sent it or on call state (a call to one's own number, a
/// transfer to a party of the call) is the switch's to refuse.
///
/// A keepalive ([`is_keepalive`]) is the caller's to set aside first; given one, this answers as for
/// any message without a oneof. Checks, in this order, the first fault being the one reported:
/// 1. MultiPipe: `call_id` present and a UUID, else `INVALID_CALL_ID`. A Pipe's `call_id` is ignored
///    and the request carries `call_id: None`.
/// 2. A oneof set (and, for `Action`, an action inside it), else `INVALID_ARGUMENT`.
/// 3. Field validity, else `INVALID_ARGUMENT` with a message naming the field: `offer.msisdn.e164` is
///    E.164, with or without its `+` ([`Msisdn::parse_lenient`]); `offer.sdp` /
///    `answer.sdp` pass [`Sdp::parse`] within `limits.max_sdp_bytes`; `offer.data` is a valid
///    [`CallContext`] (its limits, section 1). `Idle`, `InCall` and `Error` are only ever sent by the
///    core. (Context on a re-offer is a call-state matter: the switch refuses it.)
///
/// # Errors
/// A [`Rejection`] to send back as `Error{code, message}` with the message's raw call_id
/// (see [`rejection_to_proto`]); the stream stays open.
pub fn parse_request(
    kind: PipeKind,
    msg: WebTerminalMessage,
    limits: &Limits,
) -> Result<Request, Rejection> {
    let call_id = match kind {
        PipeKind::Pipe => None,
        PipeKind::MultiPipe => Some(parse_call_id(&msg.call_id)?),
    };
    let Some(message) = msg.message else {
        return Err(invalid_argument(
            "message: no field of the oneof is set (expected offer, answer, ringing, bye or action)",
        ));
    };
    let body = match message {
        Message::Offer(offer) => {
            let to = match offer.msisdn {
                None => None,
                Some(number) => {
                    // With or without its '+' (PROTOCOL.md section 1); sent on with it.
                    let to = Msisdn::parse_lenient(&number.e164)
                        .map_err(|e| invalid_argument(format!("offer.msisdn.e164 {e}")))?;
                    Some(to)
                }
            };
            let sdp = parse_sdp("offer.sdp", &offer.sdp, limits)?;
            let context = CallContext::parse(offer.data)
                .map_err(|e| invalid_argument(format!("offer.data {e}")))?;
            RequestBody::Offer { sdp, to, context }
        }
        Message::Answer(answer) => RequestBody::Answer {
            sdp: parse_sdp("answer.sdp", &answer.sdp, limits)?,
        },
        Message::Ringing(_) => RequestBody::Ringing,
        Message::Bye(_) => RequestBody::Bye,
        Message::Action(pb::Action { message: None }) => {
            return Err(invalid_argument(
                "action: no action is set (expected toPhone or transfer)",
            ))
        }
        Message::Action(pb::Action {
            message: Some(action::Message::ToPhone(_)),
        }) => RequestBody::ToPhone,
        Message::Action(pb::Action {
            message: Some(action::Message::Transfer(transfer)),
        }) => {
            let Some(number) = transfer.msisdn else {
                return Err(invalid_argument(
                    "action.transfer.msisdn is required: the number to transfer to",
                ));
            };
            let to = Msisdn::parse_lenient(&number.e164)
                .map_err(|e| invalid_argument(format!("action.transfer.msisdn.e164 {e}")))?;
            RequestBody::Transfer { to }
        }
        Message::Idle(_) => return Err(invalid_argument("idle: only the core sends Idle")),
        Message::InCall(_) => return Err(invalid_argument("in_call: only the core sends InCall")),
        Message::Error(_) => return Err(invalid_argument("error: only the core sends Error")),
    };
    Ok(Request { call_id, body })
}

/// A MultiPipe `call_id`: required, a UUID (PROTOCOL.md section 3).
fn parse_call_id(raw: &str) -> Result<CallId, Rejection> {
    if raw.is_empty() {
        return Err(Rejection::new(
            ErrorCode::InvalidCallId,
            "call_id is required on MultiPipe: a UUID chosen by the terminal for a new call, or the id of a known call",
        ));
    }
    CallId::parse(raw).map_err(|_| {
        Rejection::new(
            ErrorCode::InvalidCallId,
            "call_id must be a UUID (e.g. 0f8fad5b-d9cb-469f-a165-70867728950e)",
        )
    })
}

fn parse_sdp(field: &str, text: &str, limits: &Limits) -> Result<Sdp, Rejection> {
    Sdp::parse(text, limits.max_sdp_bytes).map_err(|e| invalid_argument(format!("{field} {e}")))
}

fn invalid_argument(message: impl Into<String>) -> Rejection {
    Rejection::new(ErrorCode::InvalidArgument, message)
}

/// The protobuf message for a notice of the switch. `call_id` is `""` when the notice has none (a
/// Pipe's `Idle`, PROTOCOL.md section 3); an `Offer` or `InCall` carries the other party's msisdn.
pub fn notice_to_proto(notice: Notice) -> WebTerminalMessage {
    let message = match notice.body {
        NoticeBody::Offer { sdp, from, context } => Message::Offer(pb::Offer {
            sdp: sdp.as_str().to_owned(),
            msisdn: Some(phone_number(&from)),
            data: context
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        }),
        NoticeBody::Answer { sdp } => Message::Answer(pb::Answer {
            sdp: sdp.as_str().to_owned(),
        }),
        NoticeBody::Ringing => Message::Ringing(pb::Ringing {}),
        NoticeBody::Bye { reason } => Message::Bye(pb::Bye {
            reason: bye_reason_to_proto(reason) as i32,
        }),
        NoticeBody::Idle => Message::Idle(pb::Idle {}),
        NoticeBody::InCall { peer } => Message::InCall(pb::InCall {
            msisdn: Some(phone_number(&peer)),
        }),
        NoticeBody::Error(rejection) => Message::Error(error_to_proto(&rejection)),
    };
    WebTerminalMessage {
        message: Some(message),
        call_id: notice.call_id.map(|id| id.to_string()).unwrap_or_default(),
    }
}

/// The `Error{code, message}` answering a refused message, carrying that message's `call_id` exactly
/// as the terminal sent it, so the terminal can match it (PROTOCOL.md section 6).
pub fn rejection_to_proto(raw_call_id: String, rejection: &Rejection) -> WebTerminalMessage {
    WebTerminalMessage {
        message: Some(Message::Error(error_to_proto(rejection))),
        call_id: raw_call_id,
    }
}

fn error_to_proto(rejection: &Rejection) -> pb::Error {
    pb::Error {
        err: error_code_to_proto(rejection.code) as i32,
        message: rejection.message.clone(),
    }
}

fn phone_number(msisdn: &Msisdn) -> PhoneNumber {
    PhoneNumber {
        e164: msisdn.as_str().to_owned(),
    }
}

/// The wire value of a Bye reason (`wgtwo.webterminal.v0.Bye.Reason`, PROTOCOL.md section 1). Never
/// `REASON_UNSPECIFIED`: the core always knows why a leg ended.
pub fn bye_reason_to_proto(reason: ByeReason) -> bye::Reason {
    match reason {
        ByeReason::NormalClearing => bye::Reason::NormalClearing,
        ByeReason::Busy => bye::Reason::Busy,
        ByeReason::Declined => bye::Reason::Declined,
        ByeReason::DeclinedElsewhere => bye::Reason::DeclinedElsewhere,
        ByeReason::NoAnswer => bye::Reason::NoAnswer,
        ByeReason::Unavailable => bye::Reason::Unavailable,
        ByeReason::Cancelled => bye::Reason::Cancelled,
        ByeReason::AnsweredElsewhere => bye::Reason::AnsweredElsewhere,
        ByeReason::Pulled => bye::Reason::Pulled,
        ByeReason::HandedToPhone => bye::Reason::HandedToPhone,
        ByeReason::PeerGone => bye::Reason::PeerGone,
        ByeReason::NegotiationFailed => bye::Reason::NegotiationFailed,
        ByeReason::ServerShutdown => bye::Reason::ServerShutdown,
        ByeReason::Transferred => bye::Reason::Transferred,
        ByeReason::EndedByOperator => bye::Reason::EndedByOperator,
    }
}

/// The core's reason for a wire value, the inverse of [`bye_reason_to_proto`]; `None` for
/// `REASON_UNSPECIFIED`. For reading back what was stored with wire names (call records).
pub fn bye_reason_from_proto(reason: bye::Reason) -> Option<ByeReason> {
    Some(match reason {
        bye::Reason::Unspecified => return None,
        bye::Reason::NormalClearing => ByeReason::NormalClearing,
        bye::Reason::Busy => ByeReason::Busy,
        bye::Reason::Declined => ByeReason::Declined,
        bye::Reason::DeclinedElsewhere => ByeReason::DeclinedElsewhere,
        bye::Reason::NoAnswer => ByeReason::NoAnswer,
        bye::Reason::Unavailable => ByeReason::Unavailable,
        bye::Reason::Cancelled => ByeReason::Cancelled,
        bye::Reason::AnsweredElsewhere => ByeReason::AnsweredElsewhere,
        bye::Reason::Pulled => ByeReason::Pulled,
        bye::Reason::HandedToPhone => ByeReason::HandedToPhone,
        bye::Reason::PeerGone => ByeReason::PeerGone,
        bye::Reason::NegotiationFailed => ByeReason::NegotiationFailed,
        bye::Reason::ServerShutdown => ByeReason::ServerShutdown,
        bye::Reason::Transferred => ByeReason::Transferred,
        bye::Reason::EndedByOperator => ByeReason::EndedByOperator,
    })
}

/// The wire value of an error code (`wgtwo.webterminal.v0.Error.Code`, PROTOCOL.md sections 1, 6).
pub fn error_code_to_proto(code: ErrorCode) -> error::Code {
    match code {
        ErrorCode::Unknown => error::Code::Unknown,
        ErrorCode::NotInCall => error::Code::NotIncall,
        ErrorCode::TryAgain => error::Code::TryAgain,
        ErrorCode::InvalidCallId => error::Code::InvalidCallId,
        ErrorCode::RateLimitHit => error::Code::RateLimitHit,
        ErrorCode::InvalidArgument => error::Code::InvalidArgument,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_core_names_bye_reasons_as_the_wire_does() {
        for reason in ByeReason::ALL {
            let wire = bye_reason_to_proto(reason);
            assert_eq!(wire.as_str_name(), reason.name());
            assert_eq!(bye_reason_from_proto(wire), Some(reason));
        }
    }

    fn fixture(name: &str) -> String {
        let path = format!("{}/tests/fixtures/sdp/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
    }

    fn parse(
        kind: PipeKind,
        call_id: &str,
        message: Option<Message>,
    ) -> Result<Request, Rejection> {
        parse_request(
            kind,
            WebTerminalMessage {
                message,
                call_id: call_id.to_owned(),
            },
            &Limits::default(),
        )
    }

    fn offer(sdp: &str, to: Option<&str>) -> Option<Message> {
        Some(Message::Offer(pb::Offer {
            sdp: sdp.to_owned(),
            msisdn: to.map(|e164| PhoneNumber {
                e164: e164.to_owned(),
            }),
            data: Default::default(),
        }))
    }

    const ID: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";

    fn assert_rejected(result: Result<Request, Rejection>, code: ErrorCode, needle: &str) {
        let rejection = result.expect_err("must be refused");
        assert_eq!(rejection.code, code, "{rejection}");
        assert!(
            rejection.message.contains(needle),
            "message {:?} should name {needle:?}",
            rejection.message
        );
    }

    #[test]
    fn multipipe_offer_to_a_number_parses() {
        let sdp = fixture("chromium-offer.sdp");
        let request = parse(PipeKind::MultiPipe, ID, offer(&sdp, Some("+4799990002"))).unwrap();
        assert_eq!(request.call_id, Some(CallId::parse(ID).unwrap()));
        match request.body {
            RequestBody::Offer {
                sdp: parsed, to, ..
            } => {
                assert_eq!(parsed.as_str(), sdp, "SDP is kept byte for byte");
                assert_eq!(to, Some(Msisdn::parse("+4799990002").unwrap()));
            }
            other => panic!("expected an offer, got {other:?}"),
        }
    }

    #[test]
    fn pipe_ignores_call_id() {
        let sdp = fixture("aiortc-offer.sdp");
        for raw in ["", "not-a-uuid", ID] {
            let request = parse(PipeKind::Pipe, raw, offer(&sdp, None)).unwrap();
            assert_eq!(request.call_id, None);
        }
    }

    #[test]
    fn multipipe_needs_a_uuid_call_id() {
        assert_rejected(
            parse(
                PipeKind::MultiPipe,
                "",
                Some(Message::Bye(pb::Bye::default())),
            ),
            ErrorCode::InvalidCallId,
            "call_id",
        );
        assert_rejected(
            parse(
                PipeKind::MultiPipe,
                "call-1",
                Some(Message::Bye(pb::Bye::default())),
            ),
            ErrorCode::InvalidCallId,
            "call_id",
        );
    }

    #[test]
    fn only_a_message_with_no_oneof_and_no_call_id_is_a_keepalive() {
        let message = |call_id: &str, message: Option<Message>| WebTerminalMessage {
            message,
            call_id: call_id.to_owned(),
        };
        assert!(is_keepalive(&message("", None)));
        assert!(!is_keepalive(&message(ID, None)));
        assert!(!is_keepalive(&message("x", None)));
        assert!(!is_keepalive(&message(
            "",
            Some(Message::Bye(pb::Bye::default()))
        )));
    }

    #[test]
    fn call_id_is_checked_before_the_oneof() {
        assert_rejected(
            parse(PipeKind::MultiPipe, "", None),
            ErrorCode::InvalidCallId,
            "call_id",
        );
    }

    #[test]
    fn no_oneof_is_invalid_argument() {
        assert_rejected(
            parse(PipeKind::MultiPipe, ID, None),
            ErrorCode::InvalidArgument,
            "oneof",
        );
        assert_rejected(
            parse(PipeKind::Pipe, "", None),
            ErrorCode::InvalidArgument,
            "oneof",
        );
    }

    #[test]
    fn action_without_an_action_is_invalid_argument() {
        assert_rejected(
            parse(
                PipeKind::MultiPipe,
                ID,
                Some(Message::Action(pb::Action { message: None })),
            ),
            ErrorCode::InvalidArgument,
            "action",
        );
    }

    #[test]
    fn simple_bodies_parse() {
        let cases = [
            (Message::Ringing(pb::Ringing {}), RequestBody::Ringing),
            (Message::Bye(pb::Bye { reason: 3 }), RequestBody::Bye),
            (
                Message::Action(pb::Action {
                    message: Some(action::Message::ToPhone(pb::ToPhone {})),
                }),
                RequestBody::ToPhone,
            ),
        ];
        for (message, body) in cases {
            assert_eq!(
                parse(PipeKind::MultiPipe, ID, Some(message)).unwrap().body,
                body
            );
        }
        let answer = fixture("chromium-answer.sdp");
        let request = parse(
            PipeKind::Pipe,
            "",
            Some(Message::Answer(pb::Answer {
                sdp: answer.clone(),
            })),
        )
        .unwrap();
        assert_eq!(
            request.body,
            RequestBody::Answer {
                sdp: Sdp::parse(&answer, DEFAULT_MAX_SDP_BYTES).unwrap()
            }
        );
    }

    #[test]
    fn every_real_fixture_is_accepted() {
        for name in [
            "aiortc-answer.sdp",
            "aiortc-hold-answer.sdp",
            "aiortc-hold-offer.sdp",
            "aiortc-offer.sdp",
            "chromium-answer.sdp",
            "chromium-hold-answer.sdp",
            "chromium-hold-offer.sdp",
            "chromium-icerestart-offer.sdp",
            "chromium-offer.sdp",
        ] {
            let sdp = fixture(name);
            parse(PipeKind::Pipe, "", offer(&sdp, None))
                .unwrap_or_else(|e| panic!("{name} refused: {e}"));
        }
    }

    #[test]
    fn invalid_sdp_fixtures_are_refused_naming_the_field() {
        for name in [
            "empty.sdp",
            "garbage.sdp",
            "no-media.sdp",
            "truncated.sdp",
            "huge.sdp",
        ] {
            let sdp = fixture(name);
            let result = parse(PipeKind::MultiPipe, ID, offer(&sdp, Some("+4799990002")));
            assert!(result.is_err(), "{name} must be refused");
            assert_rejected(result, ErrorCode::InvalidArgument, "offer.sdp");
            let result = parse(
                PipeKind::MultiPipe,
                ID,
                Some(Message::Answer(pb::Answer { sdp })),
            );
            assert_rejected(result, ErrorCode::InvalidArgument, "answer.sdp");
        }
    }

    #[test]
    fn sdp_limit_is_configurable() {
        let sdp = fixture("chromium-offer.sdp");
        let tight = Limits {
            max_sdp_bytes: sdp.len() - 1,
        };
        let result = parse_request(
            PipeKind::Pipe,
            WebTerminalMessage {
                message: offer(&sdp, None),
                call_id: String::new(),
            },
            &tight,
        );
        assert_rejected(result, ErrorCode::InvalidArgument, "over the limit");
    }

    #[test]
    fn offer_to_a_number_without_its_plus_parses_as_e164() {
        let sdp = fixture("chromium-offer.sdp");
        let request = parse(PipeKind::MultiPipe, ID, offer(&sdp, Some("4799990002"))).unwrap();
        let RequestBody::Offer { to: Some(to), .. } = request.body else {
            panic!("expected an offer to a number, got {:?}", request.body)
        };
        assert_eq!(to, Msisdn::parse("+4799990002").unwrap());
        assert_eq!(to.as_str(), "+4799990002");
    }

    #[test]
    fn bad_e164_names_the_field() {
        let sdp = fixture("chromium-offer.sdp");
        assert_rejected(
            parse(PipeKind::MultiPipe, ID, offer(&sdp, Some("47 9999 0002"))),
            ErrorCode::InvalidArgument,
            "offer.msisdn.e164 must have only digits",
        );
        for bad in [
            "",
            "+47 9999",
            "+1",
            "1",
            "+0479999",
            "0479999",
            "+1234567890123456",
            "1234567890123456",
            "++4799990002",
        ] {
            assert_rejected(
                parse(PipeKind::MultiPipe, ID, offer(&sdp, Some(bad))),
                ErrorCode::InvalidArgument,
                "offer.msisdn.e164",
            );
        }
    }

    #[test]
    fn core_only_messages_from_a_client_are_invalid_argument() {
        assert_rejected(
            parse(PipeKind::Pipe, "", Some(Message::Idle(pb::Idle {}))),
            ErrorCode::InvalidArgument,
            "only the core sends Idle",
        );
        assert_rejected(
            parse(
                PipeKind::MultiPipe,
                ID,
                Some(Message::InCall(pb::InCall { msisdn: None })),
            ),
            ErrorCode::InvalidArgument,
            "only the core sends InCall",
        );
        assert_rejected(
            parse(
                PipeKind::MultiPipe,
                ID,
                Some(Message::Error(pb::Error::default())),
            ),
            ErrorCode::InvalidArgument,
            "only the core sends Error",
        );
    }

    #[test]
    fn notices_map_to_the_wire() {
        let id = CallId::parse(ID).unwrap();
        let peer = Msisdn::parse("+4799990002").unwrap();
        let sdp = Sdp::trusted(fixture("chromium-answer.sdp"));

        let idle = notice_to_proto(Notice {
            call_id: None,
            body: NoticeBody::Idle,
        });
        assert_eq!(idle.call_id, "");
        assert_eq!(idle.message, Some(Message::Idle(pb::Idle {})));

        let offer = notice_to_proto(Notice {
            call_id: Some(id),
            body: NoticeBody::Offer {
                sdp: sdp.clone(),
                from: peer.clone(),
                context: Default::default(),
            },
        });
        assert_eq!(offer.call_id, ID);
        assert_eq!(
            offer.message,
            Some(Message::Offer(pb::Offer {
                sdp: sdp.as_str().to_owned(),
                msisdn: Some(PhoneNumber {
                    e164: "+4799990002".into()
                }),
                data: Default::default()
            }))
        );

        let in_call = notice_to_proto(Notice {
            call_id: Some(id),
            body: NoticeBody::InCall { peer },
        });
        assert_eq!(
            in_call.message,
            Some(Message::InCall(pb::InCall {
                msisdn: Some(PhoneNumber {
                    e164: "+4799990002".into()
                })
            }))
        );

        let bye = notice_to_proto(Notice {
            call_id: Some(id),
            body: NoticeBody::Bye {
                reason: ByeReason::AnsweredElsewhere,
            },
        });
        assert_eq!(
            bye.message,
            Some(Message::Bye(pb::Bye {
                reason: bye::Reason::AnsweredElsewhere as i32
            }))
        );

        let error = notice_to_proto(Notice {
            call_id: Some(id),
            body: NoticeBody::Error(Rejection::new(ErrorCode::TryAgain, "negotiation timed out")),
        });
        assert_eq!(
            error.message,
            Some(Message::Error(pb::Error {
                err: error::Code::TryAgain as i32,
                message: "negotiation timed out".into()
            }))
        );
    }

    #[test]
    fn rejection_keeps_the_raw_call_id() {
        let msg = rejection_to_proto(
            "Not-A-UUID".into(),
            &Rejection::new(ErrorCode::InvalidCallId, "call_id must be a UUID"),
        );
        assert_eq!(msg.call_id, "Not-A-UUID");
        assert_eq!(
            msg.message,
            Some(Message::Error(pb::Error {
                err: error::Code::InvalidCallId as i32,
                message: "call_id must be a UUID".into()
            }))
        );
    }

    #[test]
    fn enum_mapping_uses_the_wire_names() {
        let reasons = [
            (ByeReason::NormalClearing, "NORMAL_CLEARING"),
            (ByeReason::Busy, "BUSY"),
            (ByeReason::Declined, "DECLINED"),
            (ByeReason::DeclinedElsewhere, "DECLINED_ELSEWHERE"),
            (ByeReason::NoAnswer, "NO_ANSWER"),
            (ByeReason::Unavailable, "UNAVAILABLE"),
            (ByeReason::Cancelled, "CANCELLED"),
            (ByeReason::AnsweredElsewhere, "ANSWERED_ELSEWHERE"),
            (ByeReason::Pulled, "PULLED"),
            (ByeReason::HandedToPhone, "HANDED_TO_PHONE"),
            (ByeReason::PeerGone, "PEER_GONE"),
            (ByeReason::NegotiationFailed, "NEGOTIATION_FAILED"),
            (ByeReason::ServerShutdown, "SERVER_SHUTDOWN"),
            (ByeReason::Transferred, "TRANSFERRED"),
            (ByeReason::EndedByOperator, "ENDED_BY_OPERATOR"),
        ];
        for (reason, name) in reasons {
            assert_eq!(bye_reason_to_proto(reason).as_str_name(), name);
            assert_eq!(
                bye_reason_from_proto(bye_reason_to_proto(reason)),
                Some(reason)
            );
        }
        let codes = [
            (ErrorCode::Unknown, "UNKNOWN"),
            (ErrorCode::NotInCall, "NOT_INCALL"),
            (ErrorCode::TryAgain, "TRY_AGAIN"),
            (ErrorCode::InvalidCallId, "INVALID_CALL_ID"),
            (ErrorCode::RateLimitHit, "RATE_LIMIT_HIT"),
            (ErrorCode::InvalidArgument, "INVALID_ARGUMENT"),
        ];
        for (code, name) in codes {
            assert_eq!(error_code_to_proto(code).as_str_name(), name);
        }
    }
}
