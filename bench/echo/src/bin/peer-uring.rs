//! Run: cargo run --release -p fastnet-bench-echo --bin peer-uring -- [PORT|ADDR] [--threads N] [--buffers N]
//!
//! The io_uring peer: raw echo on completion-based IO, to show what a
//! server gains over epoll when many sockets' reads and writes share one
//! system call. One ring per core (N defaults to the number of cores),
//! each with its own `SO_REUSEPORT` listener and a multishot accept, set up
//! as the io_uring authors advise for networking (`SINGLE_ISSUER`,
//! `DEFER_TASKRUN`: completion work runs when the thread waits, not as an
//! interrupt). Each connection has one multishot receive, armed once, that
//! lands every arrival in a buffer the kernel picks from the ring's pool of
//! provided buffers (`--buffers`, default 4096, × 8 KiB per ring); the
//! buffers are sent back in order, one send in flight per connection, and
//! each returns to the pool when sent. A receive that finds the pool empty
//! is armed again when a buffer comes back. The loop submits every queued
//! operation and waits for completions in one `io_uring_enter`. No
//! framing. Prints `listening on ADDR`; exits on SIGTERM or SIGINT. Linux
//! 6.0 or later.

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
    use std::alloc::Layout;
    use std::collections::VecDeque;
    use std::io;
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::os::fd::{AsRawFd, FromRawFd};
    use std::sync::atomic::{AtomicU16, Ordering};
    use std::sync::mpsc;

    use io_uring::types::BufRingEntry;
    use io_uring::{cqueue, opcode, squeue, types, IoUring};

    use fastnet_bench_echo::peer;

    /// Entries of each ring's submission queue (completions: twice that).
    const RING: u32 = 4096;
    /// `user_data` of the listener's accept completions.
    const ACCEPT: u64 = u64::MAX;
    /// Provided buffers per ring by default, and their size.
    const BUFFERS: usize = 4096;
    const BUFFER_LEN: usize = 8 * 1024;
    /// The buffer group of the provided buffers.
    const GROUP: u16 = 1;

    /// The ring of provided buffers: the kernel takes a buffer for each
    /// arrival, the loop gives it back once its bytes are sent.
    struct Buffers {
        /// `count` entries shared with the kernel, page aligned.
        entries: *mut BufRingEntry,
        /// A power of two.
        count: usize,
        layout: Layout,
        storage: Box<[u8]>,
        tail: u16,
        /// Buffers the kernel holds and has not filled yet.
        available: usize,
    }

    impl Buffers {
        /// Registers a ring of `count` buffers (a power of two up to
        /// 32768) with `ring`, all given.
        fn register(ring: &IoUring, count: usize) -> io::Result<Buffers> {
            let layout = Layout::from_size_align(count * size_of::<BufRingEntry>(), 4096)
                .map_err(io::Error::other)?;
            // SAFETY: the layout has a non-zero size.
            let entries = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<BufRingEntry>();
            if entries.is_null() {
                std::alloc::handle_alloc_error(layout);
            }
            let mut buffers = Buffers {
                entries,
                count,
                layout,
                storage: vec![0; count * BUFFER_LEN].into_boxed_slice(),
                tail: 0,
                available: 0,
            };
            // SAFETY: `entries` is page aligned, holds `count` entries and
            // is freed (in `drop`) only after the ring that uses it: the
            // loop owns both and drops the ring first.
            unsafe {
                ring.submitter().register_buf_ring_with_flags(
                    entries as u64,
                    count as u16,
                    GROUP,
                    0,
                )?;
            }
            for id in 0..count as u16 {
                buffers.give(id);
            }
            Ok(buffers)
        }

        /// Buffer `id`.
        fn get(&self, id: u16) -> &[u8] {
            let at = usize::from(id) * BUFFER_LEN;
            &self.storage[at..at + BUFFER_LEN]
        }

        /// Hands buffer `id` (back) to the kernel.
        fn give(&mut self, id: u16) {
            let slot = usize::from(self.tail) & (self.count - 1);
            // SAFETY: `slot < count`, inside the allocation; the kernel
            // reads an entry only once the tail below has passed it.
            let entry = unsafe { &mut *self.entries.add(slot) };
            entry.set_addr(self.get(id).as_ptr() as u64);
            entry.set_len(BUFFER_LEN as u32);
            entry.set_bid(id);
            self.tail = self.tail.wrapping_add(1);
            self.available += 1;
            // SAFETY: the tail is the first entry's last field, an aligned
            // u16 the kernel reads concurrently, hence atomic; the release
            // store publishes the entry written above.
            unsafe {
                let tail = BufRingEntry::tail(self.entries).cast::<AtomicU16>();
                (*tail).store(self.tail, Ordering::Release);
            }
        }
    }

    impl Drop for Buffers {
        fn drop(&mut self) {
            // SAFETY: allocated in `register` with this layout.
            unsafe { std::alloc::dealloc(self.entries.cast(), self.layout) };
        }
    }

    /// One connection.
    struct Conn {
        stream: TcpStream,
        /// Buffers received and not yet all sent: (id, bytes sent, length).
        unsent: VecDeque<(u16, usize, usize)>,
        /// A send of `unsent`'s first buffer is in flight.
        sending: bool,
        /// The multishot receive is armed.
        receiving: bool,
        /// The peer left or a send failed: no new operations.
        closing: bool,
    }

    fn recv(conn: &Conn, slot: usize) -> squeue::Entry {
        opcode::RecvMulti::new(types::Fd(conn.stream.as_raw_fd()), GROUP)
            .build()
            .user_data((slot as u64) << 1)
    }

    fn send(conn: &Conn, slot: usize, buffers: &Buffers) -> Option<squeue::Entry> {
        let &(id, sent, len) = conn.unsent.front()?;
        let rest = &buffers.get(id)[sent..len];
        Some(
            opcode::Send::new(
                types::Fd(conn.stream.as_raw_fd()),
                rest.as_ptr(),
                rest.len() as u32,
            )
            .build()
            .user_data(((slot as u64) << 1) | 1),
        )
    }

    /// Queues `e`, submitting first if the queue is full.
    fn push(ring: &mut IoUring, e: &squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: every entry points at memory that outlives its
            // operation: sends at provided buffers, which go back to the
            // kernel only after their send completed and are freed with
            // the loop; sockets stay in their slots until no operation on
            // them is in flight; the listener lives as long as the loop,
            // and the process exits without unwinding it.
            if unsafe { ring.submission().push(e) }.is_ok() {
                return Ok(());
            }
            ring.submit()?;
        }
    }

    /// Builds a ring and its buffers on the calling thread (the single
    /// issuer).
    fn setup(buffers: usize) -> io::Result<(IoUring, Buffers)> {
        let ring = IoUring::builder()
            .setup_cqsize(2 * RING)
            .setup_single_issuer()
            .setup_defer_taskrun()
            .build(RING)?;
        let buffers = Buffers::register(&ring, buffers)?;
        Ok((ring, buffers))
    }

    /// One ring: accepts from its own listener and serves what it
    /// accepted, until the process exits. Says on `ready` whether its ring
    /// could be set up.
    fn event_loop(
        listener: TcpListener,
        buffers: usize,
        ready: mpsc::Sender<io::Result<()>>,
    ) -> io::Result<()> {
        let (mut ring, mut buffers) = match setup(buffers) {
            Ok(set) => {
                let _ = ready.send(Ok(()));
                set
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
        // Connections whose receive ended for want of a buffer, to re-arm
        // when one comes back.
        let mut starved: Vec<usize> = Vec::new();
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
                            unsent: VecDeque::new(),
                            sending: false,
                            receiving: true,
                            closing: false,
                        });
                        push(&mut ring, &recv(conn, slot))?;
                    }
                    if !cqueue::more(flags) {
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
                if data & 1 == 0 {
                    // A receive: bytes in a provided buffer, or the end.
                    match (res, cqueue::buffer_select(flags)) {
                        (n, Some(id)) if n > 0 => {
                            buffers.available -= 1;
                            conn.unsent.push_back((id, 0, n as usize));
                        }
                        (n, Some(id)) => {
                            buffers.available -= 1;
                            buffers.give(id);
                            conn.closing |= n != -libc::ENOBUFS;
                        }
                        (n, None) if n == -libc::ENOBUFS => {}
                        _ => conn.closing = true,
                    }
                    if !cqueue::more(flags) {
                        conn.receiving = false;
                        if res == -libc::ENOBUFS && !conn.closing {
                            starved.push(slot);
                        } else if !conn.closing {
                            conn.receiving = true;
                            push(&mut ring, &recv(conn, slot))?;
                        }
                    }
                } else {
                    // A send of the first unsent buffer.
                    conn.sending = false;
                    if res <= 0 {
                        conn.closing = true;
                        // Ends the receive, so the slot can be freed.
                        let _ = conn.stream.shutdown(Shutdown::Both);
                    } else if let Some(head) = conn.unsent.front_mut() {
                        head.1 += res as usize;
                        if head.1 >= head.2 {
                            let id = head.0;
                            conn.unsent.pop_front();
                            buffers.give(id);
                        }
                    }
                }
                let Some(Some(conn)) = conns.get_mut(slot) else {
                    continue;
                };
                if !conn.sending && !conn.closing {
                    if let Some(e) = send(conn, slot, &buffers) {
                        conn.sending = true;
                        push(&mut ring, &e)?;
                    }
                }
                if conn.closing && !conn.sending && !conn.receiving {
                    // Nothing in flight points at this connection any more.
                    for (id, _, _) in conn.unsent.drain(..) {
                        buffers.give(id);
                    }
                    conns[slot] = None;
                    free.push(slot);
                }
            }
            // As many starved receives as there are buffers to fill (one
            // that still finds none is starved again).
            let mut budget = buffers.available;
            while budget > 0 {
                let Some(slot) = starved.pop() else { break };
                if let Some(Some(conn)) = conns.get_mut(slot) {
                    if !conn.closing && !conn.receiving {
                        conn.receiving = true;
                        push(&mut ring, &recv(conn, slot))?;
                        budget -= 1;
                    }
                }
            }
        }
    }

    pub(crate) fn main() -> io::Result<()> {
        let addr = peer::addr_from_args()?;
        let [threads, buffers] = peer::numeric_options(
            "usage: peer-uring [PORT|ADDR] [--threads N] [--buffers N (a power of two, at most 32768)]",
            ["--threads", "--buffers"],
            |name, n| match name {
                "--threads" => n > 0,
                _ => n.is_power_of_two() && n <= 1 << 15,
            },
        );
        let buffers = buffers.unwrap_or(BUFFERS);
        let (addr, listeners) = peer::loop_listeners(addr, threads)?;
        let mut handles = Vec::new();
        let (ready, rings) = mpsc::channel();
        for (i, l) in listeners.into_iter().enumerate() {
            let ready = ready.clone();
            handles.push(
                std::thread::Builder::new()
                    .name(format!("uring-loop-{i}"))
                    .spawn(move || event_loop(l, buffers, ready))?,
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
