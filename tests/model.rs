//! Model-based test of the switch: proptest drives it with random sequences of
//! registrations, messages, phone events, disconnects, time jumps and a shutdown over a small world
//! (`tests/model/world.rs`, shared with the cargo-fuzz target in `fuzz/`), and checks PROTOCOL.md's
//! promises after every step: the switch's own invariants, at most one active leg per side, every id
//! and number scoped to its subscriber, every terminal's view consistent with what it was told, and no
//! call left once every terminal has gone. Most runs have a group (section 10) at a fifth number,
//! with a strategy, members and short member ring and queue timeouts of their own, which calls,
//! phone calls and transfers reach like any other number.
//!
//! 256 cases by default (a few seconds in debug); `PROPTEST_CASES=100000 cargo test --test model`
//! for a long run on stable (about 40 steps a case; `--release -- --nocapture` shows progress every
//! 100,000 cases). A failure prints the shrunk input and a trace of the switch's outputs.

#[path = "model/world.rs"]
mod world;

use proptest::prelude::*;
use webterminal_core::core::Strategy as Hunt;
use world::{
    GroupSetup, Input, Msg, Op, PhoneOp, Setup, GRACE_MS, MEMBER_RING_CHOICES, NEGOTIATION_MS,
    QUEUE_CHOICES, RING_MS,
};

fn msg() -> impl Strategy<Value = Msg> {
    prop_oneof![
        2 => any::<u8>().prop_map(|sdp| Msg::Offer { sdp }),
        4 => any::<u8>().prop_map(|sdp| Msg::Answer { sdp }),
        1 => Just(Msg::Ringing),
        3 => Just(Msg::Bye),
        1 => Just(Msg::ToPhone),
        1 => (0u8..5).prop_map(|to| Msg::Transfer { to }),
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
            // Around the group's member ring and queue timeouts (section 10).
            proptest::sample::select(MEMBER_RING_CHOICES.to_vec()),
            proptest::sample::select(MEMBER_RING_CHOICES.map(|t| t - 1).to_vec()),
            proptest::sample::select(QUEUE_CHOICES.to_vec()),
            0u16..(QUEUE_CHOICES[1] + GRACE_MS),
        ]
        .prop_map(|ms| Op::Advance { ms }),
    ]
}

/// The group at the group's number: its strategy, members (a bit per number) and timeouts.
fn group() -> impl Strategy<Value = Option<GroupSetup>> {
    let strategy = prop_oneof![
        Just(Hunt::RingAll),
        Just(Hunt::RoundRobin),
        Just(Hunt::LongestIdle),
    ];
    proptest::option::weighted(
        0.8,
        (strategy, 1u8..16, 0u8..2, 0u8..2).prop_map(|(strategy, members, member_ring, queue)| {
            GroupSetup {
                strategy,
                members,
                member_ring,
                queue,
            }
        }),
    )
}

fn input() -> impl Strategy<Value = Input> {
    (
        any::<bool>(),
        any::<bool>(),
        group(),
        proptest::collection::vec(op(), 0..80),
        proptest::bool::weighted(0.2),
    )
        .prop_map(|(phone_network, grace, group, ops, shutdown)| Input {
            setup: Setup {
                phone_network,
                grace,
                group,
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

/// Every 100,000 cases of a long run, the cases and steps run so far on stderr (seen with
/// `--nocapture`); shrinking a failure counts too.
fn progress(input: &Input) {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    static CASES: AtomicU64 = AtomicU64::new(0);
    static STEPS: AtomicU64 = AtomicU64::new(0);
    let steps = STEPS.fetch_add(input.ops.len() as u64, Relaxed) + input.ops.len() as u64;
    let cases = CASES.fetch_add(1, Relaxed) + 1;
    if cases.is_multiple_of(100_000) {
        eprintln!("model: {cases} cases, {steps} steps");
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_switch_keeps_its_promises_whatever_happens(input in input()) {
        progress(&input);
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
                    group: None,
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
            group: None,
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

fn with_group(ops: Vec<Op>, strategy: Hunt, members: u8) -> Input {
    Input {
        setup: Setup {
            phone_network: false,
            grace: false,
            group: Some(GroupSetup {
                strategy,
                members,
                member_ring: 0,
                queue: 0,
            }),
        },
        ops,
        shutdown: false,
    }
}

/// Section 10 through the interpreter: calls to the group (number 4) answered, declined, passed
/// over, timed out in the queue, and one to a group whose members have no terminal.
#[test]
fn a_known_group_story_runs_clean() {
    for strategy in [Hunt::RingAll, Hunt::RoundRobin, Hunt::LongestIdle] {
        let ops = vec![
            call(0, 4),         // nobody at all: UNAVAILABLE at once
            register(0, true),  // 0: MultiPipe of A (caller)
            call(0, 4),         // no member has a terminal: UNAVAILABLE at once
            register(1, true),  // 1: MultiPipe of B (member)
            register(2, false), // 2: Pipe of C (member)
            call(0, 4),         // queued: Ringing at once
            send(1, 1, Msg::Ringing),
            send(1, 1, Msg::Bye), // B declines (ring-all: B's offer, else maybe C's)
            Op::Advance {
                ms: MEMBER_RING_CHOICES[0],
            },
            send(2, 0, Msg::Answer { sdp: 1 }), // C answers if offered
            send(0, 1, Msg::Offer { sdp: 2 }),  // A re-offers
            send(2, 0, Msg::Answer { sdp: 3 }),
            send(2, 0, Msg::Bye),
            call(0, 4), // again, and let it time out
            Op::Advance {
                ms: QUEUE_CHOICES[0],
            },
        ];
        world::run(&with_group(ops, strategy, 0b0110)).unwrap_or_else(|e| panic!("{e}"));
    }
}

/// A switch bug the model found (fixed): a Pipe of a group member that was told InCall for its
/// number's call, then was offered a group call (as a new eligible terminal of a member already
/// offered it), and whose observed call ended meanwhile, was not told `Idle{}` once the group offer
/// ended (here: declined on another terminal of its number): it kept showing a call that was over
/// (PROTOCOL.md 4.4). The switch now refreshes a member's views when a group offer ends.
#[test]
fn a_pipe_freed_from_a_group_offer_gets_idle() {
    let ops = vec![
        register(0, false),                 // 0: Pipe P1 of A (a member)
        register(0, false),                 // 1: Pipe P2 of A
        register(0, true),                  // 2: MultiPipe M of A
        register(1, true),                  // 3: MultiPipe of B
        register(2, true),                  // 4: MultiPipe of C
        call(3, 0),                         // B calls A: P1, P2, M ring
        call(4, 4),                         // C calls the group: M (with room) is offered it
        send(0, 0, Msg::Answer { sdp: 1 }), // P1 answers B; P2 gets InCall, then the group offer
        send(3, 0, Msg::Bye),               // B hangs up: P2 is busy with the offer, no Idle yet
        send(2, 1, Msg::Bye),               // M declines the group call: P2's offer ends too
    ];
    world::run(&with_group(ops, Hunt::RingAll, 0b0001)).unwrap_or_else(|e| panic!("{e}"));
}

/// A switch bug the model found (fixed; the same as above, one step further): the Pipe freed from
/// a group offer still observed, in the switch, the call that ended meanwhile, which was gone; its
/// next message about a call (here a pull, Offer with no id) made the switch look that call up by
/// its key and panic ("no entry found for key", `offer_on_call`), taking the whole core down.
#[test]
fn a_pipe_freed_from_a_group_offer_does_not_crash_the_switch() {
    let ops = vec![
        register(0, false), // 0: Pipe P1 of A (a member)
        register(1, false), // 1: Pipe of B
        Op::Dial {
            from: 1,
            to: 0,
            sdp: 0,
        }, // B's phone calls A: P1 rings
        register(0, false), // 2: Pipe P2 of A, rings too
        call(1, 4),         // B calls the group: A's Pipes are busy, it waits
        register(0, true),  // 3: MultiPipe M of A: offered both calls
        send(2, 0, Msg::Answer { sdp: 0 }), // P2 answers B's phone; P1: InCall, then the group offer
        send(2, 0, Msg::Bye),               // P2 hangs up: P1 is busy with the offer, no Idle
        send(0, 0, Msg::Bye),               // P1 declines the group call: free, showing a gone call
        send(0, 0, Msg::Offer { sdp: 0 }),  // P1 pulls "its" observed call: the switch panics
    ];
    let mut input = with_group(ops, Hunt::RingAll, 0b0111);
    input.setup.phone_network = true;
    world::run(&input).unwrap_or_else(|e| panic!("{e}"));
}

/// A switch bug the model found (fixed): a MultiPipe of a member, passed over for a round-robin
/// group call it was offered under id X, places a call of its own under X (ids of calls that ended
/// for its number are its to reuse); when the group call came round to its member again the switch
/// offered it under the same X while the member's own call was live, and the member's number then
/// indexed X as the group call, not its own. Now a member whose own call uses the id is passed by.
#[test]
fn a_member_reusing_a_group_call_id_keeps_its_own_call() {
    let ops = vec![
        register(2, false), // 0: Pipe of C (a member)
        register(0, false), // 1: Pipe of A
        register(2, true),  // 2: MultiPipe M of C
        call(1, 4),         // A calls the group: C (first in round-robin) is offered it as X
        register(1, false), // 3: Pipe of B (a member)
        Op::Advance {
            ms: MEMBER_RING_CHOICES[1],
        }, // C passed over (Bye{CANCELLED} on X); B is offered it
        Op::Call {
            term: 2,
            to: 4,
            reuse: Some(0),
            sdp: 0,
        }, // M calls under X, the id it was told first
        Op::Unregister { term: 3 }, // B goes: the group call goes back to C, under X
    ];
    let mut input = with_group(ops, Hunt::RoundRobin, 0b0110);
    if let Some(g) = input.setup.group.as_mut() {
        g.member_ring = 1;
        g.queue = 1;
    }
    world::run(&input).unwrap_or_else(|e| panic!("{e}"));
}

/// A chained transfer, as the model found it in a long run (the oracle's bug, not the switch's):
/// B calls A, A transfers B to C (C's phone comes up, B answers its re-offer), then B transfers the
/// far party, now C, to A. PROTOCOL.md 4.12: A, the transfer target, is shown `InCall{C}` on a fresh
/// id and may pull the call. The model named B's far party by the call's first peer (A), so it took
/// the second transfer for one of A to A and refused A's `InCall{C}` as a number A never had a call
/// with.
#[test]
fn a_transfer_target_hears_of_the_far_party_of_a_transferred_call() {
    let ops = vec![
        register(1, false),                  // 0: Pipe of B
        register(0, false),                  // 1: Pipe of A
        call(0, 0),                          // B calls A: A's Pipe and A's phone ring
        send(1, 0, Msg::Answer { sdp: 1 }),  // A's Pipe answers; its phone is released
        send(1, 0, Msg::Transfer { to: 2 }), // A transfers B to C: C's phone comes up
        Op::Phone {
            leg: 0,
            event: PhoneOp::HandOverReady,
            sdp: 2,
        }, // C's phone offers; B is re-offered, from C
        send(0, 0, Msg::Answer { sdp: 3 }),  // B answers: the call is B–C
        send(0, 0, Msg::Transfer { to: 0 }), // B transfers C to A: A's Pipe gets InCall{C}
        send(1, 0, Msg::Offer { sdp: 0 }),   // A's Pipe pulls it; C's phone is re-offered
        Op::Phone {
            leg: 0,
            event: PhoneOp::Answered,
            sdp: 1,
        }, // C's phone answers: the call is A–C
        send(1, 0, Msg::Bye),                // A hangs up
    ];
    let trace = with_phones(ops).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        trace.contains("InCall"),
        "A's Pipe was shown the call:\n{trace}"
    );
}

/// Runs `ops` with the phone network on, no reconnect grace and no group.
fn with_phones(ops: Vec<Op>) -> Result<String, String> {
    world::run(&Input {
        setup: Setup {
            phone_network: true,
            grace: false,
            group: None,
        },
        ops,
        shutdown: false,
    })
}

/// The same chain, with the far party's call pulled by another of its terminals between the two
/// transfers: B's MultiPipe, which saw `InCall{A}`, pulls the call once it is B's with C, and then
/// transfers C to A. Its far party is C, whatever the `InCall` it pulled from named.
#[test]
fn a_puller_transfers_the_far_party_it_pulled_the_call_from() {
    let ops = vec![
        register(1, false),                  // 0: Pipe of B
        register(0, false),                  // 1: Pipe of A
        register(1, true),                   // 2: MultiPipe of B
        call(0, 0),                          // B calls A: A's Pipe and A's phone ring
        send(1, 0, Msg::Answer { sdp: 1 }),  // A answers; B's MultiPipe: InCall{A}
        send(1, 0, Msg::Transfer { to: 2 }), // A transfers B to C: C's phone comes up
        Op::Phone {
            leg: 0,
            event: PhoneOp::HandOverReady,
            sdp: 2,
        }, // B's Pipe is re-offered, from C
        send(0, 0, Msg::Answer { sdp: 3 }),  // it answers: the call is B–C
        send(2, 0, Msg::Offer { sdp: 0 }),   // B's MultiPipe pulls it; C's phone is re-offered
        Op::Phone {
            leg: 0,
            event: PhoneOp::Answered,
            sdp: 1,
        }, // the MultiPipe carries the call; B's Pipe: Bye{PULLED}, InCall{C}
        send(2, 0, Msg::Transfer { to: 0 }), // it transfers C to A: A's Pipe gets InCall{C}
    ];
    let trace = with_phones(ops).unwrap_or_else(|e| panic!("{e}"));
    assert!(trace.contains("Pulled"), "the call was pulled:\n{trace}");
}

/// A switch bug the model found (fixed): a member's pull of a call transferred to its group, refused
/// with TRY_AGAIN because the far party was reconnecting, claimed the call all the same, and the
/// other member was told `Idle` by a message the switch refused (4.12, section 10: only a pull that
/// goes through claims the call). Here A transfers C to the group, of which A and B are members.
#[test]
fn a_refused_pull_of_a_call_transferred_to_the_group_claims_nothing() {
    let ops = vec![
        register(0, false),                  // 0: Pipe A1 of A (a member)
        register(2, false),                  // 1: Pipe of C
        register(0, false),                  // 2: Pipe A2 of A
        call(0, 2),                          // A1 calls C
        send(1, 0, Msg::Answer { sdp: 0 }),  // C answers; A2: InCall{C}
        send(0, 0, Msg::Transfer { to: 4 }), // A1 transfers C to the group: A's Pipes see it
        register(1, false),                  // 3: Pipe of B (a member): sees it too
        Op::Unregister { term: 1 },          // C's Pipe goes: C's reconnect grace
        send(0, 0, Msg::Offer { sdp: 0 }),   // A1 pulls: TRY_AGAIN, and B must hear nothing
    ];
    let mut input = with_group(ops, Hunt::RingAll, 0b0011);
    input.setup.grace = true;
    world::run(&input).unwrap_or_else(|e| panic!("{e}"));
}
