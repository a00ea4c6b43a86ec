//! `webterminal.core.v1.Operator` as a tonic service: each rpc checks the operator's token, asks
//! the driver, and sends the answer through [`super::mapping`].

use super::mapping::{
    call_to_proto, device_kind, event_to_proto, record_to_proto, terminal_id, timestamp,
};
use crate::auth::Verifier;
use crate::core::{CallEvent, CallRef, Msisdn};
use crate::driver::event_hub::Watch;
use crate::driver::queries::OperatorQuery;
use crate::driver::DriverHandle;
use crate::phone::sim::{Behaviour, SimulatorControl};
use crate::proto::operator::operator_server::{Operator, OperatorServer};
use crate::proto::operator::{self as pb};
use crate::records::{self, PageToken, RecordQuery, RecordStore};
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

/// The operator service (PROTOCOL.md section 8) over the driver.
#[derive(Debug, Clone)]
pub struct OperatorService {
    driver: DriverHandle,
    verifier: Arc<Verifier>,
    /// The simulated phone network, whose phones' state presence reports (none with an embedder's
    /// network, or none at all: the state is then unspecified).
    simulator: Option<SimulatorControl>,
    /// The call records store, read on blocking tasks; or why there is none (`UNAVAILABLE`).
    records: Result<Arc<dyn RecordStore>, String>,
}

/// The operator API, ready to add to a tonic router. `records` is the call records store
/// `ListCallRecords` reads, or the message it answers `UNAVAILABLE` with when there is none.
pub fn service(
    driver: DriverHandle,
    verifier: Arc<Verifier>,
    simulator: Option<SimulatorControl>,
    records: Result<Arc<dyn RecordStore>, String>,
) -> OperatorServer<OperatorService> {
    OperatorServer::new(OperatorService {
        driver,
        verifier,
        simulator,
        records,
    })
}

impl OperatorService {
    fn authorize<T>(&self, request: &Request<T>) -> Result<(), Status> {
        self.verifier
            .authorize_operator(request.metadata())
            .map_err(|e| e.status())
    }

    async fn ask<T>(
        &self,
        query: OperatorQuery,
        answer: oneshot::Receiver<T>,
    ) -> Result<T, Status> {
        self.driver.operator(query).await.map_err(Status::from)?;
        answer
            .await
            .map_err(|_| Status::unavailable("the core is shutting down"))
    }
}

/// An optional number filter: empty is none.
fn msisdn_filter(field: &str, raw: &str) -> Result<Option<Msisdn>, Status> {
    if raw.is_empty() {
        return Ok(None);
    }
    Msisdn::parse_lenient(raw)
        .map(Some)
        .map_err(|e| Status::invalid_argument(format!("{field} {e}")))
}

type EventStream = Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::CallEvent, Status>> + Send>>;

#[tonic::async_trait]
impl Operator for OperatorService {
    type WatchCallsStream = EventStream;

    async fn watch_calls(
        &self,
        request: Request<pb::WatchCallsRequest>,
    ) -> Result<Response<EventStream>, Status> {
        self.authorize(&request)?;
        let request = request.into_inner();
        let msisdn = msisdn_filter("msisdn", &request.msisdn)?;
        let (reply, answer) = oneshot::channel();
        let query = OperatorQuery::Watch {
            after: request.after_sequence,
            reply,
        };
        let Watch { replay, mut live } = self.ask(query, answer).await??;
        let wanted = move |event: &CallEvent| {
            msisdn
                .as_ref()
                .is_none_or(|m| event.caller == *m || event.callee == *m)
        };
        // The stream's own queue is small: the broadcast channel is the watcher's buffer.
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            for event in replay.into_iter().filter(|e| wanted(e)) {
                if tx.send(Ok(event_to_proto(&event))).await.is_err() {
                    return;
                }
            }
            loop {
                let event = match live.recv().await {
                    Ok(event) => event,
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        let _ = tx
                            .send(Err(Status::resource_exhausted(format!(
                                "the watcher fell {missed} events behind and was ended; watch again with after_sequence"
                            ))))
                            .await;
                        return;
                    }
                    // The core shut down: the stream ends.
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                if wanted(&event) && tx.send(Ok(event_to_proto(&event))).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn list_calls(
        &self,
        request: Request<pb::ListCallsRequest>,
    ) -> Result<Response<pb::ListCallsResponse>, Status> {
        self.authorize(&request)?;
        let msisdn = msisdn_filter("msisdn", &request.into_inner().msisdn)?;
        let (reply, answer) = oneshot::channel();
        let (calls, sequence) = self
            .ask(OperatorQuery::ListCalls { msisdn, reply }, answer)
            .await?;
        Ok(Response::new(pb::ListCallsResponse {
            calls: calls.iter().map(call_to_proto).collect(),
            sequence,
        }))
    }

    async fn get_presence(
        &self,
        request: Request<pb::GetPresenceRequest>,
    ) -> Result<Response<pb::Presence>, Status> {
        self.authorize(&request)?;
        let raw = request.into_inner().msisdn;
        let msisdn = msisdn_filter("msisdn", &raw)?
            .ok_or_else(|| Status::invalid_argument("msisdn is required"))?;
        let (reply, answer) = oneshot::channel();
        let query = OperatorQuery::Presence {
            msisdn: msisdn.clone(),
            reply,
        };
        let presence = self.ask(query, answer).await?;
        let phone = match &self.simulator {
            Some(sim) => match sim.behaviour(msisdn.clone()).await {
                Ok(Behaviour::Busy) => pb::presence::PhoneState::Busy,
                Ok(Behaviour::Unreachable) => pb::presence::PhoneState::Unreachable,
                Ok(_) => pb::presence::PhoneState::Reachable,
                Err(_) => pb::presence::PhoneState::Unspecified,
            },
            None => pb::presence::PhoneState::Unspecified,
        };
        Ok(Response::new(pb::Presence {
            msisdn: msisdn.to_string(),
            online: !presence.terminals.is_empty(),
            terminals: presence
                .terminals
                .iter()
                .map(|t| pb::presence::Terminal {
                    terminal_id: terminal_id(t.terminal),
                    kind: device_kind(t.kind.into()) as i32,
                    since: Some(timestamp(t.since)),
                    half_closed: t.half_closed,
                    calls: u32::try_from(t.calls).unwrap_or(u32::MAX),
                })
                .collect(),
            in_call: presence.in_call,
            phone: phone as i32,
        }))
    }

    async fn end_call(
        &self,
        request: Request<pb::EndCallRequest>,
    ) -> Result<Response<pb::EndCallResponse>, Status> {
        self.authorize(&request)?;
        let raw = request.into_inner().call_ref;
        let call_ref = uuid::Uuid::parse_str(&raw)
            .map(CallRef)
            .map_err(|_| Status::invalid_argument("call_ref must be a UUID"))?;
        let (reply, answer) = oneshot::channel();
        if self
            .ask(OperatorQuery::EndCall { call_ref, reply }, answer)
            .await?
        {
            Ok(Response::new(pb::EndCallResponse {}))
        } else {
            Err(Status::not_found(format!(
                "no live call has call_ref {raw}"
            )))
        }
    }

    async fn list_call_records(
        &self,
        request: Request<pb::ListCallRecordsRequest>,
    ) -> Result<Response<pb::ListCallRecordsResponse>, Status> {
        self.authorize(&request)?;
        let store = self.records.clone().map_err(Status::unavailable)?;
        let query = records_query(request.into_inner())?;
        // The store may block on the disk: never on the driver task, nor on the runtime's threads.
        let page = tokio::task::spawn_blocking(move || store.list(&query))
            .await
            .map_err(|_| Status::internal("reading the call records failed"))?
            .map_err(|e| {
                tracing::error!(%e, "call records: cannot read");
                Status::unavailable("cannot read the call records (the core's log says why)")
            })?;
        Ok(Response::new(pb::ListCallRecordsResponse {
            records: page.records.iter().map(record_to_proto).collect(),
            next_page_token: page.next.map(|t| t.to_string()).unwrap_or_default(),
        }))
    }
}

/// The query a `ListCallRecordsRequest` asks for (PROTOCOL.md section 9).
///
/// # Errors
/// `INVALID_ARGUMENT` for a bad msisdn, timestamp or page_token, or `until` not after `since`.
fn records_query(request: pb::ListCallRecordsRequest) -> Result<RecordQuery, Status> {
    let time = |field: &str, ts: Option<prost_types::Timestamp>| {
        ts.map(|ts| {
            std::time::SystemTime::try_from(ts)
                .map_err(|_| Status::invalid_argument(format!("{field} is not a valid timestamp")))
        })
        .transpose()
    };
    let since = time("since", request.since)?;
    let until = time("until", request.until)?;
    if let (Some(since), Some(until)) = (since, until) {
        if until <= since {
            return Err(Status::invalid_argument("until must be after since"));
        }
    }
    let after = if request.page_token.is_empty() {
        None
    } else {
        Some(
            request
                .page_token
                .parse::<PageToken>()
                .map_err(|e| Status::invalid_argument(e.to_string()))?,
        )
    };
    Ok(RecordQuery {
        msisdn: msisdn_filter("msisdn", &request.msisdn)?,
        since,
        until,
        page_size: match request.page_size {
            0 => records::DEFAULT_PAGE_SIZE,
            n => usize::try_from(n)
                .unwrap_or(usize::MAX)
                .min(records::MAX_PAGE_SIZE),
        },
        after,
    })
}
