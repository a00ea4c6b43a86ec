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
//! [`edge::softphone::demo_router`](webterminal_core::edge::softphone::demo_router)).

/// `println!` for what `serve` prints at start: a closed or broken stdout (`serve | head -1`, a
/// detached terminal) must not stop the core, so write errors are ignored.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod config_file;
mod guide;
mod parse;
mod records;
mod secret;
mod serve;
mod token;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use records::{run_records, RecordsArgs};
use serve::{run_serve, LogFormat, ServeArgs};
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

/// A configuration the core will not start with (a bad `--config` file): as for a bad flag.
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let matches = match config_file::matches_with_file(Cli::command(), &argv) {
        Ok(matches) => matches,
        Err(config_file::CliError::Usage(e)) => e.exit(),
        Err(config_file::CliError::Config(e)) => return config_error(&e),
    };
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let Command::Serve(args) = &cli.command {
        let serve = matches
            .subcommand_matches("serve")
            .expect("serve was parsed");
        if let Err(e) = config_file::check_pairs(serve) {
            return config_error(&e);
        }
        if args.print_config {
            let mut command = Cli::command();
            command.build();
            let serve_command = command.find_subcommand("serve").expect("a serve command");
            print!("{}", config_file::effective(serve_command, serve));
            return ExitCode::SUCCESS;
        }
    }
    let (personal_data, format) = match &cli.command {
        Command::Serve(args) => (args.log_personal_data, args.log_format),
        _ => (false, LogFormat::Text),
    };
    init_logging(personal_data, format);
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

fn config_error(e: &config_file::ConfigError) -> ExitCode {
    eprintln!("webterminal-core: {e}");
    ExitCode::from(EXIT_CONFIG)
}

/// Logs to stderr in `format`, filtered by `RUST_LOG` (default `info`).
fn init_logging(personal_data: bool, format: LogFormat) {
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    if !personal_data {
        // webrtc-sdp warns about every attribute it does not model (Chromium's rtcp-xr, say) and
        // quotes the SDP line: personal data, and a measurable cost on every call (BENCHMARKS.md).
        filter = filter.add_directive("webrtc_sdp=error".parse().expect("a valid directive"));
        // rsipstack logs every SIP message it sends or receives at info, in full (numbers, SDP):
        // the SIP trunk logs what matters itself, redacted.
        filter = filter.add_directive("rsipstack=warn".parse().expect("a valid directive"));
    }
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.init(),
        // One object per line; the span list is left out (the current span is kept), so a line
        // stays short and says where it came from.
        LogFormat::Json => logs.json().with_span_list(false).init(),
    }
}

type CliResult = Result<(), Box<dyn std::error::Error>>;
