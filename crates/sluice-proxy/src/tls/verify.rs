//! How the gateway checks a server's certificate, per `server_tls_sslmode`:
//! `require` (and `allow`, `prefer`) encrypts without checking, as libpq
//! does; `verify-ca` checks the chain against `server_tls_ca_file` but not
//! the name; `verify-full` checks both (rustls' own WebPKI verifier). The
//! handshake's signatures are checked in every mode.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{
    verify_tls12_signature, verify_tls13_signature, CryptoProvider, WebPkiSupportedAlgorithms,
};
use rustls::{CertificateError, DigitallySignedStruct, Error, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

/// One server-certificate policy: which checks `server_tls_sslmode` asks for.
#[derive(Debug)]
pub struct ServerVerifier {
    /// The chain's check (`None`: the certificate is not checked).
    chain: Option<Arc<WebPkiServerVerifier>>,
    check_name: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerVerifier {
    /// Encrypts without checking the certificate (`allow`, `prefer`, `require`).
    pub fn unchecked(provider: &CryptoProvider) -> ServerVerifier {
        ServerVerifier {
            chain: None,
            check_name: false,
            algorithms: provider.signature_verification_algorithms,
        }
    }

    /// Checks the chain against `roots`, and the name too when `check_name`.
    pub fn new(
        roots: Arc<RootCertStore>,
        provider: Arc<CryptoProvider>,
        check_name: bool,
    ) -> Result<ServerVerifier, rustls::server::VerifierBuilderError> {
        let algorithms = provider.signature_verification_algorithms;
        let chain = WebPkiServerVerifier::builder_with_provider(roots, provider).build()?;
        Ok(ServerVerifier {
            chain: Some(chain),
            check_name,
            algorithms,
        })
    }
}

impl ServerCertVerifier for ServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
