//! A core served in the test's own process on a loopback port of its own (port 0): the
//! [`Exchange`] behind a real listener, its driver for the switch's counts, stopped on drop.
//!
//! Include it with `#[path = "support/in_process.rs"] mod in_process;`.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::oneshot;
use tonic::transport::Channel;
use webterminal_core::driver::{DriverHandle, DriverStats};
use webterminal_core::server::{Exchange, PhoneNetworkKind, ServeError, ServerConfig};

/// How long a test waits for the core before it fails.
pub const CORE_WAIT: Duration = Duration::from_secs(10);

/// `ServerConfig::new(secret)` with no phone network.
pub fn no_phones(secret: impl AsRef<[u8]>) -> ServerConfig {
    let mut config = ServerConfig::new(secret.as_ref().to_vec());
    config.phone_network = PhoneNetworkKind::None;
    config
}

pub struct Core {
    pub addr: SocketAddr,
    pub driver: DriverHandle,
    /// How long [`Core::wait_for_terminals`] and [`Core::wait_for`] wait ([`CORE_WAIT`]).
    pub wait: Duration,
    stop: Option<oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<Result<(), ServeError>>>,
}

impl Core {
    /// Serves `config` on 127.0.0.1:0.
    pub async fn start(config: ServerConfig) -> Core {
        Self::serve(Exchange::start(config)).await
    }

    /// Serves `exchange` (started by the test, e.g. with a phone network or a router of its own)
    /// on 127.0.0.1:0.
    pub async fn serve(exchange: Exchange) -> Core {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let driver = exchange.driver().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let served = tokio::spawn(exchange.serve(listener, async {
            let _ = stopped.await;
        }));
        Core {
            addr,
            driver,
            wait: CORE_WAIT,
            stop: Some(stop),
            served: Some(served),
        }
    }

    /// A plaintext connection of its own.
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    pub async fn stats(&self) -> DriverStats {
        self.driver.stats().await.unwrap()
    }

    /// Polls the switch until it holds `terminals` terminals, whatever its calls.
    pub async fn wait_for_terminals(&self, terminals: usize) {
        let deadline = tokio::time::Instant::now() + self.wait;
        loop {
            let have = self.stats().await.terminals;
            if have == terminals {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{have} terminals registered, waited for {terminals}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Polls the switch until it holds `terminals` terminals and `calls` calls.
    pub async fn wait_for(&self, terminals: usize, calls: usize) {
        let deadline = tokio::time::Instant::now() + self.wait;
        loop {
            let stats = self.stats().await;
            if stats.terminals == terminals && stats.calls == calls {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "expected {terminals} terminals and {calls} calls, have {stats:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops serving; fails unless the server shuts down cleanly within [`CORE_WAIT`].
    pub async fn stop(mut self) {
        self.stop_now()
            .await
            .expect("the server served and shut down cleanly");
    }

    /// Stops serving; how the server ended (it must end within [`CORE_WAIT`]).
    pub async fn stop_now(&mut self) -> Result<(), ServeError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.ended().await
    }

    /// How serving ended, unasked (a startup error): it must end within [`CORE_WAIT`].
    pub async fn ended(&mut self) -> Result<(), ServeError> {
        let served = self.served.take().expect("served once");
        tokio::time::timeout(CORE_WAIT, served)
            .await
            .expect("the server shut down in time")
            .unwrap()
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
