//! Re-offers both ways on an answered leg (PROTOCOL.md section 13): re-INVITE, an UPDATE with SDP
//! accepted too, 491 on glare.

use super::*;

/// A re-INVITE's final response, or why none came.
pub(super) type ReplyFuture = std::pin::Pin<
    Box<dyn std::future::Future<Output = rsipstack::Result<Option<Response>>> + Send>,
>;

/// The offer/answer exchange in progress on an established leg.
pub(super) enum Pending {
    /// None.
    Idle,
    /// The trunk's re-INVITE is out with `offer` (SIP side); `reply` is its final response.
    Ours { offer: String, reply: ReplyFuture },
    /// The phone's re-offer `offer` (SIP side) waits for the switch's answer, to go in `handle`'s
    /// 200.
    Theirs {
        offer: String,
        handle: rsipstack::dialog::dialog::TransactionHandle,
    },
}

/// An established leg's re-offers both ways (PROTOCOL.md section 13: re-INVITE, an UPDATE with SDP
/// accepted too, 491 on glare): the SDP each side last sent over SIP, the exchange in progress, and
/// the leg's tags in rtpengine (a re-offer's from-tag is its offerer's).
pub(super) struct Renegotiation {
    pub(super) dialog: InviteDialog,
    /// What the phone last sent.
    pub(super) remote: String,
    /// What the trunk last sent the phone.
    pub(super) local: String,
    pub(super) pending: Pending,
    /// The trunk's tag in rtpengine for this leg, and the phone's.
    pub(super) ours: String,
    pub(super) theirs: String,
}

impl Renegotiation {
    pub(super) fn new(
        dialog: InviteDialog,
        remote: String,
        local: String,
        ours: String,
        theirs: String,
    ) -> Renegotiation {
        Renegotiation {
            dialog,
            remote,
            local,
            pending: Pending::Idle,
            ours,
            theirs,
        }
    }

    /// Whether the trunk's re-INVITE waits for its final response.
    pub(super) fn awaits_reply(&self) -> bool {
        matches!(self.pending, Pending::Ours { .. })
    }

    /// The final response of the trunk's re-INVITE (pending forever when none is out).
    pub(super) async fn reply(&mut self) -> rsipstack::Result<Option<Response>> {
        match &mut self.pending {
            Pending::Ours { reply, .. } => reply.await,
            _ => std::future::pending().await,
        }
    }

    /// Passes `sdp` through rtpengine as `step`, offered by the trunk (`by_us`) or the phone; the
    /// SDP unchanged without `media`.
    /// (`&mut`: the pending re-INVITE's future is not `Sync`, so the leg's future holds no shared
    /// reference to it across an await.)
    pub(super) async fn pass(
        &mut self,
        leg: PhoneLegId,
        media: Option<&LegMedia>,
        step: Step,
        by_us: bool,
        sdp: &str,
    ) -> Result<String, ()> {
        let Some(media) = media else {
            return Ok(sdp.to_owned());
        };
        let (from, to) = if by_us {
            (&self.ours, &self.theirs)
        } else {
            (&self.theirs, &self.ours)
        };
        media
            .anchor
            .pass(leg, step, &media.call_id, from, to, sdp)
            .await
            .map_err(|_| ())
    }

    /// A re-INVITE or UPDATE from the phone ([`mapping::network_reoffer`]): 491 on glare, 200
    /// with the current SDP for a refresh, else the phone's re-offer goes to the switch
    /// (`PhoneEvent::Offer`, through rtpengine) and waits for its answer; 488 when it cannot go.
    pub(super) async fn network_request(
        &mut self,
        shared: &Shared,
        leg: PhoneLegId,
        media: Option<&LegMedia>,
        request: &Request,
        handle: rsipstack::dialog::dialog::TransactionHandle,
    ) {
        let body = String::from_utf8_lossy(&request.body).into_owned();
        let pending = !matches!(self.pending, Pending::Idle);
        let sent = match mapping::network_reoffer(&body, &self.remote, pending) {
            mapping::NetworkReoffer::Glare => {
                tracing::info!(
                    ?leg,
                    "SIP trunk: re-offer from the network crossed another: 491"
                );
                handle.reply(StatusCode::from(mapping::GLARE_STATUS)).await
            }
            mapping::NetworkReoffer::Refresh => {
                handle
                    .respond(
                        StatusCode::OK,
                        Some(vec![sdp_type()]),
                        Some(self.local.as_bytes().to_vec()),
                    )
                    .await
            }
            mapping::NetworkReoffer::Relay => {
                let toward_terminal = self
                    .pass(leg, media, Step::SipOfferToWebRtc, false, &body)
                    .await
                    .and_then(|text| Sdp::parse(&text, usize::MAX).map_err(|_| ()));
                match toward_terminal {
                    Ok(sdp) => {
                        tracing::info!(?leg, "SIP trunk: re-offer from the phone");
                        shared.reports.report(PhoneEvent::Offer { leg, sdp });
                        self.pending = Pending::Theirs {
                            offer: body,
                            handle,
                        };
                        Ok(())
                    }
                    Err(()) => {
                        tracing::info!(?leg, "SIP trunk: re-offer from the phone refused with 488");
                        handle.reply(StatusCode::from(488)).await
                    }
                }
            }
        };
        if sent.is_err() {
            tracing::debug!(?leg, "SIP trunk: in-dialog answer not sent");
        }
    }

    /// The switch re-offers toward the phone: a re-INVITE with `sdp` (through rtpengine). While
    /// another exchange is pending, or when rtpengine fails, it is `Rejected` at once.
    pub(super) async fn offer_from_switch(
        &mut self,
        shared: &Shared,
        leg: PhoneLegId,
        media: Option<&LegMedia>,
        sdp: &Sdp,
    ) {
        let refused = |why: &str| {
            tracing::info!(?leg, why, "SIP trunk: re-offer toward the phone refused");
            shared.reports.report(PhoneEvent::Rejected {
                leg,
                reason: PhoneRejection::Unreachable,
            });
        };
        if !matches!(self.pending, Pending::Idle) {
            refused("another exchange is pending");
            return;
        }
        let Ok(offer) = self
            .pass(leg, media, Step::WebRtcOfferToSip, true, sdp.as_str())
            .await
        else {
            refused("rtpengine failed");
            return;
        };
        let dialog = self.dialog.clone();
        let body = offer.as_bytes().to_vec();
        tracing::info!(?leg, "SIP trunk: re-INVITE sent");
        self.pending = Pending::Ours {
            offer,
            reply: Box::pin(
                async move { dialog.reinvite(Some(vec![sdp_type()]), Some(body)).await },
            ),
        };
    }

    /// The trunk's re-INVITE got its final response (or none): 2xx → `Answered` with the phone's
    /// answer (through rtpengine), anything else → `Rejected` ([`mapping::reoffer_refused`]).
    pub(super) async fn reply_came(
        &mut self,
        shared: &Shared,
        leg: PhoneLegId,
        media: Option<&LegMedia>,
        result: rsipstack::Result<Option<Response>>,
    ) {
        let Pending::Ours { offer, .. } = std::mem::replace(&mut self.pending, Pending::Idle)
        else {
            return;
        };
        let response = match result {
            Ok(Some(response)) => Some(response),
            Ok(None) => None,
            Err(e) => {
                tracing::info!(?leg, error = %e, "SIP trunk: re-INVITE failed");
                None
            }
        };
        let status = response.as_ref().map(|r| u16::from(r.status_code.clone()));
        if let Some(reason) = mapping::reoffer_refused(status) {
            tracing::info!(?leg, ?status, "SIP trunk: the phone refused the re-offer");
            shared.reports.report(PhoneEvent::Rejected { leg, reason });
            return;
        }
        let body = response
            .map(|r| String::from_utf8_lossy(&r.body).into_owned())
            .unwrap_or_default();
        let toward_terminal = self
            .pass(leg, media, Step::SipAnswerToWebRtc, true, &body)
            .await
            .and_then(|text| Sdp::parse(&text, usize::MAX).map_err(|_| ()));
        match toward_terminal {
            Ok(sdp) => {
                self.remote = body;
                self.local = offer;
                shared.reports.report(PhoneEvent::Answered { leg, sdp });
            }
            Err(()) => {
                tracing::warn!(
                    ?leg,
                    "SIP trunk: the phone's answer to a re-offer is not usable"
                );
                shared.reports.report(PhoneEvent::Rejected {
                    leg,
                    reason: PhoneRejection::Unreachable,
                });
            }
        }
    }

    /// The switch answers the phone's re-offer: 200 with `sdp` (through rtpengine; 488 when that
    /// fails). Returns false when no re-offer of the phone's waits.
    pub(super) async fn answer_from_switch(
        &mut self,
        leg: PhoneLegId,
        media: Option<&LegMedia>,
        sdp: &Sdp,
    ) -> bool {
        let Pending::Theirs { offer, handle } = std::mem::replace(&mut self.pending, Pending::Idle)
        else {
            return false;
        };
        let sent = match self
            .pass(leg, media, Step::WebRtcAnswerToSip, false, sdp.as_str())
            .await
        {
            Ok(answer) => {
                let sent = handle
                    .respond(
                        StatusCode::OK,
                        Some(vec![sdp_type()]),
                        Some(answer.as_bytes().to_vec()),
                    )
                    .await;
                self.remote = offer;
                self.local = answer;
                sent
            }
            Err(()) => handle.reply(StatusCode::from(488)).await,
        };
        if sent.is_err() {
            tracing::debug!(?leg, "SIP trunk: answer to the re-offer not sent");
        }
        true
    }

    /// A command of the switch for the established leg, other than `Release`: a re-offer
    /// (`Offer`), the answer to the phone's (`Answer`) or its failure (`OfferFailed`).
    pub(super) async fn command(
        &mut self,
        shared: &Shared,
        leg: PhoneLegId,
        media: Option<&LegMedia>,
        command: PhoneCommand,
    ) {
        match command {
            PhoneCommand::Offer { sdp, .. } => {
                self.offer_from_switch(shared, leg, media, &sdp).await;
            }
            PhoneCommand::Answer { sdp, .. } => {
                if !self.answer_from_switch(leg, media, &sdp).await {
                    tracing::info!(
                        ?leg,
                        "SIP trunk: an answer with no re-offer of the phone's pending; ignored"
                    );
                }
            }
            PhoneCommand::OfferFailed { .. } => self.offer_failed(leg).await,
            other => unsupported(shared, leg, &other),
        }
    }

    /// The switch could not get the phone's re-offer answered: 491, the call going on as it was.
    pub(super) async fn offer_failed(&mut self, leg: PhoneLegId) {
        if let Pending::Theirs { handle, .. } = std::mem::replace(&mut self.pending, Pending::Idle)
        {
            if handle
                .reply(StatusCode::from(mapping::GLARE_STATUS))
                .await
                .is_err()
            {
                tracing::debug!(?leg, "SIP trunk: 491 not sent");
            }
        }
    }
}
