//! Echo correctness: many clients, random-size frames, every byte checked.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;
use fastnet_proto::codec::{Endian, LengthFieldConfig};
use fastnet_smol::{CodecSpec, ConnInfo, Ctx, Handler, Server};

struct Echo;

impl Handler for Echo {
    type State = ();
    fn on_connect(&self, _: &ConnInfo) -> Option<()> {
        Some(())
    }
    fn on_frame(
        &self,
        ctx: &mut Ctx<'_, ()>,
        frame: &[u8],
    ) -> impl std::future::Future<Output = ()> + Send {
        ctx.send(frame).unwrap();
        std::future::ready(())
    }
}

fn u16_codec() -> CodecSpec {
    let mut cfg = LengthFieldConfig::new(2, Endian::Big);
    cfg.max_frame = 4096;
    CodecSpec::LengthField(cfg)
}

#[test]
fn many_clients_random_frames_every_byte_verified() {
    const CLIENTS: usize = 100;
    const FRAMES: usize = 100;
    let srv = start(
        Server::builder(u16_codec()).rx_buffer(4096).tx_buffer(8192),
        Echo,
    );
    let threads: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let addr = srv.addr;
            std::thread::spawn(move || {
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (c as u64 + 1));
                let mut s = TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(WAIT)).unwrap();
                let mut sent = Vec::new();
                // Pipeline in bursts of up to 8 frames, then read them back.
                let mut done = 0;
                while done < FRAMES {
                    let burst = (1 + rng.below(8) as usize).min(FRAMES - done);
                    let mut wire = Vec::new();
                    sent.clear();
                    for _ in 0..burst {
                        let len = rng.below(1000) as usize;
                        let payload: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                        wire.extend_from_slice(&(len as u16).to_be_bytes());
                        wire.extend_from_slice(&payload);
                        sent.push(payload);
                    }
                    s.write_all(&wire).unwrap();
                    for p in &sent {
                        let mut hdr = [0u8; 2];
                        s.read_exact(&mut hdr).unwrap();
                        assert_eq!(u16::from_be_bytes(hdr) as usize, p.len());
                        let mut got = vec![0u8; p.len()];
                        s.read_exact(&mut got).unwrap();
                        assert_eq!(&got, p, "client {c}");
                    }
                    done += burst;
                }
                done
            })
        })
        .collect();
    let total: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(total, CLIENTS * FRAMES);
    let stats = srv.stop(Duration::from_secs(2));
    assert_eq!(stats.accepted, CLIENTS as u64);
    assert_eq!(stats.frames_in, (CLIENTS * FRAMES) as u64);
    assert_eq!(stats.frames_out, (CLIENTS * FRAMES) as u64);
    assert_eq!(stats.bytes_in, stats.bytes_out);
    assert_eq!(stats.open(), 0);
}

#[test]
fn frames_that_arrive_with_eof_are_answered() {
    let srv = start(Server::builder(CodecSpec::lines(100)), Echo);
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(b"a\nbb\nccc\n").unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"a\nbb\nccc\n");
    let stats = srv.stop(Duration::from_secs(1));
    assert_eq!(stats.closed(fastnet_smol::CloseReason::PeerClosed), 1);
}

#[test]
fn async_client_roundtrip_and_big_pipeline_with_backpressure() {
    let srv = start(Server::builder(CodecSpec::lines(64)).tx_buffer(256), Echo);
    smol::block_on(async {
        let mut c = fastnet_smol::Client::connect(srv.addr, CodecSpec::lines(64), WAIT)
            .await
            .unwrap();
        c.send(b"hello").await.unwrap();
        assert_eq!(c.recv().await.unwrap(), Some(&b"hello"[..]));
        // 2000 lines at once: far more than the 256-byte reply buffer.
        for i in 0..2000 {
            c.feed(format!("line {i}").as_bytes()).unwrap();
        }
        c.flush().await.unwrap();
        for i in 0..2000 {
            let want = format!("line {i}");
            assert_eq!(c.recv().await.unwrap(), Some(want.as_bytes()));
        }
    });
    srv.stop(Duration::from_secs(1));
}
