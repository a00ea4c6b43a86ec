//! Health over plain HTTP, for load balancers, Kubernetes probes and systemd watchers that do not
//! speak gRPC: served on the main port and on the metrics port (`--metrics-listen`).
//!
//! - `GET /healthz` (liveness): `200 {"status":"serving"}` while the process serves, draining
//!   included — restarting a draining core would only cut its calls short.
//! - `GET /readyz` (readiness for new terminals): `200 {"status":"ready"}`, or
//!   `503 {"status":"not ready","reasons":[...]}` naming each [`NotReady`] reason, e.g. during the
//!   SIGTERM drain (PROTOCOL.md 4.9), so that a load balancer sends new terminals elsewhere.
//!
//! Both are `application/json`, `Cache-Control: no-store`, and answer `HEAD` too. The gRPC health
//! service (`grpc.health.v1.Health`) says the same for gRPC-aware balancers.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Why the core is not ready for new terminals (a `reasons` entry of `/readyz`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotReady {
    /// Shutdown has begun (SIGTERM or SIGINT): no new connections are accepted, live calls end.
    Draining,
    /// Something the core's calls depend on is down, under the name its owner reports it by
    /// ([`Health::set_down`]; e.g. `sip_trunk_down` while the SIP trunk does not answer its pings,
    /// PROTOCOL.md section 13).
    Down(&'static str),
}

impl NotReady {
    /// The name `/readyz` reports.
    pub fn as_str(self) -> &'static str {
        match self {
            NotReady::Draining => "draining",
            NotReady::Down(name) => name,
        }
    }
}

/// The process's health, shared by every place that reports it or changes it. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Health {
    draining: Arc<AtomicBool>,
    /// The names of what is down, in the order they went down.
    down: Arc<Mutex<Vec<&'static str>>>,
}

impl Health {
    /// A serving, ready core.
    pub fn new() -> Self {
        Self::default()
    }

    /// Shutdown has begun: `/readyz` answers 503 from now on.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Something named `name` (a `/readyz` reason, `snake_case`) is down (`true`: `/readyz` answers
    /// 503 naming it) or up again (`false`). Idempotent; the lock is held for a vector scan only.
    pub fn set_down(&self, name: &'static str, down: bool) {
        let mut names = self.down.lock().unwrap_or_else(PoisonError::into_inner);
        let at = names.iter().position(|n| *n == name);
        match (down, at) {
            (true, None) => names.push(name),
            (false, Some(at)) => {
                names.remove(at);
            }
            _ => {}
        }
    }

    /// Every reason the core is not ready; empty when it is.
    pub fn not_ready(&self) -> Vec<NotReady> {
        let mut reasons = Vec::new();
        if self.draining.load(Ordering::Relaxed) {
            reasons.push(NotReady::Draining);
        }
        let names = self.down.lock().unwrap_or_else(PoisonError::into_inner);
        reasons.extend(names.iter().map(|name| NotReady::Down(name)));
        reasons
    }
}

/// The routes `GET /healthz` and `GET /readyz` reporting `health`.
pub fn router(health: Health) -> axum::Router {
    axum::Router::new()
        .route("/healthz", axum::routing::get(|| async { live() }))
        .route(
            "/readyz",
            axum::routing::get(move || {
                let health = health.clone();
                async move { ready(&health) }
            }),
        )
}

fn live() -> Response {
    json(StatusCode::OK, serde_json::json!({ "status": "serving" }))
}

fn ready(health: &Health) -> Response {
    let reasons = health.not_ready();
    if reasons.is_empty() {
        return json(StatusCode::OK, serde_json::json!({ "status": "ready" }));
    }
    let reasons: Vec<&str> = reasons.into_iter().map(NotReady::as_str).collect();
    json(
        StatusCode::SERVICE_UNAVAILABLE,
        serde_json::json!({ "status": "not ready", "reasons": reasons }),
    )
}

fn json(status: StatusCode, body: serde_json::Value) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body.to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_string(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    async fn get(health: &Health, path: &str) -> (StatusCode, String) {
        let request = axum::http::Request::get(path)
            .body(axum::body::Body::empty())
            .unwrap();
        let response = tower::ServiceExt::oneshot(router(health.clone()), request)
            .await
            .unwrap();
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/json",
            "{path}"
        );
        let status = response.status();
        (status, body_string(response).await)
    }

    #[tokio::test]
    async fn ready_until_draining_and_live_throughout() {
        let health = Health::new();
        assert_eq!(
            get(&health, "/readyz").await,
            (StatusCode::OK, r#"{"status":"ready"}"#.into())
        );
        assert_eq!(
            get(&health, "/healthz").await,
            (StatusCode::OK, r#"{"status":"serving"}"#.into())
        );
        health.clone().start_draining();
        assert_eq!(
            get(&health, "/readyz").await,
            (
                StatusCode::SERVICE_UNAVAILABLE,
                r#"{"reasons":["draining"],"status":"not ready"}"#.into()
            )
        );
        assert_eq!(get(&health, "/healthz").await.0, StatusCode::OK);
    }

    #[tokio::test]
    async fn a_part_down_is_named_until_it_is_up_again() {
        let health = Health::new();
        health.set_down("sip_trunk_down", true);
        health.set_down("sip_trunk_down", true);
        assert_eq!(
            get(&health, "/readyz").await,
            (
                StatusCode::SERVICE_UNAVAILABLE,
                r#"{"reasons":["sip_trunk_down"],"status":"not ready"}"#.into()
            )
        );
        health.start_draining();
        assert_eq!(
            health.not_ready(),
            vec![NotReady::Draining, NotReady::Down("sip_trunk_down")]
        );
        let fresh = Health::new();
        fresh.set_down("sip_trunk_down", true);
        fresh.set_down("sip_trunk_down", false);
        assert_eq!(
            get(&fresh, "/readyz").await,
            (StatusCode::OK, r#"{"status":"ready"}"#.into())
        );
    }
}
