//! PROTOCOL.md 4.9: shutdown.

use crate::for_all_transports;
use crate::support::*;
use webterminal_core::server::PhoneNetworkKind;

for_all_transports!(shutdown_byes_every_live_leg_and_ringing_fork_and_ends_every_stream_ok);

async fn shutdown_byes_every_live_leg_and_ringing_fork_and_ends_every_stream_ok(kind: Kind) {
    let mut core = TestCore::new(PhoneNetworkKind::None).await;
    // An established call A–B.
    let mut a = core.open_idle(kind, A).await;
    let mut b = core.open_idle(kind, B).await;
    let (a_id, b_id) = establish(&mut a, &mut b).await;
    // A ringing call C → D.
    let mut c = core.open_idle(kind, C).await;
    let mut d = core.open_idle(kind, D).await;
    let sent = c.dial(D, &aiortc_offer()).await;
    let d_id = d.expect_offer().await.call_id;
    d.send(msg::ringing(&d_id)).await;
    let c_id = c.expect_ringing().await;
    c.assert_own_call_id(&sent, &c_id);
    // An idle terminal and a half-closed one: no Bye, but their streams end too.
    let mut idle = core.open_idle(kind, NOBODY).await;
    let mut half_closed = core.open_idle(kind, PROBER).await;
    half_closed.half_close();
    assert_eq!(core.stats().await.calls, 2);

    core.shutdown()
        .await
        .expect("serve returns Ok after a graceful shutdown");

    a.expect_bye_on(&a_id, Reason::ServerShutdown).await;
    b.expect_bye_on(&b_id, Reason::ServerShutdown).await;
    c.expect_bye_on(&c_id, Reason::ServerShutdown).await;
    d.expect_bye_on(&d_id, Reason::ServerShutdown).await;
    for t in [&mut a, &mut b, &mut c, &mut d, &mut idle, &mut half_closed] {
        t.expect_end_ok().await;
    }
    // The listener is closed and the switch stopped.
    assert!(
        tonic::transport::Channel::from_shared(format!("http://{}", core.addr))
            .unwrap()
            .connect()
            .await
            .is_err(),
        "no new connection after shutdown"
    );
    assert!(core.driver.stats().await.is_err(), "the driver has stopped");
}

#[tokio::test]
async fn shutdown_byes_a_ringing_phone_call_and_a_caller_alike() {
    let mut core = TestCore::new(PhoneNetworkKind::Sim).await;
    let mut a = core.open_idle(Kind::Multi, A).await;
    let a_id = a.dial(B, &chromium_offer()).await;
    assert_eq!(a.expect_ringing().await, a_id);
    let mut p = core.open_idle(Kind::Pipe, C).await;
    let p_sent = p.dial(D, &chromium_offer()).await;
    let p_id = p.expect_ringing().await;
    p.assert_own_call_id(&p_sent, &p_id);
    core.phone_answer(D).await;
    p.expect_answer().await;
    core.shutdown().await.expect("serve returns Ok");
    a.expect_bye_on(&a_id, Reason::ServerShutdown).await;
    p.expect_bye_on(&p_id, Reason::ServerShutdown).await;
    a.expect_end_ok().await;
    p.expect_end_ok().await;
}
