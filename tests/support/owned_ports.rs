//! Ports chosen ahead for a tool that cannot report the port it bound (rtpengine, baresip), and the
//! proof that the tool alone holds it: the sockets bound to the port (from /proc/net) are all among
//! the tool's own (from /proc/PID/fd). A start that finds another holder is retried on another port.

#![allow(dead_code)]

use std::collections::HashSet;

/// A free UDP port on 127.0.0.1 (bound, read, released).
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A free TCP port on 127.0.0.1 (bound, read, released).
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The inodes of the sockets bound to 127.0.0.1:`port` in `table` (/proc/net/udp or tcp; for TCP
/// only listening ones: state `0A`, where an established connection is `01`).
pub fn sockets_on(table: &str, port: u16) -> HashSet<u64> {
    let table = std::fs::read_to_string(table).unwrap_or_default();
    let local = format!("0100007F:{port:04X}");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let listening = fields.get(3).is_some_and(|state| *state != "01");
            (fields.get(1) == Some(&local.as_str()) && listening)
                .then(|| fields.get(9)?.parse().ok())
                .flatten()
        })
        .collect()
}

/// The inodes of the sockets process `pid` holds.
pub fn sockets_of(pid: u32) -> HashSet<u64> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return HashSet::new();
    };
    fds.flatten()
        .filter_map(|fd| {
            let target = std::fs::read_link(fd.path()).ok()?;
            let target = target.to_str()?;
            target
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect()
}

/// Whether `pid` alone holds the sockets on 127.0.0.1:`port` in `table`.
pub fn holds(pid: u32, table: &str, port: u16) -> bool {
    let holders = sockets_on(table, port);
    !holders.is_empty() && holders.is_subset(&sockets_of(pid))
}
