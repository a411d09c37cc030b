//! The throwaway certificate of the TLS runs: a CA and a server
//! certificate for `localhost` and 127.0.0.1 (ECDSA P-256, made by rcgen
//! through `fastnet_tls::test_pki`), written as PEM files into a fresh
//! temporary directory that is removed again when the last handle to it
//! is dropped.

use std::io;
use std::path::{Path, PathBuf};

use fastnet_tls::test_pki::Pki;

/// The PEM files the TLS servers and their load use.
#[derive(Debug)]
pub struct TlsFiles {
    dir: PathBuf,
    /// The CA certificate, for `fastnet bench --tls-ca`.
    pub ca: PathBuf,
    /// The server's certificate chain.
    pub cert: PathBuf,
    /// The server's private key.
    pub key: PathBuf,
}

impl TlsFiles {
    /// A new CA and server certificate, written into a new directory under
    /// the system's temporary directory.
    pub fn create() -> io::Result<TlsFiles> {
        let base = std::env::temp_dir();
        // Unique per process and call, so concurrent harnesses (the smoke
        // test beside a manual run) do not share or remove each other's.
        let dir = (0u32..)
            .map(|n| base.join(format!("bench-echo-tls-{}-{n}", std::process::id())))
            .find(|d| !d.exists())
            .unwrap_or_else(|| base.join("bench-echo-tls"));
        std::fs::create_dir_all(&dir)?;
        let files = TlsFiles {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
            dir,
        };
        let pki = Pki::new();
        std::fs::write(&files.ca, &pki.ca)?;
        std::fs::write(&files.cert, &pki.server_cert)?;
        std::fs::write(&files.key, &pki.server_key)?;
        Ok(files)
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for TlsFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
