//! baresip for tests: a real SIP phone (Debian's `baresip-core`, 1.0.0; `$BARESIP`, else `baresip`
//! on the PATH; scripts/install-test-tools installs it), headless, on loopback, one process per
//! test in a directory of its own, killed (and reaped) on drop. And the little audio arithmetic the
//! tests judge recordings with: WAV files written and read, a tone's share of a signal (Goertzel).
//!
//! Its config (written by [`Baresip::start`]): SIP on `127.0.0.1:<port>` (UDP; baresip also takes
//! TCP on that port and TLS on the next), media on 127.0.0.1, only G.711 (so that rtpengine
//! transcodes the browser's opus, as toward a carrier), a sine tone as microphone (`ausine`, which
//! wants 48 kHz stereo; baresip resamples), no loudspeaker, everything it hears and says dumped to
//! WAV files (`sndfile`: `dump-<time>-dec.wav` is what it heard), one account that answers every
//! call at once (`answermode=auto`) and never registers, and the `ctrl_tcp` control socket (JSON in
//! netstrings: `{"command":"dial","params":"sip:...","token":"1"}`, answered with `response`
//! objects; events such as `CALL_ESTABLISHED` arrive on the same connection).
//!
//! baresip cannot report the ports it bound (port 0 leaves several sockets to guess from), and a
//! port it cannot bind does not always stop it (`ctrl_tcp` only logs the failure). So, as for
//! rtpengine, the launcher picks free ports, starts it, and keeps it once it says it is ready and
//! holds both ports itself; otherwise it is killed and started again on other ports.
//!
//! Include it with `#[path = "support/baresip.rs"] mod baresip;`.

#![allow(dead_code)]

use super::owned_ports::{free_tcp_port, free_udp_port, holds};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// How many port pairs are tried before the test fails.
const ATTEMPTS: usize = 8;

/// How long one start may take to be ready.
const START_WAIT: Duration = Duration::from_secs(10);

/// How long a control command may take to be answered.
const COMMAND_WAIT: Duration = Duration::from_secs(5);

/// A baresip process, killed on drop, with its control connection.
pub struct Baresip {
    child: Option<Child>,
    /// Where it takes SIP (UDP).
    pub sip: SocketAddr,
    /// Its account's address of record (`sip:<number>@127.0.0.1`).
    pub aor: String,
    dir: tempfile::TempDir,
    control: Option<TcpStream>,
    /// Every message read from the control connection (responses and events), in order.
    messages: Arc<Mutex<Vec<Value>>>,
    next_token: u64,
}

impl Drop for Baresip {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The config file of a baresip on `sip_port` with its control socket on `control_port`, its tone
/// at `tone_hz`, dumping audio into `dir`.
fn config(sip_port: u16, control_port: u16, tone_hz: u32, dir: &Path) -> String {
    format!(
        "poll_method epoll\n\
         sip_listen 127.0.0.1:{sip_port}\n\
         net_interface 127.0.0.1\n\
         audio_player\n\
         audio_alert\n\
         audio_source ausine,{tone_hz}\n\
         ausrc_srate 48000\n\
         ausrc_channels 2\n\
         rtp_stats no\n\
         statmode_default off\n\
         module_path /usr/lib/baresip/modules\n\
         module g711.so\n\
         module ausine.so\n\
         module sndfile.so\n\
         snd_path {dir}\n\
         module_app account.so\n\
         module_app menu.so\n\
         module_app ctrl_tcp.so\n\
         ctrl_tcp_listen 127.0.0.1:{control_port}\n",
        dir = dir.display()
    )
}

impl Baresip {
    /// Starts baresip as the phone `number` (its account `sip:<number>@127.0.0.1`, answering every
    /// call), its microphone a sine at `tone_hz`, on loopback ports of its own (see the module's
    /// doc); panics, showing the last log, when no start holds its ports after [`ATTEMPTS`].
    pub fn start(number: &str, tone_hz: u32) -> Baresip {
        let binary = std::env::var("BARESIP").unwrap_or_else(|_| "baresip".into());
        let aor = format!("sip:{number}@127.0.0.1");
        let mut last_log = String::new();
        for _ in 0..ATTEMPTS {
            let dir = tempfile::tempdir().unwrap();
            // SIP takes UDP and TCP on its port, and TLS on the next one.
            let sip_port = free_udp_port();
            let control_port = free_tcp_port();
            if control_port.abs_diff(sip_port) <= 1 {
                continue;
            }
            std::fs::write(
                dir.path().join("config"),
                config(sip_port, control_port, tone_hz, dir.path()),
            )
            .unwrap();
            std::fs::write(
                dir.path().join("accounts"),
                format!("<{aor}>;regint=0;answermode=auto\n"),
            )
            .unwrap();
            let log = std::fs::File::create(dir.path().join("log")).unwrap();
            let child = Command::new(&binary)
                .arg("-f")
                .arg(dir.path())
                .arg("-v")
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| {
                    panic!(
                        "baresip ({binary}) does not start: {e}; scripts/install-test-tools \
                         installs it (Debian's baresip-core)"
                    )
                });
            let mut started = Baresip {
                child: Some(child),
                sip: SocketAddr::from(([127, 0, 0, 1], sip_port)),
                aor: aor.clone(),
                dir,
                control: None,
                messages: Arc::default(),
                next_token: 0,
            };
            if started.comes_up(control_port) {
                return started;
            }
            last_log = started.log();
            started.kill();
        }
        panic!("baresip never came up on ports of its own; its last log:\n{last_log}");
    }

    /// Waits until it says it is ready and holds its SIP (UDP) and control (TCP) ports, then
    /// connects to the control socket; false when it exits or does not within [`START_WAIT`].
    fn comes_up(&mut self, control_port: u16) -> bool {
        let deadline = Instant::now() + START_WAIT;
        while Instant::now() < deadline {
            let child = self.child.as_mut().unwrap();
            if child.try_wait().unwrap().is_some() {
                return false;
            }
            let pid = child.id();
            if self.log().contains("baresip is ready.") {
                if !(holds(pid, "/proc/net/udp", self.sip.port())
                    && holds(pid, "/proc/net/tcp", control_port))
                {
                    return false;
                }
                let Ok(stream) = TcpStream::connect(("127.0.0.1", control_port)) else {
                    return false;
                };
                let reader = stream.try_clone().unwrap();
                let messages = self.messages.clone();
                std::thread::spawn(move || read_netstrings(reader, messages));
                self.control = Some(stream);
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// What baresip logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    /// Kills it and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `command` with `params` on the control socket and waits for its response; panics
    /// (with the log) when it is not `ok` or does not come within [`COMMAND_WAIT`].
    pub fn command(&mut self, command: &str, params: &str) -> Value {
        self.next_token += 1;
        let token = self.next_token.to_string();
        let body = json!({"command": command, "params": params, "token": token}).to_string();
        let control = self.control.as_mut().expect("the control connection");
        control
            .write_all(format!("{}:{body},", body.len()).as_bytes())
            .unwrap();
        let deadline = Instant::now() + COMMAND_WAIT;
        loop {
            let response = self
                .messages
                .lock()
                .unwrap()
                .iter()
                .find(|m| m["response"] == true && m["token"] == token.as_str())
                .cloned();
            if let Some(response) = response {
                assert!(
                    response["ok"] == true,
                    "baresip: {command} {params}: {response}\n{}",
                    self.log()
                );
                return response;
            }
            assert!(
                Instant::now() < deadline,
                "baresip: no response to {command} {params}; its log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Dials `uri`.
    pub fn dial(&mut self, uri: &str) {
        self.command("dial", uri);
    }

    /// Hangs up its current call.
    pub fn hang_up(&mut self) {
        self.command("hangup", "");
    }

    /// The events (`type`s such as `CALL_INCOMING`, `CALL_ESTABLISHED`, `CALL_CLOSED`) seen so far.
    pub fn events(&self) -> Vec<String> {
        self.messages
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m["event"] == true)
            .filter_map(|m| m["type"].as_str().map(str::to_owned))
            .collect()
    }

    /// How many events of `kind` came so far.
    pub fn count(&self, kind: &str) -> usize {
        self.count_where(|k, _| k == kind)
    }

    /// How many events so far `matches` their `type` and `param` (e.g. `CALL_REMOTE_SDP` and
    /// `offer`: an INVITE or re-INVITE received; empty when an event has none).
    pub fn count_where(&self, matches: impl Fn(&str, &str) -> bool) -> usize {
        self.messages
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m["event"] == true)
            .filter(|m| {
                matches(
                    m["type"].as_str().unwrap_or_default(),
                    m["param"].as_str().unwrap_or_default(),
                )
            })
            .count()
    }

    /// The newest WAV file of what it heard (`dump-*-dec.wav`), if any.
    pub fn heard(&self) -> Option<PathBuf> {
        self.newest_dump("-dec.wav")
    }

    /// The newest WAV file of what it sent (`dump-*-enc.wav`), if any.
    pub fn said(&self) -> Option<PathBuf> {
        self.newest_dump("-enc.wav")
    }

    fn newest_dump(&self, suffix: &str) -> Option<PathBuf> {
        std::fs::read_dir(self.dir.path())
            .ok()?
            .flatten()
            .filter(|entry| {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                name.starts_with("dump-") && name.ends_with(suffix)
            })
            .max_by_key(|entry| {
                entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(SystemTime::UNIX_EPOCH)
            })
            .map(|entry| entry.path())
    }
}

/// Reads netstrings (`<length>:<JSON>,`) from `stream` into `messages` until it closes.
fn read_netstrings(mut stream: TcpStream, messages: Arc<Mutex<Vec<Value>>>) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let Ok(n) = stream.read(&mut chunk) else {
            return;
        };
        if n == 0 {
            return;
        }
        buffer.extend_from_slice(&chunk[..n]);
        while let Some(colon) = buffer.iter().position(|&b| b == b':') {
            let Some(length) = std::str::from_utf8(&buffer[..colon])
                .ok()
                .and_then(|l| l.parse::<usize>().ok())
            else {
                return;
            };
            let end = colon + 1 + length;
            if buffer.len() < end + 1 {
                break;
            }
            if let Ok(value) = serde_json::from_slice(&buffer[colon + 1..end]) {
                messages.lock().unwrap().push(value);
            }
            buffer.drain(..=end);
        }
    }
}

/// Writes a mono 16-bit WAV file of a sine at `tone_hz`, `seconds` long at `rate`, at half of full
/// scale (what Chromium's `--use-file-for-fake-audio-capture` plays, looping).
pub fn write_tone_wav(path: &Path, rate: u32, tone_hz: u32, seconds: u32) {
    let samples: Vec<i16> = (0..rate * seconds)
        .map(|i| {
            let phase = 2.0 * std::f64::consts::PI * f64::from(tone_hz) * f64::from(i);
            (16_000.0 * (phase / f64::from(rate)).sin()) as i16
        })
        .collect();
    let data_len = u32::try_from(samples.len() * 2).unwrap();
    let mut wav = Vec::with_capacity(44 + samples.len() * 2);
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data_len).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&1u16.to_le_bytes()); // mono
    wav.extend_from_slice(&rate.to_le_bytes());
    wav.extend_from_slice(&(rate * 2).to_le_bytes());
    wav.extend_from_slice(&2u16.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&data_len.to_le_bytes());
    for sample in samples {
        wav.extend_from_slice(&sample.to_le_bytes());
    }
    std::fs::write(path, wav).unwrap();
}

/// A 16-bit PCM WAV file's sample rate and its first channel's samples, read to the end of the
/// file whatever the header says of the data's length (a file still being written says 0).
/// `None` when it is not such a file (yet).
pub fn read_wav(path: &Path) -> Option<(u32, Vec<f64>)> {
    let bytes = std::fs::read(path).ok()?;
    if bytes.get(..4)? != b"RIFF" || bytes.get(8..12)? != b"WAVE" {
        return None;
    }
    let (mut at, mut format) = (12, None);
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let size = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().ok()?) as usize;
        let body = at + 8;
        if id == b"fmt " {
            let fmt = bytes.get(body..body + 16)?;
            let channels = usize::from(u16::from_le_bytes([fmt[2], fmt[3]]));
            let rate = u32::from_le_bytes(fmt[4..8].try_into().ok()?);
            let bits = u16::from_le_bytes([fmt[14], fmt[15]]);
            if u16::from_le_bytes([fmt[0], fmt[1]]) != 1 || bits != 16 || channels == 0 {
                return None;
            }
            format = Some((rate, channels));
        } else if id == b"data" {
            let (rate, channels) = format?;
            let samples = bytes[body..]
                .chunks_exact(2 * channels)
                .map(|frame| f64::from(i16::from_le_bytes([frame[0], frame[1]])))
                .collect();
            return Some((rate, samples));
        }
        at = body + size + size % 2;
    }
    None
}

/// How a stretch of audio sounds at one frequency.
#[derive(Clone, Copy, Debug)]
pub struct Tone {
    /// The signal's root-mean-square level (16-bit full scale: 32768).
    pub rms: f64,
    /// The share of the signal's power at the frequency asked for (0 to 1; a pure sine there is
    /// close to 1).
    pub share: f64,
}

/// The power of `samples` (at `rate`) at `hz`, by the Goertzel algorithm, as a share of their
/// whole power, and their level.
pub fn tone(samples: &[f64], rate: u32, hz: f64) -> Tone {
    let n = samples.len() as f64;
    if samples.is_empty() {
        return Tone {
            rms: 0.0,
            share: 0.0,
        };
    }
    let power = samples.iter().map(|s| s * s).sum::<f64>() / n;
    let coefficient = 2.0 * (2.0 * std::f64::consts::PI * hz / f64::from(rate)).cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for sample in samples {
        let s0 = sample + coefficient * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let magnitude = s1 * s1 + s2 * s2 - coefficient * s1 * s2;
    // A sine of amplitude A over n samples: |X|² = (A n / 2)², its power A² / 2.
    let at_hz = 2.0 * magnitude / (n * n);
    Tone {
        rms: power.sqrt(),
        share: if power > 0.0 { at_hz / power } else { 0.0 },
    }
}

/// How the last `seconds` of the WAV file at `path` sound at `hz`; `None` before the file holds
/// that much.
pub fn last_seconds_of(path: &Path, seconds: f64, hz: f64) -> Option<Tone> {
    let (rate, samples) = read_wav(path)?;
    let wanted = (f64::from(rate) * seconds) as usize;
    (samples.len() >= wanted).then(|| tone(&samples[samples.len() - wanted..], rate, hz))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tone_written_is_read_back_at_its_frequency() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tone.wav");
        write_tone_wav(&path, 8000, 600, 1);
        let at_600 = last_seconds_of(&path, 1.0, 600.0).unwrap();
        assert!(at_600.share > 0.95 && at_600.rms > 10_000.0, "{at_600:?}");
        let at_1000 = last_seconds_of(&path, 1.0, 1000.0).unwrap();
        assert!(at_1000.share < 0.01, "{at_1000:?}");
        assert!(last_seconds_of(&path, 2.0, 600.0).is_none());
    }
}
