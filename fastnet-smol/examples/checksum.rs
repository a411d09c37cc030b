//! Run: cargo run -p fastnet-smol --example smol-checksum
//!
//! A codec none of the built-in ones can express, served by the async
//! driver: frames of `[u16 BE length][payload][u8 XOR of the payload]`
//! (the codec is `fastnet_tests::checksum`, shared with fastnet-std's
//! example and the behaviour suite). The example starts the server, echoes
//! through the driver's own pool, then sends a frame with a wrong
//! checksum: the server closes that connection with
//! `CloseReason::Protocol`, naming the byte.

use std::future::Future;
use std::time::Duration;

use fastnet_smol::{CloseReason, ConnInfo, Ctx, Handler, Pool, PoolConfig, Server};
use fastnet_tests::checksum::{ChecksumDecoder, ChecksumEncoder};
use smol::io::{AsyncReadExt, AsyncWriteExt};

/// Largest payload.
const MAX: usize = 4096;

/// Echoes every frame back.
struct Echo;

impl Handler for Echo {
    type State = ();

    fn on_connect(&self, _info: &ConnInfo) -> Option<()> {
        Some(())
    }

    fn on_frame(&self, ctx: &mut Ctx<'_, ()>, frame: &[u8]) -> impl Future<Output = ()> + Send {
        if ctx.send(frame).is_err() {
            ctx.close();
        }
        std::future::ready(())
    }

    fn on_close(&self, info: &ConnInfo, _state: (), reason: CloseReason) {
        println!("server: {} closed: {reason}", info.peer_addr());
    }
}

fn main() -> std::io::Result<()> {
    let server =
        Server::builder_with(ChecksumDecoder::new(MAX), ChecksumEncoder::new(MAX)).bind()?;
    let addr = server.local_addr();
    let shutdown = server.shutdown_handle();
    let serving = std::thread::spawn(move || server.run(Echo));

    let timeout = Duration::from_secs(2);
    smol::block_on(async {
        let pool = Pool::with_codec(
            addr,
            ChecksumDecoder::new(MAX),
            ChecksumEncoder::new(MAX),
            PoolConfig::default(),
        )?;
        let mut reply = Vec::new();
        pool.get()
            .await?
            .request(b"hello, checksum", &mut reply)
            .await?;
        println!("client: echoed {:?}", String::from_utf8_lossy(&reply));

        // "abc" sums to 0x60; this trailer says 0x00.
        let mut raw = smol::net::TcpStream::connect(addr).await?;
        raw.write_all(b"\x00\x03abc\x00").await?;
        let read = smol::future::or(async { raw.read(&mut [0; 16]).await.ok() }, async {
            smol::Timer::after(timeout).await;
            Some(1)
        });
        let closed = matches!(read.await, Some(0) | None);
        println!("raw: connection closed after a bad checksum: {closed}");
        Ok::<_, std::io::Error>(())
    })?;

    shutdown.shutdown(timeout);
    let stats = serving.join().expect("serve panicked")?;
    println!(
        "server: {} frames in, {} protocol close(s)",
        stats.frames_in,
        stats.closed(CloseReason::Protocol(fastnet_proto::Error::InvalidFrame {
            reason: "checksum does not match the payload",
            pos: 5,
            byte: 0,
        }))
    );
    Ok(())
}
