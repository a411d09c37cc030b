//! [`Client`]: one framed connection to a server, async.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use fastnet_driver::client::{spec_codec, Framing, Step};
use fastnet_driver::socket::set_keepalive;
use fastnet_driver::tls::{ClientLink, Handshake, TlsConnector};
use fastnet_proto::codec::{AnyDecoder, AnyEncoder, CodecSpec, Decoder, Encoder};
use fastnet_proto::server::DEFAULT_KEEPALIVE;
use smol::net::AsyncToSocketAddrs;
use smol::{future, Async, Timer};

/// One framed TCP connection to a server.
///
/// [`send`](Self::send) frames and writes a payload (or
/// [`feed`](Self::feed) several and [`flush`](Self::flush) them at once);
/// [`recv`](Self::recv) returns the next frame, borrowed from the client's
/// buffer until the next call. An IO or framing error or the server's
/// close marks the client [broken](Self::is_broken) (a [`Pool`](crate::Pool)
/// then discards it).
///
/// Unlike the blocking client there is no `set_read_timeout` /
/// `set_write_timeout`: the socket is non-blocking, so a socket timeout
/// would never fire; bound an `.await` with a timer instead
/// (`smol::future::or` with `smol::Timer::after`).
///
/// ```no_run
/// # async fn demo(addr: std::net::SocketAddr) -> std::io::Result<()> {
/// use std::time::Duration;
/// use fastnet_smol::{Client, CodecSpec};
///
/// let mut client = Client::connect(addr, CodecSpec::lines(1024), Duration::from_secs(1)).await?;
/// client.send(b"ping").await?;
/// assert_eq!(client.recv().await?, Some(&b"ping"[..]));
/// # Ok(()) }
/// ```
///
/// `D` and `E` are the codec: the built-in ones by default, any
/// [`Decoder`] and [`Encoder`] through [`Client::connect_with`].
pub struct Client<D = AnyDecoder, E = AnyEncoder> {
    stream: Async<TcpStream>,
    framing: Framing<D, E>,
    /// The TLS session, for [`connect_tls`](Self::connect_tls).
    link: ClientLink,
}

impl Client {
    /// Connects to `addr` (each resolved address in turn, each within
    /// `timeout`), framing both directions with `codec`. `TCP_NODELAY` is
    /// set, and TCP keepalive after 60 s of silence
    /// ([`set_keepalive`](Client::set_keepalive) changes it).
    pub async fn connect(
        addr: impl AsyncToSocketAddrs,
        codec: CodecSpec,
        timeout: Duration,
    ) -> io::Result<Client> {
        let (decoder, encoder) = spec_codec(&codec)?;
        Client::connect_with(addr, decoder, encoder, timeout).await
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
    pub async fn connect_tls(
        addr: impl AsyncToSocketAddrs,
        codec: CodecSpec,
        timeout: Duration,
        tls: &crate::tls::TlsConnector,
    ) -> io::Result<Client> {
        let (decoder, encoder) = spec_codec(&codec)?;
        Client::connect_tls_with(addr, decoder, encoder, timeout, tls).await
    }
}

impl<D: Decoder, E: Encoder> Client<D, E> {
    /// Connects as [`connect`](Client::connect) does, with a codec of your
    /// own: `encoder` frames requests, `decoder` (a fresh one) reads
    /// replies, into a buffer of its maximum frame.
    pub async fn connect_with(
        addr: impl AsyncToSocketAddrs,
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
        .await
    }

    /// [`connect_tls`](Client::connect_tls) with a codec of your own (see
    /// [`connect_with`](Self::connect_with)). Feature `tls`.
    #[cfg(feature = "tls")]
    pub async fn connect_tls_with(
        addr: impl AsyncToSocketAddrs,
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
        .await
    }

    /// Connects with TCP keepalive after `keepalive` of silence (`None`:
    /// off), then runs the TLS handshake if `tls` is given.
    pub(crate) async fn connect_link(
        addr: impl AsyncToSocketAddrs,
        decoder: D,
        encoder: E,
        timeout: Duration,
        tls: Option<&TlsConnector>,
        keepalive: Option<Duration>,
    ) -> io::Result<Self> {
        let link = ClientLink::new(tls)?;
        let (stream, peer) = connect_tcp(addr, timeout, keepalive).await?;
        let mut client = Client {
            stream,
            framing: Framing::with_codec(decoder, encoder, peer)?,
            link,
        };
        if client.link.is_tls() {
            let limit = client.link.handshake_timeout();
            let handshake = async {
                let e = client.handshake().await.err();
                e.map_or(Ok(()), |e| {
                    let msg = format!("TLS handshake with {peer}: {e}");
                    Err(io::Error::new(e.kind(), msg))
                })
            };
            future::or(handshake, async {
                Timer::after(limit).await;
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("TLS handshake with {peer} not completed within {limit:?}"),
                ))
            })
            .await?;
        }
        Ok(client)
    }

    /// Runs the TLS handshake to its end.
    async fn handshake(&mut self) -> io::Result<()> {
        loop {
            match self.link.handshake(self.stream.get_ref())? {
                Handshake::Done => return Ok(()),
                Handshake::Again => {}
                Handshake::Read => self.stream.readable().await?,
                Handshake::Write => self.stream.writable().await?,
            }
        }
    }

    /// Frames `payload` and writes the whole frame (after any frames
    /// [fed](Self::feed) before it).
    ///
    /// A payload the codec refuses fails with
    /// [`io::ErrorKind::InvalidInput`] and leaves the connection usable; an
    /// IO error marks it [broken](Self::is_broken).
    pub async fn send(&mut self, payload: &[u8]) -> io::Result<()> {
        self.feed(payload)?;
        self.flush().await
    }

    /// Frames `payload` and queues it without writing, for pipelining;
    /// [`flush`](Self::flush) writes everything queued in one go.
    pub fn feed(&mut self, payload: &[u8]) -> io::Result<()> {
        self.framing.feed(payload)
    }

    /// Writes every queued frame.
    pub async fn flush(&mut self) -> io::Result<()> {
        match self.write_unsent().await {
            Ok(n) => {
                self.framing.handle_sent(n);
                Ok(())
            }
            Err(e) => Err(self.framing.fail(e)),
        }
    }

    async fn write_unsent(&mut self) -> io::Result<usize> {
        let unsent = self.framing.unsent();
        if self.link.is_tls() {
            self.link.encrypt(unsent)?;
            while self.link.wants_write() {
                self.stream.write_with(|s| self.link.write(s)).await?;
            }
            return Ok(unsent.len());
        }
        let mut off = 0;
        while off < unsent.len() {
            match self
                .stream
                .write_with(|s| (&*s).write(&unsent[off..]))
                .await?
            {
                0 => return Err(io::ErrorKind::WriteZero.into()),
                n => off += n,
            }
        }
        Ok(off)
    }

    /// The next frame's payload, borrowed until the next call, or `None`
    /// once the peer closed the connection cleanly (at a frame boundary).
    ///
    /// A malformed stream ([`io::ErrorKind::InvalidData`]), a close in the
    /// middle of a frame ([`io::ErrorKind::UnexpectedEof`]) or an IO error
    /// marks the connection [broken](Self::is_broken).
    pub async fn recv(&mut self) -> io::Result<Option<&[u8]>> {
        loop {
            match self.framing.poll()? {
                Step::Frame => return Ok(self.framing.frame()),
                Step::End => return Ok(None),
                Step::NeedMore => {}
            }
            let buf = self.framing.read_buf();
            let res = if self.link.is_tls() {
                self.stream.read_with(|s| self.link.read(s, buf)).await
            } else {
                self.stream.read_with(|s| (&*s).read(buf)).await
            };
            match res {
                Ok(n) => self.framing.handle_read(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.framing.fail(e)),
            }
        }
    }

    /// Sends `payload` and waits for one reply frame, copied into `out`
    /// (a close before the reply is [`io::ErrorKind::UnexpectedEof`]).
    pub async fn request(&mut self, payload: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        self.send(payload).await?;
        let peer = self.peer_addr();
        fastnet_driver::client::take_reply(peer, self.recv().await?, out)
    }

    /// The server's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.framing.peer()
    }

    /// This end's address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.stream.get_ref().local_addr()
    }

    /// Whether an error or the peer's close left the connection unusable
    /// (a [`Pool`](crate::Pool) discards such connections).
    pub fn is_broken(&self) -> bool {
        self.framing.is_broken()
    }

    /// Turns TCP keepalive on, probing after `idle` without traffic, or
    /// off (`None`). Connections start with keepalive after 60 s
    /// ([`DEFAULT_KEEPALIVE`]); a [`Pool`](crate::Pool)'s follow its
    /// [`PoolConfig::keepalive`](field@crate::PoolConfig::keepalive).
    pub fn set_keepalive(&self, idle: Option<Duration>) -> io::Result<()> {
        set_keepalive(self.stream(), idle)
    }

    /// The socket, for options this type does not cover (over TLS, the
    /// socket under the session: reading or writing it directly breaks the
    /// session).
    pub fn stream(&self) -> &TcpStream {
        self.stream.get_ref()
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

    /// Whether the connection can serve another user: not broken, nothing
    /// unread, nothing fed and unsent, and the server has not closed it
    /// (a non-blocking peek, free on this non-blocking socket).
    pub(crate) fn is_reusable(&mut self) -> bool {
        if !self.framing.is_idle() {
            return false;
        }
        self.link.is_quiet(self.stream.get_ref())
    }
}

impl<D: Decoder, E: Encoder> fmt::Debug for Client<D, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("framing", &self.framing)
            .field("tls", &self.is_tls())
            .finish_non_exhaustive()
    }
}

/// Connects to the first of `addr`'s addresses that answers within
/// `timeout`, with `TCP_NODELAY` set and keepalive as `keepalive` says
/// (best effort).
async fn connect_tcp(
    addr: impl AsyncToSocketAddrs,
    timeout: Duration,
    keepalive: Option<Duration>,
) -> io::Result<(Async<TcpStream>, SocketAddr)> {
    let mut last = None;
    for peer in smol::net::resolve(addr).await? {
        let attempt = future::or(Async::<TcpStream>::connect(peer), async {
            Timer::after(timeout).await;
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("not connected within {timeout:?}"),
            ))
        })
        .await;
        match attempt {
            Ok(stream) => {
                stream.get_ref().set_nodelay(true)?;
                let _ = set_keepalive(stream.get_ref(), keepalive);
                return Ok((stream, peer));
            }
            Err(e) => last = Some(io::Error::new(e.kind(), format!("connect to {peer}: {e}"))),
        }
    }
    Err(last
        .unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address to connect to")))
}
