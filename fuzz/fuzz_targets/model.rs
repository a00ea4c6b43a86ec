//! Fuzzes the call switch with the model-based test's world (`tests/model/world.rs`): the input is a
//! setup and a sequence of steps, each decoded from four raw bytes by `Op::decode`; every step is
//! checked against the same invariants as the proptest (`tests/model.rs`). A broken invariant panics
//! with the trace of the switch's outputs.
//!
//! `cargo +nightly fuzz run model` (from the repository root).

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

#[path = "../../tests/model/world.rs"]
mod world;

/// The raw input: the setup (the group, if any, as three bytes for `GroupSetup::decode`), whether
/// the server shuts down at the end, and the steps as bytes.
#[derive(Arbitrary, Debug)]
struct FuzzInput {
    phone_network: bool,
    grace: bool,
    group: Option<[u8; 3]>,
    shutdown: bool,
    ops: Vec<[u8; 4]>,
}

fuzz_target!(|raw: FuzzInput| {
    let input = world::Input {
        setup: world::Setup {
            phone_network: raw.phone_network,
            grace: raw.grace,
            group: raw.group.map(world::GroupSetup::decode),
        },
        ops: raw
            .ops
            .iter()
            .take(200)
            .map(|b| world::Op::decode(*b))
            .collect(),
        shutdown: raw.shutdown,
    };
    if let Err(e) = world::run(&input) {
        panic!("{e}\ninput: {input:#?}");
    }
});
