//! HTTPS with rustls: loading the certificate and key named by the
//! configuration.

use axum_server::tls_rustls::RustlsConfig;

use crate::config::{ConfigError, TlsFiles};

/// Loads the PEM certificate chain and private key. The error names the
/// files, never their contents.
pub async fn load(files: &TlsFiles) -> Result<RustlsConfig, ConfigError> {
    RustlsConfig::from_pem_file(&files.cert, &files.key)
        .await
        .map_err(|e| {
            ConfigError(format!(
                "cannot load TLS certificate {} and key {}: {e}",
                files.cert.display(),
                files.key.display()
            ))
        })
}
