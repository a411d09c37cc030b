//! Run: cargo run --release -p fastnet-bench-echo --bin peer-tokio-rustls -- PORT|ADDR CERT.pem KEY.pem
//!
//! The TLS peer: `peer-tokio-framed` over tokio-rustls. tokio's
//! multi-thread runtime, a `TlsAcceptor` on rustls 0.23 with its `ring`
//! provider and default settings (as fastnet-tls builds its servers), then
//! `Framed<TlsStream<TcpStream>, LengthDelimitedCodec>` (u32 BE) split into
//! a stream and a sink with the stream forwarded into the sink. `CERT.pem`
//! holds the certificate chain (own certificate first), `KEY.pem` its
//! private key; port 0 binds a free port. Prints `listening on ADDR`;
//! exits on SIGTERM or SIGINT.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt};
use tokio::net::TcpListener;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use fastnet_bench_echo::peer;

const USAGE: &str = "usage: peer-tokio-rustls PORT|ADDR CERT.pem KEY.pem";

fn invalid(what: &Path, e: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{}: {e}", what.display()),
    )
}

/// The rustls server configuration: the ring provider, rustls's default
/// protocol versions and suites, no client authentication.
fn server_config(cert: &Path, key: &Path) -> io::Result<rustls::ServerConfig> {
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| invalid(cert, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(cert, e))?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| invalid(key, e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| invalid(cert, e))
}

#[tokio::main]
async fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, cert, key] = args.as_slice() else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, USAGE));
    };
    let addr = peer::parse_addr(Some(addr))?;
    let acceptor = TlsAcceptor::from(Arc::new(server_config(
        &PathBuf::from(cert),
        &PathBuf::from(key),
    )?));
    peer::raise_fd_limit()?;
    peer::exit_on_signal()?;
    let listener = TcpListener::bind(addr).await?;
    peer::announce(listener.local_addr()?);
    loop {
        let socket = match listener.accept().await {
            Ok((socket, _)) => socket,
            Err(e) if peer::accept_error_is_transient(&e) => continue,
            Err(e) => return Err(e),
        };
        socket.set_nodelay(true)?;
        let acceptor = acceptor.clone();
        // The handshake runs in the connection's task, so a slow client
        // holds up neither the accept loop nor other connections.
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(socket).await else {
                return;
            };
            let codec = LengthDelimitedCodec::builder()
                .length_field_type::<u32>()
                .big_endian()
                .max_frame_length(peer::MAX_FRAME)
                .new_codec();
            let (sink, stream) = Framed::new(tls, codec).split();
            // Errors (a reset, an oversized frame) end this connection only.
            let _ = stream.map_ok(bytes::BytesMut::freeze).forward(sink).await;
        });
    }
}
