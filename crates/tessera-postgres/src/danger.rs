//! The one place TLS runs without verifying the server: `sslmode=prefer`.
//!
//! `prefer` means "encrypt if the server offers it, go plain if not", so an
//! active attacker can always strip TLS from it; checking the certificate
//! there would add failures (a default Debian server's self-signed
//! certificate) and no protection. Like libpq, `prefer` therefore encrypts
//! without authenticating the server, which still keeps a passive listener
//! out. Every mode that asks for TLS (`require`, `verify-full`) verifies.
//! The handshake's signatures are still checked, with the provider's
//! algorithms, so the connection is encrypted to whoever holds the key of
//! the certificate presented.

use std::sync::Arc;

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

/// Accepts any server certificate; see the module docs for why `prefer`
/// uses it and nothing else does.
#[derive(Debug)]
pub(crate) struct UnverifiedServer {
    provider: Arc<CryptoProvider>,
}

impl UnverifiedServer {
    pub(crate) fn new(provider: Arc<CryptoProvider>) -> Self {
        Self { provider }
    }
}

impl ServerCertVerifier for UnverifiedServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
