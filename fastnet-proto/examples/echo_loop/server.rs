// The server loop of the echo_loop example (run it with
// `cargo run -p fastnet-proto --example echo_loop -- 127.0.0.1:7000`); the
// integration test tests/echo_loop.rs includes this file as a module.
//
// Everything protocol-shaped (framing, limits, timeouts, backpressure,
// orderly close) lives in `Connection`; this file only moves bytes between
// mio sockets and connections, and time into them.

use std::collections::BTreeMap;
use std::io::{self, IoSlice, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fastnet_proto::codec::{DelimiterDecoder, DelimiterEncoder};
use fastnet_proto::connection::{Buffers, Limits};
use fastnet_proto::Connection;
use mio::event::Event;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

/// A lines connection over heap storage (one rx and one tx `Vec` per
/// connection, allocated once at accept).
type LineConn = Connection<DelimiterDecoder, DelimiterEncoder, Vec<u8>, Vec<u8>>;

const LISTENER: Token = Token(0);

/// How long `poll` may sleep with no timer due, so that the stop flag is
/// seen promptly.
const STOP_CHECK: Duration = Duration::from_millis(20);

/// Server settings.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Config {
    /// Longest line, delimiter included.
    pub(crate) max_frame: usize,
    /// Close a connection when nothing moved for this long.
    pub(crate) idle_timeout: Option<Duration>,
    /// Close a connection whose line stays unfinished for this long.
    pub(crate) read_timeout: Option<Duration>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_frame: 4096,
            idle_timeout: Some(Duration::from_secs(30)),
            read_timeout: Some(Duration::from_secs(10)),
        }
    }
}

/// What the server did, returned when it stops.
#[derive(Clone, Debug, Default)]
pub(crate) struct ServeStats {
    /// Connections accepted.
    pub(crate) accepted: u64,
    /// Closed connections by [`CloseReason::name`](fastnet_proto::connection::CloseReason::name).
    pub(crate) closed: BTreeMap<&'static str, u64>,
    /// Connections still open when the server stopped (dropped).
    pub(crate) open_at_stop: u64,
    /// Lines received and echoed, over closed connections.
    pub(crate) frames_in: u64,
    /// Lines queued, over closed connections.
    pub(crate) frames_out: u64,
    /// Bytes received, over closed connections.
    pub(crate) bytes_in: u64,
    /// Bytes written, over closed connections.
    pub(crate) bytes_out: u64,
    /// Times a connection stopped reading because its peer was not
    /// draining replies (backpressure).
    pub(crate) backpressured: u64,
    /// `accept` failures other than "would block" (e.g. out of descriptors).
    pub(crate) accept_errors: u64,
}

/// One client: its socket, its state machine, and what the socket is known
/// to be ready for (mio is edge-triggered, so readiness is remembered until
/// an operation reports `WouldBlock`).
#[derive(Debug)]
struct Client {
    sock: TcpStream,
    conn: LineConn,
    readable: bool,
    writable: bool,
    /// Whether WRITABLE is in the registered interest.
    write_interest: bool,
}

/// Runs a lines echo server on `listener` until `stop` is set.
///
/// Errors only if the configuration is invalid or the poller itself fails;
/// a failing client is closed with
/// [`CloseReason::Reset`](fastnet_proto::connection::CloseReason::Reset) and
/// the others go on.
pub(crate) fn serve(
    listener: TcpListener,
    config: Config,
    stop: Arc<AtomicBool>,
) -> io::Result<ServeStats> {
    let mut server = Server::new(listener, config)?;
    let mut events = Events::with_capacity(256);
    while !stop.load(Ordering::Relaxed) {
        match server.poll.poll(&mut events, Some(server.wait())) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        for event in &events {
            if event.token() == LISTENER {
                server.accept_all()?;
            } else {
                server.on_event(event);
            }
        }
        server.fire_timers();
    }
    server.stats.open_at_stop = server.clients.iter().flatten().count() as u64;
    Ok(server.stats)
}

/// The loop's state.
#[derive(Debug)]
struct Server {
    poll: Poll,
    listener: TcpListener,
    /// Slot `i` is token `i + 1`; freed slots are reused.
    clients: Vec<Option<Client>>,
    free: Vec<usize>,
    decoder: DelimiterDecoder,
    encoder: DelimiterEncoder,
    limits: Limits,
    max_frame: usize,
    start: Instant,
    stats: ServeStats,
}

impl Server {
    fn new(mut listener: TcpListener, config: Config) -> io::Result<Self> {
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let server = Server {
            poll,
            listener,
            clients: Vec::new(),
            free: Vec::new(),
            // Built once (this validates `max_frame`); each connection gets
            // a copy.
            decoder: DelimiterDecoder::lines(config.max_frame).map_err(invalid_input)?,
            encoder: DelimiterEncoder::lines(config.max_frame).map_err(invalid_input)?,
            limits: Limits::default()
                .idle_timeout(config.idle_timeout)
                .read_timeout(config.read_timeout),
            max_frame: config.max_frame,
            start: Instant::now(),
            stats: ServeStats::default(),
        };
        // Check the connection settings once, so accepting cannot fail on
        // them later.
        server.new_conn()?;
        Ok(server)
    }

    /// The time, as the connections see it.
    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    /// How long to sleep: until the earliest deadline of any connection (a
    /// linear scan: fine for an example; a timer wheel scales better), and
    /// never longer than [`STOP_CHECK`].
    fn wait(&self) -> Duration {
        let now = self.now();
        self.clients
            .iter()
            .flatten()
            .filter_map(|c| c.conn.poll_timeout())
            .min()
            .map_or(STOP_CHECK, |d| d.saturating_sub(now).min(STOP_CHECK))
    }

    fn new_conn(&self) -> io::Result<LineConn> {
        Connection::new(
            self.decoder,
            self.encoder,
            Buffers {
                // rx holds one maximum line; tx two, so an echoed line
                // always fits below the default high-water mark (half of
                // tx) and `send` cannot run out of room.
                rx: vec![0; self.max_frame],
                tx: vec![0; 2 * self.max_frame],
            },
            self.limits,
            self.now(),
        )
        .map_err(invalid_input)
    }

    /// Accepts every pending connection.
    fn accept_all(&mut self) -> io::Result<()> {
        loop {
            let mut sock = match self.listener.accept() {
                Ok((sock, _peer)) => sock,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                Err(_) => {
                    // Out of descriptors or memory: try again on the next
                    // event rather than stopping the server.
                    self.stats.accept_errors += 1;
                    return Ok(());
                }
            };
            // Replies are whole lines already: no need to wait for more.
            let _ = sock.set_nodelay(true);
            let conn = self.new_conn()?;
            let slot = self.free.pop().unwrap_or_else(|| {
                self.clients.push(None);
                self.clients.len() - 1
            });
            self.poll
                .registry()
                .register(&mut sock, Token(slot + 1), Interest::READABLE)?;
            self.stats.accepted += 1;
            self.clients[slot] = Some(Client {
                sock,
                conn,
                // Bytes may have arrived before registration: try a read.
                readable: true,
                writable: true,
                write_interest: false,
            });
            self.drive(slot);
        }
    }

    fn on_event(&mut self, event: &Event) {
        let slot = event.token().0 - 1;
        let Some(Some(client)) = self.clients.get_mut(slot) else {
            return;
        };
        // Errors and hang-ups are found by the read or write they make
        // fail, so they count as readiness.
        client.readable |= event.is_readable() || event.is_read_closed() || event.is_error();
        client.writable |= event.is_writable() || event.is_write_closed() || event.is_error();
        self.drive(slot);
    }

    /// Fires the timers of every connection whose deadline passed.
    fn fire_timers(&mut self) {
        let now = self.now();
        for slot in 0..self.clients.len() {
            let Some(client) = self.clients[slot].as_mut() else {
                continue;
            };
            if client.conn.poll_timeout().is_some_and(|d| d <= now) {
                client.conn.handle_timeout(now);
                // A read timeout flushes queued replies before closing.
                self.drive(slot);
            }
        }
    }

    /// Drives one client after an input, then drops it if it closed or
    /// registers WRITABLE interest exactly when it has bytes to write.
    fn drive(&mut self, slot: usize) {
        let now = self.now();
        let Some(client) = self.clients[slot].as_mut() else {
            return;
        };
        self.stats.backpressured += drive(client, now);
        let want_write = client.conn.wants_write();
        if !client.conn.is_closed() && want_write != client.write_interest {
            let interest = if want_write {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            let token = Token(slot + 1);
            match self
                .poll
                .registry()
                .reregister(&mut client.sock, token, interest)
            {
                Ok(()) => client.write_interest = want_write,
                // The socket is unusable: close this client only.
                Err(_) => client.conn.handle_reset(),
            }
        }
        if client.conn.is_closed() {
            self.remove(slot);
        }
    }

    /// Drops a closed client, adding its counters to the totals.
    fn remove(&mut self, slot: usize) {
        let Some(mut client) = self.clients[slot].take() else {
            return;
        };
        self.free.push(slot);
        let s = client.conn.stats();
        self.stats.frames_in += s.frames_in;
        self.stats.frames_out += s.frames_out;
        self.stats.bytes_in += s.bytes_in;
        self.stats.bytes_out += s.bytes_out;
        if let Some(reason) = client.conn.close_reason() {
            *self.stats.closed.entry(reason.name()).or_default() += 1;
        }
        // Dropping the socket closes it; deregistering first keeps the
        // poller's books straight on every platform.
        let _ = self.poll.registry().deregister(&mut client.sock);
    }
}

/// The driver loop of the `Connection` docs: after an input, drain the
/// outputs until nothing makes progress. Returns how many times the
/// connection became backpressured.
fn drive(client: &mut Client, now: Duration) -> u64 {
    let Client {
        sock,
        conn,
        readable,
        writable,
        ..
    } = client;
    let mut backpressured = 0;
    while !conn.is_closed() {
        let mut progress = false;

        // 1. Read until the socket would block (or the connection wants no
        //    more: backpressure, EOF, closing). `readable` stays set then,
        //    so reading resumes here once backpressure lifts.
        if *readable {
            if let Some(buf) = conn.read_buf() {
                match sock.read(buf) {
                    Ok(0) => {
                        conn.handle_eof(now);
                        *readable = false;
                    }
                    Ok(n) => conn.handle_read(n, now),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => *readable = false,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => conn.handle_reset(),
                }
                // Even "would block" changed what is known; go round once more.
                progress = true;
            }
        }

        // 2. Echo every complete line. A line the encoder cannot write back
        //    unchanged (it ends in CR, which the decoder strips with the LF)
        //    closes the connection rather than echoing something else.
        let was_paused = conn.is_backpressured();
        if conn.poll_frames(|line, out| {
            if out.send(line).is_err() {
                out.close();
            }
        }) > 0
        {
            progress = true;
        }
        backpressured += u64::from(!was_paused && conn.is_backpressured());

        // 3. Write what is queued, both slices in one vectored write; this
        //    may lift backpressure, so the loop goes round again.
        if *writable && conn.wants_write() {
            let (a, b) = conn.poll_transmit();
            match sock.write_vectored(&[IoSlice::new(a), IoSlice::new(b)]) {
                Ok(n) => {
                    conn.handle_written(n, now);
                    progress |= n > 0;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => *writable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => progress = true,
                Err(_) => conn.handle_reset(),
            }
        }

        if !progress {
            break;
        }
    }
    backpressured
}

fn invalid_input(e: fastnet_proto::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, e.to_string())
}
