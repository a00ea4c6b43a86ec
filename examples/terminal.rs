//! A command-line WebTerminal: registers with the core over gRPC, places or waits for one call, and
//! prints every message it gets. It sends real SDP (a Chromium offer/answer from the repository's fixtures,
//! or a file you give); it carries no media itself.
//!
//! ```text
//! # terminal 1: wait for a call and answer it
//! cargo run --example terminal -- --token "$TOKEN_B" wait --answer
//! # terminal 2: call +4799990002 and hang up 5 s after the answer
//! cargo run --example terminal -- --token "$TOKEN_A" call +4799990002 --hangup-after 5s
//! # an agent who answers, talks 5 s, then transfers the caller to a colleague (or a group)
//! cargo run --example terminal -- --token "$TOKEN_A" wait --answer --transfer-to +4799990002
//! # a colleague who takes every call shown to it (transferred to it, or pulled from its phone)
//! cargo run --example terminal -- --token "$TOKEN_B" wait --answer --take
//! ```
//!
//! Tokens come from `webterminal-core token --msisdn +4799990001` or from the banner `serve` prints.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::metadata::MetadataValue;
use webterminal_core::proto::common::PhoneNumber;
use webterminal_core::proto::webterminal::web_terminal_message::Message;
use webterminal_core::proto::webterminal::web_terminal_service_client::WebTerminalServiceClient;
use webterminal_core::proto::webterminal::{
    action, Action, Answer, Bye, Offer, Ringing, Transfer, WebTerminalMessage,
};

#[derive(Parser)]
#[command(about = "A command-line WebTerminal for webterminal-core")]
struct Args {
    /// The core's address.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    addr: String,
    /// An access token for this terminal's msisdn (HS256 JWT from `webterminal-core token`).
    #[arg(long, env = "WEBTERMINAL_TOKEN")]
    token: String,
    /// Open a MultiPipe instead of a Pipe.
    #[arg(long)]
    multi: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Call a number (E.164) and print the call's progress.
    Call {
        /// The number to call, e.g. +4799990002.
        msisdn: String,
        /// The SDP offer to send (default: the Chromium offer fixture).
        #[arg(long)]
        sdp: Option<PathBuf>,
        /// Send Bye this long after the answer (e.g. `5s`); by default stay until the far side ends.
        #[arg(long, value_parser = parse_seconds)]
        hangup_after: Option<Duration>,
    },
    /// Wait for calls and print them; send Ringing on every offer.
    Wait {
        /// Answer incoming calls (and re-offers) at once.
        #[arg(long)]
        answer: bool,
        /// The SDP answer to send (default: the Chromium answer fixture).
        #[arg(long)]
        sdp: Option<PathBuf>,
        /// Take every call shown to this terminal (`InCall`: another device's call, or one
        /// transferred to this number or its group) by pulling it with the Chromium offer fixture.
        #[arg(long)]
        take: bool,
        /// Transfer each answered call to this number (or group) after `--transfer-after`.
        #[arg(long, value_name = "MSISDN")]
        transfer_to: Option<String>,
        /// How long to talk before `--transfer-to` (e.g. `5s`).
        #[arg(long, value_parser = parse_seconds, default_value = "5s")]
        transfer_after: Duration,
    },
}

/// `5s`, `500ms` or a plain number of seconds.
fn parse_seconds(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration like 5s or 500ms");
    if let Some(ms) = s.strip_suffix("ms") {
        return ms.parse().map(Duration::from_millis).map_err(|_| bad());
    }
    let secs = s.strip_suffix('s').unwrap_or(s);
    secs.parse().map(Duration::from_secs_f64).map_err(|_| bad())
}

fn read_sdp(given: Option<PathBuf>, fixture: &str) -> std::io::Result<String> {
    let path = given.unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/sdp/{fixture}"))
    });
    std::fs::read_to_string(&path)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

fn message(call_id: &str, body: Message) -> WebTerminalMessage {
    WebTerminalMessage {
        message: Some(body),
        call_id: call_id.to_string(),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let mut client = WebTerminalServiceClient::connect(args.addr.clone()).await?;
    let (tx, rx) = mpsc::channel::<WebTerminalMessage>(16);
    let mut request = tonic::Request::new(ReceiverStream::new(rx));
    let bearer: MetadataValue<_> = format!("Bearer {}", args.token).parse()?;
    request.metadata_mut().insert("authorization", bearer);
    let mut inbound = if args.multi {
        client.multi_pipe(request).await?.into_inner()
    } else {
        client.pipe(request).await?.into_inner()
    };
    println!(
        "registered as a {}",
        if args.multi { "MultiPipe" } else { "Pipe" }
    );

    let mut take = false;
    let mut transfer = None;
    let (answer_sdp, hangup_after) = match args.command {
        Command::Call {
            msisdn,
            sdp,
            hangup_after,
        } => {
            let offer = read_sdp(sdp, "chromium-offer.sdp")?;
            let call_id = uuid::Uuid::new_v4().to_string();
            tx.send(message(
                &call_id,
                Message::Offer(Offer {
                    sdp: offer,
                    msisdn: Some(PhoneNumber { e164: msisdn }),
                    data: Default::default(),
                }),
            ))
            .await?;
            (None, hangup_after)
        }
        Command::Wait {
            answer,
            sdp,
            take: take_calls,
            transfer_to,
            transfer_after,
        } => {
            take = take_calls;
            transfer = transfer_to.map(|to| (to, transfer_after));
            let sdp = if answer {
                Some(read_sdp(sdp, "chromium-answer.sdp")?)
            } else {
                None
            };
            (sdp, None)
        }
    };

    while let Some(received) = inbound.next().await {
        let msg = received?;
        print_message(&msg);
        let id = msg.call_id.clone();
        match msg.message {
            Some(Message::Offer(offer)) => {
                let new_call = offer.msisdn.is_some();
                if new_call {
                    println!("-> ringing");
                    tx.send(message(&id, Message::Ringing(Ringing {}))).await?;
                }
                if let Some(sdp) = &answer_sdp {
                    println!("-> answer ({} bytes of SDP)", sdp.len());
                    tx.send(message(&id, Message::Answer(Answer { sdp: sdp.clone() })))
                        .await?;
                    if let (true, Some((to, after))) = (new_call, &transfer) {
                        tokio::time::sleep(*after).await;
                        println!("-> transfer to {to}");
                        let action = Action {
                            message: Some(action::Message::Transfer(Transfer {
                                msisdn: Some(PhoneNumber { e164: to.clone() }),
                            })),
                        };
                        tx.send(message(&id, Message::Action(action))).await?;
                    }
                }
            }
            Some(Message::InCall(_)) if take => {
                println!("-> pull");
                let sdp = read_sdp(None, "chromium-offer.sdp")?;
                let pull = Offer {
                    sdp,
                    msisdn: None,
                    data: Default::default(),
                };
                tx.send(message(&id, Message::Offer(pull))).await?;
            }
            Some(Message::Answer(_)) => {
                if let Some(after) = hangup_after {
                    tokio::time::sleep(after).await;
                    println!("-> bye");
                    tx.send(message(&id, Message::Bye(Bye::default()))).await?;
                    // Our leg is over; nothing more will come for this call.
                    break;
                }
            }
            Some(Message::Bye(_)) if answer_sdp.is_none() => break,
            _ => {}
        }
    }
    Ok(())
}

/// One line per message, with SDP shortened to its size.
fn print_message(msg: &WebTerminalMessage) {
    let id = if msg.call_id.is_empty() {
        "-"
    } else {
        &msg.call_id
    };
    let what = match &msg.message {
        Some(Message::Offer(o)) => format!(
            "offer from {} ({} bytes of SDP)",
            o.msisdn.as_ref().map_or("?", |m| m.e164.as_str()),
            o.sdp.len()
        ),
        Some(Message::Answer(a)) => format!("answer ({} bytes of SDP)", a.sdp.len()),
        Some(Message::Ringing(_)) => "ringing".into(),
        Some(Message::Bye(b)) => format!("bye {:?}", b.reason()),
        Some(Message::Idle(_)) => "idle".into(),
        Some(Message::InCall(c)) => format!(
            "in call with {}",
            c.msisdn.as_ref().map_or("?", |m| m.e164.as_str())
        ),
        Some(Message::Error(e)) => format!("error {:?}: {}", e.err(), e.message),
        Some(Message::Action(_)) => "action".into(),
        None => "empty message".into(),
    };
    println!("<- [{id}] {what}");
}
