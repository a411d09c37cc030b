//! A loopback echo server on `Framed<TcpStream, FastnetCodec<..>>` with the
//! length field codec, and a client on the same adapter.

use std::time::Duration;

use bytes::Bytes;
use fastnet_proto::codec::{Endian, LengthFieldConfig, LengthFieldDecoder, LengthFieldEncoder};
use fastnet_proto::Error;
use fastnet_tokio::{CodecError, FastnetCodec};
use futures_util::{SinkExt, StreamExt, TryStreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::codec::Framed;

/// Every test must finish well within this.
const LIMIT: Duration = Duration::from_secs(20);

const MAX_FRAME: usize = 16 * 1024;

fn codec() -> FastnetCodec<LengthFieldDecoder, LengthFieldEncoder> {
    let cfg = LengthFieldConfig::new(4, Endian::Big).max_frame(MAX_FRAME);
    FastnetCodec::length_field(cfg).expect("length field codec")
}

/// Serves `conns` connections, each echoing every frame back; returns how
/// each connection ended.
async fn echo_server(
    conns: usize,
) -> (
    std::net::SocketAddr,
    JoinHandle<Vec<Result<(), CodecError>>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let server = tokio::spawn(async move {
        let mut tasks = Vec::new();
        for _ in 0..conns {
            let (socket, _) = listener.accept().await.expect("accept");
            tasks.push(tokio::spawn(async move {
                let (sink, stream) = Framed::new(socket, codec()).split();
                stream.map_ok(bytes::BytesMut::freeze).forward(sink).await
            }));
        }
        let mut ends = Vec::new();
        for t in tasks {
            ends.push(t.await.expect("connection task"));
        }
        ends
    });
    (addr, server)
}

fn payload(i: usize) -> Bytes {
    // Sizes from empty to several KiB, so frames span reads and share them.
    let len = (i * 397) % 5000;
    Bytes::from((0..len).map(|j| (i + j) as u8).collect::<Vec<u8>>())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echoes_frames_over_loopback() {
    tokio::time::timeout(LIMIT, async {
        let (addr, server) = echo_server(3).await;
        let mut clients = Vec::new();
        for c in 0..3 {
            clients.push(tokio::spawn(async move {
                let socket = TcpStream::connect(addr).await.expect("connect");
                let mut framed = Framed::new(socket, codec());
                // Pipelined: every frame sent before the first reply is read.
                for i in 0..200 {
                    framed.feed(payload(c * 1000 + i)).await.expect("feed");
                }
                // The codec takes several item types; say which sink flushes.
                SinkExt::<Bytes>::flush(&mut framed).await.expect("flush");
                for i in 0..200 {
                    let echo = framed.next().await.expect("an echo").expect("echo ok");
                    assert_eq!(echo, payload(c * 1000 + i), "frame {i} of client {c}");
                }
            }));
        }
        for c in clients {
            c.await.expect("client");
        }
        // Clients dropped their sockets: each connection ends cleanly.
        for end in server.await.expect("server") {
            assert!(end.is_ok(), "{end:?}");
        }
    })
    .await
    .expect("test took too long");
}

#[tokio::test]
async fn oversized_frame_ends_the_connection_with_the_limit_named() {
    tokio::time::timeout(LIMIT, async {
        let (addr, server) = echo_server(1).await;
        let socket = TcpStream::connect(addr).await.expect("connect");
        let mut framed = Framed::new(socket, codec());
        framed
            .send(Bytes::from_static(b"fine"))
            .await
            .expect("send");
        assert_eq!(&framed.next().await.unwrap().unwrap()[..], b"fine");

        // Only a header announcing one byte too many: the server refuses the
        // frame before its body arrives.
        let header = ((MAX_FRAME - 4 + 1) as u32).to_be_bytes();
        tokio::io::AsyncWriteExt::write_all(framed.get_mut(), &header)
            .await
            .expect("write header");
        let end = server.await.expect("server").pop().expect("one connection");
        let err = end.expect_err("the server must refuse the frame");
        assert_eq!(
            err.fastnet_error(),
            Some(Error::FrameTooLarge {
                len: MAX_FRAME as u64 + 1,
                max: MAX_FRAME
            })
        );
        assert!(err
            .to_string()
            .contains("maximum frame length of 16384 bytes"));
        // The server closed: the client's stream ends.
        assert!(framed.next().await.is_none());
    })
    .await
    .expect("test took too long");
}

#[tokio::test]
async fn client_refuses_to_send_an_oversized_frame() {
    let (addr, _server) = echo_server(1).await;
    let socket = TcpStream::connect(addr).await.expect("connect");
    let mut framed = Framed::new(socket, codec());
    let err = framed
        .send(Bytes::from(vec![0u8; MAX_FRAME]))
        .await
        .expect_err("too large");
    assert_eq!(
        err.fastnet_error(),
        Some(Error::PayloadTooLarge {
            len: MAX_FRAME + 4,
            max: MAX_FRAME
        })
    );
}
