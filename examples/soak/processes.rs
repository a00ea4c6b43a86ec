//! The processes the soak runs and watches: the core (the real binary, its stderr read line by line
//! for panics and `ERROR` records) and a `redis-server` it stops and starts.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a started process may take to report its ports or answer `PING`.
const READY_WITHIN: Duration = Duration::from_secs(20);

/// What the core logged on stderr, as far as the soak judges it.
#[derive(Default)]
pub struct LogTally {
    /// JSON log records at level `ERROR`.
    pub errors: usize,
    /// Records at level `WARN`.
    pub warnings: usize,
    /// Lines saying a thread panicked.
    pub panics: usize,
    /// The first few `ERROR` and panic lines, for the report.
    pub samples: Vec<String>,
}

/// The core, started as `webterminal-core serve` with ports of its own choosing; killed on drop.
pub struct Core {
    child: Child,
    /// The main port: gRPC and WebSockets.
    pub addr: SocketAddr,
    /// The metrics and health port.
    pub metrics_addr: SocketAddr,
    /// Its stderr, judged line by line.
    pub log: Arc<Mutex<LogTally>>,
}

impl Core {
    /// Starts `binary serve --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --log-format json`
    /// followed by `args`, and waits until it prints the ports it bound.
    pub fn start(binary: &Path, args: &[String]) -> Result<Core, String> {
        let mut child = Command::new(binary)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(["--metrics-listen", "127.0.0.1:0", "--log-format", "json"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
        let log = Arc::new(Mutex::new(LogTally::default()));
        let stderr = child.stderr.take().expect("piped");
        let tally = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                judge(&tally, &line);
            }
        });
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let (mut main, mut metrics) = (None, None);
            for line in lines.by_ref() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("webterminal-core listening on ") {
                    main = rest.split_whitespace().next().and_then(|a| a.parse().ok());
                }
                if let Some(rest) = line.trim_start().strip_prefix("metrics: http://") {
                    metrics = rest.split('/').next().and_then(|a| a.parse().ok());
                }
                if let (Some(main), Some(metrics)) = (main, metrics) {
                    let _ = tx.send((main, metrics));
                    break;
                }
            }
            // Keep reading so that the core never blocks on a full pipe.
            for _ in lines {}
        });
        match rx.recv_timeout(READY_WITHIN) {
            Ok((addr, metrics_addr)) => Ok(Core {
                child,
                addr,
                metrics_addr,
                log,
            }),
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().ok();
                Err(format!(
                    "the core did not report its ports within {READY_WITHIN:?} (exit: {status:?})"
                ))
            }
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it has exited (and how).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGTERM, then waits up to `within` for it to exit; kills it after that.
    pub fn terminate(&mut self, within: Duration) -> Result<ExitStatus, String> {
        signal(self.child.id(), "TERM");
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.exited() {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err(format!(
                    "the core did not exit within {within:?} of SIGTERM"
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Counts one stderr line of the core (JSON records, or a panic's plain text).
fn judge(tally: &Mutex<LogTally>, line: &str) {
    let mut tally = tally.lock().unwrap();
    let panic = line.contains("panicked at");
    let error = line.contains(r#""level":"ERROR""#);
    if line.contains(r#""level":"WARN""#) {
        tally.warnings += 1;
    }
    if panic {
        tally.panics += 1;
    }
    if error {
        tally.errors += 1;
    }
    if (panic || error) && tally.samples.len() < 10 {
        tally.samples.push(line.chars().take(400).collect());
    }
}

/// Sends `SIG<name>` to `pid` with kill(1): the soak has no libc binding of its own.
fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status();
}

/// The resident set size of `pid`, in KiB (`VmRSS` of `/proc/PID/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// A `redis-server` on a fixed loopback port with an append-only file, so that a stop (SIGKILL, as a
/// crash would) loses no write it acknowledged and a start brings back what it held.
pub struct Redis {
    binary: PathBuf,
    dir: PathBuf,
    /// Its port on 127.0.0.1.
    pub port: u16,
    child: Option<Child>,
}

impl Redis {
    /// Starts one in `dir` on a port the OS picked, and waits until it answers `PING`.
    pub fn start(binary: &Path, dir: &Path) -> Result<Redis, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        // A port the OS picked, released at once: redis-server cannot report one it chose itself.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("a loopback port: {e}"))?
            .port();
        let mut redis = Redis {
            binary: binary.to_owned(),
            dir: dir.to_owned(),
            port,
            child: None,
        };
        redis.resume()?;
        Ok(redis)
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills it (SIGKILL) and waits until it has exited.
    pub fn crash(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on its port, with its data, and waits until it answers `PING`.
    pub fn resume(&mut self) -> Result<(), String> {
        let child = Command::new(&self.binary)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "yes"])
            .arg("--dir")
            .arg(&self.dir)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.binary.display()))?;
        self.child = Some(child);
        let deadline = Instant::now() + READY_WITHIN;
        while !ping(self.port) {
            if Instant::now() > deadline {
                return Err(format!(
                    "redis-server on port {} never answered PING",
                    self.port
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.crash();
    }
}

fn ping(port: u16) -> bool {
    use std::io::{Read, Write};
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200))
    else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut reply = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG\r\n"
}
