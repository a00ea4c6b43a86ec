//! Connection hygiene (docs/SECURITY.md, "Holding up under bad clients"), against the real binary
//! started under `prlimit --nofile=256:256`: 400 silent TCP connections and slowloris clients that
//! send the HTTP/2 preface one byte every 2 s are all closed within the handshake deadline (2 s
//! here), a health check and a full call from other addresses succeed meanwhile, and the server's
//! CPU time over the attack (utime + stime from `/proc/PID/stat`) stays small: no accept loop
//! spinning on a full descriptor table. Also: with caps above the descriptors the accept loop
//! backs off; the soft open-file limit is raised to the hard one; a TLS connection that opens no
//! rpc is closed at the handshake deadline; and a connection with no rpc open is closed after the
//! idle timeout while one holding a terminal is kept (these last two in this process).
//!
//! The attack comes from 127.0.0.1 to 127.0.0.5 and the good clients from 127.0.0.9 and
//! 127.0.0.10 (all loopback on Linux): one attacker address cannot take more than its share of
//! the connections.

#[path = "support/binary.rs"]
mod binary;

#[path = "support/in_process.rs"]
mod in_process;

use binary::terminal::{fixture, offer, Kind, Terminal};
use binary::Started;
use in_process::Core;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tonic::transport::{Channel, Endpoint, Uri};
use webterminal_core::proto::webterminal::web_terminal_message::Message;
use webterminal_core::proto::webterminal::{Answer, Bye};

const SECRET: &str = "connection-hygiene-test-secret";
const HANDSHAKE: Duration = Duration::from_secs(2);
/// Attack connections: silent, and trickling the preface.
const SILENT: usize = 400;
const SLOWLORIS: usize = 20;
/// The HTTP/2 client connection preface (RFC 9113 3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// How long an attack connection may stay open: the deadline and generous slack for a loaded
/// machine (the point is that it closes at all; without a deadline it never would).
const CLOSED_WITHIN: Duration = Duration::from_secs(8);
/// The server's CPU time over the whole attack may not exceed this. A server spinning on
/// `EMFILE` burns most of a core for as long as the attack lasts (several seconds here).
const CPU_BOUND: Duration = Duration::from_millis(1500);
const WAIT: Duration = Duration::from_secs(5);

/// `prlimit --nofile=SOFT:HARD webterminal-core serve --listen 127.0.0.1:0 ... extra`; prlimit
/// execs the server, so the child's pid is the server's. Records on, as the binary runs by
/// default, in a directory of this server's own.
fn start(nofile: &str, extra: &[&str]) -> Server {
    let records = tempfile::tempdir().unwrap();
    let started = binary::serve()
        .wrapper(["prlimit".to_owned(), format!("--nofile={nofile}")])
        .args(["--jwt-secret", SECRET, "--records"])
        .arg(records.path().join("records.sqlite3"))
        .args(extra)
        .env("RUST_LOG", "info")
        .start();
    Server {
        started,
        _records: records,
    }
}

struct Server {
    started: Started,
    _records: tempfile::TempDir,
}

impl Server {
    fn pid(&self) -> u32 {
        self.started.pid()
    }

    fn addr(&self) -> SocketAddr {
        self.started.addr
    }
}

/// The server's CPU time so far: utime + stime of `/proc/PID/stat`, in clock ticks of 10 ms
/// (`CLK_TCK` is 100 on Linux).
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

fn soft_open_file_limit(pid: u32) -> u64 {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    line.split_whitespace().nth(3).unwrap().parse().unwrap()
}

async fn connect_from(local: IpAddr, server: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(local, 0))?;
    socket.connect(server).await
}

/// A gRPC channel whose connection comes from `local`.
async fn channel_from(local: IpAddr, server: SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{server}"))
        .unwrap()
        .connect_timeout(WAIT)
        .connect_with_connector(tower::service_fn(move |_: Uri| async move {
            connect_from(local, server)
                .await
                .map(hyper_util::rt::TokioIo::new)
        }))
        .await
        .expect("a good client connects during the attack")
}

fn ip(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

/// Waits until the server closes `stream` (EOF or reset), while sending `trickle` one byte every
/// 2 s. Returns how long after `since` it was closed, or `None` if it was still open after
/// [`CLOSED_WITHIN`].
async fn until_closed(mut stream: TcpStream, trickle: &[u8], since: Instant) -> Option<Duration> {
    let mut buf = [0u8; 256];
    let mut trickle = trickle.iter();
    let deadline = tokio::time::Instant::from_std(since + CLOSED_WITHIN);
    loop {
        if let Some(byte) = trickle.next() {
            if stream.write_all(&[*byte]).await.is_err() {
                return Some(since.elapsed());
            }
        }
        let wait = tokio::time::sleep(Duration::from_secs(2));
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => return Some(since.elapsed()),
                Ok(_) => {}
            },
            () = wait => {}
            () = tokio::time::sleep_until(deadline) => return None,
        }
    }
}

/// A Pipe (greeted with Idle) on `channel`, opened while the attack goes on.
async fn pipe(channel: Channel, msisdn: &str) -> Terminal {
    let mut pipe = Terminal::open(channel, Kind::Pipe, SECRET, msisdn)
        .await
        .expect("a terminal opens during the attack");
    assert!(matches!(pipe.next().await, Message::Idle(_)));
    pipe
}

/// A whole call between two Pipes, each on a connection of its own from `local`.
async fn full_call(server: SocketAddr, local: [IpAddr; 2]) {
    let (a_number, b_number) = ("+4799990001", "+4799990002");
    let mut a = pipe(channel_from(local[0], server).await, a_number).await;
    let mut b = pipe(channel_from(local[1], server).await, b_number).await;
    a.send("", offer(&fixture("chromium-offer.sdp"), b_number))
        .await;
    let offered = b.next().await;
    assert!(matches!(offered, Message::Offer(_)), "{offered:?}");
    b.send(
        "",
        Message::Answer(Answer {
            sdp: fixture("chromium-answer.sdp"),
        }),
    )
    .await;
    // B's simulated mobile phone is a fork too: A may see Ringing first.
    let mut answer = a.next().await;
    while matches!(answer, Message::Ringing(_)) {
        answer = a.next().await;
    }
    assert!(matches!(answer, Message::Answer(_)), "{answer:?}");
    a.send("", Message::Bye(Bye::default())).await;
    assert!(matches!(b.next().await, Message::Bye(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_slowloris_connections_are_closed_while_good_clients_are_served() {
    // This process holds every attack socket too.
    let _ = rlimit::increase_nofile_limit(4096);
    let server = start("256:256", &["--handshake-timeout", "2s"]);
    let pid = server.pid();
    let addr = server.addr();
    let cpu_before = cpu_time(pid);
    let start = Instant::now();

    let mut attack = tokio::task::JoinSet::new();
    for i in 0..SILENT {
        // 100 connections from each of 127.0.0.1 ..= 127.0.0.4.
        let local = ip(1 + (i / 100) as u8);
        let stream = connect_from(local, addr)
            .await
            .expect("the kernel accepts the connection");
        attack.spawn(until_closed(stream, &[], start));
    }
    for _ in 0..SLOWLORIS {
        let stream = connect_from(ip(5), addr).await.unwrap();
        attack.spawn(until_closed(stream, PREFACE, start));
    }

    // During the attack: a health check and a full call, from other addresses.
    let mut health =
        tonic_health::pb::health_client::HealthClient::new(channel_from(ip(9), addr).await);
    let health = health.check(tonic_health::pb::HealthCheckRequest {
        service: "wgtwo.webterminal.v0.WebTerminalService".into(),
    });
    let health = tokio::time::timeout(WAIT, health)
        .await
        .expect("the health check is answered in time")
        .expect("the health check succeeds")
        .into_inner();
    assert_eq!(
        health.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    full_call(addr, [ip(9), ip(10)]).await;

    let mut still_open = 0;
    let mut last_closed = Duration::ZERO;
    while let Some(closed) = attack.join_next().await {
        match closed.unwrap() {
            Some(after) => last_closed = last_closed.max(after),
            None => still_open += 1,
        }
    }
    let cpu = cpu_time(pid).saturating_sub(cpu_before);
    eprintln!(
        "attack over: {still_open} of {} connections still open, the last closed after \
         {last_closed:?}; server CPU {cpu:?}",
        SILENT + SLOWLORIS
    );
    assert_eq!(
        still_open,
        0,
        "of {} attack connections, {still_open} were still open {CLOSED_WITHIN:?} after the \
         attack began (handshake deadline {HANDSHAKE:?})",
        SILENT + SLOWLORIS
    );
    assert!(
        cpu < CPU_BOUND,
        "the server used {cpu:?} of CPU during the attack (bound {CPU_BOUND:?})"
    );
    // And afterwards it still serves.
    full_call(addr, [ip(1), ip(2)]).await;
}

/// With the caps set above what the descriptors allow, the descriptor table fills: the accept loop
/// backs off instead of spinning, says so once (not once per failed accept), and serves again as
/// soon as the deadline has closed the silent connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_descriptor_table_makes_the_accept_loop_back_off_not_spin() {
    let _ = rlimit::increase_nofile_limit(4096);
    let server = start(
        "256:256",
        &[
            "--handshake-timeout",
            "2s",
            "--max-connections",
            "1000",
            "--max-connections-per-ip",
            "1000",
        ],
    );
    let pid = server.pid();
    let cpu_before = cpu_time(pid);
    let start = Instant::now();
    let mut attack = tokio::task::JoinSet::new();
    for _ in 0..SILENT {
        let stream = connect_from(ip(1), server.addr()).await.unwrap();
        attack.spawn(async move {
            // Those the server could not accept at first wait in the backlog: they are accepted
            // (and closed at their own deadline) once descriptors are free again.
            let mut stream = stream;
            let mut buf = [0u8; 256];
            let closed = async {
                // The server's HTTP/2 settings, then the end.
                while !matches!(stream.read(&mut buf).await, Ok(0) | Err(_)) {}
            };
            tokio::time::timeout(Duration::from_secs(15), closed)
                .await
                .is_ok()
        });
    }
    let mut still_open = 0;
    while let Some(closed) = attack.join_next().await {
        if !closed.unwrap() {
            still_open += 1;
        }
    }
    let cpu = cpu_time(pid).saturating_sub(cpu_before);
    let warnings = server
        .started
        .log
        .text()
        .lines()
        .filter(|l| l.contains("cannot accept connections"))
        .count();
    eprintln!(
        "descriptor attack over after {:?}: {still_open} still open, server CPU {cpu:?}, \
         {warnings} accept warnings",
        start.elapsed()
    );
    assert_eq!(
        still_open, 0,
        "every connection is accepted and closed in the end"
    );
    assert!(
        cpu < CPU_BOUND,
        "the server used {cpu:?} of CPU with its descriptor table full (bound {CPU_BOUND:?})"
    );
    assert!(
        (1..=2).contains(&warnings),
        "EMFILE is logged, once per 10 s: {warnings} lines"
    );
    // Serving again.
    let mut health = tonic_health::pb::health_client::HealthClient::new(
        channel_from(ip(9), server.addr()).await,
    );
    let check = health.check(tonic_health::pb::HealthCheckRequest::default());
    tokio::time::timeout(WAIT, check)
        .await
        .expect("answered in time")
        .expect("the health check succeeds");
}

#[test]
fn the_soft_open_file_limit_is_raised_to_the_hard_limit() {
    let server = start("128:300", &[]);
    assert_eq!(soft_open_file_limit(server.pid()), 300);
}

/// A TLS listener: the handshake deadline covers the TLS handshake and, after it, the HTTP/2
/// preface and the first rpc. A client that completes TLS and then says nothing is closed too.
#[tokio::test]
async fn a_tls_connection_that_opens_no_rpc_is_closed_at_the_handshake_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let files = webterminal_core::server::TlsFiles {
        cert: dir.path().join("cert.pem"),
        key: dir.path().join("key.pem"),
    };
    std::fs::write(&files.cert, cert.pem()).unwrap();
    std::fs::write(&files.key, signing_key.serialize_pem()).unwrap();
    let mut config = webterminal_core::server::ServerConfig::new(SECRET.as_bytes().to_vec());
    config.tls = Some(files);
    config.connections.handshake_timeout = Duration::from_secs(1);
    let core = Core::start(config).await;
    let addr = core.addr;

    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    roots.add(cert.der().clone()).unwrap();
    let mut tls = tokio_rustls::rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls));
    let start = Instant::now();
    let silent_tcp = TcpStream::connect(addr).await.unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut silent_tls = connector
        .connect(name, tcp)
        .await
        .expect("the TLS handshake completes");
    let tls_closed = tokio::time::timeout(CLOSED_WITHIN, async {
        let mut buf = [0u8; 256];
        // The server's HTTP/2 settings, then the end (close_notify, EOF or a reset).
        while !matches!(silent_tls.read(&mut buf).await, Ok(0) | Err(_)) {}
    });
    let (tcp_closed, tls_closed) = tokio::join!(until_closed(silent_tcp, &[], start), tls_closed);
    assert!(tcp_closed.is_some(), "a silent TCP connection is closed");
    assert!(
        tls_closed.is_ok(),
        "a TLS connection that opened no rpc was still open after {CLOSED_WITHIN:?}"
    );
}

/// A loopback proxy in front of `server` for one connection: the channel's traffic goes through
/// it, and the returned task ends when either side closes the connection.
async fn proxied_channel(server: SocketAddr) -> (Channel, tokio::task::JoinHandle<()>) {
    let front = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let front_addr = front.local_addr().unwrap();
    let proxy = tokio::spawn(async move {
        let (mut client, _) = front.accept().await.unwrap();
        let mut upstream = TcpStream::connect(server).await.unwrap();
        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
    });
    let channel = Channel::from_shared(format!("http://{front_addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    (channel, proxy)
}

/// The idle timeout, through the whole stack: a connection whose only rpc (a health check) has
/// ended is closed once it has been idle that long, while one holding a terminal is kept.
#[tokio::test]
async fn a_connection_with_no_rpc_open_is_closed_after_the_idle_timeout() {
    let mut config = webterminal_core::server::ServerConfig::new(SECRET.as_bytes().to_vec());
    config.connections.idle_timeout = Duration::from_secs(1);
    let core = Core::start(config).await;
    let addr = core.addr;

    let (idle, idle_connection) = proxied_channel(addr).await;
    // The channel stays alive (a client keeping its connection for later): the client does not
    // close it.
    tonic_health::pb::health_client::HealthClient::new(idle.clone())
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .expect("the health check succeeds");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !idle_connection.is_finished(),
        "kept while within the idle timeout"
    );
    let (busy, busy_connection) = proxied_channel(addr).await;
    let mut terminal = pipe(busy, "+4799990001").await;

    tokio::time::timeout(CLOSED_WITHIN, idle_connection)
        .await
        .expect("the idle connection is closed")
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !busy_connection.is_finished(),
        "a connection holding a terminal is kept past the idle timeout"
    );
    // Still usable: its terminal is answered.
    terminal.send("", Message::Bye(Bye::default())).await;
    assert!(matches!(terminal.next().await, Message::Error(_)));
    drop(idle);
}
