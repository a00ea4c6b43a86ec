//! Free loopback ports for the servers tests start as processes (the core's binary, `redis-server`,
//! chromedriver), which bind a port the test names. A port is picked below the kernel's ephemeral
//! range (`/proc/sys/net/ipv4/ip_local_port_range`, 32768–60999 by default), so that no client
//! connection's source port can take it between the pick and the server's bind, nor while a
//! server is restarted on it; candidates are random and checked free by binding.
//!
//! Include it with `#[path = "support/ports.rs"] mod ports;` (from `tests/support/`: `#[path =
//! "ports.rs"]`).

#![allow(dead_code)]

use std::hash::{BuildHasher, RandomState};
use std::net::TcpListener;

/// The lowest port picked: above the well-known and most registered services' ports.
const LOWEST: u16 = 20_000;

/// A loopback port nothing listens on now, picked at random below the ephemeral range where that
/// range leaves room (else the OS's pick, released at once).
pub fn free_port() -> u16 {
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    if ephemeral_start <= LOWEST + 1_000 {
        return TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a loopback port")
            .port();
    }
    let span = u64::from(ephemeral_start - LOWEST);
    // Random picks (std's per-process random hash keys): two picks made before either server
    // binds, in this process or another, rarely meet.
    let random = RandomState::new();
    for attempt in 0..1_000u32 {
        let port = LOWEST + (random.hash_one((std::process::id(), attempt)) % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {LOWEST}..{ephemeral_start}");
}
