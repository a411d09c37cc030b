//! Run: cargo run --release -p fastnet-bench-echo --bin peer-uring -- [PORT|ADDR] [--threads N]
//!
//! The io_uring peer: raw echo on completion-based IO, to show what a
//! server gains over epoll when many sockets' reads and writes share one
//! system call. One ring per core (N defaults to the number of cores),
//! each with its own `SO_REUSEPORT` listener and a multishot accept. Each
//! connection has exactly one operation in flight: a receive into its own
//! 8 KiB buffer, then a send of what arrived, then the next receive. The
//! loop submits every queued operation and waits for completions in one
//! `io_uring_enter`. No framing. Prints `listening on ADDR`; exits on
//! SIGTERM or SIGINT. Linux only.

#[cfg(target_os = "linux")]
fn main() -> std::io::Result<()> {
    uring::main()
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("peer-uring: io_uring is Linux only");
    std::process::exit(2);
}

#[cfg(target_os = "linux")]
mod uring {
    use std::io;
    use std::net::{SocketAddr, TcpListener, TcpStream};
    use std::os::fd::{AsRawFd, FromRawFd};

    use io_uring::{opcode, squeue, types, IoUring};
    use socket2::{Domain, Protocol, Socket, Type};

    use fastnet_bench_echo::peer;

    /// Entries of each ring's submission queue (completions: twice that).
    const RING: u32 = 4096;
    /// `user_data` of the listener's accept completions.
    const ACCEPT: u64 = u64::MAX;

    /// One connection: its socket, its buffer, and how much of the buffer
    /// is being sent back.
    struct Conn {
        stream: TcpStream,
        buf: Box<[u8]>,
        /// Bytes received and not yet sent back; `sent` of them are.
        len: usize,
        sent: usize,
    }

    /// The one operation a connection has in flight.
    #[derive(Clone, Copy)]
    enum Op {
        Recv,
        Send,
    }

    fn user_data(slot: usize, op: Op) -> u64 {
        ((slot as u64) << 1) | matches!(op, Op::Send) as u64
    }

    /// The operation for `conn` at `slot`.
    fn entry(conn: &mut Conn, slot: usize, op: Op) -> squeue::Entry {
        let fd = types::Fd(conn.stream.as_raw_fd());
        match op {
            Op::Recv => opcode::Recv::new(fd, conn.buf.as_mut_ptr(), conn.buf.len() as u32)
                .build()
                .user_data(user_data(slot, op)),
            Op::Send => {
                let rest = &conn.buf[conn.sent..conn.len];
                opcode::Send::new(fd, rest.as_ptr(), rest.len() as u32)
                    .build()
                    .user_data(user_data(slot, op))
            }
        }
    }

    /// Queues `e`, submitting first if the queue is full.
    fn push(ring: &mut IoUring, e: &squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: every entry points at memory that outlives its
            // operation: a connection's buffer is a `Box` owned by its slot,
            // which is emptied only when the completion of its one
            // operation in flight arrives; the listener lives as long as
            // the loop, and the process exits without unwinding the loop.
            if unsafe { ring.submission().push(e) }.is_ok() {
                return Ok(());
            }
            ring.submit()?;
        }
    }

    /// A `SO_REUSEPORT` listener on `addr`.
    fn listener(addr: SocketAddr) -> io::Result<TcpListener> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.bind(&addr.into())?;
        socket.listen(4096)?;
        Ok(socket.into())
    }

    /// One ring: accepts from its own listener and serves what it
    /// accepted, until the process exits.
    fn event_loop(
        listener: TcpListener,
        ready: std::sync::mpsc::Sender<io::Result<()>>,
    ) -> io::Result<()> {
        // Only this thread submits, and completions' work runs when it
        // waits (not as an interrupt of whatever it is doing): the setup
        // the io_uring authors recommend for networking.
        let built = IoUring::builder()
            .setup_cqsize(2 * RING)
            .setup_single_issuer()
            .setup_defer_taskrun()
            .build(RING);
        let mut ring = match built {
            Ok(ring) => {
                let _ = ready.send(Ok(()));
                ring
            }
            Err(e) => {
                let _ = ready.send(Err(io::Error::new(e.kind(), format!("io_uring: {e}"))));
                return Ok(());
            }
        };
        let accept = opcode::AcceptMulti::new(types::Fd(listener.as_raw_fd()))
            .build()
            .user_data(ACCEPT);
        push(&mut ring, &accept)?;
        let mut conns: Vec<Option<Conn>> = Vec::new();
        let mut free: Vec<usize> = Vec::new();
        let mut done: Vec<(u64, i32, u32)> = Vec::with_capacity(2 * RING as usize);
        loop {
            match ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
                Err(e) => return Err(e),
            }
            done.clear();
            done.extend(
                ring.completion()
                    .map(|c| (c.user_data(), c.result(), c.flags())),
            );
            for &(data, res, flags) in &done {
                if data == ACCEPT {
                    if res >= 0 {
                        // SAFETY: a successful accept completion's result
                        // is a new socket that nothing else owns.
                        let stream = unsafe { TcpStream::from_raw_fd(res) };
                        let _ = stream.set_nodelay(true);
                        let slot = free.pop().unwrap_or_else(|| {
                            conns.push(None);
                            conns.len() - 1
                        });
                        let conn = conns[slot].insert(Conn {
                            stream,
                            buf: vec![0; peer::RAW_BUF].into_boxed_slice(),
                            len: 0,
                            sent: 0,
                        });
                        let e = entry(conn, slot, Op::Recv);
                        push(&mut ring, &e)?;
                    }
                    if !io_uring::cqueue::more(flags) {
                        // The multishot accept ended (for example on
                        // EMFILE): arm it again.
                        push(&mut ring, &accept)?;
                    }
                    continue;
                }
                let slot = (data >> 1) as usize;
                let Some(Some(conn)) = conns.get_mut(slot) else {
                    continue;
                };
                let next = match (data & 1 == 1, res) {
                    (_, r) if r == -libc::EINTR || r == -libc::EAGAIN => {
                        Some(if data & 1 == 1 { Op::Send } else { Op::Recv })
                    }
                    // Receive: 0 is the peer's close, below 0 an error.
                    (false, r) if r <= 0 => None,
                    (false, r) => {
                        conn.len = r as usize;
                        conn.sent = 0;
                        Some(Op::Send)
                    }
                    (true, r) if r <= 0 => None,
                    (true, r) => {
                        conn.sent += r as usize;
                        Some(if conn.sent < conn.len {
                            Op::Send
                        } else {
                            Op::Recv
                        })
                    }
                };
                match next {
                    Some(op) => {
                        let e = entry(conn, slot, op);
                        push(&mut ring, &e)?;
                    }
                    None => {
                        // Its one operation has completed: nothing in
                        // flight points at the buffer any more.
                        conns[slot] = None;
                        free.push(slot);
                    }
                }
            }
        }
    }

    pub(crate) fn main() -> io::Result<()> {
        let addr = peer::addr_from_args()?;
        let mut threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut args = std::env::args().skip(2);
        while let Some(arg) = args.next() {
            match (arg.as_str(), args.next().and_then(|n| n.parse().ok())) {
                ("--threads", Some(n)) if n > 0 => threads = n,
                _ => {
                    eprintln!("usage: peer-uring [PORT|ADDR] [--threads N]");
                    std::process::exit(2);
                }
            }
        }
        peer::raise_fd_limit()?;
        peer::exit_on_signal()?;
        let first = listener(addr)?;
        let addr = first.local_addr()?;
        let mut listeners = vec![first];
        for _ in 1..threads {
            listeners.push(listener(addr)?);
        }
        let mut handles = Vec::new();
        let (ready, rings) = std::sync::mpsc::channel();
        for (i, l) in listeners.into_iter().enumerate() {
            let ready = ready.clone();
            handles.push(
                std::thread::Builder::new()
                    .name(format!("uring-loop-{i}"))
                    .spawn(move || event_loop(l, ready))?,
            );
        }
        // Announce only once every ring is up: a kernel without io_uring
        // (or a sandbox that forbids it) is a clear error at start.
        for _ in 0..handles.len() {
            rings
                .recv()
                .map_err(|_| io::Error::other("a ring thread exited"))??;
        }
        peer::announce(addr);
        for h in handles {
            h.join()
                .map_err(|_| io::Error::other("a ring thread panicked"))??;
        }
        Ok(())
    }
}
