//! TLS for the one port (rustls, ALPN `h2` and `http/1.1`), from the files [`ServerConfig::tls`]
//! names.
//!
//! [`ServerConfig::tls`]: super::ServerConfig::tls

use super::config::TlsFiles;
use std::sync::Arc;

/// The TLS acceptor for `tls`'s certificate chain and key (ALPN `h2` and `http/1.1`: gRPC and
/// browsers on one port), or `None` for plaintext.
///
/// # Errors
/// What is wrong with which file, in words.
pub(super) fn acceptor(
    tls: Option<&TlsFiles>,
) -> Result<Option<tokio_rustls::TlsAcceptor>, String> {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let Some(files) = tls else {
        return Ok(None);
    };
    let read = |path: &std::path::Path, what: &str, marker: &str| {
        let pem = std::fs::read(path)
            .map_err(|e| format!("cannot read the {what} {}: {e}", path.display()))?;
        if !String::from_utf8_lossy(&pem).contains(marker) {
            return Err(format!(
                "the {what} {} holds no PEM '{marker}' block",
                path.display()
            ));
        }
        Ok(pem)
    };
    let cert = read(&files.cert, "certificate file", "CERTIFICATE-----")?;
    let key = read(&files.key, "private key file", "PRIVATE KEY-----")?;
    let unusable = |why: String| {
        format!(
            "cannot use the certificate {} with the key {}: {why}",
            files.cert.display(),
            files.key.display()
        )
    };
    let chain = CertificateDer::pem_slice_iter(&cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| unusable(format!("the certificate file: {e}")))?;
    let key = PrivateKeyDer::from_pem_slice(&key)
        .map_err(|e| unusable(format!("the private key file: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| unusable(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| unusable(e.to_string()))?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    tracing::info!(cert = %files.cert.display(), "serving TLS");
    Ok(Some(tokio_rustls::TlsAcceptor::from(Arc::new(server))))
}
