//! The gRPC adapter of the terminal session: `wgtwo.webterminal.v0.WebTerminalService`, whose
//! `Pipe` and `MultiPipe` rpcs each open one session ([`WebTerminal::open_session`]) with the
//! token from the rpc's metadata and its request stream as the session's inbound messages.

use super::session::{Inbound, InboundStream, TerminalStream, WebTerminal};
use crate::core::PipeKind;
use crate::proto::webterminal::web_terminal_service_server::WebTerminalService;
use crate::proto::webterminal::WebTerminalMessage;
use tonic::{Request, Response, Status, Streaming};

#[tonic::async_trait]
impl WebTerminalService for WebTerminal {
    type PipeStream = TerminalStream;
    type MultiPipeStream = TerminalStream;

    /// One call at a time (PROTOCOL.md section 3).
    async fn pipe(
        &self,
        request: Request<Streaming<WebTerminalMessage>>,
    ) -> Result<Response<TerminalStream>, Status> {
        open(self, PipeKind::Pipe, request).await
    }

    /// Many calls at once, addressed by UUID call ids (PROTOCOL.md section 3).
    async fn multi_pipe(
        &self,
        request: Request<Streaming<WebTerminalMessage>>,
    ) -> Result<Response<TerminalStream>, Status> {
        open(self, PipeKind::MultiPipe, request).await
    }
}

/// Opens one gRPC terminal of `kind` (PROTOCOL.md section 3).
///
/// # Errors
/// `UNAUTHENTICATED` / `PERMISSION_DENIED` for a bad token, `RESOURCE_EXHAUSTED` past a terminal
/// limit, `UNAVAILABLE` while shutting down (PROTOCOL.md section 6).
async fn open(
    service: &WebTerminal,
    kind: PipeKind,
    request: Request<Streaming<WebTerminalMessage>>,
) -> Result<Response<TerminalStream>, Status> {
    let msisdn = service.verifier().authenticate(request.metadata())?;
    service
        .open_session(kind, msisdn, request.into_inner())
        .await
        .map(Response::new)
}

impl InboundStream for Streaming<WebTerminalMessage> {
    async fn next(&mut self) -> Inbound {
        match self.message().await {
            Ok(Some(message)) => Inbound::Message(message),
            Ok(None) => Inbound::HalfClosed,
            // A message over the size limit is RESOURCE_EXHAUSTED, as gRPC has it (tonic's decoder
            // says OUT_OF_RANGE).
            Err(status) if status.code() == tonic::Code::OutOfRange => {
                Inbound::Failed(Status::resource_exhausted(status.message().to_owned()))
            }
            Err(status) => Inbound::Failed(status),
        }
    }
}
