//! Media anchored in rtpengine (`--rtpengine`, PROTOCOL.md section 13): each SDP passed through it
//! by the rules of [`media`], failures logged once per burst, the ng ping, and the deletion of a
//! previous run's leftovers.

use super::*;

/// Where the legs' media is anchored: rtpengine (`--rtpengine`, PROTOCOL.md section 13), with the
/// rules of [`media`].
pub(super) struct Anchor {
    pub(super) engine: RtpEngine,
    /// This trunk's call-id prefix ([`media::call_id_prefix`]).
    pub(super) prefix: String,
    /// One log line per burst of failures.
    pub(super) trouble: std::sync::Mutex<LogThrottle>,
    /// The rtpengine call-ids of this run's legs, from just before their first offer until their
    /// delete: not leftovers. Held briefly, never across an await.
    pub(super) live: std::sync::Mutex<HashSet<String>>,
}

impl Anchor {
    pub(super) fn trouble(&self) -> std::sync::MutexGuard<'_, LogThrottle> {
        self.trouble
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(super) fn live(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Passes `sdp` through rtpengine as `step` of call `call_id` (the offerer tagged `from_tag`,
    /// the answerer `to_tag`); returns the SDP to send on. A failure is logged (once per burst)
    /// and counted by the client.
    pub(super) async fn pass(
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
    pub(super) fn failed(&self, leg: Option<PhoneLegId>, error: &RtpEngineError) {
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
    pub(super) async fn delete(&self, leg: PhoneLegId, call_id: &str) {
        if let Err(e) = self.engine.delete(call_id).await {
            self.failed(Some(leg), &e);
        }
        self.live().remove(call_id);
    }
}

/// The ng commands the trunk sends, each a label of [`crate::metric_names::RTPENGINE_ERRORS`].
pub(super) const NG_COMMANDS: [&str; 6] = ["offer", "answer", "delete", "ping", "list", "query"];

/// Describes the rtpengine metrics and shows each error counter from 0 (so that a rate over it
/// starts with the trunk, not with its first failure).
pub(super) fn describe_rtpengine_metrics() {
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
pub(super) async fn watch_rtpengine(anchor: Arc<Anchor>) {
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
pub(super) async fn delete_leftovers(anchor: &Anchor) -> bool {
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

/// A leg's media in rtpengine: its call there and the offerer's tag.
pub(super) struct LegMedia {
    pub(super) anchor: Arc<Anchor>,
    pub(super) call_id: String,
    pub(super) from_tag: String,
}
