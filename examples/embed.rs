//! Embedding the core with your own phone network (PROTOCOL.md section 7): a program that serves the
//! WebTerminal API on 127.0.0.1:50051 and reaches "the phone network" through its own
//! `PhoneNetwork`. This toy network answers every number one second after it rings, echoing the
//! caller's SDP back (no media is carried); a real one would bridge to SIP, a carrier API, etc.
//!
//! ```text
//! cargo run --example embed -- my-secret
//! cargo run --example terminal -- --token "$(cargo run -q -- token --msisdn +4799990001 --jwt-secret my-secret)" call +4712345678
//! ```

use std::time::Duration;
use webterminal_core::core::{PhoneCommand, PhoneEvent};
use webterminal_core::phone::{PhoneNetwork, PhoneReports};
use webterminal_core::server::{Exchange, ServerConfig};

/// Every number rings, then answers after a second; handovers and re-offers succeed at once.
struct EchoNetwork {
    reports: PhoneReports,
}

impl PhoneNetwork for EchoNetwork {
    /// Runs on the core's driver task: must not block, so anything slow is spawned.
    fn send(&mut self, command: PhoneCommand) {
        println!("phone network <- {command:?}");
        let reports = self.reports.clone();
        match command {
            PhoneCommand::Ring { leg, sdp, .. } => {
                reports.report(PhoneEvent::Ringing { leg });
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    reports.report(PhoneEvent::Answered { leg, sdp });
                });
            }
            PhoneCommand::HandOver { leg, msisdn, .. } => {
                // The subscriber's phone comes up with an offer of its own.
                let sdp = webterminal_core::phone::sim::generated_sdp(&msisdn, leg.0);
                reports.report(PhoneEvent::HandOverReady { leg, sdp });
            }
            PhoneCommand::Offer { leg, sdp } => {
                reports.report(PhoneEvent::Answered { leg, sdp });
            }
            // Answers to the phones' own offers, ringback, releases: nothing to do in this toy.
            // (A real network also reports calls from its phones: `PhoneEvent::Incoming`.)
            _ => {}
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secret = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "my-secret".into());
    let config = ServerConfig::new(secret.into_bytes());
    let exchange = Exchange::with_phone_network(config, |reports| EchoNetwork { reports });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:50051").await?;
    println!("serving on {}; Ctrl-C stops", listener.local_addr()?);
    exchange
        .serve(listener, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
