//! Run: cargo run --release -p fastnet-bench-echo --bin peer-mio -- [PORT|ADDR] [--threads N] [--max-frame N]
//!
//! The mio peer, the practical ceiling: raw echo on edge-triggered epoll,
//! one event loop per core (N defaults to the number of cores), each with
//! its own `SO_REUSEPORT` listener on the same address, so the kernel
//! spreads connections over the loops and no connection ever moves
//! between threads. No framing, no per-connection buffer: each loop reads
//! into one shared buffer and writes straight back; only bytes the socket
//! would not take are kept for the connection until it is writable.
//!
//! Like nginx, a read that returns fewer bytes than asked for is taken as
//! "drained" (the next edge reports new bytes), unless the event also
//! reported the peer's close; that saves the `WouldBlock` read per wake-up
//! that a loop reading until `WouldBlock` pays. Prints `listening on ADDR`;
//! exits on SIGTERM or SIGINT.
//!
//! With `--max-frame N` it is the framed floor instead: the least work any
//! framed echo does on top of the raw one. Frames are 4-byte big-endian
//! lengths before the payload (at most N bytes, else the connection
//! closes); each read's complete frames are found and encoded, header and
//! payload copied, into one reply buffer per loop, which is written; a
//! frame cut by the read's end waits in the connection's own buffer for
//! the rest. No handler, no limits beyond the length, no statistics.

use std::io::{self, Read, Write};

use mio::event::Event;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

use fastnet_bench_echo::peer;

const LISTENER: Token = Token(usize::MAX);
/// Read buffer shared by all connections of one loop.
const READ_BUF: usize = 64 * 1024;

/// One connection: its socket, the bytes it would not take yet, and
/// (framed) the start of a frame the last read cut.
struct Conn {
    stream: TcpStream,
    pending: Vec<u8>,
    framed: peer::FramedEcho,
}

/// One loop's buffers: reads land in `read`; framed replies are encoded
/// into `replies`, whose frames are at most `max_frame` bytes (`None`: raw).
struct Buffers {
    read: Vec<u8>,
    replies: Vec<u8>,
    max_frame: Option<usize>,
}

impl Conn {
    /// The reply to `n` bytes just read into `bufs.read`: those bytes
    /// (raw), or the frames they complete, encoded; `None` on a bad frame.
    fn reply<'b>(&mut self, bufs: &'b mut Buffers, n: usize) -> Option<&'b [u8]> {
        let input = &bufs.read[..n];
        let Some(max) = bufs.max_frame else {
            return Some(input);
        };
        self.framed.replies(input, &mut bufs.replies, max)?;
        Some(&bufs.replies)
    }

    /// Handles a readiness event; `true` when the connection is done.
    fn ready(&mut self, event: &Event, bufs: &mut Buffers) -> bool {
        if self.pending.is_empty() {
            if !event.is_readable() && !event.is_read_closed() && !event.is_error() {
                // Only "writable", with nothing to write.
                return false;
            }
        } else {
            match write_some(&mut self.stream, &self.pending) {
                Ok(n) if n == self.pending.len() => self.pending.clear(),
                Ok(n) => {
                    // Still blocked: read nothing more until the peer
                    // drains its replies; the writable edge brings us
                    // back, and then the bytes left unread are read.
                    self.pending.drain(..n);
                    return false;
                }
                Err(_) => return true,
            }
        }
        loop {
            match self.stream.read(&mut bufs.read) {
                Ok(0) => return true,
                Ok(n) => {
                    let Some(reply) = self.reply(bufs, n) else {
                        return true;
                    };
                    match write_some(&mut self.stream, reply) {
                        Ok(w) if w == reply.len() => {}
                        Ok(w) => {
                            self.pending.extend_from_slice(&reply[w..]);
                            return false;
                        }
                        Err(_) => return true,
                    }
                    if n < bufs.read.len() && !event.is_read_closed() {
                        return false;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return true,
            }
        }
    }
}

/// Writes as much of `bytes` as the socket takes now.
fn write_some(stream: &mut TcpStream, bytes: &[u8]) -> io::Result<usize> {
    let mut at = 0;
    while at < bytes.len() {
        match stream.write(&bytes[at..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => at += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(at)
}

/// One event loop: accepts from its own listener and serves what it
/// accepted, until the process exits.
fn event_loop(listener: std::net::TcpListener, max_frame: Option<usize>) -> io::Result<()> {
    let mut listener = TcpListener::from_std(listener);
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut events = Events::with_capacity(1024);
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut bufs = Buffers {
        read: vec![0u8; READ_BUF],
        replies: Vec::with_capacity(READ_BUF),
        max_frame,
    };
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for event in events.iter() {
            if event.token() == LISTENER {
                loop {
                    let mut stream = match listener.accept() {
                        Ok((s, _)) => s,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if peer::accept_error_is_transient(&e) => continue,
                        Err(e) => return Err(e),
                    };
                    let _ = stream.set_nodelay(true);
                    let slot = free.pop().unwrap_or_else(|| {
                        conns.push(None);
                        conns.len() - 1
                    });
                    if poll
                        .registry()
                        .register(
                            &mut stream,
                            Token(slot),
                            Interest::READABLE | Interest::WRITABLE,
                        )
                        .is_err()
                    {
                        free.push(slot);
                        continue;
                    }
                    conns[slot] = Some(Conn {
                        stream,
                        pending: Vec::new(),
                        framed: peer::FramedEcho::default(),
                    });
                }
                continue;
            }
            let slot = event.token().0;
            let done = match conns.get_mut(slot) {
                Some(Some(conn)) => conn.ready(event, &mut bufs),
                _ => false,
            };
            if done {
                // Closing the socket removes it from the epoll set.
                conns[slot] = None;
                free.push(slot);
            }
        }
    }
}

fn main() -> io::Result<()> {
    let addr = peer::addr_from_args()?;
    let [threads, max_frame] = peer::numeric_options(
        "usage: peer-mio [PORT|ADDR] [--threads N] [--max-frame N]",
        ["--threads", "--max-frame"],
        |name, n| n > 0 && (name != "--max-frame" || n <= u32::MAX as usize),
    );
    let (addr, listeners) = peer::loop_listeners(addr, threads)?;
    let mut handles = Vec::new();
    for (i, l) in listeners.into_iter().enumerate() {
        handles.push(
            std::thread::Builder::new()
                .name(format!("mio-loop-{i}"))
                .spawn(move || event_loop(l, max_frame))?,
        );
    }
    peer::announce(addr);
    for h in handles {
        h.join()
            .map_err(|_| io::Error::other("an event loop panicked"))??;
    }
    Ok(())
}
