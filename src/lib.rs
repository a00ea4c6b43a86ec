//! webterminal-core: a voice core for WebRTC terminals, serving the public WebTerminal API
//! (`wgtwo.webterminal.v0.WebTerminalService`) over a sans-IO call switch.
//!
//! Rooms, from the bottom up: each imports only rooms listed before it (and the leaves below).
//!
//! - [`core`]: the switch (PROTOCOL.md sections 3–6), no I/O.
//! - [`phone`]: the phone network interface, the simulated network and the SIP trunk (section 7).
//! - [`records`]: call records (section 9): the record builder, the store interface, SQLite.
//! - [`notifications`]: inbound-call notifications to Redis (section 10).
//! - [`wire`]: `wgtwo.webterminal.v0` protobuf ↔ the core's messages, in one place.
//! - [`telemetry`]: Prometheus metrics (section 12) and `/healthz`, `/readyz`.
//! - [`auth`]: access tokens (sections 1, 2 and 6).
//! - [`driver`]: the one task that owns the switch, its event hub and the operator's queries.
//! - [`edge`]: the transport edge: listener, HTTP server, the terminal session over gRPC and
//!   WebSocket, rate limits, the softphone page.
//! - [`operator`]: the operator API (section 8) and the simulated network's (section 7).
//! - [`cluster`]: several nodes as one system (section 14): so far, who owns which number, under
//!   leases in Redis.
//! - [`server`]: the composition root: [`server::Exchange`], [`server::serve`], [`server::ServerConfig`].
//!
//! Leaves anyone may use: [`clock`] (the wall clock the switch's `Instant`s are turned into UTC by),
//! [`metric_names`] (the Prometheus metrics' names, section 12) and `pacing` (inside the crate: a
//! capped exponential back-off and a log throttle, for the accept loop and the Redis pusher).

#![warn(missing_docs)]

pub mod auth;
pub mod clock;
pub mod cluster;
pub mod core;
pub mod driver;
pub mod edge;
pub mod metric_names;
pub mod notifications;
pub mod operator;
mod pacing;
pub mod phone;
pub mod records;
pub mod server;
pub mod telemetry;
pub mod wire;

/// Generated protobuf and gRPC code for `proto/`. Modules mirror the proto packages (the generated
/// code refers across them); the short names below are what the rest of the crate uses.
pub mod proto {
    /// Packages under `wgtwo.*`: the public schema.
    pub mod wgtwo {
        #[allow(missing_docs)]
        pub mod common {
            /// `wgtwo.common.v0`
            pub mod v0 {
                tonic::include_proto!("wgtwo.common.v0");
                include!(concat!(env!("OUT_DIR"), "/wgtwo.common.v0.serde.rs"));
            }
        }
        #[allow(missing_docs)]
        pub mod webterminal {
            /// `wgtwo.webterminal.v0`: the public WebTerminal API (PROTOCOL.md section 1).
            pub mod v0 {
                tonic::include_proto!("wgtwo.webterminal.v0");
                include!(concat!(env!("OUT_DIR"), "/wgtwo.webterminal.v0.serde.rs"));
            }
        }
    }
    /// `webterminal.core.v1`: this project's own services: the operator API (PROTOCOL.md section 8)
    /// and the simulated phone network's (section 7).
    pub use project::core::v1 as core_v1;
    pub use wgtwo::common::v0 as common;
    pub use wgtwo::webterminal::v0 as webterminal;
    /// `webterminal.core.v1` nested as its package is, so that its generated references to
    /// `wgtwo.webterminal.v0` resolve.
    #[allow(missing_docs)]
    pub mod project {
        pub mod core {
            pub mod v1 {
                tonic::include_proto!("webterminal.core.v1");
            }
        }
    }
    pub use core_v1 as operator;
    pub use core_v1 as simulator;
    /// The encoded `FileDescriptorSet` of every proto above, for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/descriptors.bin"));
}
