//! The newcomer guide `serve` prints when it made the JWT secret itself: the demo numbers, demo
//! tokens for them, and commands to paste that place a call.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use webterminal_core::auth;
use webterminal_core::core::Msisdn;

/// Demo subscribers that `serve` prints tokens for when it made the secret itself.
const DEMO_MSISDNS: [&str; 2] = ["+4799990001", "+4799990002"];

/// The JSON of a Pipe message placing a call to `to` with `sdp`, safe inside single shell quotes
/// (JSON may write a `'` escaped, and the shell would end its quoting at one).
fn demo_call_body(sdp: &str, to: &Msisdn) -> String {
    serde_json::json!({"offer": {"sdp": sdp, "msisdn": {"e164": to.as_str()}}})
        .to_string()
        .replace('\'', "\\u0027")
}

/// The demo numbers, parsed.
pub(crate) fn demo_numbers() -> Vec<Msisdn> {
    DEMO_MSISDNS
        .iter()
        .map(|m| Msisdn::parse(m).expect("demo numbers are E.164"))
        .collect()
}

/// Demo tokens (1 day) for the demo numbers and a grpcurl command that places a call.
pub(crate) fn print_newcomer_guide(
    secret: &str,
    stored_at: &Path,
    listen: SocketAddr,
    transport: &str,
) {
    let day = Duration::from_secs(24 * 3600);
    let numbers = demo_numbers();
    let tokens: Vec<String> = numbers
        .iter()
        .map(|m| auth::mint_token(secret.as_bytes(), m, auth::REQUIRED_SCOPE, day))
        .collect();
    say!("");
    say!(
        "No --jwt-secret given: using the secret in {}",
        stored_at.display()
    );
    say!(
        "Access tokens, valid for 1 day (make more with `webterminal-core token --msisdn +47...`):"
    );
    for (number, token) in numbers.iter().zip(&tokens) {
        say!("  {number}: {token}");
    }
    say!("");
    let web = if transport == "-plaintext" {
        "http"
    } else {
        "https"
    };
    say!(
        "Softphone: open {web}://{listen}/ in two browser tabs, paste a token above (or get a \
         demo token) in each, register, and call."
    );
    let sdp = webterminal_core::phone::sim::generated_sdp(&numbers[0], 1);
    let body = demo_call_body(sdp.as_str(), &numbers[1]);
    say!("");
    say!(
        "Call {} as {} (the SDP is generated and carries no media; with no terminal of {} open, \
         its simulated phone rings):",
        numbers[1],
        numbers[0],
        numbers[1]
    );
    say!(
        "  grpcurl {} -H 'authorization: Bearer {}' -d '{}' {} wgtwo.webterminal.v0.WebTerminalService/Pipe",
        transport, tokens[0], body, listen
    );
    say!("");
    say!(
        "Then, in another shell, make the simulated phone of {} answer:",
        numbers[1]
    );
    say!(
        "  grpcurl {} -d '{{\"msisdn\":\"{}\"}}' {} webterminal.core.v1.SimulatedPhoneNetwork/Answer",
        transport, numbers[1], listen
    );
    say!("");
    if transport != "-plaintext" {
        // The example terminal speaks plaintext only.
        return;
    }
    say!(
        "Or open a terminal for {} that answers, and call it:",
        numbers[1]
    );
    say!(
        "  cargo run --example terminal -- --addr http://{} --token '{}' wait --answer",
        listen,
        tokens[1]
    );
    say!(
        "  cargo run --example terminal -- --addr http://{} --token '{}' call {} --hangup-after 5s",
        listen,
        tokens[0],
        numbers[1]
    );
    say!("or have the simulated phone of {} call it:", numbers[0]);
    say!(
        "  grpcurl {} -d '{{\"from\":\"{}\",\"to\":\"{}\"}}' {} webterminal.core.v1.SimulatedPhoneNetwork/Dial",
        transport, numbers[0], numbers[1], listen
    );
    say!("");
}

#[cfg(test)]
mod tests {
    use super::*;
    use webterminal_core::wire;

    #[test]
    fn the_demo_call_body_is_shell_and_json_safe() {
        let sdp = "v=0\r\na=\"x\"\\'";
        let to = Msisdn::parse(DEMO_MSISDNS[1]).unwrap();
        let body = demo_call_body(sdp, &to);
        assert!(!body.contains('\''), "{body}");
        let back: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(back["offer"]["sdp"], sdp);
        assert_eq!(back["offer"]["msisdn"]["e164"], DEMO_MSISDNS[1]);
    }

    #[test]
    fn demo_sdp_passes_validation() {
        let m = Msisdn::parse(DEMO_MSISDNS[0]).unwrap();
        let sdp = webterminal_core::phone::sim::generated_sdp(&m, 1);
        webterminal_core::core::Sdp::parse(sdp.as_str(), wire::DEFAULT_MAX_SDP_BYTES).unwrap();
    }
}
