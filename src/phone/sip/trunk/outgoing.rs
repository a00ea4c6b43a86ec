//! A call to a phone: the core is the UAC (PROTOCOL.md section 13), with the caller's offer
//! (`Ring`) or as a delayed offer (`HandOver`).

use super::*;

/// How long a cancelled INVITE's leg waits for the INVITE transaction to end (64*T1 and some).
pub(super) const CANCEL_WAIT: Duration = Duration::from_secs(40);

/// What a `PhoneCommand::Ring` (or `HandOver`) asks to send, and the Call-ID the trunk chose for
/// it.
pub(super) struct Invite {
    pub(super) to: Msisdn,
    pub(super) from: Msisdn,
    /// The caller's offer; none for a handover (a delayed offer: the phone's 2xx makes it).
    pub(super) sdp: Option<Sdp>,
    pub(super) context: crate::core::CallContext,
    pub(super) call_id: String,
}

/// A call to a phone (`PhoneCommand::Ring`, PROTOCOL.md section 13). With `--rtpengine`, the
/// caller's offer first goes through rtpengine ([`Step::WebRtcOfferToSip`]; the leg's rtpengine
/// call-id is its SIP Call-ID, its from-tag one of its own, as rsipstack picks the From tag only as
/// the INVITE leaves): a failure there is `Rejected` ([`media::REJECTION_ON_FAILURE`]) before any
/// INVITE; and the leg's end, however it ends, deletes the call from rtpengine.
pub(super) async fn outgoing_leg(
    shared: &Shared,
    leg: PhoneLegId,
    invite_of: Invite,
    commands: mpsc::UnboundedReceiver<LegInput>,
) {
    let Some(anchor) = shared.media.clone() else {
        let offer = invite_of.sdp.as_ref().map(|sdp| sdp.as_str().to_owned());
        outgoing_dialog(shared, leg, invite_of, offer, None, commands).await;
        return;
    };
    let media = LegMedia {
        anchor,
        call_id: invite_of.call_id.clone(),
        from_tag: uuid::Uuid::new_v4().simple().to_string()[..12].to_owned(),
    };
    let Some(sdp) = invite_of.sdp.clone() else {
        // A delayed offer: the phone's offer, in its 2xx, is the first to reach rtpengine.
        outgoing_dialog(shared, leg, invite_of, None, Some(&media), commands).await;
        let offered = media.anchor.live().contains(&media.call_id);
        if offered {
            media.anchor.delete(leg, &media.call_id).await;
        }
        return;
    };
    let passed = media
        .anchor
        .pass(
            leg,
            Step::WebRtcOfferToSip,
            &media.call_id,
            &media.from_tag,
            "",
            sdp.as_str(),
        )
        .await;
    match passed {
        Ok(offer) => {
            outgoing_dialog(shared, leg, invite_of, Some(offer), Some(&media), commands).await;
        }
        Err(e) => {
            shared.reports.report(PhoneEvent::Rejected {
                leg,
                reason: media::REJECTION_ON_FAILURE,
            });
            if !e.maybe_done() {
                media.anchor.live().remove(&media.call_id);
                return;
            }
        }
    }
    media.anchor.delete(leg, &media.call_id).await;
}

/// A call to a phone's SIP side: INVITE to the trunk with `offer` (the caller's, or rtpengine's
/// from it); 180/183 → `Ringing`; 200 → `Answered` (the stack ACKs it) with the phone's answer
/// (through rtpengine, [`Step::SipAnswerToWebRtc`], with `media`: a failure there BYEs the phone
/// and is `Rejected`); a final error or a timeout → `Rejected`; then the far end's BYE →
/// `HungUp`. `Release` sends CANCEL before the answer, BYE after. The INVITE coming back to the
/// trunk ([`LegInput::LoopedBack`]) before the answer → `Rejected`
/// ([`mapping::REJECTION_ON_LOOP`]) and a CANCEL.
///
/// Without `offer`, a handover's delayed offer (PROTOCOL.md section 13): the INVITE has no SDP, the
/// phone's 200 carries its offer, which goes to the switch as `HandOverReady` (through rtpengine,
/// [`Step::SipOfferToWebRtc`]); the switch's `Answer` goes in the ACK (through rtpengine,
/// [`Step::WebRtcAnswerToSip`]), which the trunk's socket holds back until then
/// ([`SipSocket::hold_acks`]). Every failure is `HandOverFailed` with
/// [`mapping::handover_failure`]'s message instead of `Rejected`.
pub(super) async fn outgoing_dialog(
    shared: &Shared,
    leg: PhoneLegId,
    invite_of: Invite,
    offer: Option<String>,
    media: Option<&LegMedia>,
    mut commands: mpsc::UnboundedReceiver<LegInput>,
) {
    let Invite {
        to,
        from,
        sdp: _,
        context,
        call_id,
    } = invite_of;
    let delayed = offer.is_none();
    // A failure before the leg carries the call: `Rejected`, or for a handover `HandOverFailed`.
    let fail = |reason, why: String| {
        let event = if delayed {
            PhoneEvent::HandOverFailed { leg, message: why }
        } else {
            PhoneEvent::Rejected { leg, reason }
        };
        shared.reports.report(event);
    };
    let own = format!("sip:{from}@{}", shared.local);
    let callee = mapping::uri_with_user(&shared.trunk.to_string(), to.as_str());
    let (Ok(caller), Ok(callee)) = (Uri::try_from(own.as_str()), Uri::try_from(callee.as_str()))
    else {
        tracing::warn!(?leg, "SIP trunk: cannot build the INVITE's URIs");
        fail(
            PhoneRejection::Unreachable,
            "the SIP trunk cannot address the phone".to_owned(),
        );
        return;
    };
    let mut headers = vec![Header::Other(
        "P-Asserted-Identity".into(),
        format!("<{own}>"),
    )];
    let (x_headers, left_out) = mapping::x_headers(&context);
    if !left_out.is_empty() {
        tracing::info!(?leg, keys = ?left_out, "SIP trunk: call context entries that cannot be headers left out");
    }
    headers.extend(
        x_headers
            .into_iter()
            .map(|(name, value)| Header::Other(name, value)),
    );
    let option = InviteOption {
        caller_display_name: context.get("display_name").map(str::to_owned),
        caller: caller.clone(),
        callee,
        destination: Some(shared.trunk_addr.clone()),
        content_type: offer.as_ref().map(|_| SDP_TYPE.to_owned()),
        offer: offer.as_ref().map(|offer| offer.as_bytes().to_vec()),
        contact: caller,
        headers: Some(headers),
        call_id: Some(call_id.clone()),
        // A 401 or 407 is answered once with these (rsipstack's digest client).
        credential: shared.credential.clone(),
        ..Default::default()
    };
    let (state_tx, mut states) = shared.dialogs.new_dialog_state_channel();
    let (dialog, mut invite) = match shared.dialogs.do_invite_async(option, state_tx) {
        Ok(started) => started,
        Err(e) => {
            tracing::warn!(?leg, error = %e, "SIP trunk: INVITE not sent");
            fail(
                PhoneRejection::Unreachable,
                "the SIP trunk could not send the INVITE".to_owned(),
            );
            return;
        }
    };
    let branch = dialog
        .initial_request()
        .headers
        .iter()
        .find(|h| matches!(h, Header::Via(_)))
        .and_then(|via| mapping::via_branch(via.value()).map(str::to_owned));
    if let Some(sent) = shared.sent().get_mut(&leg) {
        sent.branch = branch;
    }
    tracing::info!(?leg, to = ?to, delayed, "SIP trunk: INVITE sent");
    let mut ringing = false;
    // The answer: the phone's SDP (its answer, or for a delayed offer its offer), and the
    // confirmed dialog's id (to forget it at the end).
    let mut answered: Option<(String, rsipstack::dialog::DialogId)> = None;
    // A delayed offer's 2xx came and its ACK waits for the switch's answer.
    let mut awaiting_answer = false;
    // Re-offers, once answered.
    let mut session: Option<Renegotiation> = None;
    let mut invite_done = false;
    loop {
        tokio::select! {
            result = async { session.as_mut().expect("guarded").reply().await },
                if session.as_ref().is_some_and(Renegotiation::awaits_reply) => {
                if let Some(session) = &mut session {
                    session.reply_came(shared, leg, media, result).await;
                }
            }
            result = &mut invite, if !invite_done => {
                invite_done = true;
                let response = match result {
                    Ok(Ok((id, Some(response)))) => Some((id, response)),
                    Ok(Ok((_, None))) => None,
                    Ok(Err(e)) => {
                        tracing::info!(?leg, error = %e, "SIP trunk: INVITE failed");
                        None
                    }
                    Err(e) => {
                        tracing::warn!(?leg, error = %e, "SIP trunk: INVITE task failed");
                        None
                    }
                };
                let Some((id, response)) = response else {
                    fail(mapping::REJECTION_ON_TIMEOUT, mapping::handover_failure(None));
                    return;
                };
                let status = u16::from(response.status_code.clone());
                if response.status_code.kind() != StatusCodeKind::Successful {
                    tracing::info!(?leg, status, "SIP trunk: call to a phone refused");
                    fail(mapping::rejection_of_status(status), mapping::handover_failure(Some(status)));
                    return;
                }
                let body = String::from_utf8_lossy(&response.body).into_owned();
                if delayed {
                    match phone_offer(leg, media, &id, &body).await {
                        Ok(sdp) => {
                            tracing::info!(?leg, "SIP trunk: the phone is up for the handover, with its offer");
                            shared.reports.report(PhoneEvent::HandOverReady { leg, sdp });
                            answered = Some((body, id));
                            awaiting_answer = true;
                        }
                        Err(reason) => {
                            shared.socket.release_ack(&call_id, None).await;
                            let _ = dialog.bye_with_reason(mapping::reason_header(reason)).await;
                            shared.dialogs.remove_dialog(&id);
                            fail(PhoneRejection::Unreachable, mapping::HANDOVER_WITHOUT_OFFER.to_owned());
                            return;
                        }
                    }
                    continue;
                }
                let offer = offer.clone().unwrap_or_default();
                let toward_terminal = match media {
                    None => Ok(body.clone()),
                    Some(media) => media.anchor.pass(
                        leg,
                        Step::SipAnswerToWebRtc,
                        &media.call_id,
                        &media.from_tag,
                        &id.remote_tag,
                        &body,
                    ).await,
                };
                let toward_terminal = match toward_terminal {
                    Ok(sdp) => sdp,
                    Err(_) => {
                        let reason = mapping::reason_header(media::REASON_ON_FAILURE);
                        let _ = dialog.bye_with_reason(reason).await;
                        shared.dialogs.remove_dialog(&id);
                        fail(media::REJECTION_ON_FAILURE, String::new());
                        return;
                    }
                };
                match Sdp::parse(&toward_terminal, usize::MAX) {
                    Ok(answer) => {
                        tracing::info!(?leg, "SIP trunk: call to a phone answered");
                        shared.reports.report(PhoneEvent::Answered { leg, sdp: answer });
                        session = Some(Renegotiation::new(
                            dialog.clone(),
                            body.clone(),
                            offer,
                            media.map_or_else(String::new, |m| m.from_tag.clone()),
                            id.remote_tag.clone(),
                        ));
                        answered = Some((body, id));
                    }
                    Err(e) => {
                        tracing::warn!(?leg, error = %e, "SIP trunk: 200 without a usable SDP answer; hanging up");
                        let reason = mapping::reason_header(crate::core::ByeReason::NegotiationFailed);
                        let _ = dialog.bye_with_reason(reason).await;
                        shared.dialogs.remove_dialog(&id);
                        fail(PhoneRejection::Unreachable, String::new());
                        return;
                    }
                }
            }
            Some(state) = states.recv() => match state {
                DialogState::Early(_, response) if !ringing => {
                    let status = u16::from(response.status_code.clone());
                    if status == 180 || status == 183 {
                        ringing = true;
                        // A handover has no ringing to report: the switch waits for the phone.
                        if !delayed {
                            shared.reports.report(PhoneEvent::Ringing { leg });
                        }
                    }
                }
                DialogState::Terminated(id, reason) if answered.is_some() => {
                    tracing::info!(?leg, ?reason, "SIP trunk: the phone hung up");
                    shared.dialogs.remove_dialog(&id);
                    shared.reports.report(PhoneEvent::HungUp { leg });
                    return;
                }
                DialogState::Updated(_, request, handle) if session.is_some() => {
                    if let Some(session) = &mut session {
                        session.network_request(shared, leg, media, &request, handle).await;
                    }
                }
                other => {
                    let remote = answered.as_ref().map_or("", |(remote, _)| remote.as_str());
                    let local = session.as_ref().map_or_else(
                        || offer.as_deref().unwrap_or(""),
                        |s| s.local.as_str(),
                    );
                    answer_in_dialog(&other, remote, local).await;
                }
            },
            command = commands.recv() => match command {
                Some(LegInput::LoopedBack) if answered.is_none() => {
                    fail(mapping::REJECTION_ON_LOOP, "the call to the phone came back to us (482)".to_owned());
                    if let Err(e) = dialog.cancel().await {
                        tracing::info!(?leg, error = %e, "SIP trunk: CANCEL failed");
                    }
                    if !invite_done {
                        let _ = tokio::time::timeout(CANCEL_WAIT, &mut invite).await;
                    }
                    return;
                }
                Some(LegInput::LoopedBack) => {}
                Some(LegInput::Command(PhoneCommand::Answer { sdp, .. })) if awaiting_answer => {
                    awaiting_answer = false;
                    let Some((phone_offer, id)) = &answered else {
                        continue;
                    };
                    match switch_answer(leg, media, id, &sdp).await {
                        Ok(answer) => {
                            shared.socket.release_ack(&call_id, Some(&answer)).await;
                            tracing::info!(?leg, "SIP trunk: handover answered in the ACK");
                            session = Some(Renegotiation::new(
                                dialog.clone(),
                                phone_offer.clone(),
                                answer,
                                id.local_tag.clone(),
                                id.remote_tag.clone(),
                            ));
                        }
                        Err(()) => {
                            shared.socket.release_ack(&call_id, None).await;
                            let reason = mapping::reason_header(media::REASON_ON_FAILURE);
                            let _ = dialog.bye_with_reason(reason).await;
                            shared.dialogs.remove_dialog(id);
                            shared.reports.report(PhoneEvent::HungUp { leg });
                            return;
                        }
                    }
                }
                Some(LegInput::Command(PhoneCommand::Release { reason, .. })) => {
                    if awaiting_answer {
                        // The far side gave no answer: the ACK goes as it is, then the BYE.
                        shared.socket.release_ack(&call_id, None).await;
                    }
                    match mapping::release(Direction::Outgoing, answered.is_some(), reason) {
                        Release::Bye { reason } => {
                            if let Err(e) = dialog.bye_with_reason(reason).await {
                                tracing::info!(?leg, error = %e, "SIP trunk: BYE failed");
                            }
                            if let Some((_, id)) = &answered {
                                shared.dialogs.remove_dialog(id);
                            }
                        }
                        Release::Cancel { reason } | Release::Reject { reason, .. } => {
                            // rsipstack 0.7.14 builds the CANCEL from the INVITE and takes no extra
                            // headers, so the Reason cannot go with it.
                            tracing::debug!(?leg, %reason, "SIP trunk: CANCEL (its Reason header cannot be sent)");
                            if let Err(e) = dialog.cancel().await {
                                tracing::info!(?leg, error = %e, "SIP trunk: CANCEL failed");
                            }
                            if !invite_done {
                                // Until the INVITE ends (487, or a 200 the stack ends with BYE).
                                let _ = tokio::time::timeout(CANCEL_WAIT, &mut invite).await;
                            }
                        }
                    }
                    return;
                }
                Some(LegInput::Command(command)) => match (&mut session, command) {
                    (Some(session), command) => session.command(shared, leg, media, command).await,
                    (None, other) => unsupported(shared, leg, &other),
                },
                None => {
                    if awaiting_answer {
                        shared.socket.release_ack(&call_id, None).await;
                    }
                    let _ = dialog.hangup().await;
                    return;
                }
            }
        }
    }
}

/// The phone's offer in a delayed-offer 2xx (`body`), toward the switch: through rtpengine with
/// `media` ([`Step::SipOfferToWebRtc`], the phone the offerer), parsed. The error is the `Reason`
/// for the BYE that ends the leg: none or an unusable offer, a failure of rtpengine.
pub(super) async fn phone_offer(
    leg: PhoneLegId,
    media: Option<&LegMedia>,
    id: &rsipstack::dialog::DialogId,
    body: &str,
) -> Result<Sdp, crate::core::ByeReason> {
    let unusable = crate::core::ByeReason::NegotiationFailed;
    if body.trim().is_empty() {
        tracing::info!(
            ?leg,
            "SIP trunk: the phone's 200 to a handover has no offer"
        );
        return Err(unusable);
    }
    let toward_terminal = match media {
        None => body.to_owned(),
        Some(media) => media
            .anchor
            .pass(
                leg,
                Step::SipOfferToWebRtc,
                &media.call_id,
                &id.remote_tag,
                "",
                body,
            )
            .await
            .map_err(|_| media::REASON_ON_FAILURE)?,
    };
    Sdp::parse(&toward_terminal, usize::MAX).map_err(|e| {
        tracing::info!(?leg, error = %e, "SIP trunk: the phone's offer does not parse");
        unusable
    })
}

/// The switch's answer to a delayed offer, toward the phone: through rtpengine with `media`
/// ([`Step::WebRtcAnswerToSip`], the phone the offerer).
pub(super) async fn switch_answer(
    leg: PhoneLegId,
    media: Option<&LegMedia>,
    id: &rsipstack::dialog::DialogId,
    sdp: &Sdp,
) -> Result<String, ()> {
    match media {
        None => Ok(sdp.as_str().to_owned()),
        Some(media) => media
            .anchor
            .pass(
                leg,
                Step::WebRtcAnswerToSip,
                &media.call_id,
                &id.remote_tag,
                &id.local_tag,
                sdp.as_str(),
            )
            .await
            .map_err(|_| ()),
    }
}
