//! `webterminal-core serve`: its flags, and serving the WebTerminal API until SIGINT or SIGTERM.

use crate::guide::{demo_numbers, print_newcomer_guide};
use crate::parse::{parse_duration, parse_grace};
use crate::records::records_path;
use crate::secret::stored_secret;
use crate::CliResult;
use clap::{Args, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use webterminal_core::core::SwitchConfig;
use webterminal_core::notifications::{self, NotificationsConfig};
use webterminal_core::records::RecordsConfig;
use webterminal_core::server::{self, wire, PhoneNetworkKind, ServerConfig, TlsFiles, TokenPolicy};

#[derive(Args, Debug)]
pub(crate) struct ServeArgs {
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
    pub(crate) log_personal_data: bool,
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
    pub(crate) records: Option<PathBuf>,
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

#[derive(Clone, Copy, Debug, ValueEnum)]
enum PhoneNetworkArg {
    /// The simulated phone network (PROTOCOL.md section 7).
    Sim,
    /// No phone network.
    None,
}

pub(crate) fn run_serve(args: ServeArgs) -> CliResult {
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
#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Cli, Command};
    use clap::Parser;

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
}
