//! [`Client`]: one blocking, framed connection to a server.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use fastnet_driver::client::{spec_codec, Framing, Step};
use fastnet_driver::socket::set_keepalive;
use fastnet_driver::tls::{ClientLink, Handshake, TlsConnector};
use fastnet_proto::codec::{AnyDecoder, AnyEncoder, CodecSpec, Decoder, Encoder};
use fastnet_proto::server::DEFAULT_KEEPALIVE;

/// A blocking, framed TCP connection: [`send`](Self::send) frames a payload
/// and writes it, [`recv`](Self::recv) returns the next frame's payload.
///
/// ```no_run
/// use std::time::{Duration, Instant};
/// use fastnet_proto::codec::CodecSpec;
/// use fastnet_std::Client;
///
/// let mut client = Client::connect("127.0.0.1:7000", CodecSpec::lines(1024), Duration::from_secs(1))?;
/// client.send(b"ping")?;
/// assert_eq!(client.recv()?, Some(&b"ping"[..]));
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// `D` and `E` are the codec: the built-in ones by default, any
/// [`Decoder`] and [`Encoder`] through [`Client::connect_with`].
pub struct Client<D = AnyDecoder, E = AnyEncoder> {
    stream: TcpStream,
    framing: Framing<D, E>,
    link: ClientLink,
}

impl Client {
    /// Connects to `addr` (each resolved address in turn, each within
    /// `timeout`), framing both directions with `codec`. `TCP_NODELAY` is
    /// set, and TCP keepalive after 60 s of silence
    /// ([`set_keepalive`](Client::set_keepalive) changes it).
    pub fn connect(
        addr: impl ToSocketAddrs,
        codec: CodecSpec,
        timeout: Duration,
    ) -> io::Result<Client> {
        let (decoder, encoder) = spec_codec(&codec)?;
        Client::connect_with(addr, decoder, encoder, timeout)
    }

    /// Connects as [`connect`](Self::connect) does, then runs a TLS
    /// handshake (within the connector's handshake timeout) that checks
    /// the server's certificate against the connector's roots and server
    /// name. Feature `tls`.
    ///
    /// With TLS 1.3 a server that refuses this client's certificate (or its
    /// lack of one) says so after the client's side of the handshake is
    /// done: that shows as an error of the first [`recv`](Self::recv).
    #[cfg(feature = "tls")]
    pub fn connect_tls(
        addr: impl ToSocketAddrs,
        codec: CodecSpec,
        timeout: Duration,
        tls: &crate::tls::TlsConnector,
    ) -> io::Result<Client> {
        let (decoder, encoder) = spec_codec(&codec)?;
        Client::connect_tls_with(addr, decoder, encoder, timeout, tls)
    }
}

impl<D: Decoder, E: Encoder> Client<D, E> {
    /// Connects as [`connect`](Client::connect) does, with a codec of your
    /// own: `encoder` frames requests, `decoder` (a fresh one) reads
    /// replies, into a buffer of its maximum frame.
    pub fn connect_with(
        addr: impl ToSocketAddrs,
        decoder: D,
        encoder: E,
        timeout: Duration,
    ) -> io::Result<Self> {
        Client::connect_link(
            addr,
            decoder,
            encoder,
            timeout,
            None,
            Some(DEFAULT_KEEPALIVE),
        )
    }

    /// [`connect_tls`](Client::connect_tls) with a codec of your own (see
    /// [`connect_with`](Self::connect_with)). Feature `tls`.
    #[cfg(feature = "tls")]
    pub fn connect_tls_with(
        addr: impl ToSocketAddrs,
        decoder: D,
        encoder: E,
        timeout: Duration,
        tls: &crate::tls::TlsConnector,
    ) -> io::Result<Self> {
        Client::connect_link(
            addr,
            decoder,
            encoder,
            timeout,
            Some(tls),
            Some(DEFAULT_KEEPALIVE),
        )
    }

    /// Connects with TCP keepalive after `keepalive` of silence (`None`:
    /// off), then runs the TLS handshake if `tls` is given.
    pub(crate) fn connect_link(
        addr: impl ToSocketAddrs,
        decoder: D,
        encoder: E,
        timeout: Duration,
        tls: Option<&TlsConnector>,
        keepalive: Option<Duration>,
    ) -> io::Result<Self> {
        let link = ClientLink::new(tls)?;
        let (stream, peer) = connect_tcp(addr, timeout, keepalive)?;
        let mut client = Client {
            stream,
            framing: Framing::with_codec(decoder, encoder, peer)?,
            link,
        };
        if client.link.is_tls() {
            let limit = client.link.handshake_timeout();
            client.handshake(limit).map_err(|e| match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("TLS handshake with {peer} not completed within {limit:?}"),
                ),
                kind => io::Error::new(kind, format!("TLS handshake with {peer}: {e}")),
            })?;
        }
        Ok(client)
    }

    /// Runs the TLS handshake to its end, within `limit`.
    fn handshake(&mut self, limit: Duration) -> io::Result<()> {
        let start = Instant::now();
        loop {
            // At least a millisecond: zero means "no timeout".
            let left = limit.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Err(io::ErrorKind::TimedOut.into());
            }
            let left = Some(left.max(Duration::from_millis(1)));
            self.stream.set_read_timeout(left)?;
            self.stream.set_write_timeout(left)?;
            if self.link.handshake(&self.stream)? == Handshake::Done {
                break;
            }
        }
        self.stream.set_read_timeout(None)?;
        self.stream.set_write_timeout(None)
    }

    /// Frames `payload` and writes the whole frame (after any frames
    /// [fed](Self::feed) before it).
    ///
    /// A payload the codec refuses fails with
    /// [`io::ErrorKind::InvalidInput`] and leaves the connection usable; an
    /// IO error marks it [broken](Self::is_broken).
    pub fn send(&mut self, payload: &[u8]) -> io::Result<()> {
        self.feed(payload)?;
        self.flush()
    }

    /// Frames `payload` and queues it without writing, for pipelining;
    /// [`flush`](Self::flush) writes everything queued in one go.
    pub fn feed(&mut self, payload: &[u8]) -> io::Result<()> {
        self.framing.feed(payload)
    }

    /// Writes every queued frame.
    pub fn flush(&mut self) -> io::Result<()> {
        let unsent = self.framing.unsent();
        let written = if self.link.is_tls() {
            self.link.encrypt(unsent).and_then(|()| {
                while self.link.wants_write() {
                    self.link.write(&self.stream)?;
                }
                Ok(())
            })
        } else {
            (&self.stream).write_all(unsent)
        };
        match written.map(|()| unsent.len()) {
            Ok(unsent) => {
                self.framing.handle_sent(unsent);
                Ok(())
            }
            Err(e) => Err(self.framing.fail(e)),
        }
    }

    /// The next frame's payload, borrowed until the next call, or `None`
    /// once the peer closed the connection cleanly (at a frame boundary).
    ///
    /// A read timeout ([`set_read_timeout`](Self::set_read_timeout)) fails
    /// with [`io::ErrorKind::WouldBlock`] or [`io::ErrorKind::TimedOut`] and
    /// keeps a partial frame for the next call; a malformed stream
    /// ([`io::ErrorKind::InvalidData`]), a close in the middle of a frame
    /// ([`io::ErrorKind::UnexpectedEof`]) or another IO error marks the
    /// connection [broken](Self::is_broken).
    pub fn recv(&mut self) -> io::Result<Option<&[u8]>> {
        loop {
            match self.framing.poll()? {
                Step::Frame => return Ok(self.framing.frame()),
                Step::End => return Ok(None),
                Step::NeedMore => {}
            }
            let buf = self.framing.read_buf();
            let read = if self.link.is_tls() {
                self.link.read(&self.stream, buf)
            } else {
                (&self.stream).read(buf)
            };
            match read {
                Ok(n) => self.framing.handle_read(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.framing.fail(e)),
            }
        }
    }

    /// Sends `payload` and waits for one reply frame, copied into `out`
    /// (a close before the reply is [`io::ErrorKind::UnexpectedEof`]).
    pub fn request(&mut self, payload: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        self.send(payload)?;
        let peer = self.peer_addr();
        fastnet_driver::client::take_reply(peer, self.recv()?, out)
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
        self.framing.peer()
    }

    /// This end's address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.stream.local_addr()
    }

    /// Whether an error or the peer's close left the connection unusable
    /// (a [`Pool`](crate::Pool) discards such connections).
    pub fn is_broken(&self) -> bool {
        self.framing.is_broken()
    }

    /// Whether the connection can serve another user: not broken, nothing
    /// unread, nothing fed and unsent. (A server's close while the
    /// connection sat idle shows on its next use.)
    pub(crate) fn is_reusable(&self) -> bool {
        self.framing.is_idle()
    }

    /// Turns TCP keepalive on, probing after `idle` without traffic, or
    /// off (`None`). Connections start with keepalive after 60 s
    /// ([`DEFAULT_KEEPALIVE`]); a [`Pool`](crate::Pool)'s follow its
    /// [`PoolConfig::keepalive`](field@crate::PoolConfig::keepalive).
    pub fn set_keepalive(&self, idle: Option<Duration>) -> io::Result<()> {
        set_keepalive(&self.stream, idle)
    }

    /// The socket, for options this type does not cover (over TLS, the
    /// socket under the session: reading or writing it directly breaks the
    /// session).
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Whether the connection is encrypted.
    pub fn is_tls(&self) -> bool {
        self.link.is_tls()
    }

    /// What the TLS handshake negotiated (`None` without TLS). Feature
    /// `tls`.
    #[cfg(feature = "tls")]
    pub fn tls(&self) -> Option<&crate::tls::TlsInfo> {
        self.link.info()
    }
}

impl<D: Decoder, E> fmt::Debug for Client<D, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("framing", &self.framing)
            .field("tls", &self.link.is_tls())
            .finish_non_exhaustive()
    }
}

/// Connects to the first of `addr`'s addresses that answers within
/// `timeout`, with `TCP_NODELAY` set and keepalive as `keepalive` says
/// (best effort).
fn connect_tcp(
    addr: impl ToSocketAddrs,
    timeout: Duration,
    keepalive: Option<Duration>,
) -> io::Result<(TcpStream, SocketAddr)> {
    let mut last = None;
    for peer in addr.to_socket_addrs()? {
        match TcpStream::connect_timeout(&peer, timeout) {
            Ok(stream) => {
                stream.set_nodelay(true)?;
                let _ = set_keepalive(&stream, keepalive);
                return Ok((stream, peer));
            }
            Err(e) => last = Some(io::Error::new(e.kind(), format!("connect to {peer}: {e}"))),
        }
    }
    Err(last
        .unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address to connect to")))
}
