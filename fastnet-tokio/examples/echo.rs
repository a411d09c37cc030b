//! Run: cargo run -p fastnet-tokio --example echo -- [ADDR | --self-test]
//!
//! A tokio echo server on `Framed<TcpStream, FastnetCodec<..>>`: each frame
//! is a 4-byte big-endian length and the payload (what `fastnet bench
//! --codec len=u32be` speaks), echoed back as it came. Given an address
//! (default `127.0.0.1:7000`) it prints `listening on ADDR` and serves
//! until killed. With `--self-test` it serves on a free loopback port,
//! sends itself a hundred frames, checks every echo and exits.

use std::net::SocketAddr;

use bytes::Bytes;
use fastnet_proto::codec::{Endian, LengthFieldConfig, LengthFieldDecoder, LengthFieldEncoder};
use fastnet_tokio::FastnetCodec;
use futures_util::{SinkExt, StreamExt, TryStreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Framed;

type Codec = FastnetCodec<LengthFieldDecoder, LengthFieldEncoder>;

fn codec() -> Codec {
    let cfg = LengthFieldConfig::new(4, Endian::Big).max_frame(64 * 1024);
    FastnetCodec::length_field(cfg).expect("a valid length field config")
}

/// Accepts connections for ever, one task each.
async fn serve(listener: TcpListener) -> std::io::Result<()> {
    loop {
        let (socket, peer) = listener.accept().await?;
        socket.set_nodelay(true)?;
        tokio::spawn(async move {
            let (sink, stream) = Framed::new(socket, codec()).split();
            // Replies queue in the sink and leave together once no complete
            // frame is left to read.
            if let Err(e) = stream.map_ok(bytes::BytesMut::freeze).forward(sink).await {
                eprintln!("{peer}: {e}");
            }
        });
    }
}

/// Sends a hundred frames to `addr`, then checks the echoes.
async fn self_test(addr: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    let mut framed = Framed::new(TcpStream::connect(addr).await?, codec());
    let frames: Vec<Bytes> = (0..100u32)
        .map(|i| Bytes::from(vec![i as u8; (i as usize * 37) % 2000]))
        .collect();
    for frame in &frames {
        framed.feed(frame.clone()).await?;
    }
    SinkExt::<Bytes>::flush(&mut framed).await?;
    for (i, sent) in frames.iter().enumerate() {
        let echo = framed
            .next()
            .await
            .ok_or_else(|| format!("the server closed before echoing frame {i}"))??;
        assert_eq!(&echo[..], &sent[..], "echo of frame {i}");
    }
    println!("ok: {} frames echoed", frames.len());
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = std::env::args().nth(1);
    if arg.as_deref() == Some("--self-test") {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(serve(listener));
        self_test(addr).await?;
        return Ok(());
    }
    let addr = arg.as_deref().unwrap_or("127.0.0.1:7000");
    let listener = TcpListener::bind(addr).await?;
    println!("listening on {}", listener.local_addr()?);
    serve(listener).await?;
    Ok(())
}
