//! A call from a phone: the core is the UAS (PROTOCOL.md 4.11 and section 13), from the INVITE's
//! admission to the leg's end.

use super::*;

impl Trunk {
    /// An INVITE outside a dialog (PROTOCOL.md section 13, "an incoming call").
    pub(super) async fn invite(&mut self, mut tx: Transaction) {
        let request = &tx.original;
        let source = header(request, "Via").and_then(|via| mapping::source_of_via(&via));
        let has_sdp = !request.body.is_empty();
        if let Admission::Refuse { status, why } = mapping::admit(source, &self.allow, has_sdp) {
            tracing::info!(?source, status, why, "SIP trunk: INVITE refused");
            reply(&mut tx, status).await;
            return;
        }
        if mapping::hop_limit_reached(header(request, "Max-Forwards").as_deref()) {
            tracing::info!(
                ?source,
                "SIP trunk: INVITE with Max-Forwards 0 refused with 483"
            );
            reply(&mut tx, 483).await;
            return;
        }
        let call_id = header(request, "Call-ID").unwrap_or_default();
        let vias: Vec<&str> = request
            .headers
            .iter()
            .filter(|h| h.name().eq_ignore_ascii_case("Via"))
            .map(|h| h.value())
            .collect();
        let looped = self
            .shared
            .sent()
            .iter()
            .find(|(_, sent)| sent.came_back(&call_id, vias.iter().copied()))
            .map(|(leg, _)| *leg);
        if let Some(leg) = looped {
            tracing::info!(?leg, "SIP trunk: our own INVITE came back; refused with 482, the call to the phone fails");
            reply(&mut tx, 482).await;
            if let Some(leg_tx) = self.legs.get(&leg) {
                let _ = leg_tx.send(LegInput::LoopedBack);
            }
            return;
        }
        let from = header(request, "From").unwrap_or_default();
        let pai: Vec<String> = request
            .headers
            .iter()
            .filter(|h| h.name().eq_ignore_ascii_case("P-Asserted-Identity"))
            .map(|h| h.value().to_owned())
            .collect();
        let caller = mapping::caller_number(pai.iter().map(String::as_str), &from);
        let callee = mapping::callee_number(&request.uri.to_string());
        let (caller, callee) = match (caller, callee) {
            (Ok(caller), Ok(callee)) => (caller, callee),
            (Err(e), _) => {
                tracing::info!(error = %e, "SIP trunk: INVITE without a caller number refused");
                reply(&mut tx, 403).await;
                return;
            }
            (_, Err(e)) => {
                tracing::info!(error = %e, "SIP trunk: INVITE without a callee number refused");
                reply(&mut tx, 404).await;
                return;
            }
        };
        let sdp = match std::str::from_utf8(&request.body)
            .map_err(|e| e.to_string())
            .and_then(|text| Sdp::parse(text, self.max_sdp_bytes).map_err(|e| e.to_string()))
        {
            Ok(sdp) => sdp,
            Err(why) => {
                tracing::info!(%why, "SIP trunk: INVITE with an SDP that does not parse refused");
                reply(&mut tx, 488).await;
                return;
            }
        };
        let context = mapping::context_of_headers(
            request.headers.iter().map(|h| (h.name(), h.value())),
            mapping::display_name(&from).as_deref(),
        );
        let contact = match Uri::try_from(format!("sip:{}@{}", callee, self.shared.local).as_str())
        {
            Ok(uri) => uri,
            Err(e) => {
                tracing::warn!(error = %e, "SIP trunk: no Contact for the answer");
                reply(&mut tx, 500).await;
                return;
            }
        };
        let (state_tx, states) = self.shared.dialogs.new_dialog_state_channel();
        let dialog = match self.shared.dialogs.get_or_create_server_invite(
            &tx,
            state_tx,
            None,
            Some(contact),
        ) {
            Ok(dialog) => dialog,
            Err(e) => {
                tracing::info!(error = %e, "SIP trunk: INVITE matches no dialog");
                reply(&mut tx, 481).await;
                return;
            }
        };
        self.incoming_calls += 1;
        let leg = PhoneLegId::from_network(self.incoming_calls);
        tracing::info!(?leg, from = ?caller, to = ?callee, "SIP trunk: incoming call");
        // Drives the INVITE transaction (100 Trying at once, then our answers) until the ACK or a
        // CANCEL.
        let mut server = dialog.clone();
        tokio::spawn(async move {
            if let Err(e) = server.handle(&mut tx).await {
                tracing::debug!(error = %e, "SIP trunk: incoming INVITE transaction");
            }
        });
        let (commands_tx, commands) = mpsc::unbounded_channel();
        self.legs.insert(leg, commands_tx);
        let shared = self.shared.clone();
        let media = shared.media.clone().map(|anchor| LegMedia {
            anchor,
            call_id: media::incoming_call_id(&shared.prefix, &call_id),
            from_tag: dialog.id().remote_tag,
        });
        let call = PhoneEvent::Incoming {
            leg,
            from: caller,
            to: callee,
            sdp,
            context,
        };
        tokio::spawn(async move {
            incoming_leg(&shared, leg, call, dialog, media, states, commands).await;
            shared.brought_in().remove(&leg);
            let _ = shared.ended.send(Ended(leg));
        });
    }
}

/// A call from a phone (PROTOCOL.md 4.11 and section 13), `call` being its `PhoneEvent::Incoming`.
/// With `media` (`--rtpengine`), the phone's offer first goes through rtpengine
/// ([`Step::SipOfferToWebRtc`]) and the switch is told of the call with rtpengine's offer; a
/// failure there refuses the INVITE with [`media::STATUS_ON_FAILURE`] and nothing rings. The leg's
/// end, however it ends, deletes the call from rtpengine.
pub(super) async fn incoming_leg(
    shared: &Shared,
    leg: PhoneLegId,
    call: PhoneEvent,
    dialog: InviteDialog,
    media: Option<LegMedia>,
    mut states: DialogStateReceiver,
    commands: mpsc::UnboundedReceiver<LegInput>,
) {
    let PhoneEvent::Incoming { sdp: offer, .. } = &call else {
        return;
    };
    let offer = offer.as_str().to_owned();
    let Some(media) = media else {
        shared.brought_in().insert(leg, call.clone());
        shared.reports.report(call);
        incoming_dialog(shared, leg, dialog, offer, None, states, commands).await;
        return;
    };
    let passing = media.anchor.pass(
        leg,
        Step::SipOfferToWebRtc,
        &media.call_id,
        &media.from_tag,
        "",
        &offer,
    );
    tokio::pin!(passing);
    // The phone may CANCEL meanwhile.
    let passed = loop {
        tokio::select! {
            passed = &mut passing => break Some(passed),
            state = states.recv() => match state {
                Some(DialogState::Terminated(..)) | None => break None,
                Some(_) => {}
            }
        }
    };
    // Err: whether rtpengine may hold the call, and whether the INVITE is still to be refused.
    let toward_terminal = match passed {
        None => {
            tracing::info!(?leg, "SIP trunk: the calling phone cancelled");
            shared.dialogs.remove_dialog(&dialog.id());
            Err((true, false))
        }
        Some(Ok(text)) => Sdp::parse(&text, usize::MAX).map_err(|e| {
            tracing::warn!(?leg, error = %e, "SIP trunk: rtpengine's offer does not parse");
            (true, true)
        }),
        Some(Err(e)) => Err((e.maybe_done(), true)),
    };
    match toward_terminal {
        Ok(sdp) => {
            let PhoneEvent::Incoming {
                leg,
                from,
                to,
                context,
                ..
            } = call
            else {
                return;
            };
            let call = PhoneEvent::Incoming {
                leg,
                from,
                to,
                sdp,
                context,
            };
            shared.brought_in().insert(leg, call.clone());
            shared.reports.report(call);
            let offer = offer.clone();
            incoming_dialog(shared, leg, dialog, offer, Some(&media), states, commands).await;
        }
        Err((maybe_held, refuse)) => {
            if refuse {
                refuse_for_media(shared, leg, &dialog);
            }
            if !maybe_held {
                media.anchor.live().remove(&media.call_id);
                return;
            }
        }
    }
    media.anchor.delete(leg, &media.call_id).await;
}

/// Refuses a call from a phone whose media step failed: [`media::STATUS_ON_FAILURE`] with
/// [`media::REASON_ON_FAILURE`].
pub(super) fn refuse_for_media(shared: &Shared, leg: PhoneLegId, dialog: &InviteDialog) {
    let reason = mapping::reason_header(media::REASON_ON_FAILURE);
    let status = StatusCode::from(media::STATUS_ON_FAILURE);
    if let Err(e) = dialog.reject(Some(status), Some(reason)) {
        tracing::info!(?leg, error = %e, "SIP trunk: final response not sent");
    }
    shared.dialogs.remove_dialog(&dialog.id());
}

/// A call from a phone's SIP side, `offer` being the phone's SDP: `Alerting` → 180, `Answer` → 200
/// with the SDP (through rtpengine, [`Step::WebRtcAnswerToSip`], with `media`: a failure there
/// refuses the INVITE with [`media::STATUS_ON_FAILURE`] and is `HungUp`), the ACK confirming;
/// `Release` → the mapped final error before the answer, BYE after; the far end's CANCEL or BYE →
/// `HungUp`.
pub(super) async fn incoming_dialog(
    shared: &Shared,
    leg: PhoneLegId,
    dialog: InviteDialog,
    offer: String,
    media: Option<&LegMedia>,
    mut states: DialogStateReceiver,
    mut commands: mpsc::UnboundedReceiver<LegInput>,
) {
    let mut answer: Option<String> = None;
    // Re-offers, once answered.
    let mut session: Option<Renegotiation> = None;
    let finish = |shared: &Shared| shared.dialogs.remove_dialog(&dialog.id());
    loop {
        tokio::select! {
            result = async { session.as_mut().expect("guarded").reply().await },
                if session.as_ref().is_some_and(Renegotiation::awaits_reply) => {
                if let Some(session) = &mut session {
                    session.reply_came(shared, leg, media, result).await;
                }
            }
            Some(state) = states.recv() => match state {
                DialogState::Terminated(_, reason) => {
                    match reason {
                        TerminatedReason::UacCancel => tracing::info!(?leg, "SIP trunk: the calling phone cancelled"),
                        TerminatedReason::Timeout => tracing::info!(?leg, "SIP trunk: no ACK for the answer; call ended"),
                        other => tracing::info!(?leg, reason = ?other, "SIP trunk: the calling phone hung up"),
                    }
                    finish(shared);
                    shared.reports.report(PhoneEvent::HungUp { leg });
                    return;
                }
                DialogState::Updated(_, request, handle) if session.is_some() => {
                    if let Some(session) = &mut session {
                        session.network_request(shared, leg, media, &request, handle).await;
                    }
                }
                other => {
                    let local = answer.as_deref().unwrap_or("");
                    answer_in_dialog(&other, &offer, local).await;
                }
            },
            command = commands.recv() => match command {
                Some(LegInput::LoopedBack) => {}
                Some(LegInput::Command(PhoneCommand::Alerting { .. })) => {
                    if let Err(e) = dialog.ringing(None, None) {
                        tracing::info!(?leg, error = %e, "SIP trunk: 180 not sent");
                    }
                }
                Some(LegInput::Command(PhoneCommand::Answer { sdp, .. })) if answer.is_none() => {
                    let toward_phone = match media {
                        None => Ok(sdp.as_str().to_owned()),
                        Some(media) => media.anchor.pass(
                            leg,
                            Step::WebRtcAnswerToSip,
                            &media.call_id,
                            &media.from_tag,
                            &dialog.id().local_tag,
                            sdp.as_str(),
                        ).await,
                    };
                    let Ok(toward_phone) = toward_phone else {
                        refuse_for_media(shared, leg, &dialog);
                        shared.reports.report(PhoneEvent::HungUp { leg });
                        return;
                    };
                    let body = toward_phone.as_bytes().to_vec();
                    if let Err(e) = dialog.accept(Some(vec![sdp_type()]), Some(body)) {
                        tracing::info!(?leg, error = %e, "SIP trunk: 200 not sent");
                    }
                    let id = dialog.id();
                    session = Some(Renegotiation::new(
                        dialog.clone(),
                        offer.clone(),
                        toward_phone.clone(),
                        id.local_tag,
                        media.map_or(id.remote_tag, |m| m.from_tag.clone()),
                    ));
                    answer = Some(toward_phone);
                }
                Some(LegInput::Command(PhoneCommand::Release { reason, .. })) => {
                    match mapping::release(Direction::Incoming, answer.is_some(), reason) {
                        Release::Reject { status, reason } => {
                            if let Err(e) = dialog.reject(Some(StatusCode::from(status)), Some(reason)) {
                                tracing::info!(?leg, error = %e, "SIP trunk: final response not sent");
                            }
                        }
                        Release::Bye { reason } | Release::Cancel { reason } => {
                            if let Err(e) = dialog.bye_with_reason(reason).await {
                                tracing::info!(?leg, error = %e, "SIP trunk: BYE failed");
                            }
                        }
                    }
                    finish(shared);
                    return;
                }
                Some(LegInput::Command(command)) => match (&mut session, command) {
                    (Some(session), command) => session.command(shared, leg, media, command).await,
                    (None, other) => unsupported(shared, leg, &other),
                },
                None => {
                    let _ = dialog.hangup().await;
                    finish(shared);
                    return;
                }
            }
        }
    }
}
