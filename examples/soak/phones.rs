//! The phone network's side of the soak, through the simulated network's operator API
//! (`webterminal.core.v1.SimulatedPhoneNetwork`, PROTOCOL.md section 7): phones that answer, are
//! busy, unreachable or decline; phones that dial terminals and groups (some with call context);
//! answers, rejections and hang-ups by hand. And an operator who ends a random call now and then
//! (`EndCall`, section 8).

use super::agent::World;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tonic::transport::Channel;
use webterminal_core::core::Msisdn;
use webterminal_core::proto::operator::operator_client::OperatorClient;
use webterminal_core::proto::operator::{EndCallRequest, ListCallsRequest};
use webterminal_core::proto::simulator::simulated_phone_network_client::SimulatedPhoneNetworkClient;
use webterminal_core::proto::simulator::{
    Behaviour, DialRequest, PhoneRequest, SetBehaviourRequest,
};

/// What the phones and the operator did.
#[derive(Default)]
pub struct PhoneTally {
    pub dials: AtomicUsize,
    pub answers: AtomicUsize,
    pub rejects: AtomicUsize,
    pub hang_ups: AtomicUsize,
    pub ended_by_operator: AtomicUsize,
}

/// Gives a fifth of the phones a behaviour other than ringing: answer, busy, unreachable, decline.
pub async fn set_behaviours(channel: Channel, phones: &[Msisdn]) -> Result<(), tonic::Status> {
    let mut client = SimulatedPhoneNetworkClient::new(channel);
    let behaviours = [
        Behaviour::Answer,
        Behaviour::Busy,
        Behaviour::Unreachable,
        Behaviour::Decline,
    ];
    for (i, phone) in phones.iter().enumerate().filter(|(i, _)| i % 5 == 0) {
        let behaviour = behaviours[(i / 5) % behaviours.len()];
        client
            .set_behaviour(SetBehaviourRequest {
                msisdn: phone.as_str().to_owned(),
                behaviour: behaviour as i32,
            })
            .await?;
    }
    Ok(())
}

/// Acts on the phones about every `every` until `deadline`.
pub async fn run(
    world: Arc<World>,
    channel: Channel,
    tally: Arc<PhoneTally>,
    seed: u64,
    every: Duration,
    deadline: Instant,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut below = move |n: usize| (rng.next_u64() % n.max(1) as u64) as usize;
    let mut client = SimulatedPhoneNetworkClient::new(channel);
    while Instant::now() < deadline {
        tokio::time::sleep(every).await;
        let phone = world.phones[below(world.phones.len())].as_str().to_owned();
        // Every refusal (no call ringing there, a number not in a call) is expected here.
        match below(100) {
            0..=39 => {
                let to = if below(100) < 35 {
                    &world.groups[below(world.groups.len())]
                } else {
                    &world.numbers[below(world.numbers.len())]
                };
                let mut data = std::collections::HashMap::new();
                if below(2) == 0 {
                    data.insert("contact_ref".to_owned(), format!("CRM-{}", below(100_000)));
                }
                let dial = DialRequest {
                    from: phone,
                    to: to.as_str().to_owned(),
                    data,
                };
                if client.dial(dial).await.is_ok() {
                    tally.dials.fetch_add(1, Ordering::Relaxed);
                }
            }
            40..=69 => {
                if client.answer(PhoneRequest { msisdn: phone }).await.is_ok() {
                    tally.answers.fetch_add(1, Ordering::Relaxed);
                }
            }
            70..=74 => {
                if client.reject(PhoneRequest { msisdn: phone }).await.is_ok() {
                    tally.rejects.fetch_add(1, Ordering::Relaxed);
                }
            }
            75..=89 => {
                if client.hang_up(PhoneRequest { msisdn: phone }).await.is_ok() {
                    tally.hang_ups.fetch_add(1, Ordering::Relaxed);
                }
            }
            // A terminal's own mobile phone, which has its handed-over calls.
            _ => {
                let own = world.numbers[below(world.numbers.len())]
                    .as_str()
                    .to_owned();
                if client.hang_up(PhoneRequest { msisdn: own }).await.is_ok() {
                    tally.hang_ups.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

/// Hangs up every phone, the terminals' own included: once the terminals are gone, what remains on
/// a phone would otherwise ring or talk on.
pub async fn hang_up_all(world: &World, channel: Channel) {
    let mut client = SimulatedPhoneNetworkClient::new(channel);
    for phone in world
        .phones
        .iter()
        .chain(&world.numbers)
        .chain(&world.groups)
    {
        let _ = client
            .hang_up(PhoneRequest {
                msisdn: phone.as_str().to_owned(),
            })
            .await;
    }
}

/// Ends a random live call with `EndCall` about every `every` until `deadline`.
pub async fn operator(
    channel: Channel,
    token: String,
    tally: Arc<PhoneTally>,
    seed: u64,
    every: Duration,
    deadline: Instant,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut client = OperatorClient::new(channel);
    while Instant::now() < deadline {
        tokio::time::sleep(every).await;
        let Ok(calls) = client
            .list_calls(authorized(&token, ListCallsRequest::default()))
            .await
        else {
            continue;
        };
        let calls = calls.into_inner().calls;
        if calls.is_empty() {
            continue;
        }
        let call = &calls[(rng.next_u64() % calls.len() as u64) as usize];
        let request = EndCallRequest {
            call_ref: call.call_ref.clone(),
        };
        if client.end_call(authorized(&token, request)).await.is_ok() {
            tally.ended_by_operator.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// `message` with `authorization: Bearer token`.
pub fn authorized<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Ok(value) = format!("Bearer {token}").parse() {
        request.metadata_mut().insert("authorization", value);
    }
    request
}
