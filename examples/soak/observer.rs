//! What the soak watches while it runs: every call event (`WatchCalls` from the first, resumed
//! with `after_sequence` if the stream breaks), every inbound-call notification on Redis, and the
//! core's memory and gauges once a second.

use super::phones::authorized;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;
use tonic::transport::Channel;
use webterminal_core::proto::operator::operator_client::OperatorClient;
use webterminal_core::proto::operator::{CallEvent, CallStatus, WatchCallsRequest};

/// One call as its events told it.
#[derive(Default, Debug, Clone)]
pub struct CallLedger {
    pub started: u32,
    /// Final events (COMPLETED, UNANSWERED, REJECTED, FAILED).
    pub finals: u32,
    pub final_status: Option<CallStatus>,
    /// The final event's `Bye.Reason`.
    pub final_reason: i32,
    /// ANSWERED events that carried a `group_answer`.
    pub group_answers: u32,
    pub answered: bool,
}

/// Every call event, folded.
#[derive(Default)]
pub struct Ledger {
    pub calls: HashMap<String, CallLedger>,
    /// The last sequence seen.
    pub last_sequence: u64,
    /// Sequences skipped (the unfiltered watch must see every one).
    pub gaps: u64,
    /// Events seen twice (a sequence not above the last).
    pub repeats: u64,
    pub events: u64,
    /// How often the watch was reopened.
    pub resumes: u64,
    pub by_status: HashMap<&'static str, u64>,
}

impl Ledger {
    fn fold(&mut self, event: CallEvent) {
        if event.sequence <= self.last_sequence {
            self.repeats += 1;
            return;
        }
        self.gaps += event.sequence - self.last_sequence - 1;
        self.last_sequence = event.sequence;
        self.events += 1;
        let status = CallStatus::try_from(event.status).unwrap_or(CallStatus::Unspecified);
        *self.by_status.entry(status.as_str_name()).or_default() += 1;
        let call = self.calls.entry(event.call_ref).or_default();
        match status {
            CallStatus::Started => call.started += 1,
            CallStatus::Answered => {
                call.answered = true;
                if event.group_answer.is_some() {
                    call.group_answers += 1;
                }
            }
            CallStatus::Completed
            | CallStatus::Unanswered
            | CallStatus::Rejected
            | CallStatus::Failed => {
                call.finals += 1;
                call.final_status = Some(status);
                call.final_reason = event.reason;
            }
            _ => {}
        }
    }

    /// Calls started and not ended yet.
    pub fn open_calls(&self) -> usize {
        self.calls.values().filter(|c| c.finals == 0).count()
    }
}

/// Watches every call event until `stop` is set, reopening the watch after the last sequence seen
/// when the stream breaks.
pub async fn watch(
    channel: Channel,
    token: String,
    ledger: Arc<Mutex<Ledger>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    use std::sync::atomic::Ordering;
    let mut client = OperatorClient::new(channel);
    while !stop.load(Ordering::Relaxed) {
        let after_sequence = ledger.lock().unwrap().last_sequence;
        let request = WatchCallsRequest {
            msisdn: String::new(),
            after_sequence,
        };
        let Ok(response) = client.watch_calls(authorized(&token, request)).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let mut stream = response.into_inner();
        loop {
            match tokio::time::timeout(Duration::from_millis(200), stream.message()).await {
                Ok(Ok(Some(event))) => ledger.lock().unwrap().fold(event),
                Ok(_) => break,
                Err(_) if stop.load(Ordering::Relaxed) => return,
                Err(_) => {}
            }
        }
        ledger.lock().unwrap().resumes += 1;
    }
}

/// Inbound-call notifications taken off the Redis list, by `call_ref`.
#[derive(Default)]
pub struct Notifications {
    pub by_call: HashMap<String, u32>,
    pub total: u64,
    /// Entries that were not the v3.0.0 payload.
    pub malformed: u64,
}

/// Takes every notification off `key` (`LPOP key 100`, ten times a second) until `stop` is set and
/// the list is empty. Holds `gate` while a pop is in flight, so that a Redis crash (which takes the
/// gate) never falls between a pop and its reply.
pub async fn consume_notifications(
    url: String,
    key: String,
    gate: Arc<tokio::sync::Mutex<()>>,
    notifications: Arc<Mutex<Notifications>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    use std::sync::atomic::Ordering;
    let Ok(client) = redis::Client::open(url) else {
        return;
    };
    let mut connection = None;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let _held = gate.lock().await;
        if connection.is_none() {
            connection = client.get_multiplexed_async_connection().await.ok();
        }
        let Some(conn) = connection.as_mut() else {
            continue;
        };
        let popped: redis::RedisResult<Option<Vec<String>>> = redis::cmd("LPOP")
            .arg(&key)
            .arg(100)
            .query_async(conn)
            .await;
        match popped {
            Ok(Some(items)) => {
                let mut notes = notifications.lock().unwrap();
                for item in items {
                    notes.total += 1;
                    let call_ref = serde_json::from_str::<serde_json::Value>(&item)
                        .ok()
                        .and_then(|v| v["payload"]["call_ref"].as_str().map(str::to_owned));
                    match call_ref {
                        Some(call_ref) => *notes.by_call.entry(call_ref).or_default() += 1,
                        None => notes.malformed += 1,
                    }
                }
            }
            Ok(None) if stop.load(Ordering::Relaxed) => return,
            Ok(None) => {}
            Err(_) => connection = None,
        }
    }
}

/// One sample of the core, once a second.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// Seconds since the soak began.
    pub at: f64,
    pub rss_kib: u64,
    /// `webterminal_calls`, summed over its labels.
    pub calls: f64,
    /// `webterminal_terminals`, summed over its labels.
    pub terminals: f64,
}

/// Samples the core every second until `stop` is set.
pub async fn sample(
    pid: u32,
    metrics: std::net::SocketAddr,
    began: Instant,
    samples: Arc<Mutex<Vec<Sample>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    use std::sync::atomic::Ordering;
    while !stop.load(Ordering::Relaxed) {
        let text = scrape(metrics).await.unwrap_or_default();
        if let Some(rss_kib) = super::processes::rss_kib(pid) {
            samples.lock().unwrap().push(Sample {
                at: began.elapsed().as_secs_f64(),
                rss_kib,
                calls: gauge(&text, webterminal_core::metric_names::CALLS),
                terminals: gauge(&text, webterminal_core::metric_names::TERMINALS),
            });
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The sum of every series of `name` in a Prometheus text exposition.
pub fn gauge(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// `GET /metrics` over HTTP/1.1.
pub async fn scrape(addr: std::net::SocketAddr) -> Option<String> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let request = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut response))
        .await
        .ok()?
        .ok()?;
    Some(response.split_once("\r\n\r\n")?.1.to_owned())
}
