//! Opening the trunk: the socket bound (or handed over), rsipstack's endpoint and dialog layer
//! started, rtpengine connected and watched, the OPTIONS pings started, the allow list resolved.

use super::anchor::{describe_rtpengine_metrics, watch_rtpengine};
use super::*;
use crate::phone::sip::screen::ScreenConfig;

impl Trunk {
    /// Binds the socket, starts the endpoint, resolves the allow list.
    /// Hands `up` back with the error, for the caller to report the trunk down.
    pub(super) async fn open(
        config: SipConfig,
        max_sdp_bytes: usize,
        reports: PhoneReports,
        up: watch::Sender<bool>,
    ) -> Result<Trunk, (String, watch::Sender<bool>)> {
        match Trunk::open_endpoint(&config).await {
            Ok(opened) => Ok(Trunk::assemble(config, max_sdp_bytes, reports, up, opened).await),
            Err(why) => Err((why, up)),
        }
    }

    /// Binds the socket and starts the endpoint.
    pub(super) async fn open_endpoint(config: &SipConfig) -> Result<Opened, String> {
        let trunk = parse_trunk_uri(&config.trunk)?;
        let trunk_addr = SipAddr::try_from(&trunk).map_err(|e| format!("--sip-trunk: {e}"))?;
        let socket = match &config.socket {
            Some(bound) => bound.duplicate(),
            None => std::net::UdpSocket::bind(config.listen),
        }
        .and_then(|s| {
            s.set_nonblocking(true)?;
            tokio::net::UdpSocket::from_std(s)
        })
        .map_err(|e| format!("--sip-listen {}: {e}", config.listen))?;
        let socket = Arc::new(SipSocket::new(
            socket,
            ScreenConfig {
                invites_per_second: config.invites_per_second,
            },
        ));
        let cancel = CancellationToken::new();
        let connection =
            UdpConnection::from_socket(socket.clone(), None, Some(cancel.child_token()))
                .await
                .map_err(|e| format!("--sip-listen {}: {e}", config.listen))?;
        let local = connection.get_addr().addr.to_string();
        let transport = TransportLayer::new(cancel.child_token());
        transport.add_transport(connection.into());
        let endpoint = EndpointBuilder::new()
            .with_user_agent(USER_AGENT)
            .with_inspector(Box::new(Counting::new()))
            .with_cancel_token(cancel.clone())
            .with_transport_layer(transport)
            .build();
        let incoming = endpoint
            .incoming_transactions()
            .map_err(|e| format!("SIP endpoint: {e}"))?;
        let inner = endpoint.inner.clone();
        let dialogs = Arc::new(DialogLayer::new(endpoint.inner.clone()));
        let media = match config.rtpengine {
            Some(addr) => Some(
                RtpEngine::connect(addr)
                    .await
                    .map_err(|e| format!("--rtpengine {addr}: {e}"))?,
            ),
            None => None,
        };
        tokio::spawn(async move { endpoint.serve().await });
        Ok(Opened {
            trunk,
            trunk_addr,
            local,
            socket,
            cancel,
            incoming,
            inner,
            dialogs,
            media,
        })
    }

    /// The trunk task's state over an open endpoint; starts the OPTIONS pings.
    pub(super) async fn assemble(
        config: SipConfig,
        max_sdp_bytes: usize,
        reports: PhoneReports,
        up: watch::Sender<bool>,
        opened: Opened,
    ) -> Trunk {
        let Opened {
            trunk,
            trunk_addr,
            local,
            socket,
            cancel,
            incoming,
            inner,
            dialogs,
            media,
        } = opened;
        let prefix = media::call_id_prefix(&local);
        let media = media.map(|engine| {
            describe_rtpengine_metrics();
            let anchor = Arc::new(Anchor {
                engine,
                prefix: prefix.clone(),
                trouble: std::sync::Mutex::new(LogThrottle::new(media::LOG_INTERVAL)),
                live: std::sync::Mutex::new(HashSet::new()),
            });
            tracing::info!(
                rtpengine = %anchor.engine.addr(),
                %prefix,
                "SIP trunk: media anchored in rtpengine"
            );
            let watched = anchor.clone();
            let stop = cancel.child_token();
            tokio::spawn(async move {
                tokio::select! {
                    () = stop.cancelled() => {}
                    () = watch_rtpengine(watched) => {}
                }
            });
            anchor
        });
        let up_rx = up.subscribe();
        let credential = config.credential.as_ref().map(|c| Credential {
            username: c.username.clone(),
            password: c.password.clone(),
            realm: None,
            auth_username: None,
        });
        let registration = match &credential {
            Some(credential) if config.register => {
                let stop = CancellationToken::new();
                let task = tokio::spawn(keep_registered(
                    inner.clone(),
                    trunk.clone(),
                    credential.clone(),
                    stop.clone(),
                ));
                Some((stop, task))
            }
            _ => None,
        };
        if config.options_interval.is_zero() {
            tracing::info!("SIP trunk: OPTIONS pings off (--sip-options-interval 0)");
        } else {
            let ping = Ping {
                endpoint: inner,
                trunk: trunk.clone(),
                trunk_addr: trunk_addr.clone(),
                local: local.clone(),
                interval: config.options_interval,
            };
            let stop = cancel.child_token();
            tokio::spawn(async move {
                tokio::select! {
                    () = stop.cancelled() => {}
                    () = ping_trunk(ping, up) => {}
                }
            });
        }

        let allow = if config.allow.is_empty() {
            trunk_hosts(&trunk).await
        } else {
            config.allow.clone()
        };
        tracing::info!(
            %local,
            trunk = %config.trunk,
            allow = ?allow,
            "SIP trunk: listening on UDP"
        );
        let (ended_tx, ended) = mpsc::unbounded_channel();
        Trunk {
            shared: Arc::new(Shared {
                dialogs,
                reports,
                trunk,
                trunk_addr,
                local,
                ended: ended_tx,
                sent: std::sync::Mutex::new(HashMap::new()),
                prefix,
                media,
                socket,
                credential,
                brought_in: std::sync::Mutex::new(HashMap::new()),
            }),
            endpoint_cancel: cancel,
            incoming,
            ended,
            allow,
            max_sdp_bytes,
            legs: HashMap::new(),
            incoming_calls: 0,
            up: up_rx,
            registration,
        }
    }
}

/// Validates a `--sip-trunk` value: a `sip:` or `sips:` URI with a host.
///
/// # Errors
/// What is wrong, for [`super::SipConfigError::Trunk`].
pub(in crate::phone::sip) fn parse_trunk_uri(uri: &str) -> Result<Uri, String> {
    let lower = uri.to_ascii_lowercase();
    if !lower.starts_with("sip:") {
        return Err("it must start with sip:".to_owned());
    }
    let parsed = Uri::try_from(uri).map_err(|e| e.to_string())?;
    if parsed.host_with_port.host.to_string().is_empty() {
        return Err("it has no host".to_owned());
    }
    Ok(parsed)
}

/// What [`Trunk::open_endpoint`] opened.
pub(super) struct Opened {
    pub(super) trunk: Uri,
    pub(super) trunk_addr: SipAddr,
    pub(super) local: String,
    pub(super) socket: Arc<SipSocket>,
    pub(super) cancel: CancellationToken,
    pub(super) incoming: rsipstack::transaction::TransactionReceiver,
    pub(super) inner: EndpointInnerRef,
    pub(super) dialogs: Arc<DialogLayer>,
    /// The ng client, with `--rtpengine`.
    pub(super) media: Option<RtpEngine>,
}

/// The addresses of the trunk's host: the default allow list.
pub(super) async fn trunk_hosts(trunk: &Uri) -> Vec<Cidr> {
    let host = trunk
        .host_with_port
        .host
        .to_string()
        .trim_matches(['[', ']'])
        .to_owned();
    if let Ok(ip) = host.parse() {
        return vec![Cidr::host(ip)];
    }
    let lookup = tokio::net::lookup_host((host.as_str(), 5060)).await;
    match lookup {
        Ok(addrs) => addrs.map(|a| Cidr::host(a.ip())).collect(),
        Err(e) => {
            tracing::warn!(%host, error = %e, "SIP trunk: cannot resolve the trunk's host; no INVITE is allowed in");
            Vec::new()
        }
    }
}
