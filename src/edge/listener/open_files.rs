//! The process's open-file limit (`RLIMIT_NOFILE`), which the default connection caps are sized
//! from.

/// The process's soft open-file limit (`RLIMIT_NOFILE`), or 1024 where it cannot be read.
pub fn open_file_limit() -> u64 {
    rlimit::getrlimit(rlimit::Resource::NOFILE)
        .map(|(soft, _hard)| soft)
        .unwrap_or(1024)
}

/// Raises the soft open-file limit (`RLIMIT_NOFILE`) to the hard limit and logs both. Returns the
/// soft limit in force afterwards. A server holds one descriptor per connection: the soft limit a
/// process inherits (often 1024) would otherwise cap it far below what the system allows.
pub fn raise_open_file_limit() -> u64 {
    let before = open_file_limit();
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(now) if now > before => {
            tracing::info!(
                from = before,
                to = now,
                "raised the open-file limit to its hard limit"
            );
            now
        }
        Ok(now) => {
            tracing::info!(limit = now, "open-file limit (already at its hard limit)");
            now
        }
        Err(e) => {
            tracing::warn!(limit = before, %e, "cannot raise the open-file limit");
            before
        }
    }
}
