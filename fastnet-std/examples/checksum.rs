//! Run: cargo run -p fastnet-std --example std-checksum
//!
//! A codec none of the built-in ones can express, served by the blocking
//! driver: frames of `[u16 BE length][payload][u8 XOR of the payload]`
//! (the codec is `fastnet_tests::checksum`, shared with fastnet-smol's
//! example and the behaviour suite). The example starts the server, echoes
//! through the driver's own client, then sends a frame with a wrong
//! checksum: the server closes that connection with
//! `CloseReason::Protocol`, naming the byte.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use fastnet_std::{Client, CloseReason, ConnInfo, Ctx, Handler, Server};
use fastnet_tests::checksum::{ChecksumDecoder, ChecksumEncoder};

/// Largest payload.
const MAX: usize = 4096;

/// Echoes every frame back.
struct Echo;

impl Handler for Echo {
    type State = ();

    fn on_connect(&self, _info: &ConnInfo) -> Option<()> {
        Some(())
    }

    fn on_frame(&self, ctx: &mut Ctx<'_, ()>, frame: &[u8]) {
        if ctx.send(frame).is_err() {
            ctx.close();
        }
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
    let serving = std::thread::spawn(move || server.serve(Echo));

    let timeout = Duration::from_secs(2);
    let mut client = Client::connect_with(
        addr,
        ChecksumDecoder::new(MAX),
        ChecksumEncoder::new(MAX),
        timeout,
    )?;
    client.set_read_timeout(Some(timeout))?;
    let mut reply = Vec::new();
    client.request(b"hello, checksum", &mut reply)?;
    println!("client: echoed {:?}", String::from_utf8_lossy(&reply));

    // "abc" sums to 0x60; this trailer says 0x00.
    let mut raw = TcpStream::connect(addr)?;
    raw.set_read_timeout(Some(timeout))?;
    raw.write_all(b"\x00\x03abc\x00")?;
    let closed = matches!(raw.read(&mut [0; 16]), Ok(0) | Err(_));
    println!("raw: connection closed after a bad checksum: {closed}");

    drop(client);
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
