//! Run: cargo run --release -p fastnet-bench-echo --bin peer-tokio-framed -- [PORT|ADDR]
//!
//! The framed peer: tokio's multi-thread runtime and tokio-util's
//! `Framed<TcpStream, LengthDelimitedCodec>` (a 4-byte big-endian length
//! before the payload, as `fastnet bench --codec len=u32be` speaks), split
//! into a stream and a sink with the stream forwarded into the sink, as
//! tokio-util's documentation shows: replies are buffered in the sink and
//! flushed once the stream has no complete frame left, so frames that
//! arrive together leave together. Prints `listening on ADDR`; exits on
//! SIGTERM or SIGINT.

use futures_util::{StreamExt, TryStreamExt};
use tokio::net::TcpListener;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use fastnet_bench_echo::peer;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = peer::addr_from_args()?;
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
        tokio::spawn(async move {
            let codec = LengthDelimitedCodec::builder()
                .length_field_type::<u32>()
                .big_endian()
                .max_frame_length(peer::MAX_FRAME)
                .new_codec();
            let (sink, stream) = Framed::new(socket, codec).split();
            // Errors (a reset, an oversized frame) end this connection only.
            let _ = stream.map_ok(bytes::BytesMut::freeze).forward(sink).await;
        });
    }
}
