//! `webterminal-core`: a thin CLI over the library (mini-redis `bin/`).
//!
//! - `webterminal-core serve`: serves the WebTerminal API until SIGINT/SIGTERM, then shuts down
//!   gracefully (PROTOCOL.md 4.9) and exits 0.
//! - `webterminal-core token --msisdn E164`: prints an access token for a subscriber;
//!   `webterminal-core token --client ID --grant E164 [--grant E164 ...]`: a client token for an
//!   application acting for those subscribers (it names one in `wg2-msisdn` metadata).
//! - `webterminal-core records`: prints call records (PROTOCOL.md section 9) as a table, CSV or
//!   JSON lines.
//!
//! Without `--jwt-secret` (or `WEBTERMINAL_JWT_SECRET`), a random secret is made once and kept in
//! `$XDG_DATA_HOME/webterminal-core/jwt-secret` (or `~/.local/share/...`, mode 0600); `serve` then
//! prints demo tokens and a ready-to-paste grpcurl command. The secret's UTF-8 bytes are the HS256 key.
//! With that secret (and no public keys, JWKS, issuer or audience), the softphone page at `GET /`
//! may mint demo tokens (`POST /demo/token`,
//! [`server::softphone::demo_router`](webterminal_core::server::softphone::demo_router)).

/// `println!` for what `serve` prints at start: a closed or broken stdout (`serve | head -1`, a
/// detached terminal) must not stop the core, so write errors are ignored.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod guide;
mod parse;
mod records;
mod secret;
mod serve;
mod token;

use clap::{Parser, Subcommand};
use records::{run_records, RecordsArgs};
use serve::{run_serve, ServeArgs};
use std::process::ExitCode;
use token::{run_token, TokenArgs};

#[derive(Parser, Debug)]
#[command(
    name = "webterminal-core",
    version,
    about = "A voice core for WebRTC terminals"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the WebTerminal API (gRPC over HTTP/2, and WebSockets for browsers at /pipe and
    /// /multipipe on the same port; plaintext unless --tls-cert is given).
    Serve(Box<ServeArgs>),
    /// Print an access token: for a subscriber (--msisdn), or for a client acting for subscribers
    /// (--client, --grant).
    Token(TokenArgs),
    /// Print call records, newest first (read-only: safe beside a running core).
    Records(RecordsArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let personal_data = matches!(&cli.command, Command::Serve(args) if args.log_personal_data);
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    if !personal_data {
        // webrtc-sdp warns about every attribute it does not model (Chromium's rtcp-xr, say) and
        // quotes the SDP line: personal data, and a measurable cost on every call (BENCHMARKS.md).
        filter = filter.add_directive("webrtc_sdp=error".parse().expect("a valid directive"));
    }
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Serve(args) => run_serve(*args),
        Command::Token(args) => run_token(args),
        Command::Records(args) => run_records(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("webterminal-core: {e}");
            ExitCode::FAILURE
        }
    }
}

type CliResult = Result<(), Box<dyn std::error::Error>>;
