//! OPTIONS pings toward the trunk (PROTOCOL.md section 13): whether the trunk is up.

use super::*;

/// The longest an OPTIONS ping waits for its answer: 64*T1, a non-INVITE transaction's Timer F
/// (RFC 3261 section 17.1.2.2). A shorter `--sip-options-interval` is the wait instead.
pub(super) const PING_WAIT: Duration = Duration::from_secs(32);

/// Where and how often [`ping_trunk`] pings.
pub(super) struct Ping {
    pub(super) endpoint: EndpointInnerRef,
    /// The trunk's URI: the Request-URI and To of each OPTIONS.
    pub(super) trunk: Uri,
    pub(super) trunk_addr: SipAddr,
    /// This side's `host:port`, for From.
    pub(super) local: String,
    /// `--sip-options-interval`, more than zero.
    pub(super) interval: Duration,
}

/// Pings the trunk with OPTIONS every `ping.interval` (PROTOCOL.md section 13), each a new
/// transaction with a fresh Call-ID, waiting for its answer up to the interval (at most
/// [`PING_WAIT`]); reports each change of [`mapping::trunk_answered`] through `up` and in one log
/// line, and sets [`crate::metric_names::SIP_TRUNK_UP`] after every ping. Runs until cancelled.
pub(super) async fn ping_trunk(ping: Ping, up: watch::Sender<bool>) {
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
pub(super) async fn options(ping: &Ping) -> Option<u16> {
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
pub(super) fn options_request(ping: &Ping) -> Result<Request, String> {
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
