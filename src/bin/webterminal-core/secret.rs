//! The stored JWT secret: where it is kept, and reading it or making it once (mode 0600).

use std::path::{Path, PathBuf};

/// The stored secret and where it is: read if present, else made from 32 random bytes (hex) and
/// written with mode 0600.
pub(crate) fn stored_secret() -> Result<(String, PathBuf), Box<dyn std::error::Error>> {
    let path = secret_path()
        .ok_or("cannot find a data directory: set XDG_DATA_HOME or HOME, or pass --jwt-secret")?;
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => return Ok((text.trim().to_owned(), path)),
        Ok(_) => {
            return Err(format!(
                "{} is empty: delete it or pass --jwt-secret",
                path.display()
            )
            .into())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("reading {}: {e}", path.display()).into()),
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness for a secret: {e}"))?;
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    write_private(&path, &secret)?;
    tracing::info!(path = %path.display(), "made a new JWT secret");
    Ok((secret, path))
}

/// Writes `text` to a new file readable only by its owner. When another process made the file
/// first, its secret wins.
fn write_private(path: &Path, text: &str) -> Result<(), Box<dyn std::error::Error>> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(text.as_bytes())?;
            file.write_all(b"\n")?;
            Ok(())
        }
        Err(e) => Err(format!("writing {}: {e}", path.display()).into()),
    }
}

/// `webterminal-core/jwt-secret` in the user's data directory (`$XDG_DATA_HOME`, else
/// `~/.local/share`, on Linux; the platform's own elsewhere).
pub(crate) fn secret_path() -> Option<PathBuf> {
    Some(
        dirs::data_dir()?
            .join("webterminal-core")
            .join("jwt-secret"),
    )
}
