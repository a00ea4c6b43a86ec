//! Registering with the trunk (`--sip-register`, PROTOCOL.md section 13): REGISTER of the
//! credential's user name, answered challenges (401/407) with its password, kept fresh at 75 % of
//! the expiry the trunk grants, retried after a failure 1 s doubling to 60 s (rsipstack's
//! `Registration::keep_alive`), and removed (`Expires: 0`) when the trunk stops.

use super::*;
use rsipstack::dialog::registration::{RefreshOutcome, Registration};

/// The expiry each REGISTER asks for (RFC 3261 section 10.2.1.1: the registrar may grant less, and
/// the refresh follows what it grants).
pub(super) const EXPIRES: u32 = 3600;

/// How long the trunk waits at its end for the REGISTER that removes the registration.
pub(super) const UNREGISTER_WAIT: Duration = Duration::from_secs(2);

/// Registers `credential` with `trunk` and keeps it registered until `stop`, then unregisters
/// (within [`UNREGISTER_WAIT`]). Sets [`crate::metric_names::SIP_REGISTERED`] after every try and
/// logs each change (a failure once, not at every retry).
pub(super) async fn keep_registered(
    endpoint: EndpointInnerRef,
    trunk: Uri,
    credential: Credential,
    stop: CancellationToken,
) {
    let gauge = metrics::gauge!(crate::metric_names::SIP_REGISTERED);
    gauge.set(0.0);
    let username = credential.username.clone();
    let mut registration = Registration::new(endpoint, Some(credential));
    let mut registered: Option<bool> = None;
    registration
        .keep_alive(trunk.clone(), EXPIRES, stop, |outcome| {
            let (now, status, error) = match &outcome {
                RefreshOutcome::Registered(response) => {
                    (true, Some(u16::from(response.status_code.clone())), None)
                }
                RefreshOutcome::Rejected(response) => {
                    (false, Some(u16::from(response.status_code.clone())), None)
                }
                RefreshOutcome::Failed(e) => (false, None, Some(e.to_string())),
            };
            gauge.set(if now { 1.0 } else { 0.0 });
            if registered != Some(now) {
                if now {
                    tracing::info!(%username, ?status, "SIP trunk: registered");
                } else {
                    tracing::warn!(
                        %username,
                        ?status,
                        ?error,
                        "SIP trunk: REGISTER failed; retrying (1 s doubling to 60 s), calls from \
                         the trunk may not reach us meanwhile"
                    );
                }
                registered = Some(now);
            }
        })
        .await;
    if registered == Some(true) {
        match tokio::time::timeout(UNREGISTER_WAIT, registration.register(trunk, Some(0))).await {
            Ok(Ok(_)) => tracing::info!(%username, "SIP trunk: unregistered"),
            Ok(Err(e)) => tracing::info!(%username, error = %e, "SIP trunk: unregistering failed"),
            Err(_) => tracing::info!(%username, "SIP trunk: no answer to unregistering"),
        }
    }
    gauge.set(0.0);
}
