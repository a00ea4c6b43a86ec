//! The operator API of the simulated phone network: `webterminal.core.v1.SimulatedPhoneNetwork`
//! (PROTOCOL.md section 7). A test and demo tool, served only while the simulated network is on.
//! Simulated phones carry no media; their SDP is generated.
//!
//! Each rpc parses its msisdn at the edge and hands the request to the simulator task through a
//! [`SimulatorControl`]; errors become gRPC statuses in one place, [`status`].

use crate::core::{CallContext, Msisdn};
use crate::phone::sim::{Behaviour, SimError, SimulatorControl};
use crate::proto::simulator::simulated_phone_network_server::{
    SimulatedPhoneNetwork, SimulatedPhoneNetworkServer,
};
use crate::proto::simulator::{
    Behaviour as WireBehaviour, DialRequest, DialResponse, PhoneRequest, PhoneResponse,
    SetBehaviourRequest, SetBehaviourResponse,
};
use tonic::{Request, Response, Status};

/// The `webterminal.core.v1.SimulatedPhoneNetwork` service over a [`SimulatorControl`].
#[derive(Clone, Debug)]
pub struct SimulatorService {
    control: SimulatorControl,
}

/// The operator API of the simulated phone network, ready to add to a tonic router (PROTOCOL.md
/// section 7).
///
/// Every rpc answers `INVALID_ARGUMENT` when `msisdn` is not E.164 (or `behaviour` is not a known
/// value); `Answer` and `Reject` answer `NOT_FOUND` when nothing rings on the phone, `HangUp` when the
/// phone has no call leg; `Dial` answers `FAILED_PRECONDITION` when the calling phone is busy or
/// unreachable; `UNAVAILABLE` when the simulator has stopped. `PhoneResponse.legs` is the
/// number of call legs touched.
pub fn service(control: SimulatorControl) -> SimulatedPhoneNetworkServer<SimulatorService> {
    SimulatedPhoneNetworkServer::new(SimulatorService { control })
}

/// The gRPC status for a simulator error: `NOT_FOUND` for nothing to act on, `FAILED_PRECONDITION`
/// for a dial from a busy or unreachable phone, `INVALID_ARGUMENT` for a dial to oneself,
/// `UNAVAILABLE` when the simulator has stopped.
pub fn status(error: SimError) -> Status {
    match error {
        SimError::NothingRinging | SimError::NoLegs => Status::not_found(error.to_string()),
        SimError::Busy | SimError::Unreachable => Status::failed_precondition(error.to_string()),
        SimError::DialsItself => Status::invalid_argument(error.to_string()),
        SimError::Stopped => Status::unavailable(error.to_string()),
    }
}

/// Parses the request's `msisdn`, or `INVALID_ARGUMENT` naming the field.
fn msisdn(raw: &str) -> Result<Msisdn, Status> {
    number("msisdn", raw)
}

/// Parses the request's field `field`, or `INVALID_ARGUMENT` naming it.
fn number(field: &str, raw: &str) -> Result<Msisdn, Status> {
    Msisdn::parse(raw).map_err(|e| Status::invalid_argument(format!("{field} {e}")))
}

/// The simulator's behaviour for a wire `Behaviour`, or `INVALID_ARGUMENT` for an unknown value.
fn behaviour(raw: i32) -> Result<Behaviour, Status> {
    match WireBehaviour::try_from(raw) {
        Ok(WireBehaviour::Ring) => Ok(Behaviour::Ring),
        Ok(WireBehaviour::Answer) => Ok(Behaviour::Answer),
        Ok(WireBehaviour::Busy) => Ok(Behaviour::Busy),
        Ok(WireBehaviour::Unreachable) => Ok(Behaviour::Unreachable),
        Ok(WireBehaviour::Decline) => Ok(Behaviour::Decline),
        Err(_) => Err(Status::invalid_argument(format!(
            "behaviour {raw} is not a known Behaviour"
        ))),
    }
}

fn legs(result: Result<u32, SimError>) -> Result<Response<PhoneResponse>, Status> {
    result
        .map(|legs| Response::new(PhoneResponse { legs }))
        .map_err(status)
}

#[tonic::async_trait]
impl SimulatedPhoneNetwork for SimulatorService {
    async fn set_behaviour(
        &self,
        request: Request<SetBehaviourRequest>,
    ) -> Result<Response<SetBehaviourResponse>, Status> {
        let request = request.into_inner();
        let msisdn = msisdn(&request.msisdn)?;
        let behaviour = behaviour(request.behaviour)?;
        self.control
            .set_behaviour(msisdn, behaviour)
            .await
            .map_err(status)?;
        Ok(Response::new(SetBehaviourResponse {}))
    }

    async fn answer(
        &self,
        request: Request<PhoneRequest>,
    ) -> Result<Response<PhoneResponse>, Status> {
        let msisdn = msisdn(&request.into_inner().msisdn)?;
        legs(self.control.answer(msisdn).await)
    }

    async fn reject(
        &self,
        request: Request<PhoneRequest>,
    ) -> Result<Response<PhoneResponse>, Status> {
        let msisdn = msisdn(&request.into_inner().msisdn)?;
        legs(self.control.reject(msisdn).await)
    }

    async fn hang_up(
        &self,
        request: Request<PhoneRequest>,
    ) -> Result<Response<PhoneResponse>, Status> {
        let msisdn = msisdn(&request.into_inner().msisdn)?;
        legs(self.control.hang_up(msisdn).await)
    }

    async fn dial(&self, request: Request<DialRequest>) -> Result<Response<DialResponse>, Status> {
        let request = request.into_inner();
        let from = number("from", &request.from)?;
        let to = number("to", &request.to)?;
        let context = CallContext::parse(request.data)
            .map_err(|e| Status::invalid_argument(format!("data {e}")))?;
        self.control.dial(from, to, context).await.map_err(status)?;
        Ok(Response::new(DialResponse {}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{PhoneCommand, PhoneEvent, PhoneLegId, Sdp};
    use crate::phone::{sim, PhoneNetwork, PhoneReports};
    use tonic::Code;

    fn phone(msisdn: &str) -> Request<PhoneRequest> {
        Request::new(PhoneRequest {
            msisdn: msisdn.into(),
        })
    }

    #[tokio::test]
    async fn simulator_service_maps_requests_and_errors() {
        let (reports, mut events) = PhoneReports::channel();
        let (mut network, control) = sim::SimulatedPhoneNetwork::start(reports);
        let service = SimulatorService { control };

        let bad = service.answer(phone("4799990002")).await.unwrap_err();
        assert_eq!(bad.code(), Code::InvalidArgument);
        assert!(bad.message().contains("msisdn"));
        let bad = service
            .set_behaviour(Request::new(SetBehaviourRequest {
                msisdn: "+4799990002".into(),
                behaviour: 42,
            }))
            .await
            .unwrap_err();
        assert_eq!(bad.code(), Code::InvalidArgument);

        let none = service.answer(phone("+4799990002")).await.unwrap_err();
        assert_eq!(none.code(), Code::NotFound);
        let none = service.hang_up(phone("+4799990002")).await.unwrap_err();
        assert_eq!(none.code(), Code::NotFound);

        let from = Msisdn::parse("+4799990001").unwrap();
        network.send(PhoneCommand::Ring {
            leg: PhoneLegId(1),
            to: Msisdn::parse("+4799990002").unwrap(),
            from: from.clone(),
            sdp: sim::generated_sdp(&from, 1),
            context: Default::default(),
        });
        assert_eq!(
            events.recv().await,
            Some(PhoneEvent::Ringing { leg: PhoneLegId(1) })
        );
        let answered = service.answer(phone("+4799990002")).await.unwrap();
        assert_eq!(answered.into_inner().legs, 1);
        match events.recv().await {
            Some(PhoneEvent::Answered { leg, sdp }) => {
                assert_eq!(leg, PhoneLegId(1));
                Sdp::parse(sdp.as_str(), 65536).unwrap();
            }
            other => panic!("expected Answered, got {other:?}"),
        }
        let hung_up = service.hang_up(phone("+4799990002")).await.unwrap();
        assert_eq!(hung_up.into_inner().legs, 1);

        service
            .set_behaviour(Request::new(SetBehaviourRequest {
                msisdn: "+4799990002".into(),
                behaviour: WireBehaviour::Busy as i32,
            }))
            .await
            .unwrap();
        network.send(PhoneCommand::Ring {
            leg: PhoneLegId(2),
            to: Msisdn::parse("+4799990002").unwrap(),
            from: from.clone(),
            sdp: sim::generated_sdp(&from, 2),
            context: Default::default(),
        });
        assert_eq!(
            events.recv().await,
            Some(PhoneEvent::HungUp { leg: PhoneLegId(1) })
        );
        assert!(matches!(
            events.recv().await,
            Some(PhoneEvent::Rejected {
                leg: PhoneLegId(2),
                ..
            })
        ));
    }
}
