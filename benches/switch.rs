//! Microbenchmarks of the switch alone (no I/O): how many inputs per second it handles in a full call
//! flow, and what SDP validation at the edge costs. Run: `cargo bench --bench switch`.
//! Results are recorded in BENCHMARKS.md.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::hint::black_box;
use std::time::Instant;
use webterminal_core::core::*;

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/sdp/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A switch with `pairs` caller/callee MultiPipe pairs registered, phone network off.
fn switch_with_pairs(pairs: u64) -> (Switch, Vec<(TerminalId, TerminalId, Msisdn)>) {
    let config = SwitchConfig {
        phone_network: false,
        ..SwitchConfig::default()
    };
    let now = Instant::now();
    let mut switch = Switch::new(config, 1, now);
    let mut out = Vec::new();
    for i in 0..pairs {
        let a = TerminalId(2 * i);
        let b = TerminalId(2 * i + 1);
        let ma = Msisdn::parse(&format!("+47{:08}", 2 * i + 10_000_000)).unwrap();
        let mb = Msisdn::parse(&format!("+47{:08}", 2 * i + 10_000_001)).unwrap();
        switch.register(now, a, ma, PipeKind::MultiPipe).unwrap();
        switch
            .register(now, b, mb.clone(), PipeKind::MultiPipe)
            .unwrap();
        out.push((a, b, mb));
    }
    while switch.poll_output().is_some() {}
    (switch, out)
}

/// One input, with every output drained; returns the call id of the last notice delivered.
fn send(
    switch: &mut Switch,
    now: Instant,
    terminal: TerminalId,
    call_id: CallId,
    body: RequestBody,
) -> Option<CallId> {
    let request = Request {
        call_id: Some(call_id),
        body,
    };
    switch.handle_request(now, terminal, request).unwrap();
    let mut last = None;
    while let Some(out) = switch.poll_output() {
        if let Output::Deliver { notice, .. } = &out {
            last = notice.call_id;
        }
        black_box(out);
    }
    last
}

/// One whole call: Offer → Ringing → Answer → Bye, four inputs, outputs drained after each.
fn call_flow(c: &mut Criterion) {
    let offer = Sdp::parse(&fixture("chromium-offer.sdp"), 65536).unwrap();
    let answer = Sdp::parse(&fixture("chromium-answer.sdp"), 65536).unwrap();
    let mut group = c.benchmark_group("switch");
    group.throughput(Throughput::Elements(4));
    for pairs in [1u64, 10_000] {
        let (mut switch, terminals) = switch_with_pairs(pairs);
        let now = Instant::now();
        let mut next = 0usize;
        group.bench_function(format!("call_flow_inputs/{pairs}_pairs"), |bench| {
            bench.iter(|| {
                let (a, b, mb) = &terminals[next % terminals.len()];
                next += 1;
                let caller_id = CallId::random();
                let offer = RequestBody::Offer {
                    sdp: offer.clone(),
                    to: Some(mb.clone()),
                    context: Default::default(),
                };
                let callee_id = send(&mut switch, now, *a, caller_id, offer)
                    .expect("the callee was offered the call");
                send(&mut switch, now, *b, callee_id, RequestBody::Ringing);
                let answer = RequestBody::Answer {
                    sdp: answer.clone(),
                };
                send(&mut switch, now, *b, callee_id, answer);
                send(&mut switch, now, *a, caller_id, RequestBody::Bye);
            })
        });
        assert_eq!(switch.call_count(), 0);
    }
    group.finish();
}

/// Registering and unregistering one terminal among many.
fn registration(c: &mut Criterion) {
    let (mut switch, _) = switch_with_pairs(10_000);
    let now = Instant::now();
    let mut id = 1_000_000u64;
    let mut group = c.benchmark_group("switch");
    group.throughput(Throughput::Elements(2));
    group.bench_function("register_unregister", |bench| {
        bench.iter_batched(
            || {
                id += 1;
                (
                    TerminalId(id),
                    Msisdn::parse(&format!("+46{id:09}")).unwrap(),
                )
            },
            |(t, m)| {
                switch.register(now, t, m, PipeKind::Pipe).unwrap();
                switch.unregister(now, t);
                while let Some(out) = switch.poll_output() {
                    black_box(out);
                }
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// SDP validation as the edge does it for every Offer and Answer.
fn sdp_validation(c: &mut Criterion) {
    let mut group = c.benchmark_group("edge");
    for name in ["chromium-offer.sdp", "aiortc-offer.sdp"] {
        let text = fixture(name);
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_function(format!("sdp_parse/{name}"), |bench| {
            bench.iter(|| Sdp::parse(black_box(&text), 65536).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, call_flow, registration, sdp_validation);
criterion_main!(benches);
