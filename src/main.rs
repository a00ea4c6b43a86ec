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
//! may mint demo tokens (`POST /demo/token`, [`server::softphone::demo_router`]).

/// `println!` for what `serve` prints at start: a closed or broken stdout (`serve | head -1`, a
/// detached terminal) must not stop the core, so write errors are ignored.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};
use webterminal_core::core::{Msisdn, SwitchConfig};
use webterminal_core::notifications::{self, NotificationsConfig};
use webterminal_core::records::{self, RecordQuery, RecordStore, RecordsConfig, SqliteStore};
use webterminal_core::server::{
    self, auth, wire, PhoneNetworkKind, ServerConfig, TlsFiles, TokenPolicy,
};

/// Demo subscribers that `serve` prints tokens for when it made the secret itself.
const DEMO_MSISDNS: [&str; 2] = ["+4799990001", "+4799990002"];

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

#[derive(Args, Debug)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:50051")]
    listen: SocketAddr,
    /// HS256 secret access tokens are signed with. Default: the stored secret, made if missing.
    #[arg(long, env = "WEBTERMINAL_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// How long a call may ring before NO_ANSWER (e.g. 500ms, 2s, 1m).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    ring_timeout: Duration,
    /// How long a re-offer, pull or handover may wait for the far side's answer.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    negotiation_timeout: Duration,
    /// Phone network behind the core: the simulated one, or none.
    #[arg(long, value_enum, default_value = "sim")]
    phone_network: PhoneNetworkArg,
    /// How many calls one MultiPipe terminal may be in at once.
    #[arg(long, default_value_t = webterminal_core::core::SwitchConfig::default().multipipe_call_cap)]
    multipipe_call_cap: usize,
    /// Largest gRPC message accepted from a client, in bytes.
    #[arg(long, default_value_t = server::DEFAULT_MAX_MESSAGE_BYTES)]
    max_message_bytes: usize,
    /// Largest SDP accepted in an Offer or Answer, in bytes.
    #[arg(long, default_value_t = wire::DEFAULT_MAX_SDP_BYTES)]
    max_sdp_bytes: usize,
    /// How long a call whose active terminal went away waits to be pulled back before the far side
    /// gets Bye{PEER_GONE}; 0 ends it at once.
    #[arg(long, default_value = "15s", value_parser = parse_grace)]
    reconnect_grace: Duration,
    /// Most terminals registered at once; more fail with RESOURCE_EXHAUSTED.
    #[arg(long, default_value_t = SwitchConfig::default().max_terminals)]
    max_terminals: usize,
    /// Most terminals registered at once for one number; more fail with RESOURCE_EXHAUSTED.
    #[arg(long, default_value_t = SwitchConfig::default().max_terminals_per_msisdn)]
    max_terminals_per_msisdn: usize,
    /// Messages per second one terminal may send (burst: twice as many); more get RATE_LIMIT_HIT.
    #[arg(long, default_value_t = server::DEFAULT_MESSAGES_PER_SECOND)]
    messages_per_second: u32,
    /// New calls per second one terminal may attempt (burst: twice as many); more get RATE_LIMIT_HIT.
    #[arg(long, default_value_t = server::DEFAULT_CALL_ATTEMPTS_PER_SECOND)]
    call_attempts_per_second: u32,
    /// Messages per second one number may send across all its terminals and reconnects (burst:
    /// twice as many); more get RATE_LIMIT_HIT. Default: 5 x --messages-per-second.
    #[arg(long)]
    messages_per_second_per_number: Option<u32>,
    /// New calls per second one number may attempt across all its terminals and reconnects
    /// (burst: twice as many); more get RATE_LIMIT_HIT. Default: --call-attempts-per-second.
    #[arg(long)]
    call_attempts_per_second_per_number: Option<u32>,
    /// New calls per second one number may make to one other number (burst: twice as many); more
    /// get RATE_LIMIT_HIT. Default: --call-attempts-per-second-per-number.
    #[arg(long)]
    offers_per_second_per_callee: Option<u32>,
    /// How long a new connection has to complete its TLS and HTTP/2 handshake and open its first
    /// rpc before it is closed.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    handshake_timeout: Duration,
    /// How long a connection may stay open with no rpc open on it; 0: no limit.
    #[arg(long, default_value = "120s", value_parser = parse_grace)]
    idle_timeout: Duration,
    /// Most connections open at once; more are closed as soon as accepted. Default: the open-file
    /// limit less 64.
    #[arg(long)]
    max_connections: Option<usize>,
    /// Most connections open at once from one IP address; more are closed as soon as accepted.
    /// Default: an eighth of --max-connections.
    #[arg(long)]
    max_connections_per_ip: Option<usize>,
    /// PEM certificate chain to serve TLS with (needs --tls-key). Without it: plaintext.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// An origin (`scheme://host[:port]`, as browsers send `Origin`) besides the core's own whose
    /// pages may open a WebSocket (/pipe, /multipipe) with the `token` cookie; repeatable. Pages of
    /// any origin may send the token as the subprotocol `Bearer, <token>`.
    #[arg(long = "allowed-origin")]
    allowed_origins: Vec<String>,
    /// PEM public key (RSA for RS256, P-256 for ES256) tokens may be signed with; repeatable.
    #[arg(long = "public-key")]
    public_keys: Vec<PathBuf>,
    /// JWKS file (RFC 7517) whose keys tokens may be signed with, picked by the token's `kid`.
    #[arg(long)]
    jwks: Option<PathBuf>,
    /// Required token issuer (`iss`).
    #[arg(long)]
    issuer: Option<String>,
    /// Required token audience (`aud`).
    #[arg(long)]
    audience: Option<String>,
    /// Log phone numbers and SDP bodies in full (personal data; off by default: redacted).
    #[arg(long)]
    log_personal_data: bool,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9464). Default: none.
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
    /// Worker threads of the runtime; 0 means one per CPU core. 1 runs everything on one thread
    /// (no cross-thread wake-ups), which suits a small machine shared with other work.
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// SQLite file to keep call records in, or `none` to keep none. Default: records.sqlite3 in
    /// the data directory (beside the stored JWT secret).
    #[arg(long, value_name = "PATH|none")]
    records: Option<PathBuf>,
    /// Routing file (TOML) listing groups: hunt groups and queues (PROTOCOL.md section 10). Read
    /// at start (a bad file is a startup error) and again on SIGHUP (a bad file is logged and the
    /// groups in force are kept). Default: none.
    #[arg(long, value_name = "FILE")]
    routing: Option<PathBuf>,
    /// Announce each answered group call on this Redis (redis://[user][:password@]host[:port][/db]
    /// or unix:///path): RPUSH of one JSON message to --redis-key. A URL that does not parse is a
    /// startup error; a Redis that is down is not (notifications wait). Default: none.
    #[arg(
        long,
        value_name = "URL",
        env = "WEBTERMINAL_REDIS_URL",
        hide_env_values = true
    )]
    redis: Option<String>,
    /// The Redis list notifications are pushed to.
    #[arg(long, value_name = "KEY", default_value = notifications::DEFAULT_KEY)]
    redis_key: String,
    /// Most notifications kept while Redis is slow or down (at least 10000); past it the oldest
    /// is dropped, logged and counted.
    #[arg(long, value_name = "N", default_value_t = notifications::DEFAULT_QUEUE_BOUND as u64,
          value_parser = clap::value_parser!(u64).range(notifications::DEFAULT_QUEUE_BOUND as u64..))]
    redis_queue: u64,
}

#[derive(Args, Debug)]
struct RecordsArgs {
    /// The records database. Default: records.sqlite3 in the data directory.
    #[arg(long, value_name = "PATH")]
    records: Option<PathBuf>,
    /// Only calls this number made or received (E.164, the '+' optional).
    #[arg(long, value_parser = parse_msisdn_lenient)]
    msisdn: Option<Msisdn>,
    /// Only calls started at or after this time (RFC 3339 in UTC, e.g. 2026-12-02T07:00:00Z).
    #[arg(long, value_parser = parse_time)]
    since: Option<SystemTime>,
    /// Only calls started before this time (RFC 3339 in UTC).
    #[arg(long, value_parser = parse_time)]
    until: Option<SystemTime>,
    /// How to print them.
    #[arg(long, value_enum, default_value = "table")]
    format: RecordsFormat,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum RecordsFormat {
    /// An aligned table for people; an estimated end is marked '~'.
    Table,
    /// CSV (RFC 4180) with a header line.
    Csv,
    /// One JSON object per line, field names as in CallRecord.
    Json,
}

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("holder").required(true).args(["msisdn", "client"])))]
struct TokenArgs {
    /// A subscriber token for this number, in E.164 (e.g. +4799990001): its `sub`.
    #[arg(long, value_parser = parse_msisdn)]
    msisdn: Option<Msisdn>,
    /// A client token for this client id (its `sub`), acting for the --grant numbers: the rpc
    /// names one of them in `wg2-msisdn` metadata.
    #[arg(long, requires = "grant", value_parser = parse_client_id)]
    client: Option<String>,
    /// A number the client token grants, in E.164 (claim `msisdns`); repeatable.
    #[arg(long, value_parser = parse_msisdn, requires = "client", conflicts_with = "msisdn")]
    grant: Vec<Msisdn>,
    /// Space-separated scopes.
    #[arg(long, default_value = auth::REQUIRED_SCOPE)]
    scope: String,
    /// How long the token is valid (e.g. 30m, 1h).
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    ttl: Duration,
    /// HS256 secret to sign with. Default: the stored secret, made if missing.
    #[arg(long, env = "WEBTERMINAL_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum PhoneNetworkArg {
    /// The simulated phone network (PROTOCOL.md section 7).
    Sim,
    /// No phone network.
    None,
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

fn run_token(args: TokenArgs) -> CliResult {
    let secret = match args.jwt_secret {
        Some(secret) => secret,
        None => stored_secret()?.0,
    };
    let token = match (&args.msisdn, &args.client) {
        (Some(msisdn), _) => auth::mint_token(secret.as_bytes(), msisdn, &args.scope, args.ttl),
        (None, Some(client)) => auth::mint_client_token(
            secret.as_bytes(),
            client,
            &args.grant,
            &args.scope,
            args.ttl,
        ),
        (None, None) => unreachable!("clap requires --msisdn or --client"),
    };
    println!("{token}");
    Ok(())
}

fn run_serve(args: ServeArgs) -> CliResult {
    let (secret, stored_at) = match args.jwt_secret {
        Some(secret) => (secret, None),
        None => {
            let (secret, path) = stored_secret()?;
            (secret, Some(path))
        }
    };
    let mut config = ServerConfig::new(secret.as_bytes());
    config.listen = args.listen;
    config.switch.ring_timeout = args.ring_timeout;
    config.switch.negotiation_timeout = args.negotiation_timeout;
    config.switch.multipipe_call_cap = args.multipipe_call_cap;
    config.phone_network = match args.phone_network {
        PhoneNetworkArg::Sim => PhoneNetworkKind::Sim,
        PhoneNetworkArg::None => PhoneNetworkKind::None,
    };
    config.max_message_bytes = args.max_message_bytes;
    config.max_sdp_bytes = args.max_sdp_bytes;
    config.switch.reconnect_grace = args.reconnect_grace;
    config.switch.max_terminals = args.max_terminals;
    config.switch.max_terminals_per_msisdn = args.max_terminals_per_msisdn;
    config.messages_per_second = args.messages_per_second;
    config.call_attempts_per_second = args.call_attempts_per_second;
    config.messages_per_second_per_number = args.messages_per_second_per_number;
    config.call_attempts_per_second_per_number = args.call_attempts_per_second_per_number;
    config.offers_per_second_per_callee = args.offers_per_second_per_callee;
    config.connections = server::listener::ConnectionLimits {
        handshake_timeout: args.handshake_timeout,
        idle_timeout: args.idle_timeout,
        max_connections: args.max_connections,
        max_connections_per_ip: args.max_connections_per_ip,
    };
    config.allowed_origins = args.allowed_origins;
    config.tls = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
        _ => None,
    };
    config.tokens = TokenPolicy {
        public_keys: args.public_keys,
        jwks: args.jwks,
        issuer: args.issuer,
        audience: args.audience,
    };
    if stored_at.is_some() && config.tokens == TokenPolicy::default() {
        // Our own demo secret and no production token policy (minted tokens carry no iss or aud):
        // the softphone page may mint tokens (POST /demo/token).
        config.demo_tokens = Some(server::softphone::DemoTokens::new(demo_numbers()));
        if !args.listen.ip().is_loopback() {
            tracing::warn!(
                listen = %args.listen,
                "demo secret on a non-loopback address: anyone who reaches it can mint a token \
                 for any number at /demo/token; pass --jwt-secret (or keys) to turn that off"
            );
        }
    }
    config.records = match args.records {
        Some(path) if path.as_os_str() == "none" => RecordsConfig::None,
        Some(path) => RecordsConfig::Sqlite(path),
        None => match records_path() {
            Some(path) => RecordsConfig::Sqlite(path),
            None => {
                tracing::error!(
                    "call records: no data directory (set XDG_DATA_HOME or HOME, or pass --records); running without records"
                );
                RecordsConfig::None
            }
        },
    };
    if let RecordsConfig::Sqlite(path) = &config.records {
        tracing::info!(path = %path.display(), "call records");
    }
    config.routing = args.routing;
    if let Some(url) = &args.redis {
        let mut redis = NotificationsConfig::new(url).map_err(|e| format!("--redis: {e}"))?;
        redis.key = args.redis_key;
        redis.queue_bound = usize::try_from(args.redis_queue).unwrap_or(usize::MAX);
        config.notifications = Some(redis);
    }
    webterminal_core::core::log_personal_data(args.log_personal_data);
    // One descriptor per connection: the inherited soft limit (often 1024) would cap the server far
    // below what the system allows. The default connection caps are sized from the raised limit.
    server::listener::raise_open_file_limit();

    let runtime = match args.threads {
        1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        0 => tokio::runtime::Runtime::new()?,
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build()?,
    };
    let metrics_listen = args.metrics_listen;
    runtime.block_on(async move {
        if let Some(listen) = metrics_listen {
            server::metrics::install(listen)?;
        }
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let local = listener.local_addr()?;
        let scheme = if config.tls.is_some() {
            "TLS"
        } else {
            "plaintext"
        };
        say!("webterminal-core listening on {local} ({scheme})");
        let ws = if config.tls.is_some() { "wss" } else { "ws" };
        say!(
            "  browsers: {ws}://{local}/pipe and {ws}://{local}/multipipe \
             (Sec-WebSocket-Protocol: Bearer, <token>; README \"Browsers and WebSockets\")"
        );
        let web = if config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        say!("  softphone page: {web}://{local}/");
        if let Some(path) = stored_at {
            // How grpcurl reaches this listener: in the clear, or trusting our certificate.
            let transport = match &config.tls {
                None => "-plaintext".to_string(),
                Some(tls) => format!("-cacert '{}'", tls.cert.display()),
            };
            print_newcomer_guide(&secret, &path, local, &transport);
        }
        server::serve(config, listener, shutdown_signal()).await?;
        Ok(())
    })
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(%e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(e) => {
                tracing::error!(%e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!("SIGINT"),
        () = terminate => tracing::info!("SIGTERM"),
    }
}

/// The JSON of a Pipe message placing a call to `to` with `sdp`, safe inside single shell quotes
/// (JSON may write a `'` escaped, and the shell would end its quoting at one).
fn demo_call_body(sdp: &str, to: &Msisdn) -> String {
    serde_json::json!({"offer": {"sdp": sdp, "msisdn": {"e164": to.as_str()}}})
        .to_string()
        .replace('\'', "\\u0027")
}

/// The demo numbers, parsed.
fn demo_numbers() -> Vec<Msisdn> {
    DEMO_MSISDNS
        .iter()
        .map(|m| Msisdn::parse(m).expect("demo numbers are E.164"))
        .collect()
}

/// Demo tokens (1 day) for the demo numbers and a grpcurl command that places a call.
fn print_newcomer_guide(secret: &str, stored_at: &Path, listen: SocketAddr, transport: &str) {
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

/// The stored secret and where it is: read if present, else made from 32 random bytes (hex) and
/// written with mode 0600.
fn stored_secret() -> Result<(String, PathBuf), Box<dyn std::error::Error>> {
    let path = secret_path()
        .ok_or("cannot find a data directory: set XDG_DATA_HOME or HOME, or pass --jwt-secret")?;
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => return Ok((text.trim().to_owned(), path)),
        Ok(_) => {
            return Err(format!(
                "{} is empty: delete it or pass --jwt-secret",
                path.display()
            )
            .into())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("reading {}: {e}", path.display()).into()),
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness for a secret: {e}"))?;
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    write_private(&path, &secret)?;
    tracing::info!(path = %path.display(), "made a new JWT secret");
    Ok((secret, path))
}

/// Writes `text` to a new file readable only by its owner. When another process made the file
/// first, its secret wins.
fn write_private(path: &Path, text: &str) -> Result<(), Box<dyn std::error::Error>> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(text.as_bytes())?;
            file.write_all(b"\n")?;
            Ok(())
        }
        Err(e) => Err(format!("writing {}: {e}", path.display()).into()),
    }
}

/// `webterminal-core/records.sqlite3` in the user's data directory, as [`secret_path`].
fn records_path() -> Option<PathBuf> {
    Some(
        dirs::data_dir()?
            .join("webterminal-core")
            .join("records.sqlite3"),
    )
}

/// `webterminal-core records`: every matching record, newest first, a page at a time.
fn run_records(args: RecordsArgs) -> CliResult {
    use std::io::Write;
    let path = match args.records {
        Some(path) => path,
        None => records_path()
            .ok_or("cannot find a data directory: set XDG_DATA_HOME or HOME, or pass --records")?,
    };
    if !path.exists() {
        return Err(format!("no call records at {}", path.display()).into());
    }
    let store = SqliteStore::open_read_only(&path)?;
    let mut query = RecordQuery {
        msisdn: args.msisdn,
        since: args.since,
        until: args.until,
        page_size: records::MAX_PAGE_SIZE,
        after: None,
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut table = Vec::new();
    let written = (|| -> std::io::Result<()> {
        if let RecordsFormat::Csv = args.format {
            writeln!(out, "{}", records::format::CSV_HEADER)?;
        }
        loop {
            let page = store.list(&query).map_err(std::io::Error::other)?;
            for record in page.records {
                match args.format {
                    RecordsFormat::Json => {
                        writeln!(out, "{}", records::format::json_line(&record))?
                    }
                    RecordsFormat::Csv => writeln!(out, "{}", records::format::csv_line(&record))?,
                    RecordsFormat::Table => table.push(record),
                }
            }
            match page.next {
                Some(next) => query.after = Some(next),
                None => break,
            }
        }
        if let RecordsFormat::Table = args.format {
            out.write_all(records::format::table(&table).as_bytes())?;
        }
        out.flush()
    })();
    match written {
        // `records | head` closed the pipe: not a failure.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// An RFC 3339 time in UTC (`2026-12-02T07:00:00Z`, `2026-12-02 07:00:00.5`), read by humantime:
/// `T` may be a space, `Z` (or `+00:00`) may be left out; other offsets are refused.
fn parse_time(s: &str) -> Result<SystemTime, String> {
    humantime::parse_rfc3339_weak(s.trim())
        .map_err(|e| format!("{s:?} is not an RFC 3339 time such as 2026-12-02T07:00:00Z: {e}"))
}

fn parse_msisdn_lenient(s: &str) -> Result<Msisdn, String> {
    Msisdn::parse_lenient(s).map_err(|e| format!("an E.164 number {e}"))
}

/// `webterminal-core/jwt-secret` in the user's data directory (`$XDG_DATA_HOME`, else
/// `~/.local/share`, on Linux; the platform's own elsewhere).
fn secret_path() -> Option<PathBuf> {
    Some(
        dirs::data_dir()?
            .join("webterminal-core")
            .join("jwt-secret"),
    )
}

fn parse_client_id(s: &str) -> Result<String, String> {
    if s.is_empty() || s.trim() != s {
        return Err("a client id is not empty and has no surrounding spaces".into());
    }
    Ok(s.to_owned())
}

fn parse_msisdn(s: &str) -> Result<Msisdn, String> {
    Msisdn::parse(s).map_err(|e| format!("an E.164 number {e}"))
}

/// A duration as [`parse_duration`] reads it, or `0` (with or without a unit) for none.
fn parse_grace(s: &str) -> Result<Duration, String> {
    parse_duration_or_zero(s)
}

/// A positive duration: whole numbers with a unit, `ms`, `s`, `m` or `h` (`500ms`, `2s`, `1m`,
/// `1h30m`).
fn parse_duration(s: &str) -> Result<Duration, String> {
    match parse_duration_or_zero(s)? {
        Duration::ZERO => Err("the duration must be more than zero".into()),
        duration => Ok(duration),
    }
}

/// humantime's reading of `s`, held to the units these timeouts are written in: no fractions, signs,
/// spaces, days or longer.
fn parse_duration_or_zero(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let not_a_duration =
        || format!("{s:?}: write whole numbers with a unit, ms, s, m or h (500ms, 2s, 1m)");
    if !s
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, 'm' | 's' | 'h'))
    {
        return Err(not_a_duration());
    }
    humantime::parse_duration(s).map_err(|e| match e {
        humantime::DurationError::NumberOverflow => format!("{s:?} is too long"),
        _ => not_a_duration(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_with_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
    }

    #[test]
    fn durations_refused() {
        for bad in [
            "",
            "s",
            "10",
            "1.5s",
            "-1s",
            "2 s",
            "3d",
            "0s",
            "99999999999999999999s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} must be refused");
        }
        assert!(parse_duration("18446744073709551615h").is_err());
    }

    #[test]
    fn grace_may_be_zero_and_units_combine() {
        for zero in ["0", "0s", "0ms", "0m", " 0 "] {
            assert_eq!(parse_grace(zero), Ok(Duration::ZERO), "{zero:?}");
        }
        assert_eq!(parse_grace("15s"), Ok(Duration::from_secs(15)));
        assert!(parse_grace("-1s").is_err());
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1s500ms"), Ok(Duration::from_millis(1500)));
    }

    #[test]
    fn records_flags_and_command() {
        let serve = |extra: &[&str]| {
            let cli =
                Cli::try_parse_from(["webterminal-core", "serve"].iter().chain(extra)).unwrap();
            let Command::Serve(args) = cli.command else {
                panic!("expected serve")
            };
            args.records
        };
        assert_eq!(serve(&[]), None);
        assert_eq!(serve(&["--records", "none"]), Some(PathBuf::from("none")));
        assert_eq!(
            serve(&["--records", "/tmp/r.sqlite3"]),
            Some(PathBuf::from("/tmp/r.sqlite3"))
        );
        let cli = Cli::try_parse_from([
            "webterminal-core",
            "records",
            "--msisdn",
            "4799990001",
            "--since",
            "2026-12-02T07:00:00Z",
            "--until",
            "2026-12-02 08:00:00.5",
            "--format",
            "json",
        ])
        .unwrap();
        let Command::Records(args) = cli.command else {
            panic!("expected records")
        };
        assert_eq!(args.msisdn, Some(Msisdn::parse("+4799990001").unwrap()));
        assert_eq!(
            args.since.map(|t| humantime::format_rfc3339(t).to_string()),
            Some("2026-12-02T07:00:00Z".to_owned())
        );
        assert_eq!(
            args.until
                .map(|t| humantime::format_rfc3339_millis(t).to_string()),
            Some("2026-12-02T08:00:00.500Z".to_owned())
        );
        assert!(matches!(args.format, RecordsFormat::Json));
        for bad in [
            &["--since", "yesterday"][..],
            &["--since", "2026-12-02T07:00:00+01:00"],
            &["--msisdn", "not a number"],
            &["--format", "xml"],
        ] {
            assert!(
                Cli::try_parse_from(["webterminal-core", "records"].iter().chain(bad)).is_err(),
                "{bad:?} must be refused"
            );
        }
    }

    #[test]
    fn cli_shape() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "webterminal-core",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--ring-timeout",
            "500ms",
            "--phone-network",
            "none",
            "--multipipe-call-cap",
            "4",
        ])
        .unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("expected serve")
        };
        assert_eq!(args.ring_timeout, Duration::from_millis(500));
        assert_eq!(args.negotiation_timeout, Duration::from_secs(30));
        assert_eq!(args.multipipe_call_cap, 4);
        assert!(matches!(args.phone_network, PhoneNetworkArg::None));
        assert_eq!(args.handshake_timeout, Duration::from_secs(10));
        assert_eq!(args.idle_timeout, Duration::from_secs(120));
        assert_eq!(args.max_connections, None, "sized from the open-file limit");
        assert_eq!(
            args.call_attempts_per_second_per_number, None,
            "follows per terminal"
        );
        assert!(Cli::try_parse_from(["webterminal-core", "token", "--msisdn", "4799"]).is_err());
        let cli = Cli::try_parse_from([
            "webterminal-core",
            "serve",
            "--handshake-timeout",
            "2s",
            "--idle-timeout",
            "0",
            "--max-connections",
            "100",
            "--max-connections-per-ip",
            "10",
            "--offers-per-second-per-callee",
            "1",
        ])
        .unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("expected serve")
        };
        assert_eq!(args.handshake_timeout, Duration::from_secs(2));
        assert_eq!(args.idle_timeout, Duration::ZERO);
        assert_eq!(args.max_connections, Some(100));
        assert_eq!(args.max_connections_per_ip, Some(10));
        assert_eq!(args.offers_per_second_per_callee, Some(1));
        assert_eq!(args.redis, None, "no notifications unless asked");
        assert_eq!(args.redis_key, "enigma:notifications:inbound");
        assert_eq!(args.redis_queue, 10_000);
        for refused in [
            &["--handshake-timeout", "0"][..],
            &["--max-connections", "-1"],
        ] {
            let args = ["webterminal-core", "serve"].iter().chain(refused);
            assert!(Cli::try_parse_from(args).is_err(), "{refused:?}");
        }
    }

    #[test]
    fn redis_flags() {
        let cli = Cli::try_parse_from([
            "webterminal-core",
            "serve",
            "--redis",
            "redis://127.0.0.1:6390/1",
            "--redis-key",
            "queue:in",
            "--redis-queue",
            "50000",
        ])
        .unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("expected serve")
        };
        assert_eq!(args.redis.as_deref(), Some("redis://127.0.0.1:6390/1"));
        assert_eq!(args.redis_key, "queue:in");
        assert_eq!(args.redis_queue, 50_000);
        for refused in [&["--redis-queue", "9999"][..], &["--redis-queue", "-1"]] {
            let args = ["webterminal-core", "serve"].iter().chain(refused);
            assert!(Cli::try_parse_from(args).is_err(), "{refused:?}");
        }
    }

    #[test]
    fn token_is_for_a_subscriber_or_a_client_with_grants() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from(["webterminal-core", "token"].iter().chain(args)).map(|cli| {
                let Command::Token(args) = cli.command else {
                    panic!("expected token")
                };
                args
            })
        };
        let client = parse(&[
            "--client",
            "voicebot",
            "--grant",
            "+4799990001",
            "--grant",
            "+4799990002",
        ])
        .unwrap();
        assert_eq!(client.client.as_deref(), Some("voicebot"));
        assert_eq!(client.msisdn, None);
        assert_eq!(
            client.grant,
            [
                Msisdn::parse("+4799990001").unwrap(),
                Msisdn::parse("+4799990002").unwrap()
            ]
        );
        let subscriber = parse(&["--msisdn", "+4799990001"]).unwrap();
        assert_eq!(subscriber.client, None);
        assert!(subscriber.grant.is_empty());
        for refused in [
            &[][..],
            &[
                "--msisdn",
                "+4799990001",
                "--client",
                "voicebot",
                "--grant",
                "+4799990002",
            ],
            &["--client", "voicebot"],
            &["--grant", "+4799990001"],
            &["--msisdn", "+4799990001", "--grant", "+4799990002"],
            &["--client", "voicebot", "--grant", "not a number"],
            &["--client", "", "--grant", "+4799990001"],
        ] {
            assert!(parse(refused).is_err(), "{refused:?} must be refused");
        }
    }

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
