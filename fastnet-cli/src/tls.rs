//! TLS pieces of the binary: the throwaway certificate of `bench --tls`
//! without `--addr`, and the client configuration of `bench --tls`
//! (a given CA, the system's roots, or no verification at all).

use std::io;
use std::path::Path;
use std::sync::Arc;

use fastnet_std::tls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use fastnet_std::tls::rustls::crypto::{self, CryptoProvider};
use fastnet_std::tls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use fastnet_std::tls::rustls::{self, DigitallySignedStruct, SignatureScheme};
use fastnet_std::tls::{TlsClientConfig, TlsConnector, TlsServerConfig};

/// The name the throwaway certificate is made for (also valid for
/// 127.0.0.1 and ::1).
pub const THROWAWAY_NAME: &str = "localhost";

/// A self-signed certificate for `localhost`, 127.0.0.1 and ::1, made now:
/// the server configuration, and its certificate as PEM (for the client to
/// trust).
pub fn throwaway() -> io::Result<(TlsServerConfig, String)> {
    let names = vec![
        THROWAWAY_NAME.to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    let made = rcgen::generate_simple_self_signed(names)
        .map_err(|e| io::Error::other(format!("cannot make a certificate: {e}")))?;
    let cert = made.cert.pem();
    let server =
        TlsServerConfig::from_pem(cert.as_bytes(), made.signing_key.serialize_pem().as_bytes())?;
    Ok((server, cert))
}

/// How `bench` checks the server's certificate.
#[derive(Debug, Clone, Copy)]
pub enum Verify<'a> {
    /// Against the system's roots.
    System,
    /// Against the CA certificates in this PEM file.
    CaFile(&'a Path),
    /// Against this PEM (the in-process server's throwaway certificate).
    CaPem(&'a [u8]),
    /// Not at all (`--tls-insecure`): encrypted, but anyone can pose as the
    /// server.
    Insecure,
}

/// The client side of `bench --tls`, expecting `server_name`.
pub fn connector(server_name: &str, verify: Verify<'_>) -> io::Result<TlsConnector> {
    let config = match verify {
        Verify::System => TlsClientConfig::new(server_name)?,
        Verify::CaFile(path) => TlsClientConfig::new(server_name)?.ca_pem_file(path)?,
        Verify::CaPem(pem) => TlsClientConfig::new(server_name)?.ca_pem(pem)?,
        Verify::Insecure => {
            let provider = Arc::new(crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
                .with_safe_default_protocol_versions()
                .map_err(|e| io::Error::other(e.to_string()))?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert(provider)))
                .with_no_client_auth();
            TlsClientConfig::from_rustls(Arc::new(config), server_name)?
        }
    };
    config.build()
}

/// The name to expect from an `--addr` like `host:port` or `[v6]:port`.
pub fn server_name_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// `--tls-insecure`: takes any certificate, still checks that the server
/// holds its key (handshake signatures).
#[derive(Debug)]
struct AcceptAnyServerCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyServerCert {
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
        crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_from_addresses() {
        assert_eq!(server_name_of("example.com:443"), "example.com");
        assert_eq!(server_name_of("127.0.0.1:7878"), "127.0.0.1");
        assert_eq!(server_name_of("[::1]:7878"), "::1");
        assert_eq!(server_name_of("localhost"), "localhost");
    }
}
