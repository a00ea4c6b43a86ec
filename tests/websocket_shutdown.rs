//! Shutdown reaches browsers too (PROTOCOL.md 4.9 and section 11), against the real binary: a call
//! from a WebSocket MultiPipe answered on a WebSocket Pipe, and another still ringing, then
//! SIGTERM. Every WebSocket leg gets `{"result": {"bye": {"reason": "SERVER_SHUTDOWN"}}}` with its
//! call id, then a close frame with code 1000, before the process exits 0. (A WebSocket is an
//! HTTP/1.1 connection the HTTP server let go of when it upgraded, so its graceful shutdown alone
//! would not wait for it.)

#[path = "support/binary.rs"]
mod binary;

use binary::{fixture, WAIT};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message as Frame;

const SECRET: &str = "websocket-shutdown-test-secret";

type Socket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Opens `ws://127.0.0.1:<port>/<path>` as `msisdn` (token in the `Bearer` subprotocol), waiting
/// for the server to listen.
async fn connect(port: u16, path: &str, msisdn: &str) -> Socket {
    let deadline = tokio::time::Instant::now() + WAIT;
    let tcp = loop {
        match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            Ok(tcp) => break tcp,
            Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("the server never listened: {e}"),
        }
    };
    let token = binary::terminal::token(SECRET, msisdn);
    let mut request = format!("ws://127.0.0.1:{port}/{path}")
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        format!("Bearer, {token}").parse().unwrap(),
    );
    tokio_tungstenite::client_async(request, tcp)
        .await
        .unwrap_or_else(|e| panic!("upgrading /{path}: {e}"))
        .0
}

/// The next `{"result": ...}` frame's message (pings skipped).
async fn next_result(socket: &mut Socket) -> Value {
    loop {
        let frame = tokio::time::timeout(WAIT, socket.next())
            .await
            .unwrap_or_else(|_| panic!("no frame in time"))
            .expect("the socket is open")
            .expect("a frame");
        match frame {
            Frame::Text(text) => {
                let frame: Value = serde_json::from_str(&text).expect("a JSON frame");
                return frame
                    .get("result")
                    .unwrap_or_else(|| panic!("expected a result frame, got {frame}"))
                    .clone();
            }
            Frame::Ping(_) | Frame::Pong(_) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

async fn send(socket: &mut Socket, message: Value) {
    socket.send(Frame::text(message.to_string())).await.unwrap();
}

/// After SIGTERM: every result frame until the close frame, and the close code.
async fn drain_to_close(mut socket: Socket) -> (Vec<Value>, u16) {
    let mut results = Vec::new();
    loop {
        let frame = tokio::time::timeout(WAIT, socket.next())
            .await
            .unwrap_or_else(|_| panic!("no close in time; got {results:?}"));
        match frame {
            Some(Ok(Frame::Text(text))) => {
                let frame: Value = serde_json::from_str(&text).expect("a JSON frame");
                results.push(frame["result"].clone());
            }
            Some(Ok(Frame::Ping(_) | Frame::Pong(_))) => {}
            Some(Ok(Frame::Close(close))) => {
                let code = close.map_or(1005, |c| u16::from(c.code));
                return (results, code);
            }
            other => panic!("expected frames then a close, got {other:?} after {results:?}"),
        }
    }
}

fn bye_of(results: &[Value]) -> Vec<(String, String)> {
    results
        .iter()
        .filter_map(|m| {
            let bye = m.get("bye")?;
            Some((
                m["callId"].as_str().unwrap_or_default().to_owned(),
                bye["reason"].as_str().unwrap_or_default().to_owned(),
            ))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_byes_every_websocket_leg_and_closes_it_before_the_process_exits() {
    let mut server = binary::serve()
        .args(["--jwt-secret", SECRET, "--phone-network", "none"])
        .args(["--records", "none"])
        .env("RUST_LOG", "error")
        .start();
    let port = server.port;
    let offer = fixture("chromium-offer.sdp");
    let answer = fixture("aiortc-answer.sdp");

    // An established call: a WebSocket MultiPipe calls a WebSocket Pipe, which answers. (The
    // callees are Pipes: their greeting shows they are registered before they are called.)
    let mut caller = connect(port, "multipipe", "+4791000001").await;
    let mut callee = connect(port, "pipe", "+4791000002").await;
    assert!(next_result(&mut callee).await.get("idle").is_some());
    let caller_id = uuid::Uuid::new_v4().to_string();
    send(
        &mut caller,
        json!({"callId": caller_id, "offer": {"sdp": offer, "msisdn": {"e164": "+4791000002"}}}),
    )
    .await;
    let offered = next_result(&mut callee).await;
    assert!(offered.get("offer").is_some(), "{offered}");
    // The id the core gave the Pipe's call (it ignores the ids a Pipe sends).
    let callee_id = offered["callId"].as_str().unwrap().to_owned();
    send(&mut callee, json!({"answer": {"sdp": answer}})).await;
    let answered = next_result(&mut caller).await;
    assert!(answered.get("answer").is_some(), "{answered}");

    // A call still ringing.
    let mut ringer = connect(port, "multipipe", "+4791000003").await;
    let mut rung = connect(port, "pipe", "+4791000004").await;
    assert!(next_result(&mut rung).await.get("idle").is_some());
    let ringer_id = uuid::Uuid::new_v4().to_string();
    send(
        &mut ringer,
        json!({"callId": ringer_id, "offer": {"sdp": offer, "msisdn": {"e164": "+4791000004"}}}),
    )
    .await;
    let ringing = next_result(&mut rung).await;
    assert!(ringing.get("offer").is_some(), "{ringing}");
    let rung_id = ringing["callId"].as_str().unwrap().to_owned();

    server.signal("TERM");

    for (name, socket, call_id) in [
        ("the caller", caller, caller_id),
        ("the callee", callee, callee_id),
        ("the ringing caller", ringer, ringer_id),
        ("the ringing callee", rung, rung_id),
    ] {
        let (results, code) = drain_to_close(socket).await;
        assert_eq!(
            bye_of(&results),
            vec![(call_id, "SERVER_SHUTDOWN".to_owned())],
            "{name}: exactly one Bye{{SERVER_SHUTDOWN}} on its call; got {results:?}"
        );
        assert_eq!(code, 1000, "{name}: the close code");
    }

    let status = server.wait_exit(WAIT).await;
    assert!(status.success(), "the server exited with {status}");
}
