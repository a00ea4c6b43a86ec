//! A real `redis-server` for tests, on a free loopback port, in a directory of its own, with no
//! persistence (`--save "" --appendonly no`). Killed on drop; [`RedisServer::stop`] and
//! [`RedisServer::restart`] stop it and bring it back on the same port (empty: nothing is saved).
//!
//! The binary is `$REDIS_SERVER` (exported by `scripts/test`, which installs Debian's
//! `redis-server` through `scripts/install-test-tools`) or `redis-server` on the `PATH`.
//!
//! Include it with `#[path = "support/redis.rs"] mod redis_support;`.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a started server may take to answer PING.
const READY_WITHIN: Duration = Duration::from_secs(10);

/// A loopback port nothing listens on now (the OS's pick, released at once).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("a loopback port")
        .local_addr()
        .expect("its address")
        .port()
}

/// The `redis-server` binary tests run.
pub fn redis_server_binary() -> String {
    std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_owned())
}

/// A running `redis-server` (while not stopped).
pub struct RedisServer {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one on a free loopback port and waits until it answers PING.
    pub fn start() -> RedisServer {
        Self::start_on(free_port())
    }

    /// Starts one on `port` (e.g. one a client was told about before Redis was up) and waits until
    /// it answers PING.
    pub fn start_on(port: u16) -> RedisServer {
        let dir = tempfile::Builder::new()
            .prefix("webterminal-redis-")
            .tempdir()
            .expect("a directory for redis-server");
        let mut server = RedisServer {
            port,
            dir,
            child: None,
        };
        server.spawn();
        server
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills it (SIGKILL: as a crash or a lost host would) and waits until it has exited.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes it (SIGSTOP): it holds its connections and answers nothing, as a stalled host would.
    pub fn pause(&self) {
        self.signal("STOP");
    }

    /// Thaws it (SIGCONT) after [`RedisServer::pause`].
    pub fn unpause(&self) {
        self.signal("CONT");
    }

    fn signal(&self, name: &str) {
        let child = self.child.as_ref().expect("redis-server runs");
        let status = std::process::Command::new("kill")
            .args([format!("-{name}"), child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{name} redis-server");
    }

    /// Starts it again on the same port (stopping it first if it runs), empty, and waits until it
    /// answers PING.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    fn spawn(&mut self) {
        let binary = redis_server_binary();
        let child = Command::new(&binary)
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {binary:?} ({e}): run scripts/install-test-tools (it installs \
                     Debian's redis-server), or set REDIS_SERVER"
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if ping(self.port) {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "redis-server on port {} exited at start: {status}",
                    self.port
                );
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} does not answer PING within {READY_WITHIN:?}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether a Redis on `port` answers `PING` with `+PONG`.
pub fn ping(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
}
