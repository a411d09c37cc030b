//! Run: cargo run --release -p fastnet-bench-echo --bin peer-tokio-raw -- [PORT|ADDR]
//!
//! The raw tokio peer: tokio's multi-thread runtime, one task per
//! connection that reads into its buffer and writes back what it read, as
//! in tokio's echo example (with an 8 KiB buffer, so 16 pipelined 512-byte
//! requests come in one read). No framing. Prints `listening on ADDR`;
//! exits on SIGTERM or SIGINT.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use fastnet_bench_echo::peer;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = peer::addr_from_args()?;
    peer::raise_fd_limit()?;
    peer::exit_on_signal()?;
    let listener = TcpListener::bind(addr).await?;
    peer::announce(listener.local_addr()?);
    loop {
        let mut socket = match listener.accept().await {
            Ok((socket, _)) => socket,
            Err(e) if peer::accept_error_is_transient(&e) => continue,
            Err(e) => return Err(e),
        };
        socket.set_nodelay(true)?;
        tokio::spawn(async move {
            let mut buf = vec![0u8; peer::RAW_BUF];
            loop {
                let n = match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                if socket.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        });
    }
}
