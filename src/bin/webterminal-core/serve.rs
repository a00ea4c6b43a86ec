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
use webterminal_core::edge;
use webterminal_core::notifications::{self, NotificationsConfig};
use webterminal_core::phone::sip::{Cidr, SipConfig, SipCredential};
use webterminal_core::records::RecordsConfig;
use webterminal_core::server::{self, PhoneNetworkKind, ServerConfig, TlsFiles, TokenPolicy};
use webterminal_core::telemetry;
use webterminal_core::wire;

/// `serve`'s options. Each is a flag, an environment variable `WEBTERMINAL_<ID>` and a key `<id>` in
/// the config file's section named by its help heading (`Phone network` is `[phone_network]`);
/// [`crate::config_file`] layers them: flags over the environment over the file over the defaults.
#[derive(Args, Debug)]
pub(crate) struct ServeArgs {
    /// TOML config file: any option below as a key in its section (`[limits] ring_timeout = "30s"`).
    /// Flags and WEBTERMINAL_* variables override it.
    #[arg(long, value_name = "FILE", env = "WEBTERMINAL_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// Print the effective configuration as TOML (secrets redacted) and exit.
    #[arg(long)]
    pub(crate) print_config: bool,

    /// Address to listen on (port 0: any free port, printed at start).
    #[arg(
        long,
        default_value = "127.0.0.1:50051",
        env = "WEBTERMINAL_LISTEN",
        help_heading = "Listener"
    )]
    listen: SocketAddr,
    /// PEM certificate chain to serve TLS with (needs --tls-key). Without it: plaintext.
    #[arg(
        long,
        requires = "tls_key",
        env = "WEBTERMINAL_TLS_CERT",
        help_heading = "Listener"
    )]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(
        long,
        requires = "tls_cert",
        env = "WEBTERMINAL_TLS_KEY",
        help_heading = "Listener"
    )]
    tls_key: Option<PathBuf>,
    /// An origin (`scheme://host[:port]`, as browsers send `Origin`) besides the core's own whose
    /// pages may open a WebSocket (/pipe, /multipipe) with the `token` cookie; repeatable. Pages of
    /// any origin may send the token as the subprotocol `Bearer, <token>`.
    #[arg(
        long = "allowed-origin",
        env = "WEBTERMINAL_ALLOWED_ORIGINS",
        value_delimiter = ',',
        help_heading = "Listener"
    )]
    allowed_origins: Vec<String>,
    /// How long a new connection has to complete its TLS and HTTP/2 handshake and open its first
    /// rpc before it is closed.
    #[arg(long, default_value = "10s", value_parser = parse_duration, env = "WEBTERMINAL_HANDSHAKE_TIMEOUT", help_heading = "Listener")]
    handshake_timeout: Duration,
    /// How long a connection may stay open with no rpc open on it; 0: no limit.
    #[arg(long, default_value = "120s", value_parser = parse_grace, env = "WEBTERMINAL_IDLE_TIMEOUT", help_heading = "Listener")]
    idle_timeout: Duration,
    /// Most connections open at once; more are closed as soon as accepted. Default: the open-file
    /// limit less 64.
    #[arg(long, env = "WEBTERMINAL_MAX_CONNECTIONS", help_heading = "Listener")]
    max_connections: Option<usize>,
    /// Most connections open at once from one IP address; more are closed as soon as accepted.
    /// Default: an eighth of --max-connections.
    #[arg(
        long,
        env = "WEBTERMINAL_MAX_CONNECTIONS_PER_IP",
        help_heading = "Listener"
    )]
    max_connections_per_ip: Option<usize>,
    /// Largest gRPC message accepted from a client, in bytes.
    #[arg(long, default_value_t = server::DEFAULT_MAX_MESSAGE_BYTES, env = "WEBTERMINAL_MAX_MESSAGE_BYTES", help_heading = "Listener")]
    max_message_bytes: usize,
    /// How long a shutdown (SIGTERM, SIGINT) may take to end every call and close every connection
    /// before the rest are dropped.
    #[arg(long, default_value = "5s", value_parser = parse_duration, env = "WEBTERMINAL_DRAIN_TIMEOUT", help_heading = "Listener")]
    drain_timeout: Duration,
    /// Worker threads of the runtime; 0 means one per CPU core. 1 runs everything on one thread
    /// (no cross-thread wake-ups), which suits a small machine shared with other work.
    #[arg(
        long,
        default_value_t = 0,
        env = "WEBTERMINAL_THREADS",
        help_heading = "Listener"
    )]
    threads: usize,

    /// How long a call may ring before NO_ANSWER (e.g. 500ms, 2s, 1m).
    #[arg(long, default_value = "60s", value_parser = parse_duration, env = "WEBTERMINAL_RING_TIMEOUT", help_heading = "Calls")]
    ring_timeout: Duration,
    /// How long a re-offer, pull or handover may wait for the far side's answer.
    #[arg(long, default_value = "30s", value_parser = parse_duration, env = "WEBTERMINAL_NEGOTIATION_TIMEOUT", help_heading = "Calls")]
    negotiation_timeout: Duration,
    /// How long a call whose active terminal went away waits to be pulled back before the far side
    /// gets Bye{PEER_GONE}; 0 ends it at once.
    #[arg(long, default_value = "15s", value_parser = parse_grace, env = "WEBTERMINAL_RECONNECT_GRACE", help_heading = "Calls")]
    reconnect_grace: Duration,

    /// Most terminals registered at once; more fail with RESOURCE_EXHAUSTED.
    #[arg(long, default_value_t = SwitchConfig::default().max_terminals, env = "WEBTERMINAL_MAX_TERMINALS", help_heading = "Limits")]
    max_terminals: usize,
    /// Most terminals registered at once for one number; more fail with RESOURCE_EXHAUSTED.
    #[arg(long, default_value_t = SwitchConfig::default().max_terminals_per_msisdn, env = "WEBTERMINAL_MAX_TERMINALS_PER_MSISDN", help_heading = "Limits")]
    max_terminals_per_msisdn: usize,
    /// How many calls one MultiPipe terminal may be in at once.
    #[arg(long, default_value_t = SwitchConfig::default().multipipe_call_cap, env = "WEBTERMINAL_MULTIPIPE_CALL_CAP", help_heading = "Limits")]
    multipipe_call_cap: usize,
    /// Largest SDP accepted in an Offer or Answer, in bytes.
    #[arg(long, default_value_t = wire::DEFAULT_MAX_SDP_BYTES, env = "WEBTERMINAL_MAX_SDP_BYTES", help_heading = "Limits")]
    max_sdp_bytes: usize,
    /// Messages per second one terminal may send (burst: twice as many); more get RATE_LIMIT_HIT.
    #[arg(long, default_value_t = server::DEFAULT_MESSAGES_PER_SECOND, env = "WEBTERMINAL_MESSAGES_PER_SECOND", help_heading = "Limits")]
    messages_per_second: u32,
    /// New calls per second one terminal may attempt (burst: twice as many); more get RATE_LIMIT_HIT.
    #[arg(long, default_value_t = server::DEFAULT_CALL_ATTEMPTS_PER_SECOND, env = "WEBTERMINAL_CALL_ATTEMPTS_PER_SECOND", help_heading = "Limits")]
    call_attempts_per_second: u32,
    /// Messages per second one number may send across all its terminals and reconnects (burst:
    /// twice as many); more get RATE_LIMIT_HIT. Default: 5 x --messages-per-second.
    #[arg(
        long,
        env = "WEBTERMINAL_MESSAGES_PER_SECOND_PER_NUMBER",
        help_heading = "Limits"
    )]
    messages_per_second_per_number: Option<u32>,
    /// New calls per second one number may attempt across all its terminals and reconnects
    /// (burst: twice as many); more get RATE_LIMIT_HIT. Default: --call-attempts-per-second.
    #[arg(
        long,
        env = "WEBTERMINAL_CALL_ATTEMPTS_PER_SECOND_PER_NUMBER",
        help_heading = "Limits"
    )]
    call_attempts_per_second_per_number: Option<u32>,
    /// New calls per second one number may make to one other number (burst: twice as many); more
    /// get RATE_LIMIT_HIT. Default: --call-attempts-per-second-per-number.
    #[arg(
        long,
        env = "WEBTERMINAL_OFFERS_PER_SECOND_PER_CALLEE",
        help_heading = "Limits"
    )]
    offers_per_second_per_callee: Option<u32>,

    /// HS256 secret access tokens are signed with. Default: the stored secret, made if missing.
    #[arg(
        long,
        env = "WEBTERMINAL_JWT_SECRET",
        hide_env_values = true,
        help_heading = "Auth"
    )]
    jwt_secret: Option<String>,
    /// PEM public key (RSA for RS256, P-256 for ES256) tokens may be signed with; repeatable.
    #[arg(
        long = "public-key",
        env = "WEBTERMINAL_PUBLIC_KEYS",
        value_delimiter = ',',
        help_heading = "Auth"
    )]
    public_keys: Vec<PathBuf>,
    /// JWKS file (RFC 7517) whose keys tokens may be signed with, picked by the token's `kid`.
    #[arg(long, env = "WEBTERMINAL_JWKS", help_heading = "Auth")]
    jwks: Option<PathBuf>,
    /// Required token issuer (`iss`).
    #[arg(long, env = "WEBTERMINAL_ISSUER", help_heading = "Auth")]
    issuer: Option<String>,
    /// Required token audience (`aud`).
    #[arg(long, env = "WEBTERMINAL_AUDIENCE", help_heading = "Auth")]
    audience: Option<String>,

    /// SQLite file to keep call records in, or `none` to keep none. Default: records.sqlite3 in
    /// the data directory (beside the stored JWT secret).
    #[arg(
        long,
        value_name = "PATH|none",
        env = "WEBTERMINAL_RECORDS",
        help_heading = "Records"
    )]
    pub(crate) records: Option<PathBuf>,

    /// Routing file (TOML) listing groups: hunt groups and queues (PROTOCOL.md section 10). Read
    /// at start (a bad file is a startup error) and again on SIGHUP (a bad file is logged and the
    /// groups in force are kept). Default: none.
    #[arg(
        long,
        value_name = "FILE",
        env = "WEBTERMINAL_ROUTING",
        help_heading = "Routing"
    )]
    routing: Option<PathBuf>,

    /// Announce each answered group call on this Redis (redis://[user][:password@]host[:port][/db]
    /// or unix:///path): RPUSH of one JSON message to --redis-key. A URL that does not parse is a
    /// startup error; a Redis that is down is not (notifications wait). Default: none.
    #[arg(
        long = "redis",
        value_name = "URL",
        env = "WEBTERMINAL_REDIS_URL",
        hide_env_values = true,
        help_heading = "Redis"
    )]
    redis_url: Option<String>,
    /// The Redis list notifications are pushed to.
    #[arg(long, value_name = "KEY", default_value = notifications::DEFAULT_KEY, env = "WEBTERMINAL_REDIS_KEY", help_heading = "Redis")]
    redis_key: String,
    /// Most notifications kept while Redis is slow or down (at least 10000); past it the oldest
    /// is dropped, logged and counted.
    #[arg(long, value_name = "N", default_value_t = notifications::DEFAULT_QUEUE_BOUND as u64,
          value_parser = clap::value_parser!(u64).range(notifications::DEFAULT_QUEUE_BOUND as u64..),
          env = "WEBTERMINAL_REDIS_QUEUE", help_heading = "Redis")]
    redis_queue: u64,

    /// Phone network behind the core: the simulated one, or none.
    #[arg(
        long,
        value_enum,
        default_value = "sim",
        env = "WEBTERMINAL_PHONE_NETWORK",
        help_heading = "Phone network"
    )]
    phone_network: PhoneNetworkArg,

    /// With `--phone-network sip`: the UDP address SIP is received and sent on (port 0: any free
    /// port, printed at start).
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "0.0.0.0:5060",
        env = "WEBTERMINAL_SIP_LISTEN",
        help_heading = "SIP"
    )]
    sip_listen: SocketAddr,
    /// With `--phone-network sip` (and required by it): the trunk calls to phones go to, a sip: URI
    /// (`sip:192.0.2.1:5060`); each call's Request-URI is it with the callee's number as user part.
    #[arg(
        long,
        value_name = "URI",
        env = "WEBTERMINAL_SIP_TRUNK",
        help_heading = "SIP"
    )]
    sip_trunk: Option<String>,
    /// With `--phone-network sip`: a network (CIDR, `10.0.0.0/8`, or one address) whose INVITEs are
    /// taken as calls from phones; repeatable, and when given it is the whole list. Others get 403.
    /// Default: the trunk's own address.
    #[arg(
        long = "sip-allow",
        value_name = "CIDR",
        env = "WEBTERMINAL_SIP_ALLOW",
        value_delimiter = ',',
        help_heading = "SIP"
    )]
    sip_allow: Vec<Cidr>,
    /// With `--phone-network sip`: how often the trunk is pinged with OPTIONS; a trunk that does not
    /// answer (no answer within the interval, or 408/5xx) is down: /readyz names sip_trunk_down and
    /// calls to phones fail at once with UNAVAILABLE. 0: no pings (the trunk is taken as up).
    #[arg(
        long,
        value_name = "DUR",
        default_value = "30s",
        value_parser = parse_grace,
        env = "WEBTERMINAL_SIP_OPTIONS_INTERVAL",
        help_heading = "SIP"
    )]
    sip_options_interval: Duration,
    /// With `--phone-network sip`: rtpengine's ng control socket (UDP, IP:port, its --listen-ng):
    /// every SIP leg's media is anchored there (WebRTC toward terminals, plain RTP and G.711 toward
    /// SIP). A failing rtpengine fails calls to and from phones with UNAVAILABLE (503 toward the
    /// trunk). Without it, SDP passes through unchanged.
    #[arg(
        long,
        value_name = "ADDR",
        env = "WEBTERMINAL_RTPENGINE",
        help_heading = "SIP"
    )]
    rtpengine: Option<SocketAddr>,
    /// With `--phone-network sip`: the user name for the trunk's digest challenges (401/407 to an
    /// INVITE, or to a REGISTER with --sip-register); needs --sip-password.
    #[arg(
        long,
        value_name = "USER",
        env = "WEBTERMINAL_SIP_USERNAME",
        requires = "sip_password",
        help_heading = "SIP"
    )]
    sip_username: Option<String>,
    /// With `--phone-network sip`: the password for --sip-username (better given in the
    /// environment or the config file than on the command line).
    #[arg(
        long,
        value_name = "PASSWORD",
        env = "WEBTERMINAL_SIP_PASSWORD",
        hide_env_values = true,
        requires = "sip_username",
        help_heading = "SIP"
    )]
    sip_password: Option<String>,
    /// With `--phone-network sip`: also REGISTER --sip-username with the trunk and keep the
    /// registration fresh (for trunks that send calls only to registered users).
    #[arg(long, env = "WEBTERMINAL_SIP_REGISTER", help_heading = "SIP")]
    sip_register: bool,
    /// With `--phone-network sip`: new INVITEs a second from one IP address (a burst of twice as
    /// many); more get 503 with Retry-After. 0: no limit.
    #[arg(
        long,
        value_name = "N",
        default_value_t = webterminal_core::phone::sip::screen::DEFAULT_INVITES_PER_SECOND,
        env = "WEBTERMINAL_SIP_INVITES_PER_SECOND",
        help_heading = "SIP"
    )]
    sip_invites_per_second: u32,

    /// Log format on stderr: `text` for people, `json` (one object per line) for log shippers.
    #[arg(
        long,
        value_enum,
        default_value = "text",
        env = "WEBTERMINAL_LOG_FORMAT",
        help_heading = "Logs"
    )]
    pub(crate) log_format: LogFormat,
    /// Log phone numbers and SDP bodies in full (personal data; off by default: redacted).
    #[arg(long, env = "WEBTERMINAL_LOG_PERSONAL_DATA", help_heading = "Logs")]
    pub(crate) log_personal_data: bool,

    /// Serve Prometheus metrics at http://ADDR/metrics, with /healthz and /readyz (e.g.
    /// 127.0.0.1:9464; port 0: any free port, printed at start). Default: none.
    #[arg(long, env = "WEBTERMINAL_METRICS_LISTEN", help_heading = "Metrics")]
    metrics_listen: Option<SocketAddr>,
}

/// How `serve` writes its log lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines (tracing's default format).
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `fields` (with `message`) and
    /// `span`s; personal data redacted as in text.
    Json,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum PhoneNetworkArg {
    /// The simulated phone network (PROTOCOL.md section 7).
    Sim,
    /// No phone network.
    None,
    /// A SIP trunk (PROTOCOL.md section 13; needs --sip-trunk).
    Sip,
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
    config.drain_timeout = args.drain_timeout;
    config.switch.ring_timeout = args.ring_timeout;
    config.switch.negotiation_timeout = args.negotiation_timeout;
    config.switch.multipipe_call_cap = args.multipipe_call_cap;
    config.phone_network = match args.phone_network {
        PhoneNetworkArg::Sim => PhoneNetworkKind::Sim,
        PhoneNetworkArg::None => PhoneNetworkKind::None,
        PhoneNetworkArg::Sip => {
            let trunk = args
                .sip_trunk
                .as_deref()
                .ok_or("--phone-network sip needs --sip-trunk URI (where calls to phones go)")?;
            let mut sip = SipConfig::new(trunk)?;
            sip.listen = args.sip_listen;
            sip.allow = args.sip_allow;
            sip.options_interval = args.sip_options_interval;
            sip.rtpengine = args.rtpengine;
            sip.credential = match (args.sip_username, args.sip_password) {
                (Some(username), Some(password)) => Some(SipCredential { username, password }),
                _ => None,
            };
            sip.register = args.sip_register;
            sip.invites_per_second = args.sip_invites_per_second;
            sip.validate()?;
            PhoneNetworkKind::Sip(sip)
        }
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
    config.connections = server::ConnectionLimits {
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
        config.demo_tokens = Some(server::DemoTokens::new(demo_numbers()));
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
    if let Some(url) = &args.redis_url {
        let mut redis = NotificationsConfig::new(url).map_err(|e| format!("--redis: {e}"))?;
        redis.key = args.redis_key;
        redis.queue_bound = usize::try_from(args.redis_queue).unwrap_or(usize::MAX);
        config.notifications = Some(redis);
    }
    webterminal_core::core::log_personal_data(args.log_personal_data);
    // One descriptor per connection: the inherited soft limit (often 1024) would cap the server far
    // below what the system allows. The default connection caps are sized from the raised limit.
    edge::listener::raise_open_file_limit();

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
        let metrics = match metrics_listen {
            Some(listen) => Some(telemetry::metrics::install(listen, config.health.clone()).await?),
            None => None,
        };
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let local = listener.local_addr()?;
        // Bound before anything is printed, so that a SIP port in use is a startup error and port 0
        // is known.
        let sip = match &mut config.phone_network {
            PhoneNetworkKind::Sip(sip) => Some(
                sip.bind()
                    .map_err(|e| format!("--sip-listen {}: {e}", sip.listen))?,
            ),
            _ => None,
        };
        let scheme = if config.tls.is_some() {
            "TLS"
        } else {
            "plaintext"
        };
        say!("webterminal-core listening on {local} ({scheme})");
        let ws = if config.tls.is_some() { "wss" } else { "ws" };
        say!(
            "  browsers: {ws}://{local}/pipe and {ws}://{local}/multipipe \
             (Sec-WebSocket-Protocol: Bearer, <token>; docs/BROWSERS.md)"
        );
        let web = if config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        say!("  softphone page: {web}://{local}/");
        say!("  health: {web}://{local}/healthz and {web}://{local}/readyz");
        if let Some(metrics) = metrics {
            say!("  metrics: http://{metrics}/metrics (and /healthz, /readyz)");
        }
        if let Some(sip) = sip {
            say!("  sip: udp {sip}");
        }
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
        assert_eq!(args.redis_url, None, "no notifications unless asked");
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
        assert_eq!(args.redis_url.as_deref(), Some("redis://127.0.0.1:6390/1"));
        assert_eq!(args.redis_key, "queue:in");
        assert_eq!(args.redis_queue, 50_000);
        for refused in [&["--redis-queue", "9999"][..], &["--redis-queue", "-1"]] {
            let args = ["webterminal-core", "serve"].iter().chain(refused);
            assert!(Cli::try_parse_from(args).is_err(), "{refused:?}");
        }
    }
}
