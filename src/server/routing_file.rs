//! The routing file (`--routing FILE`, PROTOCOL.md section 10): the groups, read at start and again
//! on every SIGHUP. A file that cannot be read or parsed at start is a startup error; on a reload it
//! is logged and counted, and the groups already in force are kept.

use crate::core::GroupTable;
use crate::server::driver::DriverHandle;
use std::path::{Path, PathBuf};

/// Why a routing file could not be used; the text names the file and the fault.
#[derive(Debug, thiserror::Error)]
pub enum RoutingError {
    /// The file could not be read.
    #[error("routing file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a valid routing file.
    #[error("routing file {path}: {source}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the group and field.
        source: crate::core::RoutingFileError,
    },
}

/// Reads and parses the routing file at `path`.
///
/// # Errors
/// [`RoutingError`] when it cannot be read or is not a valid routing file.
pub fn load(path: &Path) -> Result<GroupTable, RoutingError> {
    let text = std::fs::read_to_string(path).map_err(|source| RoutingError::Read {
        path: path.to_owned(),
        source,
    })?;
    GroupTable::from_toml(&text).map_err(|source| RoutingError::Invalid {
        path: path.to_owned(),
        source,
    })
}

/// Re-reads `path` on every SIGHUP and hands the new groups to the switch: calls already queued
/// keep the group they joined; new calls follow the new file. A bad file is logged (error) and
/// counted (`webterminal_routing_reloads_total{result="failed"}`), and the groups in force stay.
/// The task ends when the driver has stopped. Unix only; elsewhere the file is read at start only.
pub fn reload_on_hangup(path: PathBuf, driver: DriverHandle) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let mut hangups = match signal(SignalKind::hangup()) {
                Ok(hangups) => hangups,
                Err(e) => {
                    tracing::error!(error = %e, "cannot watch SIGHUP: the routing file will not be reloaded");
                    return;
                }
            };
            while hangups.recv().await.is_some() {
                let result = match load(&path) {
                    Ok(table) => {
                        let groups = table.len();
                        if driver.set_router(Box::new(table)).await.is_err() {
                            return;
                        }
                        tracing::info!(path = %path.display(), groups, "routing file reloaded");
                        "reloaded"
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "routing file not reloaded: keeping the groups in force");
                        "failed"
                    }
                };
                metrics::counter!(crate::server::metrics::ROUTING_RELOADS, "result" => result)
                    .increment(1);
            }
        }
        #[cfg(not(unix))]
        {
            let _ = (path, driver);
        }
    })
}
