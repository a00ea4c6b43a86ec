//! Model-based test of the switch (issue 3): proptest drives it with random sequences of
//! registrations, messages, phone events, disconnects, time jumps and a shutdown over a small world
//! (`tests/model/world.rs`, shared with the cargo-fuzz target in `fuzz/`), and checks PROTOCOL.md's
//! promises after every step: the switch's own invariants, at most one active leg per side, every id
//! and number scoped to its subscriber, every terminal's view consistent with what it was told, and no
//! call left once every terminal has gone.
//!
//! 256 cases by default (a few seconds in debug); `PROPTEST_CASES=100000 cargo test --test model`
//! for a long run on stable. A failure prints the shrunk input and a trace of the switch's outputs.

#[path = "model/world.rs"]
mod world;

use proptest::prelude::*;
use world::{Input, Msg, Op, PhoneOp, Setup, GRACE_MS, NEGOTIATION_MS, RING_MS};

fn msg() -> impl Strategy<Value = Msg> {
    prop_oneof![
        2 => any::<u8>().prop_map(|sdp| Msg::Offer { sdp }),
        4 => any::<u8>().prop_map(|sdp| Msg::Answer { sdp }),
        1 => Just(Msg::Ringing),
        3 => Just(Msg::Bye),
        1 => Just(Msg::ToPhone),
    ]
}

fn phone_op() -> impl Strategy<Value = PhoneOp> {
    prop_oneof![
        1 => Just(PhoneOp::Ringing),
        3 => Just(PhoneOp::Answered),
        1 => Just(PhoneOp::Busy),
        1 => Just(PhoneOp::Declined),
        1 => Just(PhoneOp::Unreachable),
        2 => Just(PhoneOp::HandOverReady),
        1 => Just(PhoneOp::HandOverFailed),
        2 => Just(PhoneOp::HungUp),
        1 => Just(PhoneOp::Offer),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    // Small index ranges: the world has few terminals, calls and legs, and small values shrink well.
    let small = || 0u8..8;
    prop_oneof![
        4 => (small(), any::<bool>()).prop_map(|(number, multi)| Op::Register { number, multi }),
        1 => small().prop_map(|term| Op::Unregister { term }),
        1 => small().prop_map(|term| Op::HalfClose { term }),
        5 => (small(), small(), proptest::option::weighted(0.2, small()), small())
            .prop_map(|(term, to, reuse, sdp)| Op::Call { term, to, reuse, sdp }),
        12 => (small(), small(), msg()).prop_map(|(term, call, msg)| Op::Send { term, call, msg }),
        4 => (small(), phone_op(), small()).prop_map(|(leg, event, sdp)| Op::Phone { leg, event, sdp }),
        2 => (small(), small(), small()).prop_map(|(from, to, sdp)| Op::Dial { from, to, sdp }),
        3 => prop_oneof![
            Just(1u16),
            Just(NEGOTIATION_MS - 1),
            Just(NEGOTIATION_MS),
            Just(GRACE_MS),
            Just(RING_MS),
            0u16..(RING_MS + GRACE_MS),
        ]
        .prop_map(|ms| Op::Advance { ms }),
    ]
}

fn input() -> impl Strategy<Value = Input> {
    (
        any::<bool>(),
        any::<bool>(),
        proptest::collection::vec(op(), 0..80),
        proptest::bool::weighted(0.2),
    )
        .prop_map(|(phone_network, grace, ops, shutdown)| Input {
            setup: Setup {
                phone_network,
                grace,
            },
            ops,
            shutdown,
        })
}

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        // Failures are reported with their shrunk input; no regression files in the source tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_switch_keeps_its_promises_whatever_happens(input in input()) {
        if let Err(e) = world::run(&input) {
            prop_assert!(false, "{}", e);
        }
    }

    /// A failing case replays exactly: the switch makes its call ids from the seed it is given and
    /// no decision follows hash-map order, so one input run twice (each run with maps seeded anew)
    /// gives the same outputs, ids included, byte for byte.
    #[test]
    fn one_input_gives_identical_outputs_every_run(input in input()) {
        let start = std::time::Instant::now();
        let first = world::run_from(&input, start);
        let second = world::run_from(&input, start);
        prop_assert_eq!(first, second);
    }
}

/// A fixed sequence through the interpreter, so that a broken world (not the switch) shows up as a
/// plain failure: two terminals of B, a call from A answered by one, a pull by the other, a
/// renegotiation, a handover, and the end.
#[test]
fn a_known_story_runs_clean() {
    let ops = vec![
        Op::Register {
            number: 0,
            multi: true,
        },
        Op::Register {
            number: 1,
            multi: false,
        },
        Op::Register {
            number: 1,
            multi: true,
        },
        Op::Call {
            term: 0,
            to: 1,
            reuse: None,
            sdp: 0,
        },
        Op::Send {
            term: 1,
            call: 0,
            msg: Msg::Ringing,
        },
        Op::Send {
            term: 1,
            call: 0,
            msg: Msg::Answer { sdp: 1 },
        },
        // The MultiPipe of B observes the call: its only known id is the callee side's.
        Op::Send {
            term: 2,
            call: 0,
            msg: Msg::Offer { sdp: 2 },
        },
        Op::Send {
            term: 0,
            call: 0,
            msg: Msg::Answer { sdp: 3 },
        },
        Op::Send {
            term: 0,
            call: 0,
            msg: Msg::Offer { sdp: 4 },
        },
        Op::Send {
            term: 2,
            call: 0,
            msg: Msg::Answer { sdp: 1 },
        },
        Op::Send {
            term: 2,
            call: 0,
            msg: Msg::ToPhone,
        },
        Op::Phone {
            leg: 0,
            event: PhoneOp::HandOverReady,
            sdp: 2,
        },
        Op::Send {
            term: 0,
            call: 0,
            msg: Msg::Answer { sdp: 3 },
        },
        Op::Advance { ms: RING_MS },
    ];
    for phone_network in [false, true] {
        for grace in [false, true] {
            let input = Input {
                setup: Setup {
                    phone_network,
                    grace,
                },
                ops: ops.clone(),
                shutdown: false,
            };
            world::run(&input).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

// -------------------------------------------------------------------------------------------------
// Bugs the model found in the switch, each kept as its shrunk sequence: regression tests, checked
// with every promise of the model.
// -------------------------------------------------------------------------------------------------

fn register(number: u8, multi: bool) -> Op {
    Op::Register { number, multi }
}

fn call(term: u8, to: u8) -> Op {
    Op::Call {
        term,
        to,
        reuse: None,
        sdp: 0,
    }
}

fn send(term: u8, call: u8, msg: Msg) -> Op {
    Op::Send { term, call, msg }
}

fn strict(ops: Vec<Op>, grace: bool) {
    let input = Input {
        setup: Setup {
            phone_network: false,
            grace,
        },
        ops,
        shutdown: false,
    };
    world::run(&input).unwrap_or_else(|e| panic!("{e}"));
}

/// PROTOCOL.md 4.4: a Pipe that was told InCall for call X, then got busy in a call of its own while
/// X ended, is told `Idle{}` once its own call ends (it used to keep showing a call that was over).
#[test]
fn a_pipe_busy_when_the_observed_call_ends_gets_idle_once_free() {
    strict(
        vec![
            register(0, false),                 // 0: Pipe P1 of A
            register(0, false),                 // 1: Pipe P2 of A
            register(1, true),                  // 2: MultiPipe of B
            register(2, true),                  // 3: MultiPipe of C
            call(2, 0),                         // B calls A: P1 and P2 ring
            send(0, 0, Msg::Answer { sdp: 1 }), // P1 answers; P2: Bye, InCall
            call(1, 2),                         // P2 calls C (P2 is busy)
            send(2, 0, Msg::Bye),               // B hangs up: A is in no call now
            send(3, 0, Msg::Bye), // C declines P2's call: P2 is free, and should get Idle{}
        ],
        false,
    );
}

/// PROTOCOL.md 3/4.4: a Pipe with a pull pending is in a call, for views as for routing: it is not
/// told InCall for another call of its number established meanwhile (it used to be, and its id-less
/// messages then addressed that call).
#[test]
fn a_pulling_pipe_is_not_told_in_call_for_another_call() {
    strict(pulling_pipe_story(), false);
}

/// Where the bug above led: the pulling Pipe sends Offer again; it must not pull a second call (it
/// gets TRY_AGAIN: its own pull is pending), so it never carries two calls.
#[test]
fn a_pipe_never_ends_up_in_two_calls() {
    let mut ops = pulling_pipe_story();
    ops.extend([
        send(1, 0, Msg::Offer { sdp: 2 }), // P2 pulls the second call as well
        send(2, 0, Msg::Answer { sdp: 3 }), // B answers the first pull
        send(3, 0, Msg::Answer { sdp: 3 }), // C answers the second
    ]);
    strict(ops, false);
}

/// A's Pipe P1 carries a call with B, A's Pipe P2 pulls it (B does not answer yet), and meanwhile A's
/// MultiPipe answers a call from C.
fn pulling_pipe_story() -> Vec<Op> {
    vec![
        register(0, false),                 // 0: Pipe P1 of A
        register(0, false),                 // 1: Pipe P2 of A
        register(1, true),                  // 2: MultiPipe of B
        register(2, true),                  // 3: MultiPipe of C
        call(2, 0),                         // B calls A: P1 and P2 ring
        send(0, 0, Msg::Answer { sdp: 1 }), // P1 answers; P2: Bye, InCall
        send(1, 0, Msg::Offer { sdp: 2 }),  // P2 pulls the call; B is re-offered
        register(0, true),                  // 4: MultiPipe of A
        call(3, 0),                         // C calls A: only A's MultiPipe is eligible
        send(4, 0, Msg::Answer { sdp: 1 }), // it answers: P2 is told InCall for this call
    ]
}

/// A terminal that goes away while it carries a call, with a reconnect grace, is sent nothing from
/// its own `unregister` (it used to get InCall for the call it left).
#[test]
fn a_departing_terminal_is_sent_nothing() {
    strict(
        vec![
            register(0, true),                  // 0: MultiPipe of A
            register(1, true),                  // 1: MultiPipe of B
            call(0, 1),                         // A calls B
            send(1, 0, Msg::Answer { sdp: 1 }), // B answers
            Op::Unregister { term: 0 },         // A's terminal goes, within the grace
        ],
        true,
    );
}

/// Section 3 / `SwitchConfig::multipipe_call_cap`: a MultiPipe is in at most the cap of calls at once,
/// pulls included: at its cap, a pull gets RATE_LIMIT_HIT (it used to carry cap + 1).
#[test]
fn a_multipipe_at_its_cap_cannot_pull_one_more_call() {
    strict(
        vec![
            register(0, true),                  // 0: MultiPipe M of A
            register(0, false),                 // 1: Pipe P of A
            register(1, true),                  // 2: MultiPipe of B
            register(2, true),                  // 3: MultiPipe of C
            call(0, 2),                         // M calls C ...
            call(0, 2),                         // ... three times: at its cap of 3
            call(0, 2),                         //
            call(1, 1),                         // P calls B
            send(2, 0, Msg::Answer { sdp: 1 }), // B answers: M is told InCall
            send(0, 3, Msg::Offer { sdp: 2 }),  // M pulls that call (its 4th id) ...
            send(2, 0, Msg::Answer { sdp: 3 }), // ... B answers: M is in 4 calls
        ],
        false,
    );
}
