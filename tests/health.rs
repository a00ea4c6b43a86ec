//! Health over plain HTTP against the real binary: `GET /healthz` and `GET /readyz` answer 200 on
//! the main port and on the metrics port while the core serves; once SIGTERM starts the drain
//! (PROTOCOL.md 4.9), `/readyz` answers 503 naming `draining` while `/healthz` stays 200, and the
//! process still exits 0.
//!
//! The drain is held open by a browser that never answers the core's WebSocket close frame (the
//! core waits for that answer for a few seconds), so the test can ask the metrics port, which stays
//! up until the process exits, while the drain is under way.

#[path = "support/binary.rs"]
mod binary;

use binary::{http_get, serve_on_free_ports, WAIT};
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const SECRET: &str = "health-test-secret";

async fn get_json(port: u16, path: &str) -> (u16, Value) {
    let (status, body) = http_get(port, path).await;
    let body = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body:?}"));
    (status, body)
}

#[tokio::test]
async fn ready_while_serving_not_ready_while_draining() {
    let mut started = serve_on_free_ports(
        &[
            "--jwt-secret",
            SECRET,
            "--records",
            "none",
            "--phone-network",
            "none",
            "--drain-timeout",
            "30s",
        ],
        true,
    );
    let metrics = started.metrics_port.unwrap();
    for port in [started.port, metrics] {
        assert_eq!(
            get_json(port, "/healthz").await,
            (200, json!({ "status": "serving" })),
            "port {port}"
        );
        assert_eq!(
            get_json(port, "/readyz").await,
            (200, json!({ "status": "ready" })),
            "port {port}"
        );
    }

    // A browser's MultiPipe that will not read its close frame, let alone answer it.
    let token = binary::terminal::token(SECRET, "+4791230001");
    let mut request = format!("ws://127.0.0.1:{}/multipipe", started.port)
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        format!("Bearer, {token}").parse().unwrap(),
    );
    let (_browser, _) = tokio_tungstenite::connect_async(request).await.unwrap();

    started.signal("TERM");
    let deadline = tokio::time::Instant::now() + WAIT;
    let draining = loop {
        let (status, body) = get_json(metrics, "/readyz").await;
        if status == 503 {
            break body;
        }
        assert_eq!(status, 200, "{body}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz never said draining"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(
        draining,
        json!({ "status": "not ready", "reasons": ["draining"] })
    );
    assert_eq!(
        get_json(metrics, "/healthz").await,
        (200, json!({ "status": "serving" })),
        "alive while it drains"
    );

    // The drain may take its whole timeout (30 s).
    let status = started.wait_exit(Duration::from_secs(60)).await;
    assert!(status.success(), "exits 0 after the drain: {status:?}");
}
