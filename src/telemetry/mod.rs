//! What the core tells its watchers: Prometheus metrics (PROTOCOL.md section 12) and the plain-HTTP
//! health endpoints `GET /healthz` and `GET /readyz`. Both are leaves: they know the core's
//! types and the metric names, and nothing of the server that reports through them.
//!
//! - [`metrics`]: the handles the driver counts with, and the `/metrics` listener.
//! - [`health`]: liveness and readiness, shared by every part that reports or changes them.

pub mod health;
pub mod metrics;
