//! What both drivers do to sockets: read and write them ([`read`],
//! [`write_slices`]), the options of accepted and connected sockets
//! ([`tune_accepted`], [`set_keepalive`]), what a failed accept means and
//! how long the accept loop pauses after it ([`AcceptBackoff`]), and
//! fitting `max_connections` to the file-descriptor limit
//! ([`fit_max_connections`]).

use std::io;
use std::net::TcpStream;
use std::time::Duration;

use fastnet_proto::server::ServerConfig;
use socket2::{SockRef, TcpKeepalive};

/// Reads from `stream` into `buf`, as `Read for &TcpStream` does (the same
/// answers, `WouldBlock` and `Interrupted` among them).
///
/// On Unix the system call is made directly (rustix): libc's `recv` is a
/// thread cancellation point, and entering and leaving that state cost
/// more user-space instructions than the rest of a request's read (about
/// 60 of a request's 1,800 in fastnet-smol's echo, callgrind). The call is
/// `recvfrom`, as std's is, not `read`: a socket's `read` goes through the
/// file layer's checks and notifications first, kernel time on every
/// request (BENCHMARKS.md, "Socket calls, not file calls").
#[inline]
pub fn read(stream: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    #[cfg(unix)]
    return rustix::net::recv(stream, buf, rustix::net::RecvFlags::empty())
        .map(|(n, _)| n)
        .map_err(io::Error::from);
    #[cfg(not(unix))]
    return io::Read::read(&mut &*stream, buf);
}

/// Writes `a` then `b` to `stream` in one system call: a plain `send`
/// when `b` is empty (the usual case, and the cheaper call), a vectored
/// `sendmsg` otherwise. Returns the bytes taken, as `Write::write` does;
/// direct socket calls on Unix, as for [`read`], with `MSG_NOSIGNAL` as
/// std's are: a peer that has gone is an `EPIPE` error, never a `SIGPIPE`
/// that would end a program that did not ignore it.
#[inline]
pub fn write_slices(stream: &TcpStream, a: &[u8], b: &[u8]) -> io::Result<usize> {
    #[cfg(unix)]
    return if b.is_empty() {
        rustix::net::send(stream, a, SEND_FLAGS)
    } else {
        rustix::net::sendmsg(
            stream,
            &[io::IoSlice::new(a), io::IoSlice::new(b)],
            &mut rustix::net::SendAncillaryBuffer::default(),
            SEND_FLAGS,
        )
    }
    .map_err(io::Error::from);
    #[cfg(not(unix))]
    return if b.is_empty() {
        io::Write::write(&mut &*stream, a)
    } else {
        io::Write::write_vectored(&mut &*stream, &[io::IoSlice::new(a), io::IoSlice::new(b)])
    };
}

/// The flags of [`write_slices`]' calls: `MSG_NOSIGNAL`, where there is
/// one. Apple's systems have none; there the socket carries `SO_NOSIGPIPE`
/// instead ([`tune_accepted`]).
#[cfg(all(unix, not(target_vendor = "apple")))]
const SEND_FLAGS: rustix::net::SendFlags = rustix::net::SendFlags::NOSIGNAL;
#[cfg(target_vendor = "apple")]
const SEND_FLAGS: rustix::net::SendFlags = rustix::net::SendFlags::empty();

/// Sets the options `config` asks for on an accepted socket: `TCP_NODELAY`
/// and TCP keepalive; on Apple's systems also `SO_NOSIGPIPE`, which stands
/// in for the `MSG_NOSIGNAL` of [`write_slices`]. Best effort: a socket
/// that refuses an option is still served.
pub fn tune_accepted(stream: &TcpStream, config: &ServerConfig) {
    if config.nodelay {
        let _ = stream.set_nodelay(true);
    }
    let _ = set_keepalive(stream, config.keepalive);
    #[cfg(target_vendor = "apple")]
    let _ = SockRef::from(stream).set_nosigpipe(true);
}

/// Turns TCP keepalive on, probing after `idle` of silence, or off
/// (`None`). `idle` is taken in whole seconds, from one second to 32 767
/// (the largest Linux accepts); where the platform lets it be set, probes
/// then repeat every quarter of `idle` (at least a second), so that with
/// the default minute and Linux's nine probes a vanished peer is found out
/// within about three and a half minutes.
pub fn set_keepalive(stream: &TcpStream, idle: Option<Duration>) -> io::Result<()> {
    let sock = SockRef::from(stream);
    let Some(idle) = idle else {
        return sock.set_keepalive(false);
    };
    const MAX: Duration = Duration::from_secs(32_767);
    let idle = idle.clamp(Duration::from_secs(1), MAX);
    let params = TcpKeepalive::new().with_time(idle);
    #[cfg(any(
        target_os = "android",
        target_os = "dragonfly",
        target_os = "freebsd",
        target_os = "fuchsia",
        target_os = "illumos",
        target_os = "ios",
        target_os = "linux",
        target_os = "macos",
        target_os = "netbsd",
        target_os = "windows",
    ))]
    let params = params.with_interval((idle / 4).max(Duration::from_secs(1)));
    sock.set_tcp_keepalive(&params)
}

/// The first pause after a failed accept; each failure in a row doubles it,
/// up to [`ACCEPT_BACKOFF_MAX`].
pub const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);

/// The longest pause after failed accepts: while descriptors stay
/// exhausted the loop tries a few times a second, and a descriptor freed
/// is used within this long.
pub const ACCEPT_BACKOFF_MAX: Duration = Duration::from_millis(250);

/// Whether a failed accept says nothing about the server: interrupted, or
/// a peer that left (or whose network went away) before it was accepted.
/// The loop accepts again at once and counts nothing.
pub fn is_transient(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(
        e.kind(),
        Interrupted
            | WouldBlock
            | ConnectionAborted
            | ConnectionReset
            | NetworkDown
            | NetworkUnreachable
            | HostUnreachable
    )
}

/// The accept loop's pause after failed accepts. Any failure that is not
/// [transient](is_transient) (out of file descriptors, `EMFILE` and
/// `ENFILE`; out of memory or socket buffers, `ENOMEM` and `ENOBUFS`; or
/// anything unforeseen) is counted and pauses the loop, because accepting
/// again at once would fail again at once: the connection waits in the
/// kernel's queue until a descriptor is free. The pause doubles from
/// [`ACCEPT_BACKOFF_MIN`] to [`ACCEPT_BACKOFF_MAX`] and starts over after
/// an accept succeeds.
///
/// ```
/// use std::io;
/// use fastnet_driver::socket::{AcceptBackoff, ACCEPT_BACKOFF_MIN};
///
/// let mut backoff = AcceptBackoff::new();
/// let emfile = io::Error::from_raw_os_error(24);
/// assert_eq!(backoff.failed(&emfile), Some(ACCEPT_BACKOFF_MIN));
/// assert_eq!(backoff.failed(&emfile), Some(2 * ACCEPT_BACKOFF_MIN));
/// assert_eq!(backoff.failed(&io::ErrorKind::ConnectionAborted.into()), None);
/// backoff.accepted();
/// assert_eq!(backoff.failed(&emfile), Some(ACCEPT_BACKOFF_MIN));
/// ```
#[derive(Clone, Debug, Default)]
pub struct AcceptBackoff {
    /// Counted failures since the last accept.
    failures: u32,
}

impl AcceptBackoff {
    /// No failure yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// An accept failed with `e`: `None` if it is transient (accept again
    /// at once, count nothing), else how long to pause before the next
    /// accept (and the failure counts as an accept error).
    pub fn failed(&mut self, e: &io::Error) -> Option<Duration> {
        if is_transient(e) {
            return None;
        }
        let pause = ACCEPT_BACKOFF_MIN
            .saturating_mul(1 << self.failures.min(16))
            .min(ACCEPT_BACKOFF_MAX);
        self.failures = self.failures.saturating_add(1);
        Some(pause)
    }

    /// An accept succeeded: the next failure pauses briefly again.
    pub fn accepted(&mut self) {
        self.failures = 0;
    }
}

/// Descriptors [`fit_max_connections`] keeps for what is not a
/// connection: the listener, the standard streams, the reactors and their
/// wake-ups, the application's own files and client connections.
pub const DESCRIPTOR_RESERVE: u64 = 64;

/// What [`fit_descriptors`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DescriptorFit {
    /// The soft limit to raise to, if the connections need more than the
    /// current one.
    pub raise_to: Option<u64>,
    /// The connections allowed.
    pub max_connections: usize,
}

/// The rule of [`fit_max_connections`], without the system calls:
/// `max_connections` connections of `per_connection` descriptors each,
/// plus [`DESCRIPTOR_RESERVE`], must fit under the soft limit `soft`; if
/// they do not, the soft limit is to rise as far as needed, at most to
/// the hard limit `hard`, and the connections are capped to what then
/// fits (at least one). `None` is an unlimited limit.
pub fn fit_descriptors(
    max_connections: usize,
    per_connection: u64,
    soft: Option<u64>,
    hard: Option<u64>,
) -> DescriptorFit {
    let per_connection = per_connection.max(1);
    let need = u64::try_from(max_connections)
        .unwrap_or(u64::MAX)
        .saturating_mul(per_connection)
        .saturating_add(DESCRIPTOR_RESERVE);
    let soft = soft.unwrap_or(u64::MAX);
    if need <= soft {
        return DescriptorFit {
            raise_to: None,
            max_connections,
        };
    }
    let to = need.min(hard.unwrap_or(u64::MAX)).max(soft);
    let fits = (to.saturating_sub(DESCRIPTOR_RESERVE) / per_connection).max(1);
    DescriptorFit {
        raise_to: (to > soft).then_some(to),
        max_connections: max_connections.min(usize::try_from(fits).unwrap_or(usize::MAX)),
    }
}

/// Fits `max_connections` to the process's file-descriptor limit
/// (`RLIMIT_NOFILE`), by the rule of [`fit_descriptors`]: raises the soft
/// limit as far as the connections need (at most to the hard limit, as
/// Go's runtime and HAProxy do), and returns the connections that fit;
/// `per_connection` is how many descriptors a connection of the driver
/// may hold. A server whose connections fit refuses the next one cleanly
/// (`RejectReason::MaxConnections`) instead of failing to accept it.
/// Elsewhere than on unix, `max_connections` unchanged.
///
/// The raised limit is the process's, and processes it starts inherit it.
pub fn fit_max_connections(max_connections: usize, per_connection: u64) -> usize {
    #[cfg(unix)]
    {
        use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
        use std::sync::Mutex;
        // Two servers binding at once must not lower each other's raise.
        static RAISING: Mutex<()> = Mutex::new(());
        let _one = crate::sync::lock(&RAISING);
        let limit = getrlimit(Resource::Nofile);
        let fit = fit_descriptors(
            max_connections,
            per_connection,
            limit.current,
            limit.maximum,
        );
        let Some(to) = fit.raise_to else {
            return fit.max_connections;
        };
        let raised = Rlimit {
            current: Some(to),
            maximum: limit.maximum,
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            fit.max_connections
        } else {
            // Some systems cap the soft limit below the hard one (macOS:
            // `kern.maxfilesperproc`): fit under the limit as it is.
            fit_descriptors(
                max_connections,
                per_connection,
                limit.current,
                limit.current,
            )
            .max_connections
        }
    }
    #[cfg(not(unix))]
    {
        let _ = per_connection;
        max_connections
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// The direct system calls answer as std's `Read` and `Write` do: the
    /// bytes of both slices in order, `WouldBlock` when nothing is there,
    /// 0 at the end of input.
    #[test]
    fn read_and_write_slices_answer_as_std_does() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (server, _) = l.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 64];
        let e = read(&server, &mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        assert_eq!(write_slices(&client, b"hello ", b"").unwrap(), 6);
        assert_eq!(write_slices(&client, b"wide ", b"world").unwrap(), 10);
        let mut got = Vec::new();
        while got.len() < 16 {
            match read(&server, &mut buf) {
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("read: {e}"),
            }
        }
        assert_eq!(got, b"hello wide world");
        drop(client);
        server.set_nonblocking(false).unwrap();
        assert_eq!(read(&server, &mut buf).unwrap(), 0, "end of input");
    }

    #[test]
    fn only_resource_failures_count_and_the_pause_doubles_to_a_cap() {
        let mut b = AcceptBackoff::new();
        for kind in [
            io::ErrorKind::Interrupted,
            io::ErrorKind::ConnectionAborted,
            io::ErrorKind::ConnectionReset,
            io::ErrorKind::WouldBlock,
        ] {
            assert_eq!(b.failed(&kind.into()), None, "{kind:?}");
        }
        let emfile = io::Error::from_raw_os_error(24);
        let pauses: Vec<_> = (0..40).map(|_| b.failed(&emfile).unwrap()).collect();
        assert_eq!(pauses[0], ACCEPT_BACKOFF_MIN);
        assert_eq!(pauses[1], 2 * ACCEPT_BACKOFF_MIN);
        assert!(pauses.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(pauses[39], ACCEPT_BACKOFF_MAX);
        assert_eq!(
            b.failed(&io::ErrorKind::OutOfMemory.into()),
            Some(ACCEPT_BACKOFF_MAX)
        );
        b.accepted();
        assert_eq!(b.failed(&emfile), Some(ACCEPT_BACKOFF_MIN));
        // Stalled for a second: a handful of attempts, not a spin.
        let mut b = AcceptBackoff::new();
        let mut slept = Duration::ZERO;
        let mut tries = 0;
        while slept < Duration::from_secs(1) {
            slept += b.failed(&emfile).unwrap();
            tries += 1;
        }
        assert!(tries <= 12, "{tries} accepts in a second");
    }

    #[test]
    fn max_connections_fits_the_descriptor_limit() {
        let r = DESCRIPTOR_RESERVE;
        let fit = |max, per, soft, hard| fit_descriptors(max, per, soft, hard);
        // Fits as it is: nothing changes.
        assert_eq!(
            fit(100, 1, Some(1024), Some(1024)),
            DescriptorFit {
                raise_to: None,
                max_connections: 100
            }
        );
        assert_eq!(fit(10_000, 3, None, None).raise_to, None, "unlimited");
        // Raised as far as needed, within the hard limit.
        assert_eq!(
            fit(10_000, 1, Some(1024), Some(1 << 20)),
            DescriptorFit {
                raise_to: Some(10_000 + r),
                max_connections: 10_000
            }
        );
        assert_eq!(fit(10_000, 3, Some(1024), None).raise_to, Some(30_000 + r));
        // The hard limit is too low: raised to it, and capped.
        assert_eq!(
            fit(10_000, 1, Some(1024), Some(4096)),
            DescriptorFit {
                raise_to: Some(4096),
                max_connections: 4096 - r as usize
            }
        );
        assert_eq!(
            fit(10_000, 3, Some(4096), Some(4096)),
            DescriptorFit {
                raise_to: None,
                max_connections: (4096 - r as usize) / 3
            }
        );
        // A limit below the reserve still allows one connection; zero
        // stays zero (refused by the configuration check).
        assert_eq!(fit(10, 1, Some(20), Some(20)).max_connections, 1);
        assert_eq!(fit(0, 1, Some(20), Some(20)).max_connections, 0);
        assert_eq!(
            fit(usize::MAX, 0, Some(1024), Some(2048)).max_connections,
            2048 - r as usize
        );
    }

    #[test]
    fn keepalive_is_set_and_turned_off() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let s = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let sock = SockRef::from(&s);
        let mut config = ServerConfig::new(fastnet_proto::codec::CodecSpec::lines(64));
        config.keepalive = Some(Duration::from_secs(37));
        tune_accepted(&s, &config);
        assert!(sock.keepalive().unwrap());
        assert!(sock.tcp_nodelay().unwrap());
        #[cfg(any(target_os = "linux", target_os = "macos", target_os = "freebsd"))]
        assert_eq!(sock.tcp_keepalive_time().unwrap(), Duration::from_secs(37));
        // Below a second is a second, not a refused zero.
        set_keepalive(&s, Some(Duration::from_millis(1))).unwrap();
        set_keepalive(&s, Some(Duration::MAX)).unwrap();
        set_keepalive(&s, None).unwrap();
        assert!(!sock.keepalive().unwrap());
    }
}
