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

use super::mapping::{self, Admission, Direction, Release, SentInvite};
use super::media::{self, Step};
use super::rtpengine::{RtpEngine, RtpEngineError};
use super::socket::SipSocket;
use super::{Cidr, SipConfig};
use crate::core::{Msisdn, PhoneCommand, PhoneEvent, PhoneLegId, PhoneRejection, Sdp};
use crate::pacing::LogThrottle;
use crate::phone::{PhoneNetwork, PhoneReports};
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

/// How long a cancelled INVITE's leg waits for the INVITE transaction to end (64*T1 and some).
const CANCEL_WAIT: Duration = Duration::from_secs(40);

/// The longest an OPTIONS ping waits for its answer: 64*T1, a non-INVITE transaction's Timer F
/// (RFC 3261 section 17.1.2.2). A shorter `--sip-options-interval` is the wait instead.
const PING_WAIT: Duration = Duration::from_secs(32);

/// Validates a `--sip-trunk` value: a `sip:` or `sips:` URI with a host.
///
/// # Errors
/// What is wrong, for [`super::SipConfigError::Trunk`].
pub(super) fn parse_trunk_uri(uri: &str) -> Result<Uri, String> {
    let lower = uri.to_ascii_lowercase();
    if !lower.starts_with("sip:") {
        return Err("it must start with sip:".to_owned());
    }
    let parsed = Uri::try_from(uri).map_err(|e| e.to_string())?;
    if parsed.host_with_port.host.to_string().is_empty() {
        return Err("it has no host".to_owned());
    }
    Ok(parsed)
}

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

/// Where the legs' media is anchored: rtpengine (`--rtpengine`, PROTOCOL.md section 13), with the
/// rules of [`media`].
struct Anchor {
    engine: RtpEngine,
    /// This trunk's call-id prefix ([`media::call_id_prefix`]).
    prefix: String,
    /// One log line per burst of failures.
    trouble: std::sync::Mutex<LogThrottle>,
    /// The rtpengine call-ids of this run's legs, from just before their first offer until their
    /// delete: not leftovers. Held briefly, never across an await.
    live: std::sync::Mutex<HashSet<String>>,
}

impl Anchor {
    fn trouble(&self) -> std::sync::MutexGuard<'_, LogThrottle> {
        self.trouble
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Passes `sdp` through rtpengine as `step` of call `call_id` (the offerer tagged `from_tag`,
    /// the answerer `to_tag`); returns the SDP to send on. A failure is logged (once per burst)
    /// and counted by the client.
    async fn pass(
        &self,
        leg: PhoneLegId,
        step: Step,
        call_id: &str,
        from_tag: &str,
        to_tag: &str,
        sdp: &str,
    ) -> Result<String, RtpEngineError> {
        let flags = media::flags(step);
        let result = if media::is_offer(step) {
            self.live().insert(call_id.to_owned());
            self.engine.offer(call_id, from_tag, sdp, flags).await
        } else {
            self.engine
                .answer(call_id, from_tag, to_tag, sdp, flags)
                .await
        };
        match &result {
            Ok(_) => self.trouble().reset(),
            Err(e) => self.failed(Some(leg), e),
        }
        result
    }

    /// Logs a failure, at most once per [`media::LOG_INTERVAL`].
    fn failed(&self, leg: Option<PhoneLegId>, error: &RtpEngineError) {
        let due = self.trouble().due(std::time::Instant::now());
        if let Some(count) = due {
            tracing::warn!(
                ?leg,
                %error,
                failures = count,
                "rtpengine: request failed; calls to and from phones fail while it does \
                 (one line per burst, webterminal_rtpengine_errors_total counts them all)"
            );
        }
    }

    /// Deletes call `call_id` from rtpengine (a leg's end).
    async fn delete(&self, leg: PhoneLegId, call_id: &str) {
        if let Err(e) = self.engine.delete(call_id).await {
            self.failed(Some(leg), &e);
        }
        self.live().remove(call_id);
    }
}

/// The ng commands the trunk sends, each a label of [`crate::metric_names::RTPENGINE_ERRORS`].
const NG_COMMANDS: [&str; 6] = ["offer", "answer", "delete", "ping", "list", "query"];

/// Describes the rtpengine metrics and shows each error counter from 0 (so that a rate over it
/// starts with the trunk, not with its first failure).
fn describe_rtpengine_metrics() {
    use crate::metric_names::{RTPENGINE_ERRORS, RTPENGINE_UP};
    metrics::describe_counter!(
        RTPENGINE_ERRORS,
        "rtpengine requests that failed (no reply in time, result error, garbage), by ng command."
    );
    metrics::describe_gauge!(
        RTPENGINE_UP,
        "1 when rtpengine answers its ping, 0 when it does not."
    );
    for command in NG_COMMANDS {
        metrics::counter!(RTPENGINE_ERRORS, "command" => command).increment(0);
    }
}

/// Pings rtpengine every [`media::PING_INTERVAL`], setting [`crate::metric_names::RTPENGINE_UP`]
/// and logging each change; after the first answered ping, deletes the calls rtpengine lists with
/// this trunk's prefix that this run did not make (leftovers of a previous run). Runs until
/// cancelled.
async fn watch_rtpengine(anchor: Arc<Anchor>) {
    let gauge = metrics::gauge!(crate::metric_names::RTPENGINE_UP);
    let mut ticks = tokio::time::interval(media::PING_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut up = None;
    let mut cleaned = false;
    loop {
        ticks.tick().await;
        let answered = match anchor.engine.ping().await {
            Ok(()) => true,
            Err(e) => {
                anchor.failed(None, &e);
                false
            }
        };
        gauge.set(if answered { 1.0 } else { 0.0 });
        if up != Some(answered) {
            if answered {
                tracing::info!(rtpengine = %anchor.engine.addr(), "rtpengine: up (ping answered)");
            } else {
                tracing::warn!(rtpengine = %anchor.engine.addr(), "rtpengine: down (ping unanswered); calls to and from phones fail");
            }
            up = Some(answered);
        }
        if answered && !cleaned {
            cleaned = delete_leftovers(&anchor).await;
        }
    }
}

/// Deletes the calls rtpengine lists (up to [`media::LEFTOVERS_LISTED`]) that carry this trunk's
/// prefix and are no leg of this run. Returns whether the list could be had.
async fn delete_leftovers(anchor: &Anchor) -> bool {
    let calls = match anchor.engine.list(media::LEFTOVERS_LISTED).await {
        Ok(calls) => calls,
        Err(e) => {
            anchor.failed(None, &e);
            return false;
        }
    };
    let leftovers: Vec<String> = {
        let live = anchor.live();
        calls
            .into_iter()
            .filter(|call| media::is_ours(&anchor.prefix, call) && !live.contains(call))
            .collect()
    };
    if !leftovers.is_empty() {
        tracing::info!(
            count = leftovers.len(),
            "rtpengine: deleting calls left over by a previous run"
        );
    }
    for call in leftovers {
        if let Err(e) = anchor.engine.delete(&call).await {
            anchor.failed(None, &e);
        }
    }
    true
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
}

impl Shared {
    /// The table of sent INVITEs (a poisoned lock is taken as it is: the table holds no invariant a
    /// panic could break).
    fn sent(&self) -> std::sync::MutexGuard<'_, HashMap<PhoneLegId, SentInvite>> {
        self.sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

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
}

impl Trunk {
    /// Binds the socket, starts the endpoint, resolves the allow list.
    /// Hands `up` back with the error, for the caller to report the trunk down.
    async fn open(
        config: SipConfig,
        max_sdp_bytes: usize,
        reports: PhoneReports,
        up: watch::Sender<bool>,
    ) -> Result<Trunk, (String, watch::Sender<bool>)> {
        match Trunk::open_endpoint(&config).await {
            Ok(opened) => Ok(Trunk::assemble(config, max_sdp_bytes, reports, up, opened).await),
            Err(why) => Err((why, up)),
        }
    }

    /// Binds the socket and starts the endpoint.
    async fn open_endpoint(config: &SipConfig) -> Result<Opened, String> {
        let trunk = parse_trunk_uri(&config.trunk)?;
        let trunk_addr = SipAddr::try_from(&trunk).map_err(|e| format!("--sip-trunk: {e}"))?;
        let socket = match &config.socket {
            Some(bound) => bound.duplicate(),
            None => std::net::UdpSocket::bind(config.listen),
        }
        .and_then(|s| {
            s.set_nonblocking(true)?;
            tokio::net::UdpSocket::from_std(s)
        })
        .map_err(|e| format!("--sip-listen {}: {e}", config.listen))?;
        let socket = Arc::new(SipSocket::new(socket));
        let cancel = CancellationToken::new();
        let connection =
            UdpConnection::from_socket(socket.clone(), None, Some(cancel.child_token()))
                .await
                .map_err(|e| format!("--sip-listen {}: {e}", config.listen))?;
        let local = connection.get_addr().addr.to_string();
        let transport = TransportLayer::new(cancel.child_token());
        transport.add_transport(connection.into());
        let endpoint = EndpointBuilder::new()
            .with_user_agent(USER_AGENT)
            .with_inspector(Box::new(Counting::new()))
            .with_cancel_token(cancel.clone())
            .with_transport_layer(transport)
            .build();
        let incoming = endpoint
            .incoming_transactions()
            .map_err(|e| format!("SIP endpoint: {e}"))?;
        let inner = endpoint.inner.clone();
        let dialogs = Arc::new(DialogLayer::new(endpoint.inner.clone()));
        let media = match config.rtpengine {
            Some(addr) => Some(
                RtpEngine::connect(addr)
                    .await
                    .map_err(|e| format!("--rtpengine {addr}: {e}"))?,
            ),
            None => None,
        };
        tokio::spawn(async move { endpoint.serve().await });
        Ok(Opened {
            trunk,
            trunk_addr,
            local,
            socket,
            cancel,
            incoming,
            inner,
            dialogs,
            media,
        })
    }

    /// The trunk task's state over an open endpoint; starts the OPTIONS pings.
    async fn assemble(
        config: SipConfig,
        max_sdp_bytes: usize,
        reports: PhoneReports,
        up: watch::Sender<bool>,
        opened: Opened,
    ) -> Trunk {
        let Opened {
            trunk,
            trunk_addr,
            local,
            socket,
            cancel,
            incoming,
            inner,
            dialogs,
            media,
        } = opened;
        let prefix = media::call_id_prefix(&local);
        let media = media.map(|engine| {
            describe_rtpengine_metrics();
            let anchor = Arc::new(Anchor {
                engine,
                prefix: prefix.clone(),
                trouble: std::sync::Mutex::new(LogThrottle::new(media::LOG_INTERVAL)),
                live: std::sync::Mutex::new(HashSet::new()),
            });
            tracing::info!(
                rtpengine = %anchor.engine.addr(),
                %prefix,
                "SIP trunk: media anchored in rtpengine"
            );
            let watched = anchor.clone();
            let stop = cancel.child_token();
            tokio::spawn(async move {
                tokio::select! {
                    () = stop.cancelled() => {}
                    () = watch_rtpengine(watched) => {}
                }
            });
            anchor
        });
        let up_rx = up.subscribe();
        if config.options_interval.is_zero() {
            tracing::info!("SIP trunk: OPTIONS pings off (--sip-options-interval 0)");
        } else {
            let ping = Ping {
                endpoint: inner,
                trunk: trunk.clone(),
                trunk_addr: trunk_addr.clone(),
                local: local.clone(),
                interval: config.options_interval,
            };
            let stop = cancel.child_token();
            tokio::spawn(async move {
                tokio::select! {
                    () = stop.cancelled() => {}
                    () = ping_trunk(ping, up) => {}
                }
            });
        }

        let allow = if config.allow.is_empty() {
            trunk_hosts(&trunk).await
        } else {
            config.allow.clone()
        };
        tracing::info!(
            %local,
            trunk = %config.trunk,
            allow = ?allow,
            "SIP trunk: listening on UDP"
        );
        let (ended_tx, ended) = mpsc::unbounded_channel();
        Trunk {
            shared: Arc::new(Shared {
                dialogs,
                reports,
                trunk,
                trunk_addr,
                local,
                ended: ended_tx,
                sent: std::sync::Mutex::new(HashMap::new()),
                prefix,
                media,
                socket,
            }),
            endpoint_cancel: cancel,
            incoming,
            ended,
            allow,
            max_sdp_bytes,
            legs: HashMap::new(),
            incoming_calls: 0,
            up: up_rx,
        }
    }

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
        self.endpoint_cancel.cancel();
    }

    /// One command of the switch.
    fn command(&mut self, command: PhoneCommand) {
        match command {
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
            _ => reply(&mut tx, 405).await,
        }
    }

    /// An INVITE outside a dialog (PROTOCOL.md section 13, "an incoming call").
    async fn invite(&mut self, mut tx: Transaction) {
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
            let _ = shared.ended.send(Ended(leg));
        });
    }
}

/// The request methods counted by name in [`crate::metric_names::SIP_REQUESTS`]; any other is
/// `other`.
const COUNTED_METHODS: [&str; 14] = [
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "OPTIONS",
    "REGISTER",
    "PRACK",
    "SUBSCRIBE",
    "NOTIFY",
    "PUBLISH",
    "INFO",
    "REFER",
    "MESSAGE",
    "UPDATE",
];

/// The status classes of [`crate::metric_names::SIP_RESPONSES`].
const STATUS_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "6xx"];

/// One direction's counters, resolved once.
struct Counters {
    /// Per [`COUNTED_METHODS`], then `other`.
    requests: Vec<metrics::Counter>,
    /// Per [`STATUS_CLASSES`].
    responses: Vec<metrics::Counter>,
}

impl Counters {
    fn new(direction: &'static str) -> Counters {
        use crate::metric_names::{SIP_REQUESTS, SIP_RESPONSES};
        Counters {
            requests: COUNTED_METHODS
                .iter()
                .chain(&["other"])
                .map(|method| {
                    metrics::counter!(SIP_REQUESTS, "direction" => direction, "method" => *method)
                })
                .collect(),
            responses: STATUS_CLASSES
                .iter()
                .map(|class| {
                    metrics::counter!(SIP_RESPONSES, "direction" => direction, "status" => *class)
                })
                .collect(),
        }
    }

    /// Counts `message`: an atomic increment, never blocking.
    fn count(&self, message: &SipMessage) {
        match message {
            SipMessage::Request(request) => {
                let method = request.method.to_string();
                let at = COUNTED_METHODS
                    .iter()
                    .position(|m| m.eq_ignore_ascii_case(&method))
                    .unwrap_or(COUNTED_METHODS.len());
                self.requests[at].increment(1);
            }
            SipMessage::Response(response) => {
                let class = usize::from(u16::from(response.status_code.clone()) / 100);
                if let Some(counter) = class.checked_sub(1).and_then(|at| self.responses.get(at)) {
                    counter.increment(1);
                }
            }
        }
    }
}

/// Counts every SIP message the endpoint sends and takes in (PROTOCOL.md section 13's metrics:
/// [`crate::metric_names::SIP_REQUESTS`], [`crate::metric_names::SIP_RESPONSES`]), as the stack's
/// message inspector: it sees each transmission before it leaves (retransmissions included) and
/// each message received from the network once (the stack inspects a response a second time, with
/// no source address, as it hands it to its transaction: not counted). Retransmissions the stack
/// absorbs for transactions already ended are not seen.
struct Counting {
    received: Counters,
    sent: Counters,
}

impl Counting {
    fn new() -> Counting {
        Counting {
            received: Counters::new("in"),
            sent: Counters::new("out"),
        }
    }
}

impl rsipstack::transaction::endpoint::MessageInspector for Counting {
    fn before_send(&self, message: SipMessage, _to: Option<&SipAddr>) -> SipMessage {
        self.sent.count(&message);
        message
    }

    fn after_received(&self, message: SipMessage, from: Option<&SipAddr>) -> SipMessage {
        if from.is_some() {
            self.received.count(&message);
        }
        message
    }
}

/// What [`Trunk::open_endpoint`] opened.
struct Opened {
    trunk: Uri,
    trunk_addr: SipAddr,
    local: String,
    socket: Arc<SipSocket>,
    cancel: CancellationToken,
    incoming: rsipstack::transaction::TransactionReceiver,
    inner: EndpointInnerRef,
    dialogs: Arc<DialogLayer>,
    /// The ng client, with `--rtpengine`.
    media: Option<RtpEngine>,
}

/// Where and how often [`ping_trunk`] pings.
struct Ping {
    endpoint: EndpointInnerRef,
    /// The trunk's URI: the Request-URI and To of each OPTIONS.
    trunk: Uri,
    trunk_addr: SipAddr,
    /// This side's `host:port`, for From.
    local: String,
    /// `--sip-options-interval`, more than zero.
    interval: Duration,
}

/// Pings the trunk with OPTIONS every `ping.interval` (PROTOCOL.md section 13), each a new
/// transaction with a fresh Call-ID, waiting for its answer up to the interval (at most
/// [`PING_WAIT`]); reports each change of [`mapping::trunk_answered`] through `up` and in one log
/// line, and sets [`crate::metric_names::SIP_TRUNK_UP`] after every ping. Runs until cancelled.
async fn ping_trunk(ping: Ping, up: watch::Sender<bool>) {
    let gauge = metrics::gauge!(crate::metric_names::SIP_TRUNK_UP);
    gauge.set(1.0);
    let mut ticks = tokio::time::interval(ping.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let status = options(&ping).await;
        let answered = mapping::trunk_answered(status);
        gauge.set(if answered { 1.0 } else { 0.0 });
        if answered != *up.borrow() {
            if answered {
                tracing::info!(?status, "SIP trunk: up again (OPTIONS answered)");
            } else {
                tracing::warn!(
                    ?status,
                    "SIP trunk: down (OPTIONS unanswered); calls to phones fail until it answers"
                );
            }
            up.send_replace(answered);
        }
    }
}

/// One OPTIONS to the trunk: its final response's status, or none when none came within the
/// interval (or [`PING_WAIT`]) or the request could not be sent.
async fn options(ping: &Ping) -> Option<u16> {
    let request = options_request(ping)
        .map_err(|e| tracing::warn!(error = %e, "SIP trunk: cannot build an OPTIONS ping"))
        .ok()?;
    let key = TransactionKey::from_request(&request, TransactionRole::Client).ok()?;
    let mut tx = Transaction::new_client(key, request, ping.endpoint.clone(), None);
    tx.destination = Some(ping.trunk_addr.clone());
    if let Err(e) = tx.send().await {
        tracing::debug!(error = %e, "SIP trunk: OPTIONS not sent");
        return None;
    }
    let answer = async {
        while let Some(message) = tx.receive().await {
            if let SipMessage::Response(response) = message {
                if response.status_code.kind() != StatusCodeKind::Provisional {
                    return Some(u16::from(response.status_code));
                }
            }
        }
        None
    };
    tokio::time::timeout(ping.interval.min(PING_WAIT), answer)
        .await
        .ok()
        .flatten()
}

/// An out-of-dialog OPTIONS to the trunk with a fresh Call-ID, From tag and branch.
///
/// # Errors
/// Why the request cannot be made (no transport address for Via, an own URI that does not parse).
fn options_request(ping: &Ping) -> Result<Request, String> {
    let via = ping
        .endpoint
        .get_via(None, None)
        .map_err(|e| e.to_string())?;
    let own = Uri::try_from(format!("sip:{}", ping.local).as_str()).map_err(|e| e.to_string())?;
    let from = rsipstack::sip::typed::From {
        display_name: None,
        uri: own,
        params: vec![],
    }
    .with_tag(rsipstack::transaction::make_tag());
    let to = rsipstack::sip::typed::To {
        display_name: None,
        uri: ping.trunk.clone(),
        params: vec![],
    };
    Ok(ping
        .endpoint
        .make_request(Method::Options, ping.trunk.clone(), via, from, to, 1, None))
}

/// The addresses of the trunk's host: the default allow list.
async fn trunk_hosts(trunk: &Uri) -> Vec<Cidr> {
    let host = trunk
        .host_with_port
        .host
        .to_string()
        .trim_matches(['[', ']'])
        .to_owned();
    if let Ok(ip) = host.parse() {
        return vec![Cidr::host(ip)];
    }
    let lookup = tokio::net::lookup_host((host.as_str(), 5060)).await;
    match lookup {
        Ok(addrs) => addrs.map(|a| Cidr::host(a.ip())).collect(),
        Err(e) => {
            tracing::warn!(%host, error = %e, "SIP trunk: cannot resolve the trunk's host; no INVITE is allowed in");
            Vec::new()
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

/// A re-INVITE's final response, or why none came.
type ReplyFuture = std::pin::Pin<
    Box<dyn std::future::Future<Output = rsipstack::Result<Option<Response>>> + Send>,
>;

/// The offer/answer exchange in progress on an established leg.
enum Pending {
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
struct Renegotiation {
    dialog: InviteDialog,
    /// What the phone last sent.
    remote: String,
    /// What the trunk last sent the phone.
    local: String,
    pending: Pending,
    /// The trunk's tag in rtpengine for this leg, and the phone's.
    ours: String,
    theirs: String,
}

impl Renegotiation {
    fn new(
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
    fn awaits_reply(&self) -> bool {
        matches!(self.pending, Pending::Ours { .. })
    }

    /// The final response of the trunk's re-INVITE (pending forever when none is out).
    async fn reply(&mut self) -> rsipstack::Result<Option<Response>> {
        match &mut self.pending {
            Pending::Ours { reply, .. } => reply.await,
            _ => std::future::pending().await,
        }
    }

    /// Passes `sdp` through rtpengine as `step`, offered by the trunk (`by_us`) or the phone; the
    /// SDP unchanged without `media`.
    /// (`&mut`: the pending re-INVITE's future is not `Sync`, so the leg's future holds no shared
    /// reference to it across an await.)
    async fn pass(
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
    async fn network_request(
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
    async fn offer_from_switch(
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
    async fn reply_came(
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
    async fn answer_from_switch(
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
    async fn command(
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
    async fn offer_failed(&mut self, leg: PhoneLegId) {
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

/// What a `PhoneCommand::Ring` (or `HandOver`) asks to send, and the Call-ID the trunk chose for
/// it.
struct Invite {
    to: Msisdn,
    from: Msisdn,
    /// The caller's offer; none for a handover (a delayed offer: the phone's 2xx makes it).
    sdp: Option<Sdp>,
    context: crate::core::CallContext,
    call_id: String,
}

/// A leg's media in rtpengine: its call there and the offerer's tag.
struct LegMedia {
    anchor: Arc<Anchor>,
    call_id: String,
    from_tag: String,
}

/// A call to a phone (`PhoneCommand::Ring`, PROTOCOL.md section 13). With `--rtpengine`, the
/// caller's offer first goes through rtpengine ([`Step::WebRtcOfferToSip`]; the leg's rtpengine
/// call-id is its SIP Call-ID, its from-tag one of its own, as rsipstack picks the From tag only as
/// the INVITE leaves): a failure there is `Rejected` ([`media::REJECTION_ON_FAILURE`]) before any
/// INVITE; and the leg's end, however it ends, deletes the call from rtpengine.
async fn outgoing_leg(
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
async fn outgoing_dialog(
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
async fn phone_offer(
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
async fn switch_answer(
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

/// A call from a phone (PROTOCOL.md 4.11 and section 13), `call` being its `PhoneEvent::Incoming`.
/// With `media` (`--rtpengine`), the phone's offer first goes through rtpengine
/// ([`Step::SipOfferToWebRtc`]) and the switch is told of the call with rtpengine's offer; a
/// failure there refuses the INVITE with [`media::STATUS_ON_FAILURE`] and nothing rings. The leg's
/// end, however it ends, deletes the call from rtpengine.
async fn incoming_leg(
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
            shared.reports.report(PhoneEvent::Incoming {
                leg,
                from,
                to,
                sdp,
                context,
            });
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
fn refuse_for_media(shared: &Shared, leg: PhoneLegId, dialog: &InviteDialog) {
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
async fn incoming_dialog(
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
}
