//! TLS configuration shared by the fastnet drivers (`fastnet-std` and
//! `fastnet-smol`, feature `tls`), on rustls with its `ring` crypto
//! provider.
//!
//! TLS is a byte transform inside a driver, between the socket and the
//! sans-IO [`Connection`](fastnet_proto::Connection). This crate holds what
//! the drivers share, and each driver re-exports it as its `tls` module
//! (`fastnet_std::tls`, `fastnet_smol::tls`), so code moves between the
//! drivers by changing the crate name:
//!
//! - The server side of one connection: [`ServerSession`], a sans-IO state
//!   machine over rustls (ciphertext in, plaintext out and back, the
//!   handshake deadline, the close_notify policy). The drivers only move
//!   its bytes to and from the socket.
//! - Server: [`TlsServerConfig`] (certificate chain and key, optionally a CA
//!   whose client certificates are required, ALPN, handshake timeout), given
//!   to a driver's `ServerBuilder::tls`.
//! - Client: [`TlsClientConfig`] (server name, roots, optional client
//!   certificate), built once into a [`TlsConnector`] for a driver's
//!   `Client::connect_tls` and `Pool::with_tls`. Clients built from one
//!   connector share its session cache, so reconnects resume sessions.
//! - What was negotiated: [`TlsInfo`] (a driver's `Ctx::tls`); failures:
//!   [`TlsError`] (a driver's `Handler::on_tls_error`, closing with
//!   [`TlsError::close_reason`]) and the server's [`TlsStats`].
//!
//! ```
//! use fastnet_tls::{TlsClientConfig, TlsServerConfig};
//!
//! let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
//! let server = TlsServerConfig::from_pem(cert.cert.pem().as_bytes(), cert.signing_key.serialize_pem().as_bytes())?;
//! let server_config = server.build()?; // the rustls ServerConfig
//! let connector = TlsClientConfig::new("localhost")?
//!     .ca_pem(cert.cert.pem().as_bytes())?
//!     .build()?;
//! let session = connector.session()?; // a rustls ClientConnection
//! # let _ = (server_config, session);
//! # Ok::<(), std::io::Error>(())
//! ```

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use fastnet_proto::connection::{CloseReason, TlsFailure};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{CipherSuite, CommonState, ProtocolVersion, RootCertStore};

/// The rustls this crate is built on, for configurations made by hand
/// ([`TlsServerConfig::from_rustls`], [`TlsClientConfig::from_rustls`]).
pub use rustls;

mod session;
#[cfg(feature = "test-pki")]
pub mod test_pki;

pub use session::ServerSession;

/// How long a handshake may take unless configured otherwise.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The crypto provider of every configuration this crate builds: `ring`,
/// chosen explicitly so another crate enabling a second provider in rustls
/// does not make the process default ambiguous.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    Arc::clone(PROVIDER.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider())))
}

fn invalid(what: &str, e: impl fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("tls: {what}: {e}"))
}

fn pem_error(what: &str, e: rustls::pki_types::pem::Error) -> io::Error {
    match e {
        rustls::pki_types::pem::Error::Io(io) => {
            io::Error::new(io.kind(), format!("tls: {what}: {io}"))
        }
        rustls::pki_types::pem::Error::NoItemsFound => invalid(what, "no PEM item of that kind"),
        e => invalid(what, e),
    }
}

fn certs_from_pem(what: &str, pem: &[u8]) -> io::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(what, e))?;
    if certs.is_empty() {
        return Err(invalid(what, "no CERTIFICATE in the PEM data"));
    }
    Ok(certs)
}

fn key_from_pem(what: &str, pem: &[u8]) -> io::Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| pem_error(what, e))
}

fn read_file(what: &str, path: &Path) -> io::Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| io::Error::new(e.kind(), format!("tls: {what} {}: {e}", path.display())))
}

fn roots_from_pem(what: &str, pem: &[u8], roots: &mut RootCertStore) -> io::Result<()> {
    for cert in certs_from_pem(what, pem)? {
        roots.add(cert).map_err(|e| invalid(what, e))?;
    }
    Ok(())
}

/// A certificate chain and its private key.
struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Identity {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl Identity {
    fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> io::Result<Self> {
        Ok(Identity {
            chain: certs_from_pem("certificate chain", cert_pem)?,
            key: key_from_pem("private key", key_pem)?,
        })
    }

    fn from_pem_files(cert: &Path, key: &Path) -> io::Result<Self> {
        let cert_pem = read_file("certificate file", cert)?;
        let key_pem = read_file("key file", key)?;
        Ok(Identity {
            chain: certs_from_pem(&format!("certificate file {}", cert.display()), &cert_pem)?,
            key: key_from_pem(&format!("key file {}", key.display()), &key_pem)?,
        })
    }
}

#[derive(Clone)]
enum ServerSource {
    Identity(Identity),
    Rustls(Arc<rustls::ServerConfig>),
}

/// TLS settings of a server: its certificate chain and key, optional
/// client-certificate verification (mutual TLS), ALPN protocols and the
/// handshake timeout. Given to a driver's `ServerBuilder::tls`; checked
/// when the server binds.
///
/// Protocol versions are rustls's safe defaults (TLS 1.3 and 1.2).
#[derive(Clone)]
pub struct TlsServerConfig {
    source: ServerSource,
    client_roots: Option<Arc<RootCertStore>>,
    alpn: Vec<Vec<u8>>,
    handshake_timeout: Duration,
}

impl TlsServerConfig {
    /// A server presenting `chain` (its own certificate first) and holding
    /// `key`.
    pub fn new(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Self {
        Self::with_source(ServerSource::Identity(Identity { chain, key }))
    }

    /// A server from PEM data: `cert_pem` holds the chain (its own
    /// certificate first), `key_pem` the private key (PKCS#8, PKCS#1 or
    /// SEC1).
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> io::Result<Self> {
        Identity::from_pem(cert_pem, key_pem)
            .map(|id| Self::with_source(ServerSource::Identity(id)))
    }

    /// A server from PEM files, as [`from_pem`](Self::from_pem).
    pub fn from_pem_files(cert: impl AsRef<Path>, key: impl AsRef<Path>) -> io::Result<Self> {
        Identity::from_pem_files(cert.as_ref(), key.as_ref())
            .map(|id| Self::with_source(ServerSource::Identity(id)))
    }

    /// A server from a rustls configuration made by hand, used as it is:
    /// [`client_ca`](Self::client_ca) and [`alpn`](Self::alpn) do not
    /// change it; only the handshake timeout applies.
    pub fn from_rustls(config: Arc<rustls::ServerConfig>) -> Self {
        Self::with_source(ServerSource::Rustls(config))
    }

    fn with_source(source: ServerSource) -> Self {
        TlsServerConfig {
            source,
            client_roots: None,
            alpn: Vec::new(),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }

    /// Requires every client to present a certificate issued by one of
    /// `roots` (mutual TLS); a client without one fails the handshake.
    pub fn client_ca(mut self, roots: RootCertStore) -> Self {
        self.client_roots = Some(Arc::new(roots));
        self
    }

    /// [`client_ca`](Self::client_ca) from the PEM certificates in `pem`.
    pub fn client_ca_pem(self, pem: &[u8]) -> io::Result<Self> {
        let mut roots = RootCertStore::empty();
        roots_from_pem("client CA", pem, &mut roots)?;
        Ok(self.client_ca(roots))
    }

    /// [`client_ca`](Self::client_ca) from a PEM file.
    pub fn client_ca_pem_file(self, path: impl AsRef<Path>) -> io::Result<Self> {
        let path = path.as_ref();
        let pem = read_file("client CA file", path)?;
        let mut roots = RootCertStore::empty();
        roots_from_pem(
            &format!("client CA file {}", path.display()),
            &pem,
            &mut roots,
        )?;
        Ok(self.client_ca(roots))
    }

    /// ALPN protocols the server accepts, in its order of preference (none
    /// by default: ALPN is not negotiated).
    pub fn alpn<P: Into<Vec<u8>>>(mut self, protocols: impl IntoIterator<Item = P>) -> Self {
        self.alpn = protocols.into_iter().map(Into::into).collect();
        self
    }

    /// How long a client may take to complete the handshake (default
    /// [`DEFAULT_HANDSHAKE_TIMEOUT`]); a slower one is closed.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// The handshake timeout set by
    /// [`handshake_timeout`](Self::handshake_timeout).
    pub fn configured_handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// The rustls configuration these settings make.
    pub fn build(&self) -> io::Result<Arc<rustls::ServerConfig>> {
        let identity = match &self.source {
            ServerSource::Rustls(config) => return Ok(Arc::clone(config)),
            ServerSource::Identity(identity) => identity.clone(),
        };
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid("protocol versions", e))?;
        let builder = match &self.client_roots {
            Some(roots) => {
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::clone(roots), provider())
                        .build()
                        .map_err(|e| invalid("client CA", e))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder
            .with_single_cert(identity.chain, identity.key)
            .map_err(|e| invalid("certificate and key", e))?;
        config.alpn_protocols.clone_from(&self.alpn);
        Ok(Arc::new(config))
    }
}

impl fmt::Debug for TlsServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match &self.source {
            ServerSource::Identity(id) => format!("{} certificate(s) and a key", id.chain.len()),
            ServerSource::Rustls(_) => "a rustls ServerConfig".to_string(),
        };
        f.debug_struct("TlsServerConfig")
            .field("source", &source)
            .field("client_auth", &self.client_roots.is_some())
            .field("alpn", &self.alpn)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish()
    }
}

#[derive(Clone, Debug)]
enum Roots {
    /// The operating system's trusted roots, loaded at build.
    System,
    Store(RootCertStore),
}

/// TLS settings of a client: the name the server's certificate must carry,
/// the roots that may issue it (the system's by default), an optional
/// client certificate, ALPN, the handshake timeout. [`build`](Self::build)
/// makes a [`TlsConnector`].
#[derive(Clone)]
pub struct TlsClientConfig {
    server_name: ServerName<'static>,
    roots: Roots,
    identity: Option<Identity>,
    alpn: Vec<Vec<u8>>,
    handshake_timeout: Duration,
    rustls: Option<Arc<rustls::ClientConfig>>,
}

impl TlsClientConfig {
    /// A client that expects the server's certificate to be valid for
    /// `server_name` (a DNS name or an IP address), issued by one of the
    /// system's trusted roots unless [`ca_pem`](Self::ca_pem) or
    /// [`roots`](Self::roots) says otherwise.
    pub fn new(server_name: &str) -> io::Result<Self> {
        Ok(TlsClientConfig {
            server_name: parse_server_name(server_name)?,
            roots: Roots::System,
            identity: None,
            alpn: Vec::new(),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            rustls: None,
        })
    }

    /// A client from a rustls configuration made by hand, used as it is
    /// (the other setters but [`handshake_timeout`](Self::handshake_timeout)
    /// do not change it).
    pub fn from_rustls(config: Arc<rustls::ClientConfig>, server_name: &str) -> io::Result<Self> {
        let mut c = Self::new(server_name)?;
        c.rustls = Some(config);
        Ok(c)
    }

    /// Trusts exactly `roots` (instead of the system's roots).
    pub fn roots(mut self, roots: RootCertStore) -> Self {
        self.roots = Roots::Store(roots);
        self
    }

    /// Trusts the CA certificates in `pem` (instead of the system's roots;
    /// calls add up).
    pub fn ca_pem(mut self, pem: &[u8]) -> io::Result<Self> {
        let mut roots = match self.roots {
            Roots::Store(roots) => roots,
            Roots::System => RootCertStore::empty(),
        };
        roots_from_pem("CA", pem, &mut roots)?;
        self.roots = Roots::Store(roots);
        Ok(self)
    }

    /// [`ca_pem`](Self::ca_pem) from a PEM file.
    pub fn ca_pem_file(self, path: impl AsRef<Path>) -> io::Result<Self> {
        let pem = read_file("CA file", path.as_ref())?;
        self.ca_pem(&pem)
    }

    /// Presents `chain` (its own certificate first) and proves holding
    /// `key` when the server asks for a client certificate.
    pub fn client_cert(
        mut self,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Self {
        self.identity = Some(Identity { chain, key });
        self
    }

    /// [`client_cert`](Self::client_cert) from PEM data.
    pub fn client_cert_pem(mut self, cert_pem: &[u8], key_pem: &[u8]) -> io::Result<Self> {
        self.identity = Some(Identity::from_pem(cert_pem, key_pem)?);
        Ok(self)
    }

    /// [`client_cert`](Self::client_cert) from PEM files.
    pub fn client_cert_pem_files(
        mut self,
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> io::Result<Self> {
        self.identity = Some(Identity::from_pem_files(cert.as_ref(), key.as_ref())?);
        Ok(self)
    }

    /// ALPN protocols to offer, in order of preference.
    pub fn alpn<P: Into<Vec<u8>>>(mut self, protocols: impl IntoIterator<Item = P>) -> Self {
        self.alpn = protocols.into_iter().map(Into::into).collect();
        self
    }

    /// How long the handshake may take (default
    /// [`DEFAULT_HANDSHAKE_TIMEOUT`]).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Builds the rustls configuration (loading the system's roots if no
    /// other roots were given) into a connector.
    pub fn build(&self) -> io::Result<TlsConnector> {
        let config = match &self.rustls {
            Some(config) => Arc::clone(config),
            None => Arc::new(self.build_rustls()?),
        };
        Ok(TlsConnector {
            config,
            server_name: self.server_name.clone(),
            handshake_timeout: self.handshake_timeout,
        })
    }

    fn build_rustls(&self) -> io::Result<rustls::ClientConfig> {
        let roots = match &self.roots {
            Roots::Store(roots) => roots.clone(),
            Roots::System => system_roots()?,
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid("protocol versions", e))?
            .with_root_certificates(roots);
        let mut config = match &self.identity {
            Some(id) => {
                let id = id.clone();
                builder
                    .with_client_auth_cert(id.chain, id.key)
                    .map_err(|e| invalid("client certificate and key", e))?
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols.clone_from(&self.alpn);
        Ok(config)
    }
}

impl fmt::Debug for TlsClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsClientConfig")
            .field("server_name", &self.server_name)
            .field(
                "roots",
                &match &self.roots {
                    Roots::System => "system".to_string(),
                    Roots::Store(r) => format!("{} certificate(s)", r.len()),
                },
            )
            .field("client_cert", &self.identity.is_some())
            .field("alpn", &self.alpn)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("from_rustls", &self.rustls.is_some())
            .finish()
    }
}

fn parse_server_name(name: &str) -> io::Result<ServerName<'static>> {
    ServerName::try_from(name.to_string()).map_err(|e| invalid(&format!("server name {name:?}"), e))
}

fn system_roots() -> io::Result<RootCertStore> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found
            .errors
            .first()
            .map_or_else(|| "none found".to_string(), ToString::to_string);
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("tls: no system root certificates ({why}); give a CA certificate"),
        ));
    }
    Ok(roots)
}

/// A built client TLS configuration: what a driver's `Client::connect_tls`
/// and `Pool::with_tls` take. Cheap to clone; clones
/// share the rustls configuration and its session cache, so a second
/// connection to the same server resumes the first one's session.
#[derive(Clone)]
pub struct TlsConnector {
    config: Arc<rustls::ClientConfig>,
    server_name: ServerName<'static>,
    handshake_timeout: Duration,
}

impl TlsConnector {
    /// The rustls configuration (for driving a `rustls::ClientConnection`
    /// yourself).
    pub fn rustls_config(&self) -> &Arc<rustls::ClientConfig> {
        &self.config
    }

    /// The name the server's certificate must carry.
    pub fn server_name(&self) -> &ServerName<'static> {
        &self.server_name
    }

    /// How long the handshake may take.
    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// A new client session for one connection.
    pub fn session(&self) -> io::Result<rustls::ClientConnection> {
        rustls::ClientConnection::new(Arc::clone(&self.config), self.server_name.clone())
            .map_err(|e| invalid("client session", e))
    }
}

impl fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConnector")
            .field("server_name", &self.server_name)
            .field("alpn", &self.config.alpn_protocols)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

/// What a TLS handshake negotiated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsInfo {
    version: ProtocolVersion,
    cipher_suite: CipherSuite,
    alpn: Option<Vec<u8>>,
    server_name: Option<String>,
    peer_certificates: Vec<CertificateDer<'static>>,
    resumed: bool,
}

impl TlsInfo {
    /// What the handshake behind `state` negotiated; `server_name` is the
    /// name a client asked for (SNI), for a server's record.
    pub fn new(state: &CommonState, server_name: Option<&str>) -> Self {
        TlsInfo {
            version: state
                .protocol_version()
                .unwrap_or(ProtocolVersion::Unknown(0)),
            cipher_suite: state
                .negotiated_cipher_suite()
                .map_or(CipherSuite::Unknown(0), |s| s.suite()),
            alpn: state.alpn_protocol().map(<[u8]>::to_vec),
            server_name: server_name.map(str::to_string),
            peer_certificates: state.peer_certificates().unwrap_or_default().to_vec(),
            resumed: state.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
        }
    }

    /// Whether the handshake resumed an earlier session (no certificate
    /// exchange, fewer round trips).
    pub fn is_resumed(&self) -> bool {
        self.resumed
    }

    /// The protocol version (`TLSv1_3` or `TLSv1_2`).
    pub fn protocol_version(&self) -> ProtocolVersion {
        self.version
    }

    /// The cipher suite.
    pub fn cipher_suite(&self) -> CipherSuite {
        self.cipher_suite
    }

    /// The ALPN protocol both sides agreed on, if any.
    pub fn alpn(&self) -> Option<&[u8]> {
        self.alpn.as_deref()
    }

    /// On a server: the name the client asked for (SNI), if it sent one.
    pub fn server_name(&self) -> Option<&str> {
        self.server_name.as_deref()
    }

    /// The peer's certificate chain, its own certificate first: on a
    /// server, the client's (empty without mutual TLS); on a client, the
    /// server's.
    pub fn peer_certificates(&self) -> &[CertificateDer<'static>] {
        &self.peer_certificates
    }
}

/// Why a TLS connection failed. Reported through a driver's
/// `Handler::on_tls_error`; the connection
/// then closes with [`TlsError::close_reason`]
/// ([`CloseReason::Tls`] with the alert, or `Reset` for a socket error).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum TlsError {
    /// The handshake did not complete within the handshake timeout.
    HandshakeTimeout(Duration),
    /// The peer closed the connection before the handshake completed.
    HandshakeEof,
    /// rustls rejected what the peer sent or did: not TLS at all, a
    /// corrupted record, a certificate that failed verification, an alert
    /// from the peer.
    Rustls(rustls::Error),
    /// The socket failed during the handshake.
    Io(io::ErrorKind),
}

impl TlsError {
    /// Whether this is [`TlsError::HandshakeTimeout`].
    pub fn is_timeout(&self) -> bool {
        matches!(self, TlsError::HandshakeTimeout(_))
    }

    /// The reason the connection closes with: [`CloseReason::Tls`] with the
    /// alert that was sent or received, or [`CloseReason::Reset`] when the
    /// socket itself failed.
    pub fn close_reason(&self) -> CloseReason {
        use rustls::AlertDescription as Alert;
        let failure = match self {
            TlsError::HandshakeTimeout(_) => TlsFailure::HandshakeTimeout,
            TlsError::HandshakeEof => TlsFailure::HandshakeEof,
            TlsError::Io(_) => return CloseReason::Reset,
            TlsError::Rustls(rustls::Error::AlertReceived(alert)) => {
                TlsFailure::AlertReceived(u8::from(*alert))
            }
            // A record that fails to decrypt: rustls answers bad_record_mac.
            TlsError::Rustls(rustls::Error::DecryptError) => {
                TlsFailure::AlertSent(u8::from(Alert::BadRecordMac))
            }
            TlsError::Rustls(rustls::Error::InvalidMessage(m)) => {
                TlsFailure::AlertSent(u8::from(Alert::from(*m)))
            }
            TlsError::Rustls(rustls::Error::InvalidCertificate(c)) => {
                TlsFailure::AlertSent(u8::from(Alert::from(c.clone())))
            }
            TlsError::Rustls(rustls::Error::NoCertificatesPresented) => {
                TlsFailure::AlertSent(u8::from(Alert::CertificateRequired))
            }
            TlsError::Rustls(_) => TlsFailure::AlertSent(u8::from(Alert::InternalError)),
        };
        CloseReason::Tls(failure)
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::HandshakeTimeout(t) => write!(f, "TLS handshake not completed within {t:?}"),
            TlsError::HandshakeEof => {
                f.write_str("peer closed the connection during the TLS handshake")
            }
            TlsError::Rustls(e) => write!(f, "TLS: {e}"),
            TlsError::Io(kind) => write!(f, "TLS handshake: {kind}"),
        }
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TlsError::Rustls(e) => Some(e),
            _ => None,
        }
    }
}

/// Live TLS counters of a server; from a driver's `Server::tls_stats`.
/// Drivers count with the `on_*` methods. A failed TLS
/// connection is also counted in the server's statistics as closed with
/// [`CloseReason::Tls`].
#[derive(Debug, Default)]
pub struct TlsStats {
    handshakes: AtomicU64,
    handshake_failures: AtomicU64,
    handshake_timeouts: AtomicU64,
    session_errors: AtomicU64,
}

impl TlsStats {
    /// Handshakes completed.
    pub fn handshakes(&self) -> u64 {
        self.handshakes.load(Ordering::Relaxed)
    }

    /// Handshakes that failed, timeouts included.
    pub fn handshake_failures(&self) -> u64 {
        self.handshake_failures.load(Ordering::Relaxed)
    }

    /// Handshakes that failed for the handshake timeout.
    pub fn handshake_timeouts(&self) -> u64 {
        self.handshake_timeouts.load(Ordering::Relaxed)
    }

    /// Established sessions that failed on a TLS error (a corrupted
    /// record, an alert from the peer).
    pub fn session_errors(&self) -> u64 {
        self.session_errors.load(Ordering::Relaxed)
    }

    /// Counts a completed handshake.
    pub fn on_handshake(&self) {
        self.handshakes.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a failed handshake (and a timeout, if `e` is one).
    pub fn on_handshake_failure(&self, e: &TlsError) {
        self.handshake_failures.fetch_add(1, Ordering::Relaxed);
        if e.is_timeout() {
            self.handshake_timeouts.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts an established session that failed on a TLS error.
    pub fn on_session_error(&self) {
        self.session_errors.fetch_add(1, Ordering::Relaxed);
    }
}
