//! [`SipTrunk`]: the phone network (PROTOCOL.md section 7) as one SIP trunk (section 13, RFC 3261),
//! over rsipstack's transaction and dialog layers on UDP.
//!
//! Shape: [`SipTrunk::send`] only queues the switch's command on an unbounded channel (it runs on
//! the driver task and must not block). One trunk task owns the SIP endpoint and a table of legs; each
//! leg is a task of its own, fed its commands by the trunk task, reporting its [`PhoneEvent`]s
//! straight to the driver through [`PhoneReports`] and its end back to the trunk task. A call to a
//! phone (`Ring`) is an outgoing leg, the core being the UAC; an INVITE from an allowed source is an
//! incoming leg, the core being the UAS. Every rule of what goes on the wire is in
//! [`super::mapping`].
//!
//! Here: the trunk task (its commands, its requests, the leg table) and the small answers every leg
//! shares. Beside it: `endpoint` (opening the socket, the stack, rtpengine and the pings),
//! `outgoing` and `incoming` (one leg each way, from INVITE to end), `renegotiation` (re-offers on
//! an answered leg), `registration` (REGISTER with `--sip-register`), `anchor` (media through
//! rtpengine), `ping` (OPTIONS toward the trunk) and
//! `counting` (SIP message metrics).

use super::mapping::{self, Admission, Direction, Release, SentInvite};
use super::media::{self, Step};
use super::rtpengine::{RtpEngine, RtpEngineError};
use super::socket::SipSocket;
use super::{Cidr, SipConfig};
use crate::core::{Msisdn, PhoneCommand, PhoneEvent, PhoneLegId, PhoneRejection, Sdp};
use crate::pacing::LogThrottle;
use crate::phone::{PhoneNetwork, PhoneReports};
use rsipstack::dialog::authenticate::Credential;
use rsipstack::dialog::dialog::{DialogState, DialogStateReceiver, TerminatedReason};
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::dialog::invitation::InviteOption;
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::{
    Header, Method, Request, Response, SipMessage, StatusCode, StatusCodeKind, Uri,
};
use rsipstack::transaction::endpoint::EndpointInnerRef;
use rsipstack::transaction::key::{TransactionKey, TransactionRole};
use rsipstack::transaction::transaction::Transaction;
use rsipstack::transport::udp::UdpConnection;
use rsipstack::transport::{SipAddr, TransportLayer};
use rsipstack::EndpointBuilder;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// The `User-Agent` and `Server` the trunk sends.
const USER_AGENT: &str = concat!("webterminal-core/", env!("CARGO_PKG_VERSION"));

/// The body type of every SDP the trunk sends.
const SDP_TYPE: &str = "application/sdp";

/// The phone network as a SIP trunk (PROTOCOL.md section 13). Cheap to hold: the work happens on the
/// trunk task [`SipTrunk::start`] spawned, which ends when this is dropped.
#[derive(Debug)]
pub struct SipTrunk {
    commands: mpsc::UnboundedSender<PhoneCommand>,
    up: watch::Receiver<bool>,
}

impl SipTrunk {
    /// Starts the trunk task: binds `config.listen` on UDP (or takes `config.socket`), then carries
    /// the switch's commands to the trunk and reports what the trunk's phones do through `reports`.
    /// Incoming SDP offers over `max_sdp_bytes` (or that do not parse) get 488.
    ///
    /// A trunk that cannot start (the socket cannot be bound, the trunk URI does not parse) logs why
    /// and answers every call with `Rejected{Unreachable}`.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn start(config: SipConfig, max_sdp_bytes: usize, reports: PhoneReports) -> SipTrunk {
        let (commands, rx) = mpsc::unbounded_channel();
        let (up_tx, up) = watch::channel(true);
        tokio::spawn(async move {
            match Trunk::open(config, max_sdp_bytes, reports.clone(), up_tx).await {
                Ok(trunk) => trunk.run(rx).await,
                Err((why, up_tx)) => {
                    tracing::error!(%why, "SIP trunk: cannot start; calls to phones fail");
                    up_tx.send_replace(false);
                    refuse_all(rx, reports).await;
                }
            }
        });
        SipTrunk { commands, up }
    }

    /// Whether the trunk is up (PROTOCOL.md section 13): `true` until an OPTIONS ping goes
    /// unanswered ([`mapping::trunk_answered`]), again at the next answered one; always `true` with
    /// pings off, `false` when the trunk could not start. The sender closes when the trunk task
    /// ends. The server turns it into the `/readyz` reason [`super::TRUNK_DOWN`].
    pub fn watch_up(&self) -> watch::Receiver<bool> {
        self.up.clone()
    }
}

impl PhoneNetwork for SipTrunk {
    fn send(&mut self, command: PhoneCommand) {
        if self.commands.send(command).is_err() {
            tracing::warn!("SIP trunk: its task has stopped; command dropped");
        }
    }
}

/// Whether a call to `to`'s phone from `from` with offer `sdp` is the switch's fork of a call this
/// trunk brought in (PROTOCOL.md 4.11: every device of the callee is offered it, its own phone
/// too): the same caller, callee and offer as a live incoming leg's. The network that delivered
/// that call has reached the callee's phone already, or would route an INVITE for it straight back
/// to the core; and with rtpengine that offer is rtpengine's own, which a second rtpengine call
/// would take for a browser's (ICE and DTLS with itself on the browser's port: no audio).
fn is_hairpin(
    brought_in: &HashMap<PhoneLegId, PhoneEvent>,
    to: &Msisdn,
    from: &Msisdn,
    sdp: &Sdp,
) -> bool {
    brought_in.values().any(|call| {
        matches!(call, PhoneEvent::Incoming { from: f, to: t, sdp: s, .. }
            if f == from && t == to && s.as_str() == sdp.as_str())
    })
}

/// Answers every command of a trunk that could not start.
async fn refuse_all(mut rx: mpsc::UnboundedReceiver<PhoneCommand>, reports: PhoneReports) {
    while let Some(command) = rx.recv().await {
        if let Some(event) = refusal(&command, "the SIP trunk is not running") {
            reports.report(event);
        }
    }
}

/// The event that answers a command the trunk cannot carry out (the trait's contract: `Rejected`,
/// `HandOverFailed` or `HungUp`), or none for a command that expects no answer.
fn refusal(command: &PhoneCommand, why: &str) -> Option<PhoneEvent> {
    match command {
        PhoneCommand::Ring { leg, .. } | PhoneCommand::Offer { leg, .. } => {
            Some(PhoneEvent::Rejected {
                leg: *leg,
                reason: PhoneRejection::Unreachable,
            })
        }
        PhoneCommand::HandOver { leg, .. } => Some(PhoneEvent::HandOverFailed {
            leg: *leg,
            message: why.to_owned(),
        }),
        _ => None,
    }
}

/// A leg's end, reported to the trunk task so it forgets the leg.
struct Ended(PhoneLegId);

/// What the trunk task hands a leg task.
#[derive(Debug)]
enum LegInput {
    /// A command of the switch for the leg.
    Command(PhoneCommand),
    /// The leg's INVITE came back to the trunk and was refused with 482 (outgoing legs only).
    LoopedBack,
}

/// What every leg task shares.
struct Shared {
    dialogs: Arc<DialogLayer>,
    reports: PhoneReports,
    /// The trunk's URI (`--sip-trunk`).
    trunk: Uri,
    /// Where the trunk's requests go.
    trunk_addr: SipAddr,
    /// This side's address as it goes in Contact and From (`host:port`).
    local: String,
    ended: mpsc::UnboundedSender<Ended>,
    /// The INVITEs of live outgoing legs, to recognise one coming back
    /// ([`mapping::SentInvite::came_back`]). Held briefly, never across an await.
    sent: std::sync::Mutex<HashMap<PhoneLegId, SentInvite>>,
    /// This trunk's call-id prefix ([`media::call_id_prefix`]).
    prefix: String,
    /// Where the legs' media is anchored (`--rtpengine`); none: SDP passes through unchanged.
    media: Option<Arc<Anchor>>,
    /// The trunk's socket, which holds back the ACK of a delayed offer until its answer is known.
    socket: Arc<SipSocket>,
    /// The digest credentials a challenged INVITE is sent again with (`--sip-username`).
    credential: Option<Credential>,
    /// The calls live incoming legs brought in, as reported to the switch, to know the switch's
    /// fork of one to the callee's own phone ([`is_hairpin`]). Held briefly, never across an await.
    brought_in: std::sync::Mutex<HashMap<PhoneLegId, PhoneEvent>>,
}

impl Shared {
    /// The table of calls brought in (a poisoned lock is taken as it is, as for [`Shared::sent`]).
    fn brought_in(&self) -> std::sync::MutexGuard<'_, HashMap<PhoneLegId, PhoneEvent>> {
        self.brought_in
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The table of sent INVITEs (a poisoned lock is taken as it is: the table holds no invariant a
    /// panic could break).
    fn sent(&self) -> std::sync::MutexGuard<'_, HashMap<PhoneLegId, SentInvite>> {
        self.sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

mod anchor;
mod counting;
mod endpoint;
mod incoming;
mod outgoing;
mod ping;
mod registration;
mod renegotiation;

use anchor::{Anchor, LegMedia};
use counting::Counting;
pub(super) use endpoint::parse_trunk_uri;
use outgoing::{outgoing_leg, Invite};
use ping::{ping_trunk, Ping};
use registration::keep_registered;
use renegotiation::Renegotiation;

/// The trunk task's state.
struct Trunk {
    shared: Arc<Shared>,
    endpoint_cancel: CancellationToken,
    incoming: rsipstack::transaction::TransactionReceiver,
    ended: mpsc::UnboundedReceiver<Ended>,
    allow: Vec<Cidr>,
    max_sdp_bytes: usize,
    legs: HashMap<PhoneLegId, mpsc::UnboundedSender<LegInput>>,
    /// Counts incoming calls, to number their legs ([`PhoneLegId::from_network`]).
    incoming_calls: u64,
    /// Whether the trunk answers its OPTIONS pings ([`ping_trunk`]); calls to phones fail at once
    /// while it does not.
    up: watch::Receiver<bool>,
    /// With `--sip-register`: stops the registration task ([`keep_registered`]), which then
    /// unregisters, and that task.
    registration: Option<(CancellationToken, tokio::task::JoinHandle<()>)>,
}

impl Trunk {
    /// Serves until the switch drops its [`SipTrunk`].
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<PhoneCommand>) {
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => self.command(command),
                    None => break,
                },
                tx = self.incoming.recv() => match tx {
                    Some(tx) => self.request(tx).await,
                    None => break,
                },
                Some(Ended(leg)) = self.ended.recv() => {
                    self.legs.remove(&leg);
                }
            }
        }
        if let Some((stop, task)) = self.registration.take() {
            stop.cancel();
            let _ = tokio::time::timeout(registration::UNREGISTER_WAIT, task).await;
        }
        self.endpoint_cancel.cancel();
    }

    /// One command of the switch.
    fn command(&mut self, command: PhoneCommand) {
        match command {
            PhoneCommand::Ring {
                leg,
                ref to,
                ref from,
                ref sdp,
                ..
            } if is_hairpin(&self.shared.brought_in(), to, from, sdp) => {
                tracing::info!(
                    ?leg,
                    "SIP trunk: a call the trunk brought in is not offered back to it for the \
                     callee's own phone; that fork is unreachable"
                );
                self.shared.reports.report(PhoneEvent::Rejected {
                    leg,
                    reason: PhoneRejection::Unreachable,
                });
            }
            PhoneCommand::Ring { leg, .. } if !*self.up.borrow() => {
                tracing::info!(
                    ?leg,
                    "SIP trunk: the trunk is down (no answer to OPTIONS); call to a phone refused"
                );
                self.shared.reports.report(PhoneEvent::Rejected {
                    leg,
                    reason: mapping::REJECTION_WHILE_DOWN,
                });
            }
            PhoneCommand::HandOver { leg, .. } if !*self.up.borrow() => {
                tracing::info!(
                    ?leg,
                    "SIP trunk: the trunk is down (no answer to OPTIONS); handover refused"
                );
                if let Some(event) = refusal(&command, mapping::HANDOVER_WHILE_DOWN) {
                    self.shared.reports.report(event);
                }
            }
            PhoneCommand::Ring {
                leg,
                to,
                from,
                sdp,
                context,
            } => self.outgoing(leg, to, from, Some(sdp), context),
            PhoneCommand::HandOver { leg, msisdn, peer } => {
                // The phone shows the other party as the caller.
                self.outgoing(leg, msisdn, peer, None, crate::core::CallContext::default());
            }
            other => {
                let leg = match &other {
                    PhoneCommand::Offer { leg, .. }
                    | PhoneCommand::Answer { leg, .. }
                    | PhoneCommand::Alerting { leg }
                    | PhoneCommand::OfferFailed { leg }
                    | PhoneCommand::Release { leg, .. } => *leg,
                    _ => {
                        tracing::warn!(command = ?other, "SIP trunk: command not known; ignored");
                        return;
                    }
                };
                match self.legs.get(&leg) {
                    Some(tx) if tx.send(LegInput::Command(other.clone())).is_ok() => {}
                    _ => {
                        tracing::debug!(?leg, "SIP trunk: command for a leg that has ended");
                        if let Some(event) = refusal(&other, "the leg has ended") {
                            self.shared.reports.report(event);
                        }
                    }
                }
            }
        }
    }

    /// Starts an outgoing leg: a call to `to`'s phone from `from`, with the caller's offer `sdp`
    /// (`Ring`), or without one (`HandOver`: a delayed offer, PROTOCOL.md section 13).
    fn outgoing(
        &mut self,
        leg: PhoneLegId,
        to: Msisdn,
        from: Msisdn,
        sdp: Option<Sdp>,
        context: crate::core::CallContext,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        self.legs.insert(leg, tx);
        // Chosen here, and known before the INVITE leaves, so that it is recognised even when it
        // comes back at once.
        let call_id = media::outgoing_call_id(
            &self.shared.prefix,
            &uuid::Uuid::new_v4().simple().to_string(),
        );
        self.shared.sent().insert(
            leg,
            SentInvite {
                call_id: call_id.clone(),
                branch: None,
            },
        );
        if sdp.is_none() {
            self.shared.socket.hold_acks(&call_id);
        }
        let shared = self.shared.clone();
        let invite = Invite {
            to,
            from,
            sdp,
            context,
            call_id: call_id.clone(),
        };
        tokio::spawn(async move {
            outgoing_leg(&shared, leg, invite, rx).await;
            shared.sent().remove(&leg);
            shared.socket.forget(&call_id).await;
            let _ = shared.ended.send(Ended(leg));
        });
    }

    /// One new server transaction: an in-dialog request goes to its dialog; an INVITE outside a
    /// dialog is admitted (a new incoming leg) or refused.
    async fn request(&mut self, mut tx: Transaction) {
        let in_dialog = tx
            .original
            .headers
            .iter()
            .find_map(|h| match h {
                Header::To(to) => {
                    Some(to.value().contains(";tag=") || to.value().contains("; tag="))
                }
                _ => None,
            })
            .unwrap_or(false);
        if in_dialog {
            match self.shared.dialogs.match_dialog(&tx) {
                Some(mut dialog) => {
                    tokio::spawn(async move {
                        if let Err(e) = dialog.handle(&mut tx).await {
                            tracing::debug!(error = %e, "SIP trunk: in-dialog request");
                        }
                    });
                }
                None => reply(&mut tx, 481).await,
            }
            return;
        }
        match tx.original.method {
            Method::Invite => self.invite(tx).await,
            Method::Ack => {}
            Method::Options => reply(&mut tx, 200).await,
            _ => {
                // RFC 3261 section 21.4.6: a 405 lists the methods that are allowed.
                let allow = Header::Allow(crate::phone::sip::screen::ALLOWED_METHODS.into());
                if let Err(e) = tx
                    .reply_with(StatusCode::from(405), vec![allow], None)
                    .await
                {
                    tracing::debug!(error = %e, "SIP trunk: 405 not sent");
                }
            }
        }
    }
}

/// The value of the first header named `name` (case-insensitive).
fn header(request: &Request, name: &str) -> Option<String> {
    request
        .headers
        .iter()
        .find(|h| h.name().eq_ignore_ascii_case(name))
        .map(|h| h.value().to_owned())
}

/// Answers a server transaction with a bare final response.
async fn reply(tx: &mut Transaction, status: u16) {
    if let Err(e) = tx.reply(StatusCode::from(status)).await {
        tracing::debug!(error = %e, status, "SIP trunk: reply not sent");
    }
}

/// A `Content-Type: application/sdp` header.
fn sdp_type() -> Header {
    Header::ContentType(SDP_TYPE.into())
}

/// Answers what the far end asks inside an established dialog, other than BYE (which the dialog
/// answers itself): a re-INVITE or UPDATE that repeats the SDP the far end last sent (or carries
/// none: a session refresh, RFC 4028) gets 200 with `local_sdp`, the SDP this side last sent; any
/// other offer gets 488 (this is for a leg not yet answered: an answered leg's re-offers are its
/// [`Renegotiation`]'s); OPTIONS and INFO get 200;
/// anything else 501. Returns whether the state was such a request.
async fn answer_in_dialog(state: &DialogState, remote_sdp: &str, local_sdp: &str) -> bool {
    match state {
        DialogState::Updated(id, request, handle) => {
            let body = String::from_utf8_lossy(&request.body);
            let refresh = body.trim().is_empty() || body == remote_sdp;
            let sent = if refresh {
                handle
                    .respond(
                        StatusCode::OK,
                        Some(vec![sdp_type()]),
                        Some(local_sdp.as_bytes().to_vec()),
                    )
                    .await
            } else {
                tracing::info!(%id, "SIP trunk: re-offer from the network before the answer refused with 488");
                handle.reply(StatusCode::from(488)).await
            };
            if sent.is_err() {
                tracing::debug!(%id, "SIP trunk: in-dialog answer not sent");
            }
            true
        }
        DialogState::Options(_, _, handle) | DialogState::Info(_, _, handle) => {
            let _ = handle.reply(StatusCode::OK).await;
            true
        }
        DialogState::Refer(_, _, handle)
        | DialogState::Message(_, _, handle)
        | DialogState::Notify(_, _, handle)
        | DialogState::Publish(_, _, handle) => {
            let _ = handle.reply(StatusCode::from(501)).await;
            true
        }
        _ => false,
    }
}

/// A command a leg cannot carry out in this version, answered per the trait's contract.
fn unsupported(shared: &Shared, leg: PhoneLegId, command: &PhoneCommand) {
    match command {
        PhoneCommand::Offer { .. } => {
            tracing::info!(?leg, "SIP trunk: re-offer before the answer; refused");
            shared.reports.report(PhoneEvent::Rejected {
                leg,
                reason: PhoneRejection::Unreachable,
            });
        }
        other => {
            tracing::info!(?leg, command = ?other, "SIP trunk: command does not apply to this leg; ignored")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trunk_uris() {
        assert!(parse_trunk_uri("sip:127.0.0.1:5090;transport=udp").is_ok());
        assert!(parse_trunk_uri("sip:carrier.example").is_ok());
        assert!(parse_trunk_uri("127.0.0.1:5090").is_err());
        assert!(parse_trunk_uri("http://x").is_err());
    }

    #[test]
    fn refusals_answer_what_expects_an_answer() {
        let leg = PhoneLegId(1);
        let n = Msisdn::parse("+4799000001").unwrap();
        assert!(matches!(
            refusal(
                &PhoneCommand::HandOver {
                    leg,
                    msisdn: n.clone(),
                    peer: n
                },
                "x"
            ),
            Some(PhoneEvent::HandOverFailed { .. })
        ));
        assert!(matches!(
            refusal(
                &PhoneCommand::Offer {
                    leg,
                    sdp: Sdp::trusted("v=0")
                },
                "x"
            ),
            Some(PhoneEvent::Rejected { .. })
        ));
        assert_eq!(refusal(&PhoneCommand::Alerting { leg }, "x"), None);
    }

    #[test]
    fn the_fork_of_a_call_brought_in_is_a_hairpin() {
        let a = Msisdn::parse("+4799000001").unwrap();
        let b = Msisdn::parse("+4799000002").unwrap();
        let offer = Sdp::trusted("v=0\r\ns=phone\r\n");
        let brought_in: HashMap<_, _> = [(
            PhoneLegId::from_network(1),
            PhoneEvent::Incoming {
                leg: PhoneLegId::from_network(1),
                from: a.clone(),
                to: b.clone(),
                sdp: offer.clone(),
                context: crate::core::CallContext::default(),
            },
        )]
        .into();
        assert!(is_hairpin(&brought_in, &b, &a, &offer));
        // Another caller, callee or offer: a call of its own.
        assert!(!is_hairpin(&brought_in, &a, &b, &offer));
        assert!(!is_hairpin(
            &brought_in,
            &b,
            &a,
            &Sdp::trusted("v=0\r\ns=other\r\n")
        ));
        assert!(!is_hairpin(&HashMap::new(), &b, &a, &offer));
    }
}
