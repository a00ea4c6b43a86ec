//! The soak's logic, for `main.rs` and for the test suite (`tests/soak.rs` runs it for 30 s).
//!
//! One run: starts `redis-server` and the real core (records on, groups with queues, Redis
//! notifications, the simulated phone network, JSON logs), lets the terminals, the phones and an
//! operator loose for the given time while Redis crashes and comes back, then stops every client
//! and checks what must hold after any amount of chaos ([`Report::failures`]).

pub mod agent;
pub mod clients;
pub mod observer;
pub mod phones;
pub mod plot;
pub mod processes;

use agent::{Sdps, Setup, World};
use clients::{Kind, Transport};
use observer::{Ledger, Notifications, Sample};
use phones::{authorized, PhoneTally};
use processes::{Core, LogTally, Redis};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use webterminal_core::auth::{mint_token, OPERATOR_SCOPE};
use webterminal_core::core::Msisdn;
use webterminal_core::proto::operator::operator_client::OperatorClient;
use webterminal_core::proto::operator::{CallRecord, ListCallRecordsRequest, ListCallsRequest};

const SECRET: &[u8] = b"soak secret: thirty-two bytes long";
const NOTIFICATIONS_KEY: &str = "soak:notifications:inbound";
/// How long the core may take, once the clients are gone, to end every call.
const SETTLE: Duration = Duration::from_secs(60);
/// How long records and notifications may take to arrive once the calls have ended.
const DELIVERY: Duration = Duration::from_secs(30);

/// What to run.
pub struct Options {
    /// The `webterminal-core` binary.
    pub core: PathBuf,
    /// The `redis-server` binary.
    pub redis_server: PathBuf,
    /// Where the records file, the routing file and Redis's data go.
    pub work_dir: PathBuf,
    /// `tests/fixtures/sdp/`.
    pub sdp_dir: PathBuf,
    pub terminals: usize,
    pub duration: Duration,
    /// Mean time between two unprompted actions of one terminal (a new call, connection trouble).
    pub step: Duration,
    /// Redis crashes this often (for 1–4 s); zero: never.
    pub redis_crash_every: Duration,
    pub seed: u64,
    /// How much the core's resident memory may grow over the run's second half (0.01: 1 %); `None`:
    /// reported, not judged (a run of seconds has not warmed up).
    pub memory_growth_limit: Option<f64>,
}

/// What the run saw, and what did not hold.
pub struct Report {
    /// Every check that failed, in words; empty: the soak passed.
    pub failures: Vec<String>,
    /// A summary for people (calls by final status, latency, memory, what the clients did).
    pub summary: String,
    /// The core sampled once a second.
    pub samples: Vec<Sample>,
}

/// Runs one soak (see the module docs).
pub async fn run(options: Options) -> Result<Report, String> {
    let began = Instant::now();
    let world = Arc::new(world(&options)?);
    let routing = options.work_dir.join("routing.toml");
    std::fs::write(&routing, routing_file(&world))
        .map_err(|e| format!("{}: {e}", routing.display()))?;
    let mut redis = Redis::start(&options.redis_server, &options.work_dir.join("redis"))?;
    let records = options.work_dir.join("records.sqlite3");
    let args: Vec<String> = [
        "--jwt-secret",
        std::str::from_utf8(SECRET).expect("ASCII"),
        "--records",
        records.to_str().ok_or("a records path in UTF-8")?,
        "--routing",
        routing.to_str().ok_or("a routing path in UTF-8")?,
        "--redis",
        &redis.url(),
        "--redis-key",
        NOTIFICATIONS_KEY,
        "--ring-timeout",
        "8s",
        "--negotiation-timeout",
        "5s",
        "--reconnect-grace",
        "2s",
        "--max-connections-per-ip",
        "100000",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut core = Core::start(&options.core, &args)?;
    let world = Arc::new(World {
        addr: core.addr,
        ..Arc::try_unwrap(world).map_err(|_| "the world is not shared yet")?
    });
    let operator_token = mint_token(
        SECRET,
        &Msisdn::parse("+4790000000").expect("a number"),
        OPERATOR_SCOPE,
        Duration::from_secs(24 * 3600),
    );
    let control = clients::connect(core.addr)
        .await
        .ok_or("cannot connect to the core")?;

    let stop = Arc::new(AtomicBool::new(false));
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let watcher = tokio::spawn(observer::watch(
        control.clone(),
        operator_token.clone(),
        ledger.clone(),
        stop.clone(),
    ));
    let notifications = Arc::new(Mutex::new(Notifications::default()));
    let redis_gate = Arc::new(tokio::sync::Mutex::new(()));
    let consumer = tokio::spawn(observer::consume_notifications(
        redis.url(),
        NOTIFICATIONS_KEY.to_owned(),
        redis_gate.clone(),
        notifications.clone(),
        stop.clone(),
    ));
    let samples = Arc::new(Mutex::new(Vec::new()));
    let sampler_stop = Arc::new(AtomicBool::new(false));
    let sampler = tokio::spawn(observer::sample(
        core.pid(),
        core.metrics_addr,
        began,
        samples.clone(),
        sampler_stop.clone(),
    ));
    phones::set_behaviours(control.clone(), &world.phones)
        .await
        .map_err(|e| format!("SetBehaviour: {e}"))?;

    // The chaos.
    let deadline = Instant::now() + options.duration;
    let mut clients = Vec::new();
    let mut shared = None;
    for i in 0..options.terminals {
        let (transport, kind) = match i % 10 {
            0..=2 => (Transport::Grpc, Kind::Pipe),
            3 => (Transport::GrpcClientToken, Kind::Pipe),
            4..=5 => (Transport::Grpc, Kind::MultiPipe),
            6 => (Transport::GrpcClientToken, Kind::MultiPipe),
            7..=8 => (Transport::WebSocket, Kind::MultiPipe),
            _ => (Transport::WebSocket, Kind::Pipe),
        };
        // Every other gRPC terminal shares a connection with 31 others, as behind a gateway.
        let share = transport != Transport::WebSocket && i % 2 == 0;
        if share && i % 64 == 0 {
            shared = clients::connect(core.addr).await;
        }
        let setup = Setup {
            msisdn: world.numbers[i % world.numbers.len()].clone(),
            transport,
            kind,
            shared: if share { shared.clone() } else { None },
            seed: options.seed.wrapping_add(i as u64),
            step: options.step,
        };
        clients.push(tokio::spawn(agent::run(world.clone(), setup, deadline)));
    }
    let phone_tally = Arc::new(PhoneTally::default());
    clients.push(tokio::spawn(phones::run(
        world.clone(),
        control.clone(),
        phone_tally.clone(),
        options.seed ^ 0x5eed,
        Duration::from_millis(20),
        deadline,
    )));
    clients.push(tokio::spawn(phones::operator(
        control.clone(),
        operator_token.clone(),
        phone_tally.clone(),
        options.seed ^ 0x0e7a,
        Duration::from_secs(2),
        deadline,
    )));
    let mut redis_crashes = 0;
    let mut next_crash = Instant::now() + options.redis_crash_every;
    let mut failures = Vec::new();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if let Some(status) = core.exited() {
            return Err(format!("the core exited during the soak: {status}"));
        }
        if !options.redis_crash_every.is_zero() && Instant::now() >= next_crash {
            let down = Duration::from_millis(1_000 + options.seed % 3_000);
            let gate = redis_gate.lock().await;
            redis.crash();
            drop(gate);
            tokio::time::sleep(down).await;
            redis = tokio::task::spawn_blocking(move || redis.resume().map(|()| redis))
                .await
                .map_err(|e| e.to_string())??;
            redis_crashes += 1;
            next_crash = Instant::now() + options.redis_crash_every;
        }
    }
    for client in clients {
        if let Err(e) = client.await {
            failures.push(format!("a client task failed: {e}"));
        }
    }
    let run_samples = samples.lock().unwrap().len();

    // Every client is gone; what a phone still has is hung up.
    phones::hang_up_all(&world, control.clone()).await;
    let mut operator = OperatorClient::new(control.clone());
    let quiet = wait_until(SETTLE, || async {
        let listed = operator
            .clone()
            .list_calls(authorized(&operator_token, ListCallsRequest::default()))
            .await
            .map(|r| r.into_inner().calls.len());
        let metrics = observer::scrape(core.metrics_addr)
            .await
            .unwrap_or_default();
        let gauges = [
            webterminal_core::metric_names::CALLS,
            webterminal_core::metric_names::TERMINALS,
            webterminal_core::metric_names::QUEUED_CALLS,
        ]
        .map(|name| observer::gauge(&metrics, name));
        matches!(listed, Ok(0)) && gauges == [0.0; 3]
    })
    .await;
    if !quiet {
        let listed = operator
            .list_calls(authorized(&operator_token, ListCallsRequest::default()))
            .await
            .map(|r| r.into_inner().calls.len());
        failures.push(format!(
            "calls left {SETTLE:?} after every client went: ListCalls {listed:?}"
        ));
    }
    wait_until(DELIVERY, || async {
        ledger.lock().unwrap().open_calls() == 0
    })
    .await;
    let expected_notes = ledger
        .lock()
        .unwrap()
        .calls
        .iter()
        .filter(|(_, c)| c.group_answers > 0)
        .map(|(r, _)| r.clone())
        .collect::<Vec<_>>();
    wait_until(DELIVERY, || async {
        let notes = notifications.lock().unwrap();
        expected_notes.iter().all(|r| notes.by_call.contains_key(r))
    })
    .await;
    let call_count = ledger.lock().unwrap().calls.len();
    let until = Instant::now() + DELIVERY;
    let mut records = Vec::new();
    while Instant::now() < until {
        if let Ok(all) = all_records(&mut operator, &operator_token).await {
            let done = all.len() >= call_count;
            records = all;
            if done {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let _ = tokio::time::timeout(Duration::from_secs(5), watcher).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), consumer).await;
    sampler_stop.store(true, Ordering::Relaxed);
    let _ = sampler.await;
    match tokio::task::spawn_blocking(move || {
        core.terminate(Duration::from_secs(10)).map(|s| (s, core))
    })
    .await
    .map_err(|e| e.to_string())?
    {
        Ok((status, finished)) => {
            if !status.success() {
                failures.push(format!("the core exited with {status} after SIGTERM"));
            }
            core = finished;
        }
        Err(e) => return Err(e),
    }

    let ledger = std::mem::take(&mut *ledger.lock().unwrap());
    let notifications = std::mem::take(&mut *notifications.lock().unwrap());
    let samples = std::mem::take(&mut *samples.lock().unwrap());
    let log = std::mem::take(&mut *core.log.lock().unwrap());
    check_events(&ledger, &mut failures);
    check_records(&ledger, &records, &mut failures);
    check_notifications(&ledger, &notifications, &mut failures);
    if let Some(limit) = options.memory_growth_limit {
        check_memory(
            &samples[..run_samples.min(samples.len())],
            limit,
            &mut failures,
        );
    }
    check_log(&log, &mut failures);
    check_clients(&world, &mut failures);
    let summary = summary(
        &options,
        &world,
        &phone_tally,
        &ledger,
        &notifications,
        &samples[..run_samples.min(samples.len())],
        &log,
        redis_crashes,
        began.elapsed(),
    );
    Ok(Report {
        failures,
        summary,
        samples,
    })
}

/// Polls `done` every 100 ms for up to `within`; whether it became true.
async fn wait_until<F, Fut>(within: Duration, mut done: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = Instant::now() + within;
    loop {
        if done().await {
            return true;
        }
        if Instant::now() > until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn all_records(
    operator: &mut OperatorClient<tonic::transport::Channel>,
    token: &str,
) -> Result<Vec<CallRecord>, tonic::Status> {
    let mut records = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = ListCallRecordsRequest {
            page_size: 1000,
            page_token: page_token.clone(),
            ..Default::default()
        };
        let page = operator
            .list_call_records(authorized(token, request))
            .await?
            .into_inner();
        records.extend(page.records);
        if page.next_page_token.is_empty() {
            return Ok(records);
        }
        page_token = page.next_page_token;
    }
}

/// The numbers, groups, phones and SDPs of a run of `options.terminals` terminals: about two and a
/// half terminals per number; three groups of eight agents each.
fn world(options: &Options) -> Result<World, String> {
    let number = |prefix: &str, i: usize| {
        Msisdn::parse(&format!("{prefix}{i:06}")).map_err(|e| format!("{prefix}{i:06}: {e}"))
    };
    let count = (options.terminals * 2 / 5).max(4);
    let numbers = (0..count)
        .map(|i| number("+4798", i))
        .collect::<Result<_, _>>()?;
    let groups = (1..=3)
        .map(|i| number("+4721", i))
        .collect::<Result<_, _>>()?;
    let phones = (0..100)
        .map(|i| number("+4791", i))
        .collect::<Result<_, _>>()?;
    let read = |names: &[&str]| -> Result<Vec<String>, String> {
        names
            .iter()
            .map(|name| {
                let path = options.sdp_dir.join(name);
                std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))
            })
            .collect()
    };
    Ok(World {
        addr: ([127, 0, 0, 1], 0).into(),
        secret: SECRET.to_vec(),
        numbers,
        groups,
        phones,
        sdps: Sdps {
            offers: read(&[
                "chromium-offer.sdp",
                "aiortc-offer.sdp",
                "chromium-icerestart-offer.sdp",
            ])?,
            hold_offers: read(&["chromium-hold-offer.sdp", "aiortc-hold-offer.sdp"])?,
            answers: read(&["chromium-answer.sdp", "aiortc-answer.sdp"])?,
            hold_answers: read(&["chromium-hold-answer.sdp", "aiortc-hold-answer.sdp"])?,
        },
        tally: Default::default(),
        epoch: Instant::now(),
        setup: Mutex::new(
            hdrhistogram::Histogram::new_with_bounds(1, 60_000_000, 3)
                .map_err(|e| e.to_string())?,
        ),
    })
}

/// Three groups, one per strategy, each of eight agents taken from the terminals' numbers.
fn routing_file(world: &World) -> String {
    let strategies = ["ring-all", "round-robin", "longest-idle"];
    let mut file = String::new();
    for (g, (group, strategy)) in world.groups.iter().zip(strategies).enumerate() {
        let members = (0..8)
            .map(|m| {
                let agent = &world.numbers[(g * 8 + m) % world.numbers.len()];
                format!(
                    "{{ msisdn = \"{agent}\", extension = \"{}\" }}",
                    100 * (g + 1) + m
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            file,
            "[[group]]\nnumber = \"{group}\"\nstrategy = \"{strategy}\"\n\
             member_ring_timeout = \"3s\"\nqueue_timeout = \"20s\"\nmembers = [ {members} ]\n"
        );
    }
    file
}

fn check_events(ledger: &Ledger, failures: &mut Vec<String>) {
    if ledger.gaps > 0 || ledger.repeats > 0 {
        failures.push(format!(
            "the event sequence had {} gaps and {} repeats",
            ledger.gaps, ledger.repeats
        ));
    }
    let bad: Vec<_> = ledger
        .calls
        .iter()
        .filter(|(_, c)| c.started != 1 || c.finals != 1)
        .collect();
    if !bad.is_empty() {
        let (call_ref, call) = bad[0];
        failures.push(format!(
            "{} of {} calls lack exactly one STARTED and one final event; e.g. {call_ref}: {call:?}",
            bad.len(),
            ledger.calls.len()
        ));
    }
}

fn check_records(ledger: &Ledger, records: &[CallRecord], failures: &mut Vec<String>) {
    let mut by_ref: HashMap<&str, Vec<&CallRecord>> = HashMap::new();
    for record in records {
        by_ref.entry(&record.call_ref).or_default().push(record);
    }
    let missing = ledger
        .calls
        .keys()
        .filter(|r| !by_ref.contains_key(r.as_str()))
        .count();
    let doubled = by_ref.values().filter(|v| v.len() > 1).count();
    let unknown = by_ref
        .keys()
        .filter(|r| !ledger.calls.contains_key(**r))
        .count();
    let open = records
        .iter()
        .filter(|r| r.ended_at.is_none() || r.end_estimated)
        .count();
    let wrong_reason = records
        .iter()
        .filter(|r| {
            ledger
                .calls
                .get(&r.call_ref)
                .is_some_and(|c| c.finals == 1 && c.final_reason != r.reason)
        })
        .count();
    if missing + doubled + unknown + open + wrong_reason > 0 {
        failures.push(format!(
            "records: {missing} calls without one, {doubled} with several, {unknown} of no call \
             seen, {open} not closed, {wrong_reason} whose reason differs from the final event's \
             ({} records, {} calls)",
            records.len(),
            ledger.calls.len()
        ));
    }
}

fn check_notifications(ledger: &Ledger, notes: &Notifications, failures: &mut Vec<String>) {
    let expected: Vec<&String> = ledger
        .calls
        .iter()
        .filter(|(_, c)| c.group_answers > 0)
        .map(|(r, _)| r)
        .collect();
    let missing = expected
        .iter()
        .filter(|r| !notes.by_call.contains_key(r.as_str()))
        .count();
    let unexpected = notes
        .by_call
        .keys()
        .filter(|r| ledger.calls.get(*r).is_none_or(|c| c.group_answers == 0))
        .count();
    if missing + unexpected > 0 || notes.malformed > 0 {
        failures.push(format!(
            "notifications: {missing} of {} answered group calls never announced, {unexpected} \
             announced calls that no group answered, {} malformed",
            expected.len(),
            notes.malformed
        ));
    }
}

/// Resident memory over the run's second half (after warm-up) grows by less than `limit`: the
/// median of the last tenth against the median around the middle.
fn check_memory(samples: &[Sample], limit: f64, failures: &mut Vec<String>) {
    if let Some((mid, end)) = memory_growth(samples) {
        let growth = (end - mid) / mid;
        if growth > limit {
            failures.push(format!(
                "resident memory grew {:.1} % over the second half ({mid:.0} KiB to {end:.0} KiB)",
                growth * 100.0
            ));
        }
    } else {
        failures.push(format!("too few memory samples ({})", samples.len()));
    }
}

/// The median RSS (KiB) around the middle of the run and over its last tenth.
fn memory_growth(samples: &[Sample]) -> Option<(f64, f64)> {
    let n = samples.len();
    if n < 10 {
        return None;
    }
    let median = |window: &[Sample]| {
        let mut values: Vec<u64> = window.iter().map(|s| s.rss_kib).collect();
        values.sort_unstable();
        values[values.len() / 2] as f64
    };
    let tenth = (n / 10).max(1);
    Some((
        median(&samples[n / 2 - tenth / 2..n / 2 + tenth / 2 + 1]),
        median(&samples[n - tenth..]),
    ))
}

fn check_log(log: &LogTally, failures: &mut Vec<String>) {
    if log.panics > 0 || log.errors > 0 {
        failures.push(format!(
            "the core logged {} panics and {} errors: {:#?}",
            log.panics, log.errors, log.samples
        ));
    }
}

/// No rpc may end with an internal error.
fn check_clients(world: &World, failures: &mut Vec<String>) {
    let ends = world.tally.ends.lock().unwrap();
    for code in ["Internal", "Unknown", "DataLoss"] {
        if let Some(n) = ends.get(code) {
            failures.push(format!("{n} rpcs ended with {code}"));
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn summary(
    options: &Options,
    world: &World,
    phones: &PhoneTally,
    ledger: &Ledger,
    notes: &Notifications,
    samples: &[Sample],
    log: &LogTally,
    redis_crashes: usize,
    took: Duration,
) -> String {
    let count = |c: &std::sync::atomic::AtomicUsize| c.load(Ordering::Relaxed);
    let t = &world.tally;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "soak: {} terminals on {} numbers, {:?} of chaos (seed {}), {:.0} s in all",
        options.terminals,
        world.numbers.len(),
        options.duration,
        options.seed,
        took.as_secs_f64()
    );
    let mut statuses: Vec<_> = ledger
        .calls
        .values()
        .filter_map(|c| c.final_status)
        .fold(HashMap::new(), |mut m: HashMap<&str, usize>, s| {
            *m.entry(s.as_str_name()).or_default() += 1;
            m
        })
        .into_iter()
        .collect();
    statuses.sort();
    let _ = writeln!(
        s,
        "calls: {} ({} answered); by final status: {}",
        ledger.calls.len(),
        ledger.calls.values().filter(|c| c.answered).count(),
        statuses
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        s,
        "events: {} (watch resumed {} times); group answers announced: {} notifications for {} calls",
        ledger.events,
        ledger.resumes,
        notes.total,
        notes.by_call.len()
    );
    let setup = world.setup.lock().unwrap();
    let _ = writeln!(
        s,
        "setup (a caller's Offer to a callee's device receiving it): p50 {:.2} ms, p99 {:.2} ms, \
         max {:.1} ms ({} offers)",
        setup.value_at_quantile(0.5) as f64 / 1000.0,
        setup.value_at_quantile(0.99) as f64 / 1000.0,
        setup.max() as f64 / 1000.0,
        setup.len()
    );
    let _ = writeln!(
        s,
        "terminals placed {} calls to terminals, {} to groups, {} to phones; answered {}, declined {}, \
         hung up {}, held {}, resumed {}, pulled {}, handed over {}, transferred {}",
        count(&t.calls_to_terminals),
        count(&t.calls_to_groups),
        count(&t.calls_to_phones),
        count(&t.answers),
        count(&t.declines),
        count(&t.hang_ups),
        count(&t.holds),
        count(&t.resumes),
        count(&t.pulls),
        count(&t.handovers),
        count(&t.transfers)
    );
    let _ = writeln!(
        s,
        "connections: {} rpcs dropped and reopened, {} connections dropped, {} half-closes, {} slow \
         spells, {} opens refused; rpc ends {:?}; Error messages {:?}",
        count(&t.rpc_drops),
        count(&t.connection_drops),
        count(&t.half_closes),
        count(&t.slow_spells),
        count(&t.refused_opens),
        t.ends.lock().unwrap(),
        t.errors.lock().unwrap()
    );
    let _ = writeln!(
        s,
        "phones: {} dials, {} answers, {} rejections, {} hang-ups; operator ended {} calls; Redis \
         crashed {redis_crashes} times",
        count(&phones.dials),
        count(&phones.answers),
        count(&phones.rejects),
        count(&phones.hang_ups),
        count(&phones.ended_by_operator)
    );
    let mib = |kib: f64| kib / 1024.0;
    if let Some((mid, end)) = memory_growth(samples) {
        let first = samples.first().map_or(0, |s| s.rss_kib) as f64;
        let max = samples.iter().map(|s| s.rss_kib).max().unwrap_or(0) as f64;
        let _ = writeln!(
            s,
            "core memory (RSS): start {:.1} MiB, mid-run {:.1} MiB, end {:.1} MiB ({:+.2} % over \
             the second half), max {:.1} MiB",
            mib(first),
            mib(mid),
            mib(end),
            (end - mid) / mid * 100.0,
            mib(max)
        );
    }
    let _ = writeln!(
        s,
        "core log: {} warnings, {} errors, {} panics",
        log.warnings, log.errors, log.panics
    );
    s
}
