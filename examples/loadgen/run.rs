//! The load generator's logic, kept apart from its command line (`main.rs`) so that the test suite
//! can include it (`tests/loadgen_smoke.rs`) and run it against an in-process server.
//!
//! It registers MultiPipe terminals over a chosen number of HTTP/2 connections (tonic `Channel`s),
//! pairs them (caller `i` calls callee `pairs + i`) and places calls **open loop**: call `k` of a step
//! starts at `k / rate` seconds whether or not earlier calls have finished, so a slow server shows up
//! as latency and failures instead of as a lower offered rate. Each call is the flow of PROTOCOL.md
//! 4.1/4.2 with real SDP: caller `Offer` → callee `Ringing` → callee `Answer` → caller `Bye`, and the
//! callee sees `Bye{NORMAL_CLEARING}`. Setup latency is Offer sent → Answer received.
//!
//! The server's CPU time and memory are read from `/proc/<server pid>` (`stat`: utime + stime;
//! `status`: VmRSS), or from `/proc/self` when the server runs in this process.

use hdrhistogram::Histogram;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinSet;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};
use tonic::Streaming;
use webterminal_core::auth;
use webterminal_core::core::Msisdn;
use webterminal_core::proto::common::PhoneNumber;
use webterminal_core::proto::webterminal::web_terminal_message::Message;
use webterminal_core::proto::webterminal::web_terminal_service_client::WebTerminalServiceClient;
use webterminal_core::proto::webterminal::{bye, Answer, Bye, Offer, Ringing, WebTerminalMessage};

/// The server's `max_concurrent_streams` per HTTP/2 connection; a connection never carries more
/// terminals than this.
pub const MAX_STREAMS_PER_CONNECTION: usize = 1024;

/// Terminals per connection when the number of connections is not given.
pub const DEFAULT_STREAMS_PER_CONNECTION: usize = 1000;

/// Linux's `USER_HZ`: the unit of utime/stime in `/proc/<pid>/stat` (100 on every Linux ABI).
const USER_HZ: u64 = 100;

/// What to run.
#[derive(Clone, Debug)]
pub enum Mode {
    /// One step at `rate` calls per second for `duration`.
    Fixed { rate: f64, duration: Duration },
    /// One step per rate, `step` long each; stops after `stop_after_dirty` dirty steps in a row.
    Ramp {
        rates: Vec<f64>,
        step: Duration,
        stop_after_dirty: usize,
    },
    /// Register the terminals, wait `settle`, and report the server's memory per terminal.
    Idle { settle: Duration },
}

/// Everything [`run`] needs; [`Options::new`] gives the defaults.
#[derive(Clone, Debug)]
pub struct Options {
    /// The server, e.g. `http://127.0.0.1:50051`.
    pub addr: String,
    /// The HS256 secret the server checks tokens with.
    pub jwt_secret: String,
    /// Terminals to register (rounded down to an even number for call modes: callers + callees).
    pub terminals: usize,
    /// HTTP/2 connections to spread them over; `None`: one per [`DEFAULT_STREAMS_PER_CONNECTION`].
    pub connections: Option<usize>,
    pub mode: Mode,
    /// Where `chromium-offer.sdp` and `chromium-answer.sdp` are.
    pub sdp_dir: PathBuf,
    /// The server process to read CPU and memory from; `None`: this process (in-process server).
    pub server_pid: Option<u32>,
    /// A call without an Answer this long after its Offer fails (and is cancelled with Bye).
    pub call_timeout: Duration,
    /// The knee's latency bound: a clean step has p99 below this.
    pub knee_p99: Duration,
    /// Terminal `i` is `+479` followed by `msisdn_base + i` in 8 digits.
    pub msisdn_base: u64,
    /// At most this many connects / rpc opens in flight while registering.
    pub open_concurrency: usize,
    /// When more than 1, connection `i` binds source address `127.0.0.(1 + i % source_ips)`, so
    /// that more connections than one address has ephemeral ports can reach a loopback server.
    pub source_ips: u8,
}

impl Options {
    /// Defaults: 2000 terminals, 5 s call timeout, knee at p99 < 10 ms.
    pub fn new(addr: impl Into<String>, jwt_secret: impl Into<String>, mode: Mode) -> Options {
        Options {
            addr: addr.into(),
            jwt_secret: jwt_secret.into(),
            terminals: 2000,
            connections: None,
            mode,
            sdp_dir: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sdp")),
            server_pid: None,
            call_timeout: Duration::from_secs(5),
            knee_p99: Duration::from_millis(10),
            msisdn_base: 0,
            open_concurrency: 256,
            source_ips: 1,
        }
    }
}

/// What one run found.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub terminals: usize,
    pub connections: usize,
    /// Set when the run could not start (bad options, connection or registration failure).
    pub setup_error: Option<String>,
    /// How long registering every terminal took.
    pub register_time: Duration,
    /// Call steps, in order (one for [`Mode::Fixed`]).
    pub steps: Vec<StepReport>,
    /// [`Mode::Ramp`]: the highest clean rate (see [`StepReport::clean`]).
    pub knee: Option<f64>,
    pub knee_p99: Duration,
    /// [`Mode::Idle`].
    pub idle: Option<IdleReport>,
    /// Whether CPU and memory are this process's (server in-process: generator included).
    pub in_process: bool,
}

/// One call step.
#[derive(Clone, Debug, Default)]
pub struct StepReport {
    pub target_rate: f64,
    pub duration: Duration,
    /// Calls started, and the rate they really started at (first to last start).
    pub started: u64,
    pub achieved_rate: f64,
    /// Calls that went Offer → Ringing → Answer → Bye with the callee seeing NORMAL_CLEARING.
    pub completed: u64,
    /// Everything else, and why (`failures`).
    pub failed: u64,
    pub failures: BTreeMap<String, u64>,
    /// Calls whose caller saw Ringing.
    pub ringing: u64,
    /// Setup latency Offer sent → Answer received, µs.
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    /// The server's CPU time (user + system) over the step, drain included, per completed call.
    pub server_cpu_us_per_call: Option<f64>,
    /// The generator's own CPU per completed call (`None` in-process: it is the same process).
    pub generator_cpu_us_per_call: Option<f64>,
    /// The server's VmRSS at the end of the step, KiB.
    pub server_rss_kib: Option<u64>,
    /// The latest a call started behind its schedule (the generator falling behind).
    pub max_lag: Duration,
    /// `/proc/loadavg` (1, 5, 15 min) at the end of the step.
    pub loadavg: String,
}

impl StepReport {
    /// No failed call, p99 below `p99_limit`, and the generator kept up (started calls at ≥ 95 % of
    /// the target rate), so the rate was really offered.
    pub fn clean(&self, p99_limit: Duration) -> bool {
        self.failed == 0
            && self.completed > 0
            && (self.p99_us as u128) < p99_limit.as_micros()
            && self.achieved_rate >= 0.95 * self.target_rate
    }
}

/// Memory per idle registered terminal.
#[derive(Clone, Debug, Default)]
pub struct IdleReport {
    pub terminals: usize,
    pub connections: usize,
    pub registered: usize,
    /// Server VmRSS before connecting, after connecting, and with every terminal registered, KiB.
    pub rss_before_kib: u64,
    pub rss_connected_kib: u64,
    pub rss_registered_kib: u64,
    /// (registered − before) / terminals: connections included.
    pub bytes_per_terminal: f64,
    /// (registered − connected) / terminals: the streams alone.
    pub bytes_per_stream: f64,
}

/// Runs the load described by `opts` and reports.
pub async fn run(opts: Options) -> Report {
    run_with(opts, || async {}).await
}

/// [`run`], calling `after_calls` once the last step has drained, while every terminal is still
/// registered (the smoke test asks the server how many calls it holds then).
pub async fn run_with<F, Fut>(opts: Options, after_calls: F) -> Report
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut report = Report {
        knee_p99: opts.knee_p99,
        in_process: opts.server_pid.is_none(),
        ..Report::default()
    };
    let terminals = match opts.mode {
        Mode::Idle { .. } => opts.terminals,
        _ => opts.terminals / 2 * 2,
    };
    report.terminals = terminals;
    if terminals == 0 {
        report.setup_error = Some("no terminals".into());
        return report;
    }
    let connections = opts
        .connections
        .unwrap_or_else(|| terminals.div_ceil(DEFAULT_STREAMS_PER_CONNECTION))
        .clamp(1, terminals);
    report.connections = connections;
    if terminals.div_ceil(connections) > MAX_STREAMS_PER_CONNECTION {
        report.setup_error = Some(format!(
            "{terminals} terminals over {connections} connections is more than the server's \
             {MAX_STREAMS_PER_CONNECTION} streams per connection: use --connections {} or more",
            terminals.div_ceil(MAX_STREAMS_PER_CONNECTION)
        ));
        return report;
    }
    let pid = opts.server_pid;

    let rss_before = rss_kib(pid).unwrap_or(0);
    let began = Instant::now();
    let channels = match connect(&opts, connections).await {
        Ok(channels) => channels,
        Err(e) => {
            report.setup_error = Some(e);
            return report;
        }
    };
    let rss_connected = rss_kib(pid).unwrap_or(0);
    let opened = open_terminals(&opts, &channels, terminals).await;
    report.register_time = began.elapsed();
    let opened = match opened {
        Ok(opened) => opened,
        Err(e) => {
            report.setup_error = Some(e);
            return report;
        }
    };

    match opts.mode.clone() {
        Mode::Idle { settle } => {
            tokio::time::sleep(settle).await;
            let rss_registered = rss_kib(pid).unwrap_or(0);
            let per = |from: u64| {
                (rss_registered.saturating_sub(from) as f64 * 1024.0) / terminals as f64
            };
            report.idle = Some(IdleReport {
                terminals,
                connections,
                registered: opened.len(),
                rss_before_kib: rss_before,
                rss_connected_kib: rss_connected,
                rss_registered_kib: rss_registered,
                bytes_per_terminal: per(rss_before),
                bytes_per_stream: per(rss_connected),
            });
            after_calls().await;
            drop(opened);
        }
        Mode::Fixed { rate, duration } => {
            let ctx = CallContext::new(&opts, opened);
            let step = ctx.step(rate, duration).await;
            report.steps.push(step);
            after_calls().await;
        }
        Mode::Ramp {
            rates,
            step,
            stop_after_dirty,
        } => {
            let ctx = CallContext::new(&opts, opened);
            let mut dirty_in_a_row = 0;
            for rate in rates {
                let result = ctx.step(rate, step).await;
                if result.clean(opts.knee_p99) {
                    dirty_in_a_row = 0;
                    report.knee = Some(report.knee.map_or(rate, |k: f64| k.max(rate)));
                } else {
                    dirty_in_a_row += 1;
                }
                report.steps.push(result);
                if dirty_in_a_row >= stop_after_dirty.max(1) {
                    break;
                }
            }
            after_calls().await;
        }
    }
    report
}

/// `connections` HTTP/2 connections to `opts.addr`, opened at most `open_concurrency` at a time.
async fn connect(opts: &Options, connections: usize) -> Result<Vec<Channel>, String> {
    let endpoint = Endpoint::from_shared(opts.addr.clone())
        .map_err(|e| format!("bad address {:?}: {e}", opts.addr))?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(10));
    let limit = Arc::new(Semaphore::new(opts.open_concurrency.max(1)));
    let mut tasks = JoinSet::new();
    for i in 0..connections {
        let mut endpoint = endpoint.clone();
        if opts.source_ips > 1 {
            let host = 1 + (i % opts.source_ips as usize) as u8;
            let source = std::net::Ipv4Addr::new(127, 0, 0, host);
            endpoint = endpoint.local_address(Some(source.into()));
        }
        let limit = limit.clone();
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            (i, endpoint.connect().await)
        });
    }
    let mut channels: Vec<Option<Channel>> = vec![None; connections];
    while let Some(joined) = tasks.join_next().await {
        let (i, result) = joined.map_err(|e| format!("connect task: {e}"))?;
        channels[i] = Some(result.map_err(|e| format!("connecting to {}: {e:?}", opts.addr))?);
    }
    Ok(channels.into_iter().map(|c| c.expect("joined")).collect())
}

/// One registered MultiPipe terminal: its request sender and its response stream.
struct Opened {
    msisdn: Msisdn,
    tx: mpsc::Sender<WebTerminalMessage>,
    rx: Streaming<WebTerminalMessage>,
}

fn msisdn_of(opts: &Options, i: usize) -> Msisdn {
    let n = opts.msisdn_base + i as u64;
    Msisdn::parse(&format!("+479{n:08}")).expect("E.164")
}

/// Opens terminal `i` on channel `i % channels`, at most `open_concurrency` at a time.
async fn open_terminals(
    opts: &Options,
    channels: &[Channel],
    terminals: usize,
) -> Result<Vec<Opened>, String> {
    let limit = Arc::new(Semaphore::new(opts.open_concurrency.max(1)));
    let mut tasks = JoinSet::new();
    for i in 0..terminals {
        let channel = channels[i % channels.len()].clone();
        let msisdn = msisdn_of(opts, i);
        let token = auth::mint_token(
            opts.jwt_secret.as_bytes(),
            &msisdn,
            auth::REQUIRED_SCOPE,
            Duration::from_secs(3600),
        );
        let limit = limit.clone();
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let mut client = WebTerminalServiceClient::new(channel);
            let (tx, rx) = mpsc::channel(256);
            let mut request = tonic::Request::new(ReceiverStream::new(rx));
            let bearer = format!("Bearer {token}").parse().expect("ASCII token");
            request.metadata_mut().insert("authorization", bearer);
            let result = client.multi_pipe(request).await;
            (
                i,
                result.map(|r| Opened {
                    msisdn,
                    tx,
                    rx: r.into_inner(),
                }),
            )
        });
    }
    let mut opened: Vec<Option<Opened>> = (0..terminals).map(|_| None).collect();
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((i, Ok(terminal))) => opened[i] = Some(terminal),
            Ok((i, Err(status))) => {
                first_error.get_or_insert_with(|| format!("terminal {i}: {status}"));
            }
            Err(e) => {
                first_error.get_or_insert_with(|| format!("open task: {e}"));
            }
        }
    }
    if let Some(e) = first_error {
        let failed = opened.iter().filter(|o| o.is_none()).count();
        return Err(format!(
            "{failed} of {terminals} terminals failed to register; first: {e}"
        ));
    }
    Ok(opened.into_iter().map(|o| o.expect("registered")).collect())
}

/// What a caller's reader tells the call waiting on an id.
enum CallerEvent {
    Answer,
    Ended(String),
}

type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<CallerEvent>>>>;

struct Caller {
    tx: mpsc::Sender<WebTerminalMessage>,
    pending: Pending,
    callee: String,
}

/// Counters the readers keep across steps (steps read their deltas).
#[derive(Default)]
struct ReaderCounters {
    ringing: AtomicU64,
    callee_normal_byes: AtomicU64,
    callee_unexpected: AtomicU64,
    caller_unexpected: AtomicU64,
    streams_ended: AtomicU64,
}

struct ReaderSnapshot {
    ringing: u64,
    callee_normal_byes: u64,
    callee_unexpected: u64,
    caller_unexpected: u64,
    streams_ended: u64,
}

impl ReaderCounters {
    fn snapshot(&self) -> ReaderSnapshot {
        ReaderSnapshot {
            ringing: self.ringing.load(Ordering::Relaxed),
            callee_normal_byes: self.callee_normal_byes.load(Ordering::Relaxed),
            callee_unexpected: self.callee_unexpected.load(Ordering::Relaxed),
            caller_unexpected: self.caller_unexpected.load(Ordering::Relaxed),
            streams_ended: self.streams_ended.load(Ordering::Relaxed),
        }
    }
}

/// Per-step call results.
struct StepStats {
    inflight: AtomicU64,
    completed: AtomicU64,
    failed: AtomicU64,
    failures: Mutex<BTreeMap<String, u64>>,
    latency: Mutex<Histogram<u64>>,
}

impl StepStats {
    fn new() -> StepStats {
        StepStats {
            inflight: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            failures: Mutex::new(BTreeMap::new()),
            latency: Mutex::new(
                Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds"),
            ),
        }
    }

    fn fail(&self, why: impl Into<String>) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        *self.failures.lock().unwrap().entry(why.into()).or_default() += 1;
    }
}

/// The registered pairs and what calls between them share.
struct CallContext {
    callers: Vec<Caller>,
    offer_sdp: String,
    counters: Arc<ReaderCounters>,
    next_pair: AtomicU64,
    call_timeout: Duration,
    server_pid: Option<u32>,
    /// Keeps the callees' request streams open.
    _callee_senders: Vec<mpsc::Sender<WebTerminalMessage>>,
    /// Every terminal's reader task; dropping the set aborts them, which ends their rpcs.
    _readers: JoinSet<()>,
}

impl CallContext {
    /// Splits `opened` into callers (first half) and callees (second half) and starts a reader
    /// task for each terminal. Panics if the SDP fixtures are missing.
    fn new(opts: &Options, opened: Vec<Opened>) -> Arc<CallContext> {
        let read = |name: &str| {
            let path = opts.sdp_dir.join(name);
            std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("SDP fixture {}: {e}", path.display()))
        };
        let offer_sdp = read("chromium-offer.sdp");
        let answer_sdp: Arc<str> = read("chromium-answer.sdp").into();
        let counters = Arc::new(ReaderCounters::default());
        let pairs = opened.len() / 2;
        let mut opened = opened.into_iter();
        let caller_side: Vec<Opened> = opened.by_ref().take(pairs).collect();
        let callee_side: Vec<Opened> = opened.take(pairs).collect();
        let mut callers = Vec::with_capacity(pairs);
        let mut callee_senders = Vec::with_capacity(pairs);
        let mut readers = JoinSet::new();
        for (caller, callee) in caller_side.into_iter().zip(callee_side) {
            let pending: Pending = Arc::default();
            readers.spawn(read_caller(caller.rx, pending.clone(), counters.clone()));
            readers.spawn(read_callee(
                callee.rx,
                callee.tx.clone(),
                answer_sdp.clone(),
                counters.clone(),
            ));
            callers.push(Caller {
                tx: caller.tx,
                pending,
                callee: callee.msisdn.as_str().to_owned(),
            });
            callee_senders.push(callee.tx);
        }
        Arc::new(CallContext {
            callers,
            offer_sdp,
            counters,
            next_pair: AtomicU64::new(0),
            call_timeout: opts.call_timeout,
            server_pid: opts.server_pid,
            _callee_senders: callee_senders,
            _readers: readers,
        })
    }

    /// One open-loop step: `rate × duration` calls, call `k` started at `k / rate` s; then waits
    /// for every call to end (bounded by the call timeout) and for the callees' Byes.
    async fn step(self: &Arc<Self>, rate: f64, duration: Duration) -> StepReport {
        let stats = Arc::new(StepStats::new());
        let total = (rate * duration.as_secs_f64()).round().max(1.0) as u64;
        let readers_before = self.counters.snapshot();
        let server_cpu_before = cpu_time(self.server_pid);
        let own_cpu_before = cpu_time(None);

        let start = Instant::now();
        let mut started = 0u64;
        let mut max_lag = Duration::ZERO;
        let mut last_start = start;
        while started < total {
            let due = ((start.elapsed().as_secs_f64() * rate).floor() as u64 + 1).min(total);
            let now = Instant::now();
            while started < due {
                let scheduled = start + Duration::from_secs_f64(started as f64 / rate);
                max_lag = max_lag.max(now.saturating_duration_since(scheduled));
                let pair = (self.next_pair.fetch_add(1, Ordering::Relaxed)
                    % self.callers.len() as u64) as usize;
                stats.inflight.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(call(self.clone(), stats.clone(), pair));
                started += 1;
                last_start = now;
            }
            if started < total {
                let next = start + Duration::from_secs_f64(started as f64 / rate);
                tokio::time::sleep_until(next.into()).await;
            }
        }
        let spread = last_start.duration_since(start).as_secs_f64();
        let achieved_rate = if started > 1 && spread > 0.0 {
            (started - 1) as f64 / spread
        } else {
            rate
        };

        // Drain: every call ends within the call timeout (plus sending its Bye).
        let drain_deadline = Instant::now() + self.call_timeout + Duration::from_secs(2);
        while stats.inflight.load(Ordering::Relaxed) > 0 && Instant::now() < drain_deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let left = stats.inflight.load(Ordering::Relaxed);
        // The callees' Byes for the completed calls follow shortly after.
        let completed_by_callers = stats.completed.load(Ordering::Relaxed);
        let bye_deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let byes =
                self.counters.snapshot().callee_normal_byes - readers_before.callee_normal_byes;
            if byes >= completed_by_callers || Instant::now() >= bye_deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let server_cpu_after = cpu_time(self.server_pid);
        let own_cpu_after = cpu_time(None);
        let readers = self.counters.snapshot();

        let mut failures = stats.failures.lock().unwrap().clone();
        let mut failed = stats.failed.load(Ordering::Relaxed);
        let mut add = |why: &str, n: u64| {
            if n > 0 {
                failed += n;
                *failures.entry(why.to_owned()).or_default() += n;
            }
        };
        add("still running after the drain", left);
        let callee_byes = readers.callee_normal_byes - readers_before.callee_normal_byes;
        let missing_byes = completed_by_callers.saturating_sub(callee_byes);
        add("callee saw no Bye{NORMAL_CLEARING}", missing_byes);
        add(
            "callee got an Error or another Bye",
            readers.callee_unexpected - readers_before.callee_unexpected,
        );
        add(
            "caller got a message for no pending call",
            readers.caller_unexpected - readers_before.caller_unexpected,
        );
        add(
            "a terminal's stream ended",
            readers.streams_ended - readers_before.streams_ended,
        );
        let completed = completed_by_callers - missing_byes;

        let histogram = stats.latency.lock().unwrap();
        let quantile = |q: f64| {
            if histogram.is_empty() {
                0
            } else {
                histogram.value_at_quantile(q)
            }
        };
        let per_call = |before: Option<Duration>, after: Option<Duration>| match (before, after) {
            (Some(b), Some(a)) if completed > 0 => {
                Some(a.saturating_sub(b).as_secs_f64() * 1e6 / completed as f64)
            }
            _ => None,
        };
        StepReport {
            target_rate: rate,
            duration,
            started,
            achieved_rate,
            completed,
            failed,
            failures,
            ringing: readers.ringing - readers_before.ringing,
            p50_us: quantile(0.5),
            p99_us: quantile(0.99),
            p999_us: quantile(0.999),
            max_us: if histogram.is_empty() {
                0
            } else {
                histogram.max()
            },
            server_cpu_us_per_call: per_call(server_cpu_before, server_cpu_after),
            generator_cpu_us_per_call: if self.server_pid.is_some() {
                per_call(own_cpu_before, own_cpu_after)
            } else {
                None
            },
            server_rss_kib: rss_kib(self.server_pid),
            max_lag,
            loadavg: loadavg(),
        }
    }
}

fn message(call_id: &str, body: Message) -> WebTerminalMessage {
    WebTerminalMessage {
        message: Some(body),
        call_id: call_id.to_owned(),
    }
}

/// One call from pair `pair`'s caller: Offer, wait for the Answer (the callee's reader sends Ringing
/// and Answer), then Bye.
async fn call(ctx: Arc<CallContext>, stats: Arc<StepStats>, pair: usize) {
    let caller = &ctx.callers[pair];
    let id = uuid::Uuid::new_v4().to_string();
    let (events, event) = oneshot::channel();
    caller.pending.lock().unwrap().insert(id.clone(), events);
    let offer = message(
        &id,
        Message::Offer(Offer {
            sdp: ctx.offer_sdp.clone(),
            msisdn: Some(PhoneNumber {
                e164: caller.callee.clone(),
            }),
            data: Default::default(),
        }),
    );
    let sent = Instant::now();
    let outcome = if caller.tx.send(offer).await.is_err() {
        Err("caller's request stream closed".to_owned())
    } else {
        match tokio::time::timeout(ctx.call_timeout, event).await {
            Ok(Ok(CallerEvent::Answer)) => Ok(sent.elapsed()),
            Ok(Ok(CallerEvent::Ended(why))) => Err(why),
            Ok(Err(_)) => Err("caller's response stream ended".to_owned()),
            Err(_) => {
                caller.pending.lock().unwrap().remove(&id);
                // Cancel it so the server holds no call for it.
                let _ = caller
                    .tx
                    .send(message(&id, Message::Bye(Bye::default())))
                    .await;
                Err("no Answer within the call timeout".to_owned())
            }
        }
    };
    match outcome {
        Ok(latency) => {
            let micros = (latency.as_micros() as u64).max(1);
            stats.latency.lock().unwrap().saturating_record(micros);
            if caller
                .tx
                .send(message(&id, Message::Bye(Bye::default())))
                .await
                .is_ok()
            {
                stats.completed.fetch_add(1, Ordering::Relaxed);
            } else {
                stats.fail("caller's request stream closed before Bye");
            }
        }
        Err(why) => stats.fail(why),
    }
    stats.inflight.fetch_sub(1, Ordering::Relaxed);
}

/// A caller's response stream: Answer, Bye and Error go to the call waiting on their id.
async fn read_caller(
    mut rx: Streaming<WebTerminalMessage>,
    pending: Pending,
    counters: Arc<ReaderCounters>,
) {
    loop {
        let msg = match rx.message().await {
            Ok(Some(msg)) => msg,
            Ok(None) | Err(_) => {
                counters.streams_ended.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        let event = match msg.message {
            Some(Message::Ringing(_)) => {
                counters.ringing.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            Some(Message::Answer(_)) => CallerEvent::Answer,
            Some(Message::Bye(b)) => CallerEvent::Ended(format!("caller got Bye {:?}", b.reason())),
            Some(Message::Error(e)) => {
                CallerEvent::Ended(format!("caller got Error {:?}: {}", e.err(), e.message))
            }
            // Idle / InCall for its own number's calls: nothing to do.
            _ => continue,
        };
        let waiting = pending.lock().unwrap().remove(&msg.call_id);
        match waiting {
            Some(call) => {
                let _ = call.send(event);
            }
            None => {
                counters.caller_unexpected.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// A callee's response stream: every Offer is answered at once with Ringing then Answer.
async fn read_callee(
    mut rx: Streaming<WebTerminalMessage>,
    tx: mpsc::Sender<WebTerminalMessage>,
    answer_sdp: Arc<str>,
    counters: Arc<ReaderCounters>,
) {
    loop {
        let msg = match rx.message().await {
            Ok(Some(msg)) => msg,
            Ok(None) | Err(_) => {
                counters.streams_ended.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        match msg.message {
            Some(Message::Offer(_)) => {
                let ringing = message(&msg.call_id, Message::Ringing(Ringing {}));
                let answer = message(
                    &msg.call_id,
                    Message::Answer(Answer {
                        sdp: answer_sdp.to_string(),
                    }),
                );
                if tx.send(ringing).await.is_err() || tx.send(answer).await.is_err() {
                    counters.streams_ended.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
            Some(Message::Bye(b)) if b.reason() == bye::Reason::NormalClearing => {
                counters.callee_normal_byes.fetch_add(1, Ordering::Relaxed);
            }
            Some(Message::Bye(_)) | Some(Message::Error(_)) => {
                counters.callee_unexpected.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }
}

fn proc_dir(pid: Option<u32>) -> String {
    match pid {
        Some(pid) => format!("/proc/{pid}"),
        None => "/proc/self".to_owned(),
    }
}

/// utime + stime of the process (every thread, exited ones included), from `/proc/<pid>/stat`.
pub fn cpu_time(pid: Option<u32>) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("{}/stat", proc_dir(pid))).ok()?;
    // Fields after the command name (which may hold spaces) start at field 3, `state`.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_micros((utime + stime) * 1_000_000 / USER_HZ))
}

/// VmRSS of the process, KiB, from `/proc/<pid>/status`.
pub fn rss_kib(pid: Option<u32>) -> Option<u64> {
    let status = std::fs::read_to_string(format!("{}/status", proc_dir(pid))).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "terminals {} over {} HTTP/2 connections ({} per connection), registered in {:.2} s",
            self.terminals,
            self.connections,
            self.terminals.div_ceil(self.connections.max(1)),
            self.register_time.as_secs_f64()
        )?;
        if self.in_process {
            writeln!(
                f,
                "server in this process: CPU and RSS include the generator"
            )?;
        }
        if let Some(e) = &self.setup_error {
            return writeln!(f, "SETUP FAILED: {e}");
        }
        if let Some(idle) = &self.idle {
            writeln!(
                f,
                "idle: {} of {} terminals registered over {} connections; server RSS {} KiB before, \
                 {} KiB connected, {} KiB registered",
                idle.registered,
                idle.terminals,
                idle.connections,
                idle.rss_before_kib,
                idle.rss_connected_kib,
                idle.rss_registered_kib
            )?;
            writeln!(
                f,
                "IDLE terminals={} connections={} bytes_per_terminal={:.0} bytes_per_stream={:.0} \
                 ({:.2} KiB per terminal, connections included)",
                idle.terminals,
                idle.connections,
                idle.bytes_per_terminal,
                idle.bytes_per_stream,
                idle.bytes_per_terminal / 1024.0
            )?;
        }
        if let Some(first) = self.steps.first() {
            writeln!(
                f,
                "{} s per step; setup latency is Offer sent -> Answer received",
                first.duration.as_secs_f64()
            )?;
            writeln!(f, " rate/s achieved started completed failed   p50 ms   p99 ms p99.9 ms   max ms  srv µs/c  gen µs/c  srv MiB  lag ms  loadavg")?;
            for s in &self.steps {
                let opt = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.0}"));
                writeln!(
                    f,
                    "{:>7.0} {:>8.0} {:>7} {:>9} {:>6} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>9} {:>9} {:>8} {:>7.1}  {}{}",
                    s.target_rate,
                    s.achieved_rate,
                    s.started,
                    s.completed,
                    s.failed,
                    s.p50_us as f64 / 1e3,
                    s.p99_us as f64 / 1e3,
                    s.p999_us as f64 / 1e3,
                    s.max_us as f64 / 1e3,
                    opt(s.server_cpu_us_per_call),
                    opt(s.generator_cpu_us_per_call),
                    s.server_rss_kib
                        .map_or("-".to_owned(), |k| format!("{:.1}", k as f64 / 1024.0)),
                    s.max_lag.as_secs_f64() * 1e3,
                    s.loadavg,
                    if s.clean(self.knee_p99) { "" } else { "  (dirty)" }
                )?;
                if s.ringing != s.started {
                    writeln!(
                        f,
                        "        Ringing reached {} of {} callers",
                        s.ringing, s.started
                    )?;
                }
                for (why, n) in &s.failures {
                    writeln!(f, "        failed {n}: {why}")?;
                }
            }
        }
        if self.steps.len() > 1 || self.knee.is_some() {
            match self.knee {
                Some(k) => writeln!(
                    f,
                    "KNEE {k:.0} calls/s (no failed call, p99 < {} ms, generator on schedule)",
                    self.knee_p99.as_millis()
                )?,
                None => writeln!(f, "KNEE none: no step was clean")?,
            }
        }
        Ok(())
    }
}
