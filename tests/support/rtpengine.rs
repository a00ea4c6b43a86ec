//! rtpengine for tests: Debian's `rtpengine-daemon` (`$RTPENGINE`, else `rtpengine` on the PATH;
//! scripts/install-test-tools installs it), userspace only, on loopback, one process per test,
//! killed (and reaped) on drop.
//!
//! rtpengine cannot bind port 0 and say which port it got, and it binds its ng socket with
//! `SO_REUSEPORT`, so a port already taken by another rtpengine does not even fail its start. The
//! launcher therefore picks a free port, starts rtpengine on it, and keeps it only once it answers
//! `ping` and is the only process holding that port; otherwise (it exited, did not answer, or shares
//! the port) it is killed and started again on another port.
//!
//! Include it with `#[path = "support/rtpengine.rs"] mod rtpengine;`.

#![allow(dead_code)]

use super::owned_ports::{free_udp_port, holds};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How many ports are tried before the test fails.
const ATTEMPTS: usize = 8;

/// How long one start may take to answer `ping`.
const START_WAIT: Duration = Duration::from_secs(5);

/// How many media ports each instance gets (`--port-min` .. `--port-max`).
const MEDIA_PORTS: u16 = 200;

/// An rtpengine process, killed on drop; its log (stderr) is kept to show on failure.
pub struct RtpEngineProcess {
    child: Option<Child>,
    /// Its ng control socket.
    pub ng: SocketAddr,
    log: tempfile::NamedTempFile,
}

impl Drop for RtpEngineProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether an ng `ping` to `addr` gets `pong` within `wait`.
fn answers_ping(addr: SocketAddr, wait: Duration) -> bool {
    let Ok(socket) = UdpSocket::bind("127.0.0.1:0") else {
        return false;
    };
    let _ = socket.set_read_timeout(Some(wait));
    if socket.send_to(b"probe d7:command4:pinge", addr).is_err() {
        return false;
    }
    let mut buf = [0u8; 512];
    matches!(socket.recv_from(&mut buf), Ok((len, _))
        if String::from_utf8_lossy(&buf[..len]).starts_with("probe ")
            && String::from_utf8_lossy(&buf[..len]).contains("pong"))
}

impl RtpEngineProcess {
    /// Starts rtpengine on loopback (see the module's doc), retrying on other ports until one is
    /// its own; panics, showing the last log, when none is after [`ATTEMPTS`].
    pub fn start() -> RtpEngineProcess {
        let binary = std::env::var("RTPENGINE").unwrap_or_else(|_| "rtpengine".into());
        let mut last_log = String::new();
        for _ in 0..ATTEMPTS {
            let port = free_udp_port();
            // A media range of its own, from the port's low bits, below the ephemeral ports.
            let media_min = 20_000 + (port % 50) * MEDIA_PORTS;
            let log = tempfile::NamedTempFile::new().unwrap();
            let child = Command::new(&binary)
                .arg("--config-file=none")
                .args(["--table=-1", "--interface=127.0.0.1"])
                .arg(format!("--listen-ng=127.0.0.1:{port}"))
                .arg(format!("--port-min={media_min}"))
                .arg(format!("--port-max={}", media_min + MEDIA_PORTS - 1))
                .args(["--foreground", "--log-stderr", "--delete-delay=0"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log.reopen().unwrap())
                .spawn()
                .unwrap_or_else(|e| {
                    panic!(
                        "rtpengine ({binary}) does not start: {e}; scripts/install-test-tools \
                         installs it"
                    )
                });
            let mut started = RtpEngineProcess {
                child: Some(child),
                ng: SocketAddr::from(([127, 0, 0, 1], port)),
                log,
            };
            if started.comes_up() {
                return started;
            }
            last_log = started.log();
            started.kill();
        }
        panic!("rtpengine never came up on a port of its own; its last log:\n{last_log}");
    }

    /// Waits for the process to answer `ping` as the only holder of its port; false when it exits
    /// or does not within [`START_WAIT`].
    fn comes_up(&mut self) -> bool {
        let deadline = Instant::now() + START_WAIT;
        while Instant::now() < deadline {
            let child = self.child.as_mut().unwrap();
            if child.try_wait().unwrap().is_some() {
                return false;
            }
            if answers_ping(self.ng, Duration::from_millis(100)) {
                return holds(child.id(), "/proc/net/udp", self.ng.port());
            }
        }
        false
    }

    /// What rtpengine logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// Kills it (a crash, for the tests of rtpengine going away) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
