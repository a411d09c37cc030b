//! Run: cargo run --release -p fastnet-bench-echo --bin peer-tokio-fastnet -- [PORT|ADDR]
//!
//! `peer-tokio-framed` with fastnet's codec in place of tokio-util's: the
//! same tokio multi-thread runtime, the same `Framed<TcpStream, _>` split
//! into a stream forwarded into the sink, but the codec is fastnet-tokio's
//! `FastnetCodec` over fastnet's length field decoder and encoder (a 4-byte
//! big-endian length before the payload, as `fastnet bench --codec
//! len=u32be` speaks). Side by side with `peer-tokio-framed`, it measures
//! the codec alone. Prints `listening on ADDR`; exits on SIGTERM or SIGINT.

use fastnet_proto::codec::{Endian, LengthFieldConfig};
use fastnet_tokio::FastnetCodec;
use futures_util::{StreamExt, TryStreamExt};
use tokio::net::TcpListener;
use tokio_util::codec::Framed;

use fastnet_bench_echo::peer;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = peer::addr_from_args()?;
    peer::raise_fd_limit()?;
    peer::exit_on_signal()?;
    // fastnet's maximum counts the whole frame, tokio-util's the payload
    // only: add the 4-byte header so both peers take the same frames.
    let cfg = LengthFieldConfig::new(4, Endian::Big).max_frame(peer::MAX_FRAME + 4);
    let codec = FastnetCodec::length_field(cfg).map_err(std::io::Error::other)?;
    let listener = TcpListener::bind(addr).await?;
    peer::announce(listener.local_addr()?);
    loop {
        let socket = match listener.accept().await {
            Ok((socket, _)) => socket,
            Err(e) if peer::accept_error_is_transient(&e) => continue,
            Err(e) => return Err(e),
        };
        socket.set_nodelay(true)?;
        // A fresh decoder state for each connection.
        let codec = codec.clone();
        tokio::spawn(async move {
            let (sink, stream) = Framed::new(socket, codec).split();
            // Errors (a reset, an oversized frame) end this connection only.
            let _ = stream.map_ok(bytes::BytesMut::freeze).forward(sink).await;
        });
    }
}
