//! What the peer echo servers share: the command line, the announcement,
//! exiting on a signal, and per-loop listeners.

use std::io::{self, Write};
use std::net::{SocketAddr, ToSocketAddrs};

/// Largest frame the framed peer accepts, as `fastnet serve`'s default
/// `--max-frame`.
pub const MAX_FRAME: usize = 64 * 1024;

/// Per-connection read buffer of the raw peers: 16 pipelined 512-byte
/// requests fit in one read.
pub const RAW_BUF: usize = 8 * 1024;

/// The least a framed echo does on top of a raw one (the framed peers,
/// the floor of any framed echo): each read's complete `len=u32be` frames
/// are found and encoded, header and payload copied, into a reply
/// buffer; a frame cut by the read's end waits here for the rest.
#[derive(Debug, Default)]
pub struct FramedEcho {
    partial: Vec<u8>,
}

impl FramedEcho {
    /// Clears `replies` and encodes into it the frames that `input` (the
    /// bytes just read) completes; `None` for a frame over `max` bytes,
    /// which ends the connection.
    ///
    /// ```
    /// use fastnet_bench_echo::peer::FramedEcho;
    /// let (mut echo, mut replies) = (FramedEcho::default(), Vec::new());
    /// echo.replies(b"\0\0\0\x02hi\0\0", &mut replies, 16).unwrap();
    /// assert_eq!(replies, b"\0\0\0\x02hi");
    /// echo.replies(b"\0\x01!", &mut replies, 16).unwrap();
    /// assert_eq!(replies, b"\0\0\0\x01!");
    /// assert!(echo.replies(b"\0\0\0\x11", &mut replies, 16).is_none());
    /// ```
    pub fn replies(&mut self, input: &[u8], replies: &mut Vec<u8>, max: usize) -> Option<()> {
        replies.clear();
        if self.partial.is_empty() {
            let used = encode_frames(input, replies, max)?;
            self.partial.extend_from_slice(&input[used..]);
        } else {
            self.partial.extend_from_slice(input);
            let used = encode_frames(&self.partial, replies, max)?;
            self.partial.drain(..used);
        }
        Some(())
    }
}

/// Encodes every complete frame at the start of `bytes` into `replies`;
/// returns how many bytes they took, or `None` for a frame over `max`.
fn encode_frames(bytes: &[u8], replies: &mut Vec<u8>, max: usize) -> Option<usize> {
    let mut at = 0;
    while let Some(head) = bytes.get(at..at + 4) {
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        if len > max {
            return None;
        }
        let Some(payload) = bytes.get(at + 4..at + 4 + len) else {
            break;
        };
        replies.extend_from_slice(&(len as u32).to_be_bytes());
        replies.extend_from_slice(payload);
        at += 4 + len;
    }
    Some(at)
}

/// The address to bind: the first argument, either a port (bound on
/// 127.0.0.1) or `HOST:PORT`; without one, a free port on 127.0.0.1.
pub fn addr_from_args() -> io::Result<SocketAddr> {
    let arg = std::env::args().nth(1);
    parse_addr(arg.as_deref())
}

/// Parses a port or `HOST:PORT` (see [`addr_from_args`]).
///
/// ```
/// use fastnet_bench_echo::peer::parse_addr;
/// assert_eq!(parse_addr(Some("7000")).unwrap().to_string(), "127.0.0.1:7000");
/// assert_eq!(parse_addr(None).unwrap().port(), 0);
/// ```
pub fn parse_addr(arg: Option<&str>) -> io::Result<SocketAddr> {
    let text = match arg {
        None => return Ok(SocketAddr::from(([127, 0, 0, 1], 0))),
        Some(t) => t,
    };
    if let Ok(port) = text.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    text.to_socket_addrs()?.next().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{text:?} is neither a port nor an address"),
        )
    })
}

/// The numeric options `names` (like `--threads`) given after the
/// address, each as `NAME N` with `ok(NAME, N)`; anything else prints
/// `usage` and exits with status 2.
pub fn numeric_options<const K: usize>(
    usage: &str,
    names: [&str; K],
    ok: impl Fn(&str, usize) -> bool,
) -> [Option<usize>; K] {
    let mut values = [None; K];
    let mut args = std::env::args().skip(2);
    while let Some(arg) = args.next() {
        let value = args.next().and_then(|n| n.parse().ok());
        match (names.iter().position(|&n| n == arg), value) {
            (Some(i), Some(n)) if ok(&arg, n) => values[i] = Some(n),
            _ => {
                eprintln!("{usage}");
                std::process::exit(2);
            }
        }
    }
    values
}

/// Prepares an event-loop peer: raises the open-file limit, exits on a
/// signal, and binds one [`reuseport_listeners`] listener per loop
/// (`loops`, or one per core); returns the address they share.
pub fn loop_listeners(
    addr: SocketAddr,
    loops: Option<usize>,
) -> io::Result<(SocketAddr, Vec<std::net::TcpListener>)> {
    let loops =
        loops.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    raise_fd_limit()?;
    exit_on_signal()?;
    let listeners = reuseport_listeners(addr, loops)?;
    let addr = listeners[0].local_addr()?;
    Ok((addr, listeners))
}

/// Exits the process with status 0 on SIGTERM or SIGINT (an echo server
/// has nothing to flush). Call before [`announce`], so a signal sent as
/// soon as the address is known is handled.
pub fn exit_on_signal() -> io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if signals.forever().next().is_some() {
                std::process::exit(0);
            }
        })?;
    Ok(())
}

/// `n` non-blocking `SO_REUSEPORT` listeners on `addr`, one per event
/// loop, so the kernel spreads connections over the loops: the first fixes
/// the port (port 0 picks one), the others share it.
pub fn reuseport_listeners(addr: SocketAddr, n: usize) -> io::Result<Vec<std::net::TcpListener>> {
    use socket2::{Domain, Protocol, Socket, Type};
    let listener = |addr: SocketAddr| -> io::Result<std::net::TcpListener> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(4096)?;
        Ok(socket.into())
    };
    let first = listener(addr)?;
    let addr = first.local_addr()?;
    let mut all = vec![first];
    for _ in 1..n.max(1) {
        all.push(listener(addr)?);
    }
    Ok(all)
}

/// Prints the one line the harness waits for: `listening on ADDR`.
pub fn announce(addr: SocketAddr) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "listening on {addr}");
    let _ = out.flush();
}

/// Whether an `accept` error concerns only the connection being accepted
/// (try the next one) rather than the listener.
pub fn accept_error_is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    ) || e.raw_os_error() == Some(libc::EMFILE)
        || e.raw_os_error() == Some(libc::ENFILE)
        || e.raw_os_error() == Some(libc::ENOBUFS)
        || e.raw_os_error() == Some(libc::ENOMEM)
}

/// Raises this process's open-file limit to the hard limit (children
/// inherit it), so many connections can be open; returns the new soft limit.
pub fn raise_fd_limit() -> io::Result<u64> {
    let (_, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE)?;
    rlimit::increase_nofile_limit(hard)
}
