//! [`Client`]: one blocking, framed connection to a server.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use fastnet_proto::codec::{AnyDecoder, AnyEncoder, CodecSpec, Decoded, Decoder, Encoder};
use fastnet_proto::Buffer;

/// Smallest receive buffer, so small frames do not cost a read each.
const MIN_RX: usize = 4096;

/// A blocking, framed TCP connection: [`send`](Self::send) frames a payload
/// and writes it, [`recv`](Self::recv) returns the next frame's payload.
///
/// ```no_run
/// use std::time::Duration;
/// use fastnet_proto::codec::CodecSpec;
/// use fastnet_std::Client;
///
/// let mut client = Client::connect("127.0.0.1:7000", CodecSpec::lines(1024), Duration::from_secs(1))?;
/// client.send(b"ping")?;
/// assert_eq!(client.recv()?, Some(&b"ping"[..]));
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Client {
    stream: TcpStream,
    peer: SocketAddr,
    decoder: AnyDecoder,
    encoder: AnyEncoder,
    rx: Buffer<Box<[u8]>>,
    /// Bytes of the frame last returned by `recv`, dropped on the next call.
    returned: usize,
    /// Encoded frame, reused across sends.
    scratch: Vec<u8>,
    broken: bool,
}

impl Client {
    /// Connects to `addr` (each resolved address in turn, each within
    /// `timeout`), framing both directions with `codec`. `TCP_NODELAY` is
    /// set.
    pub fn connect(
        addr: impl ToSocketAddrs,
        codec: CodecSpec,
        timeout: Duration,
    ) -> io::Result<Client> {
        let decoder = codec.decoder().map_err(codec_error)?;
        let encoder = codec.encoder().map_err(codec_error)?;
        let mut last = None;
        for peer in addr.to_socket_addrs()? {
            match TcpStream::connect_timeout(&peer, timeout) {
                Ok(stream) => {
                    stream.set_nodelay(true)?;
                    let rx_len = decoder.max_frame().max(MIN_RX);
                    return Ok(Client {
                        stream,
                        peer,
                        decoder,
                        encoder,
                        rx: Buffer::new(vec![0; rx_len].into_boxed_slice()),
                        returned: 0,
                        scratch: Vec::new(),
                        broken: false,
                    });
                }
                Err(e) => last = Some(io::Error::new(e.kind(), format!("connect to {peer}: {e}"))),
            }
        }
        Err(last.unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "no address to connect to")
        }))
    }

    /// Frames `payload` and writes the whole frame.
    ///
    /// A payload the codec refuses fails with
    /// [`io::ErrorKind::InvalidInput`] and leaves the connection usable; an
    /// IO error marks it [broken](Self::is_broken).
    pub fn send(&mut self, payload: &[u8]) -> io::Result<()> {
        self.scratch.clear();
        self.encoder
            .encode_vec(payload, &mut self.scratch)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let result = self.stream.write_all(&self.scratch);
        self.broken |= result.is_err();
        result
    }

    /// The next frame's payload, or `None` once the peer closed the
    /// connection cleanly (at a frame boundary).
    ///
    /// A read timeout ([`set_read_timeout`](Self::set_read_timeout)) fails
    /// with [`io::ErrorKind::WouldBlock`] or [`io::ErrorKind::TimedOut`] and
    /// keeps a partial frame for the next call; a malformed stream
    /// ([`io::ErrorKind::InvalidData`]), a close in the middle of a frame
    /// ([`io::ErrorKind::UnexpectedEof`]) or another IO error marks the
    /// connection [broken](Self::is_broken).
    pub fn recv(&mut self) -> io::Result<Option<&[u8]>> {
        if self.returned > 0 {
            self.rx.consume(self.returned);
            self.returned = 0;
        }
        loop {
            match self.decoder.decode(self.rx.filled_mut()) {
                Ok(Decoded::Frame(frame)) => {
                    self.returned = frame.consumed;
                    return Ok(Some(frame.payload(self.rx.filled())));
                }
                Ok(Decoded::Skip(n)) => {
                    self.rx.consume(n);
                    continue;
                }
                Ok(Decoded::NeedMore { .. }) => {}
                Err(e) => {
                    self.broken = true;
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("bad frame from {}: {}", self.peer, e.error),
                    ));
                }
            }
            if self.rx.spare_len() < self.rx.free() {
                self.rx.compact();
            }
            match self.stream.read(self.rx.spare_mut()) {
                Ok(0) if self.rx.is_empty() => {
                    // Clean, but the connection is finished all the same.
                    self.broken = true;
                    return Ok(None);
                }
                Ok(0) => {
                    self.broken = true;
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "{} closed the connection in the middle of a frame",
                            self.peer
                        ),
                    ));
                }
                Ok(n) => self.rx.commit(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    if !matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) {
                        self.broken = true;
                    }
                    return Err(e);
                }
            }
        }
    }

    /// How long [`recv`](Self::recv) may block (`None`: forever).
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.stream.set_read_timeout(timeout)
    }

    /// How long [`send`](Self::send) may block (`None`: forever).
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.stream.set_write_timeout(timeout)
    }

    /// The server's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// This end's address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.stream.local_addr()
    }

    /// Whether an error or the peer's close left the connection unusable
    /// (a [`Pool`](crate::Pool) discards such connections).
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// The socket, for options this type does not cover.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("peer", &self.peer)
            .field("buffered", &self.rx.len())
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

fn codec_error(e: fastnet_proto::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("codec: {e}"))
}
