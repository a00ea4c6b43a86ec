//! The load generator (`examples/loadgen`) against an in-process server, briefly and at a low rate, so
//! the benchmark never rots. A behaviour test, not a benchmark: nothing here is timed.

#[allow(dead_code)]
#[path = "../examples/loadgen/run.rs"]
mod loadgen;

use std::sync::{Arc, Mutex};
use std::time::Duration;
use webterminal_core::driver::{DriverHandle, DriverStats};
use webterminal_core::server::{Exchange, PhoneNetworkKind, ServerConfig};

const SECRET: &str = "loadgen smoke secret";

struct Server {
    addr: String,
    driver: DriverHandle,
    stop: tokio::sync::oneshot::Sender<()>,
    served: tokio::task::JoinHandle<Result<(), webterminal_core::server::ServeError>>,
}

async fn start() -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let mut config = ServerConfig::new(SECRET);
    config.phone_network = PhoneNetworkKind::None;
    let exchange = Exchange::start(config);
    let driver = exchange.driver().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(exchange.serve(listener, async {
        let _ = stopped.await;
    }));
    Server {
        addr,
        driver,
        stop,
        served,
    }
}

impl Server {
    async fn stop(self) {
        self.stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), self.served)
            .await
            .expect("the server stops in time")
            .unwrap()
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_at_a_low_rate_all_complete_and_leave_no_call() {
    let server = start().await;
    let mut opts = loadgen::Options::new(
        server.addr.clone(),
        SECRET,
        loadgen::Mode::Fixed {
            rate: 50.0,
            duration: Duration::from_secs(3),
        },
    );
    opts.terminals = 20;
    opts.connections = Some(2);
    let at_end: Arc<Mutex<Option<DriverStats>>> = Arc::default();
    let driver = server.driver.clone();
    let slot = at_end.clone();
    let report = loadgen::run_with(opts, || async move {
        *slot.lock().unwrap() = Some(driver.stats().await.unwrap());
    })
    .await;
    println!("{report}");

    assert_eq!(report.setup_error, None);
    assert_eq!(report.steps.len(), 1);
    let step = &report.steps[0];
    assert_eq!(step.started, 150);
    assert_eq!(step.failed, 0, "failures: {:?}", step.failures);
    assert!(step.completed > 0);
    assert_eq!(step.completed, step.started);
    assert_eq!(step.ringing, step.started, "every caller saw Ringing");
    assert!(step.p50_us > 0 && step.p50_us <= step.p99_us);
    assert!(step.server_cpu_us_per_call.is_some());
    assert!(step.server_rss_kib.unwrap() > 0);
    assert_eq!(
        *at_end.lock().unwrap(),
        Some(DriverStats {
            terminals: 20,
            calls: 0
        }),
        "every terminal still registered, no call left"
    );
    // The generator's terminals are gone once it returns.
    let mut stats = server.driver.stats().await.unwrap();
    for _ in 0..100 {
        if stats == DriverStats::default() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        stats = server.driver.stats().await.unwrap();
    }
    assert_eq!(stats, DriverStats::default());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_mode_registers_every_terminal() {
    let server = start().await;
    let mut opts = loadgen::Options::new(
        server.addr.clone(),
        SECRET,
        loadgen::Mode::Idle {
            settle: Duration::from_millis(50),
        },
    );
    opts.terminals = 30;
    opts.connections = Some(3);
    let at_end: Arc<Mutex<Option<DriverStats>>> = Arc::default();
    let driver = server.driver.clone();
    let slot = at_end.clone();
    let report = loadgen::run_with(opts, || async move {
        *slot.lock().unwrap() = Some(driver.stats().await.unwrap());
    })
    .await;
    println!("{report}");
    assert_eq!(report.setup_error, None);
    let idle = report.idle.expect("an idle report");
    assert_eq!((idle.registered, idle.connections), (30, 3));
    assert!(idle.rss_registered_kib > 0);
    assert_eq!(
        *at_end.lock().unwrap(),
        Some(DriverStats {
            terminals: 30,
            calls: 0
        })
    );
    server.stop().await;
}

#[tokio::test]
async fn more_streams_than_the_server_allows_per_connection_is_refused() {
    let mut opts = loadgen::Options::new(
        "http://127.0.0.1:9",
        SECRET,
        loadgen::Mode::Idle {
            settle: Duration::ZERO,
        },
    );
    opts.terminals = 2 * loadgen::MAX_STREAMS_PER_CONNECTION + 1;
    opts.connections = Some(2);
    let report = loadgen::run(opts).await;
    assert!(report
        .setup_error
        .as_deref()
        .is_some_and(|e| e.contains("--connections 3")));
}
