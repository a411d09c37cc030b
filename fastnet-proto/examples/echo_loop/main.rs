// Run: cargo run -p fastnet-proto --example echo_loop -- 127.0.0.1:7000
// Then: printf 'hello\nworld\n' | nc 127.0.0.1 7000
//
//! A multi-connection lines echo server whose IO loop is written by hand
//! around `fastnet_proto::Connection` with mio: the picture of embedding the
//! sans-IO core in your own event loop. The loop is in `server.rs`.

mod server;

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

fn main() -> std::io::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .as_deref()
        .unwrap_or("127.0.0.1:7000")
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let listener = mio::net::TcpListener::bind(addr)?;
    println!("listening on {}", listener.local_addr()?);
    // Nothing sets the flag here: Ctrl-C ends the process. Tests set it.
    let stop = Arc::new(AtomicBool::new(false));
    server::serve(listener, server::Config::default(), stop)?;
    Ok(())
}
