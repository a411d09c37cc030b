//! TLS for the async driver (feature `tls`), on rustls with its `ring`
//! crypto provider.
//!
//! TLS is a byte transform inside the connection task, between the socket
//! and the sans-IO [`Connection`](fastnet_proto::Connection): ciphertext
//! read from the socket goes into the connection's rustls session, the
//! plaintext it decrypts goes into the connection's receive buffer, and
//! the replies of one wake-up (pushes included) are encrypted by the same
//! session and leave in one write. Nothing in `fastnet-proto` knows.
//!
//! The configuration types are the `fastnet-tls` crate's, re-exported here
//! as in fastnet-std's `tls` module, so code moves between the drivers by
//! changing the crate name:
//!
//! - Server: [`TlsServerConfig`] (certificate chain and key, optionally a CA
//!   whose client certificates are required, ALPN, handshake timeout), given
//!   to [`ServerBuilder::tls`](crate::ServerBuilder::tls).
//! - Client: [`TlsClientConfig`] (server name, roots, optional client
//!   certificate), built once into a [`TlsConnector`] for
//!   [`Client::connect_tls`](crate::Client::connect_tls) and
//!   [`Pool::with_tls`](crate::Pool::with_tls). Clients built from one
//!   connector share its session cache, so reconnects resume sessions.
//! - What was negotiated: [`TlsInfo`] from
//!   [`Ctx::tls`](crate::Ctx::tls); failures: [`TlsError`] through
//!   [`Handler::on_tls_error`](crate::Handler::on_tls_error) and
//!   [`TlsStats`] from [`Server::tls_stats`](crate::Server::tls_stats).
//!
//! ```
//! use fastnet_smol::tls::{TlsClientConfig, TlsServerConfig};
//!
//! let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
//! let server = TlsServerConfig::from_pem(cert.cert.pem().as_bytes(), cert.signing_key.serialize_pem().as_bytes())?;
//! let client = TlsClientConfig::new("localhost")?
//!     .ca_pem(cert.cert.pem().as_bytes())?
//!     .build()?;
//! # let _ = (server, client);
//! # Ok::<(), std::io::Error>(())
//! ```

pub use fastnet_tls::*;
