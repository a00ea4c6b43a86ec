//! The softphone page (web/, PROTOCOL.md section 11) in headless Chromium for tests, driven through
//! WebDriver (chromedriver, with fantoccini): start chromedriver, open a page with a fake microphone,
//! and wait on what the page reports through `window.softphone.state()` and
//! `window.softphone.stats()` (`getStats`): calls in a state, audio arriving, silence, a tone's
//! frequency on the remote stream. Every wait polls a condition against a deadline and fails with a
//! screenshot; no sleep decides an outcome.
//!
//! Chromium and chromedriver come from Debian: `scripts/install-test-tools` installs them and prints
//! their paths, which `scripts/test` exports as `CHROMIUM` and `CHROMEDRIVER` (default
//! `/usr/bin/chromium` and `/usr/bin/chromedriver`). Without them the tests fail: they never skip.
//! Screenshots go to `browser-artifacts/` in the target directory (or `BROWSER_ARTIFACTS`).
//!
//! Include it with `#[path = "support/softphone.rs"] mod softphone;`.

#![allow(dead_code)]

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt;

/// Long enough for a loaded two-core machine to start Chromium, gather ICE and carry RTP.
pub const WAIT: Duration = Duration::from_secs(45);
pub const POLL: Duration = Duration::from_millis(150);
/// A rise of `totalAudioEnergy` that is sound: the fake microphone's beeps add about 0.1 a second,
/// a muted sender's silence (comfort noise) about 1e-8.
pub const AUDIBLE: f64 = 1e-3;

/// The path of an external tool: `$variable`, else `default`; fails the test when it is missing.
pub fn tool(variable: &str, default: &str) -> String {
    let path = std::env::var(variable).unwrap_or_else(|_| default.to_owned());
    assert!(
        Path::new(&path).exists(),
        "{variable}: {path} does not exist; run scripts/install-test-tools (Debian's packages) or \
         scripts/test"
    );
    path
}

/// Where screenshots go: `$BROWSER_ARTIFACTS`, else `browser-artifacts/` in the target directory.
pub fn artifacts() -> PathBuf {
    let dir = std::env::var_os("BROWSER_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
                .parent()
                .expect("the target directory")
                .join("browser-artifacts")
        });
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// chromedriver on a loopback port of its own choosing (`--port=0`; it prints the port), in a
/// process group of its own that holds the browsers it starts; the whole group is killed when
/// dropped (a failed test leaves no Chromium running).
pub struct WebDriver {
    url: String,
    group: Option<u32>,
    _child: tokio::process::Child,
}

impl Drop for WebDriver {
    fn drop(&mut self) {
        if let Some(group) = self.group {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{group}")])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

impl WebDriver {
    pub async fn start() -> WebDriver {
        let path = tool("CHROMEDRIVER", "/usr/bin/chromedriver");
        let mut child = tokio::process::Command::new(&path)
            .args(["--port=0", "--allowed-ips=127.0.0.1"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {path}: {e}"));
        let group = child.id();
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        // "ChromeDriver was started successfully on port 40123." once it listens.
        let port = tokio::time::timeout(WAIT, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some((_, rest)) = line.split_once("started successfully on port ") {
                    return rest.trim_end_matches('.').trim().parse::<u16>().ok();
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .expect("chromedriver prints the port it listens on");
        // Keep reading so that chromedriver never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        WebDriver {
            url: format!("http://127.0.0.1:{port}"),
            group,
            _child: child,
        }
    }

    /// A new headless Chromium (its own profile) on the page at `url`, named `name` in failures and
    /// screenshots; its fake microphone plays `fake_audio` (a WAV file, looping) when given, else
    /// Chromium's own beeps.
    pub async fn open(&self, url: &str, name: &str, fake_audio: Option<&Path>) -> Page {
        let page = self.launch(name, fake_audio).await;
        page.goto(url).await;
        page
    }

    /// A new headless Chromium as [`WebDriver::open`] starts it, on no page yet (to start it while
    /// the server it will open starts): [`Page::goto`] opens one.
    pub async fn launch(&self, name: &str, fake_audio: Option<&Path>) -> Page {
        let chromium = tool("CHROMIUM", "/usr/bin/chromium");
        let mut args = vec![
            "--headless=new".to_owned(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--window-size=1000,1300".into(),
            "--use-fake-device-for-media-stream".into(),
            "--use-fake-ui-for-media-stream".into(),
            "--allow-loopback-in-peer-connection".into(),
            "--disable-features=WebRtcHideLocalIpsWithMdns".into(),
            "--autoplay-policy=no-user-gesture-required".into(),
            "--disable-background-timer-throttling".into(),
            "--disable-renderer-backgrounding".into(),
            "--no-first-run".into(),
            "--disable-crash-reporter".into(),
            "--no-default-browser-check".into(),
        ];
        if let Some(wav) = fake_audio {
            args.push(format!(
                "--use-file-for-fake-audio-capture={}",
                wav.display()
            ));
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": chromium, "args": args }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("a Chromium session for {name}: {e}"));
        Page {
            client,
            name: name.to_owned(),
        }
    }
}

/// One browser on the softphone page.
pub struct Page {
    pub client: Client,
    pub name: String,
}

impl Page {
    /// Opens the softphone page at `url` and waits for its script.
    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
        self.wait_for("the page's script", |_| true).await;
    }

    pub async fn state(&self) -> Option<Value> {
        self.client
            .execute(
                "return window.softphone ? window.softphone.state() : null",
                vec![],
            )
            .await
            .ok()
            .filter(|v| !v.is_null())
    }

    pub async fn stats(&self) -> Vec<Value> {
        match self
            .client
            .execute("return window.softphone.stats()", vec![])
            .await
        {
            Ok(Value::Array(calls)) => calls,
            other => panic!("{}: stats() gave {other:?}", self.name),
        }
    }

    /// Polls the page's state until `ready` holds of it; fails with a screenshot after [`WAIT`].
    pub async fn wait_for(&self, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let state = self.state().await;
            if let Some(state) = state.as_ref().filter(|s| ready(s)) {
                return state.clone();
            }
            if Instant::now() > deadline {
                self.screenshot(&format!("FAILED-{}", slug(what))).await;
                panic!(
                    "{}: waited {WAIT:?} for {what}; state: {state:#?}; the page's frames, newest \
                     first:\n{}",
                    self.name,
                    self.frames().await
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits for a call in `state` (with `peer` when given) and returns its id.
    pub async fn wait_call(&self, state: &str, peer: Option<&str>) -> String {
        let found = self
            .wait_for(&format!("a call {state} with {peer:?}"), |s| {
                call_where(s, state, peer).is_some()
            })
            .await;
        call_where(&found, state, peer).unwrap()
    }

    pub async fn wait_call_state(&self, id: &str, what: &str, ready: impl Fn(&Value) -> bool) {
        self.wait_for(&format!("call {id}: {what}"), |s| {
            calls(s).iter().any(|c| c["callId"] == id && ready(c))
        })
        .await;
    }

    /// Call `id`'s inbound RTP packets and audio energy (`getStats`).
    pub async fn rtp(&self, id: &str) -> (f64, f64) {
        let stats = self.stats().await;
        let call = stats
            .iter()
            .find(|c| c["callId"] == id)
            .unwrap_or_else(|| panic!("{}: no call {id} in {stats:?}", self.name));
        (
            call["packetsReceived"].as_f64().unwrap_or(0.0),
            call["totalAudioEnergy"].as_f64().unwrap_or(0.0),
        )
    }

    /// Waits until call `id` receives audio: RTP packets and audio energy both rising.
    pub async fn wait_audio(&self, id: &str) {
        let (packets, energy) = self.rtp(id).await;
        let deadline = Instant::now() + WAIT;
        loop {
            let (p, e) = self.rtp(id).await;
            if p >= packets + 50.0 && e > energy + AUDIBLE {
                return;
            }
            if Instant::now() > deadline {
                self.screenshot("FAILED-no-audio").await;
                panic!(
                    "{}: call {id} receives no audio: packets {packets} -> {p}, energy {energy} -> \
                     {e}; the page's frames, newest first:\n{}",
                    self.name,
                    self.frames().await
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until call `id` receives nothing: its packet counter still over a whole second.
    pub async fn wait_silence(&self, id: &str) {
        let deadline = Instant::now() + WAIT;
        let mut last = (self.rtp(id).await.0, Instant::now());
        loop {
            tokio::time::sleep(POLL).await;
            let packets = self.rtp(id).await.0;
            if packets != last.0 {
                last = (packets, Instant::now());
            } else if last.1.elapsed() >= Duration::from_secs(1) {
                return;
            }
            if Instant::now() > deadline {
                self.screenshot("FAILED-still-receiving").await;
                panic!(
                    "{}: call {id} still receives RTP ({packets} packets)",
                    self.name
                );
            }
        }
    }

    /// Waits until call `id` receives no audible energy for 2.5 s (packets may still come: silence).
    pub async fn wait_quiet(&self, id: &str) {
        let deadline = Instant::now() + WAIT;
        let mut last = (self.rtp(id).await.1, Instant::now());
        loop {
            tokio::time::sleep(POLL).await;
            let energy = self.rtp(id).await.1;
            if energy > last.0 + AUDIBLE {
                last = (energy, Instant::now());
            } else if last.1.elapsed() >= Duration::from_millis(2500) {
                return;
            }
            if Instant::now() > deadline {
                self.screenshot("FAILED-not-quiet").await;
                panic!(
                    "{}: call {id} still receives audio energy ({energy})",
                    self.name
                );
            }
        }
    }

    /// The loudest frequency (Hz) of call `id`'s remote stream and its level (dBFS), from a
    /// WebAudio analyser attached to the page's remote audio for half a second.
    pub async fn loudest(&self, id: &str) -> Option<(f64, f64)> {
        const SCRIPT: &str = r#"
            const [id, done] = [arguments[0], arguments[arguments.length - 1]];
            const audio = document.querySelector(`li.call[data-call-id="${id}"] .remote-audio`);
            if (!audio || !audio.srcObject) { done(null); return; }
            const context = new AudioContext();
            const analyser = context.createAnalyser();
            analyser.fftSize = 8192;
            analyser.smoothingTimeConstant = 0;
            context.createMediaStreamSource(audio.srcObject).connect(analyser);
            setTimeout(() => {
              const bins = new Float32Array(analyser.frequencyBinCount);
              analyser.getFloatFrequencyData(bins);
              let peak = 1;
              for (let i = 1; i < bins.length; i++) if (bins[i] > bins[peak]) peak = i;
              const hz = peak * context.sampleRate / analyser.fftSize;
              context.close();
              done([hz, bins[peak]]);
            }, 500);
        "#;
        let found = self
            .client
            .execute_async(SCRIPT, vec![json!(id)])
            .await
            .ok()?;
        Some((found[0].as_f64()?, found[1].as_f64()?))
    }

    /// Waits until the loudest frequency call `id` receives is `hz` (within 15 Hz, above -60 dBFS).
    pub async fn wait_tone(&self, id: &str, hz: f64) {
        let deadline = Instant::now() + WAIT;
        loop {
            let loudest = self.loudest(id).await;
            if loudest.is_some_and(|(at, db)| (at - hz).abs() < 15.0 && db > -60.0) {
                return;
            }
            if Instant::now() > deadline {
                self.screenshot("FAILED-no-tone").await;
                panic!(
                    "{}: call {id} does not hear {hz} Hz; loudest (Hz, dBFS): {loudest:?}",
                    self.name
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The frames the page logged (its message log), newest first: what a failure shows.
    pub async fn frames(&self) -> String {
        let script = "return [...document.querySelectorAll('#log li')]\
                      .map((li) => li.textContent).join('\\n')";
        match self.client.execute(script, vec![]).await {
            Ok(Value::String(frames)) => frames,
            other => format!("{other:?}"),
        }
    }

    /// Waits until the text of `css` contains `wanted`.
    pub async fn wait_text(&self, css: &str, wanted: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let text = match self.client.find(Locator::Css(css)).await {
                Ok(element) => element.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if text.contains(wanted) {
                return;
            }
            if Instant::now() > deadline {
                self.screenshot(&format!("FAILED-text-{}", slug(wanted)))
                    .await;
                panic!("{}: {css} says {text:?}, waited for {wanted:?}", self.name);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Clicks the element `css` once it is shown and enabled.
    pub async fn click(&self, css: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(element) = self.client.find(Locator::Css(css)).await {
                if element.is_displayed().await.unwrap_or(false)
                    && element.is_enabled().await.unwrap_or(false)
                {
                    element.click().await.unwrap();
                    return;
                }
            }
            if Instant::now() > deadline {
                self.screenshot(&format!("FAILED-click-{}", slug(css)))
                    .await;
                panic!("{}: no clickable {css}", self.name);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let element = self.client.find(Locator::Css(css)).await.unwrap();
        element.clear().await.unwrap();
        element.send_keys(text).await.unwrap();
    }

    /// Clicks `action`'s button on the card of call `id`.
    pub async fn call_button(&self, id: &str, action: &str) {
        self.click(&format!(
            r#"li.call[data-call-id="{id}"] button[data-action="{action}"]"#
        ))
        .await;
    }

    /// Clicks Register (with whatever token the page holds) and waits until registered.
    pub async fn register(&self) {
        self.click("#register").await;
        self.wait_for("registered", |s| s["registered"] == true)
            .await;
    }

    /// A screenshot, `<name>-<step>.png` in [`artifacts`].
    pub async fn screenshot(&self, step: &str) {
        if let Ok(png) = self.client.screenshot().await {
            let path = artifacts().join(format!("{}-{}.png", self.name, step));
            let _ = std::fs::write(path, png);
        }
    }

    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}

pub fn slug(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(60)
        .collect()
}

/// The calls of a page's state.
pub fn calls(state: &Value) -> Vec<Value> {
    state["calls"].as_array().cloned().unwrap_or_default()
}

/// The id of a call in `wanted` state (with `peer` when given).
pub fn call_where(state: &Value, wanted: &str, peer: Option<&str>) -> Option<String> {
    calls(state)
        .into_iter()
        .find(|c| c["state"] == wanted && peer.is_none_or(|p| c["peer"] == p))
        .and_then(|c| c["callId"].as_str().map(str::to_owned))
}
