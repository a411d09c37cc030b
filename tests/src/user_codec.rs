//! Suite cases for a codec of the user's own ([`checksum`](crate::checksum)):
//! the driver's server and its own clients run it like a built-in one, and
//! a frame it refuses closes that connection alone.

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use fastnet_proto::connection::CloseReason;
use fastnet_proto::server::ServerConfig;
use fastnet_proto::Error;

use crate::checksum::{ChecksumDecoder, ChecksumEncoder};
use crate::{codec, wait_until, FrameClient, Rng, RunningServer, TestDriver};

/// Largest payload of the cases.
const MAX: usize = 1024;

fn start<D: TestDriver>() -> RunningServer {
    let mut config = ServerConfig::new(codec(MAX));
    config.max_connections = 100;
    D::start_echo_with(config, ChecksumDecoder::new(MAX), ChecksumEncoder::new(MAX))
}

/// A plain client that speaks the checksum codec.
fn connect(addr: SocketAddr) -> FrameClient<ChecksumDecoder, ChecksumEncoder> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect");
    FrameClient::with_codec(stream, ChecksumDecoder::new(MAX), ChecksumEncoder::new(MAX))
        .expect("client")
}

/// Payloads from empty to the maximum, random in between.
fn payloads(seed: u64, n: usize) -> Vec<Vec<u8>> {
    let mut rng = Rng::new(seed);
    let mut all = vec![Vec::new(), vec![0xa5; MAX]];
    all.extend((2..n).map(|_| {
        let len = rng.upto(MAX);
        rng.bytes(len)
    }));
    all
}

/// Pipelined frames of a user codec come back unchanged, through the
/// suite's plain client.
pub fn user_codec_echo<D: TestDriver>() {
    let mut server = start::<D>();
    let frames = payloads(11, 40);
    let mut clients: Vec<_> = (0..4).map(|_| connect(server.addr())).collect();
    for c in &mut clients {
        for f in &frames {
            c.send(f).expect("send");
        }
    }
    for c in &mut clients {
        for f in &frames {
            assert_eq!(
                c.recv().expect("recv").expect("open"),
                &f[..],
                "{}",
                D::NAME
            );
        }
    }
    drop(clients);
    assert!(wait_until(Duration::from_secs(2), || {
        server.events().closed(CloseReason::PeerClosed) == 4
    }));
    let (_, stats) = server.shutdown(Duration::from_secs(2));
    assert_eq!(stats.frames_in, 4 * frames.len() as u64);
    assert_eq!(stats.frames_out, stats.frames_in);
}

/// The driver's own `Client` and `Pool` speak a user codec too.
pub fn user_codec_echo_through_driver_clients<D: TestDriver>() {
    let mut server = start::<D>();
    let frames = payloads(12, 20);
    for pooled in [false, true] {
        let replies = D::echo_through_client(
            server.addr(),
            ChecksumDecoder::new(MAX),
            ChecksumEncoder::new(MAX),
            &frames,
            pooled,
        )
        .unwrap_or_else(|e| panic!("{} (pooled: {pooled}): {e}", D::NAME));
        assert_eq!(replies, frames, "{} (pooled: {pooled})", D::NAME);
    }
    let (_, stats) = server.shutdown(Duration::from_secs(2));
    assert_eq!(stats.frames_in, 2 * frames.len() as u64);
}

/// A frame whose checksum does not match closes its connection with
/// `CloseReason::Protocol`, naming the byte; another connection keeps
/// working.
pub fn user_codec_bad_checksum_closes_only_that_connection<D: TestDriver>() {
    let mut server = start::<D>();
    let mut good = connect(server.addr());
    good.roundtrip(b"before").expect("echo before");
    let mut bad = connect(server.addr());
    bad.roundtrip(b"fine so far").expect("echo");
    // "abc" sums to 0x60; the trailer says 0x00.
    bad.send_raw(b"\x00\x03abc\x00").expect("send");
    bad.expect_closed(Duration::from_secs(2))
        .expect("a bad checksum closes the connection");
    good.roundtrip(b"after")
        .expect("the other connection still echoes");
    let reason = CloseReason::Protocol(Error::InvalidFrame {
        reason: "checksum does not match the payload",
        pos: 5,
        byte: 0,
    });
    assert!(
        wait_until(Duration::from_secs(2), || server.events().closed(reason)
            == 1),
        "{}: closes {:?}",
        D::NAME,
        server.events().closes()
    );
    let (_, stats) = server.shutdown(Duration::from_secs(2));
    assert_eq!(stats.closed(reason), 1);
}
