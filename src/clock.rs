//! The process's wall clock, for the places that turn the switch's monotonic `Instant`s into UTC:
//! call events on the operator API (PROTOCOL.md section 8) and call records (section 9).

use std::sync::OnceLock;
use std::time::{Instant, SystemTime};

/// The wall-clock time of `at`, against one anchor taken the first time it is asked.
pub fn wall_clock(at: Instant) -> SystemTime {
    static ANCHOR: OnceLock<(Instant, SystemTime)> = OnceLock::new();
    let (instant, system) = *ANCHOR.get_or_init(|| (Instant::now(), SystemTime::now()));
    match at.checked_duration_since(instant) {
        Some(after) => system + after,
        None => system - instant.duration_since(at),
    }
}
