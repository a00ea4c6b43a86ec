//! A terminal as the tests talk to a core over gRPC: HS256 bearer tokens in the `authorization`
//! metadata, a Pipe or MultiPipe (its request sender and its response stream), and the fixtures'
//! SDP.
//!
//! Include it with `#[path = "support/terminal.rs"] mod terminal;` (the real binary's tests have it
//! through `binary`).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;
use webterminal_core::auth::{mint_token, REQUIRED_SCOPE};
use webterminal_core::core::Msisdn;
use webterminal_core::proto::common::PhoneNumber;
use webterminal_core::proto::webterminal::web_terminal_message::Message;
use webterminal_core::proto::webterminal::web_terminal_service_client::WebTerminalServiceClient;
use webterminal_core::proto::webterminal::{Offer, WebTerminalMessage};

/// How long a terminal waits for a message before the test fails.
pub const RECV_WAIT: Duration = Duration::from_secs(10);

/// A terminal's token for `msisdn`, signed with `secret` (HS256, the terminal scope, 10 minutes).
pub fn token(secret: impl AsRef<[u8]>, msisdn: &str) -> String {
    mint_token(
        secret.as_ref(),
        &Msisdn::parse(msisdn).unwrap(),
        REQUIRED_SCOPE,
        Duration::from_secs(600),
    )
}

/// `Bearer <token>`: the `authorization` value.
pub fn bearer_text(token: &str) -> String {
    format!("Bearer {token}")
}

/// `Bearer <token>` as a metadata value.
pub fn bearer(token: &str) -> MetadataValue<Ascii> {
    bearer_text(token).parse().unwrap()
}

/// Puts `authorization: Bearer <token of msisdn>` on `request`.
pub fn authorize<T>(request: &mut tonic::Request<T>, secret: impl AsRef<[u8]>, msisdn: &str) {
    request
        .metadata_mut()
        .insert("authorization", bearer(&token(secret, msisdn)));
}

/// The SDP fixture `name` (`tests/fixtures/sdp/`).
pub fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/sdp/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// An Offer of `sdp` to `to`, no call context.
pub fn offer(sdp: &str, to: &str) -> Message {
    Message::Offer(Offer {
        sdp: sdp.to_owned(),
        msisdn: Some(PhoneNumber { e164: to.into() }),
        data: Default::default(),
    })
}

/// A message on call `call_id`.
pub fn message(call_id: &str, body: Message) -> WebTerminalMessage {
    WebTerminalMessage {
        message: Some(body),
        call_id: call_id.into(),
    }
}

/// A plaintext connection to `addr`.
pub async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Pipe,
    Multi,
}

/// An open Pipe or MultiPipe: what the test sends, and what the core answers.
pub struct Terminal {
    pub tx: mpsc::Sender<WebTerminalMessage>,
    pub rx: tonic::Streaming<WebTerminalMessage>,
}

impl Terminal {
    /// Opens a `kind` rpc on `channel` as `msisdn`, its token signed with `secret`, 16 requests
    /// queued at most.
    pub async fn open(
        channel: Channel,
        kind: Kind,
        secret: impl AsRef<[u8]>,
        msisdn: &str,
    ) -> Result<Terminal, tonic::Status> {
        Self::open_queued(channel, kind, secret, msisdn, 16).await
    }

    /// As [`Terminal::open`], with `queue` requests queued at most.
    pub async fn open_queued(
        channel: Channel,
        kind: Kind,
        secret: impl AsRef<[u8]>,
        msisdn: &str,
        queue: usize,
    ) -> Result<Terminal, tonic::Status> {
        let (tx, requests) = mpsc::channel(queue);
        let mut request = tonic::Request::new(ReceiverStream::new(requests));
        authorize(&mut request, secret, msisdn);
        let mut client = WebTerminalServiceClient::new(channel);
        let response = match kind {
            Kind::Pipe => client.pipe(request).await?,
            Kind::Multi => client.multi_pipe(request).await?,
        };
        Ok(Terminal {
            tx,
            rx: response.into_inner(),
        })
    }

    /// Sends `body` on call `call_id`.
    pub async fn send(&self, call_id: &str, body: Message) {
        self.tx.send(message(call_id, body)).await.unwrap();
    }

    /// The next message; fails the test after [`RECV_WAIT`] or when the stream ends.
    pub async fn recv(&mut self) -> WebTerminalMessage {
        tokio::time::timeout(RECV_WAIT, self.rx.message())
            .await
            .expect("a message in time")
            .expect("the stream carries messages")
            .expect("the stream is open")
    }

    /// The body of the next message.
    pub async fn next(&mut self) -> Message {
        self.recv().await.message.expect("oneof set")
    }
}
