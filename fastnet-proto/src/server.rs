//! IO-free server pieces shared by the drivers: configuration, admission
//! (connection limits, per IP), and live statistics.
//!
//! Both drivers (blocking `fastnet-std`, async `fastnet-smol`) use these
//! types, so the two speak the same language and neither depends on the
//! other.

use core::fmt;
use core::num::NonZeroU32;
use core::time::Duration;

use crate::codec::CodecSpec;
use crate::connection::{CloseReason, Limits};

/// What a server does with its connections, independent of how it does IO.
///
/// Settings may be added in a minor release, so outside this crate the
/// struct is not built with a literal: start from [`ServerConfig::new`]
/// and chain the setters, or assign the fields.
///
/// ```
/// use fastnet_proto::codec::CodecSpec;
/// use fastnet_proto::server::ServerConfig;
///
/// let mut cfg = ServerConfig::new(CodecSpec::lines(1024))
///     .max_connections(500)
///     .max_connections_per_ip(Some(8));
/// cfg.limits.read_timeout = None;
/// assert_eq!(cfg.max_connections, 500);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Framing of incoming frames; replies use [`reply_codec`](field@Self::reply_codec).
    pub codec: CodecSpec,
    /// Framing of replies (default: the same as `codec`).
    pub reply_codec: Option<CodecSpec>,
    /// Per-connection limits and timeouts.
    pub limits: Limits,
    /// Most connections open at once; more are refused at accept. A driver
    /// fits it to the file-descriptor limit at bind (on unix): it raises
    /// the soft `RLIMIT_NOFILE` towards the hard one if the connections
    /// need more, and lowers this value if even the hard limit cannot hold
    /// them with a small reserve, so that a full server refuses
    /// connections cleanly instead of failing to accept them. The value in
    /// force is the one the server's `config()` shows.
    pub max_connections: usize,
    /// Most connections open at once from one IP address, or rather one
    /// network of [`per_ip_prefix`](field@Self::per_ip_prefix) (IPv4-mapped IPv6
    /// addresses count as their IPv4 address).
    pub max_connections_per_ip: Option<usize>,
    /// How much of a peer's address `max_connections_per_ip` counts by:
    /// /32 for IPv4 and /64 for IPv6 by default, since one IPv6 host
    /// usually holds a whole /64 and could otherwise open its allowance
    /// from each of its addresses.
    pub per_ip_prefix: IpPrefix,
    /// Worker threads: the pool limit for the blocking driver, the executor
    /// threads for the async driver. 0 means the driver's default (blocking:
    /// twice `max_connections`, so that a connection admitted while a
    /// worker finishes the one before it is never refused for want of a
    /// thread; threads are started only when needed. Async: one per
    /// core).
    pub workers: usize,
    /// How long an idle pooled worker waits for work before it exits.
    pub worker_idle_expiry: Duration,
    /// Receive buffer per connection in bytes (at least the codec's maximum
    /// frame; smaller values are raised to it).
    pub rx_buffer: usize,
    /// Reply buffer per connection in bytes.
    pub tx_buffer: usize,
    /// Bytes that other threads may queue for one connection through its
    /// handles (encoded frames plus 4 bytes each) before `send` reports
    /// the queue full; see [`PushQueue`](crate::connection::PushQueue).
    pub push_queue: usize,
    /// Set `TCP_NODELAY` on accepted sockets.
    pub nodelay: bool,
    /// TCP keepalive on accepted sockets: probes start after the
    /// connection has been silent this long (whole seconds, at least one),
    /// so a peer that vanished without a word (a powered-off device, a
    /// dropped NAT mapping) is found out and its connection closed with
    /// [`CloseReason::Reset`]. `None` turns keepalive off. Default
    /// [`DEFAULT_KEEPALIVE`].
    pub keepalive: Option<Duration>,
    /// Connections the kernel may hold completed but not yet accepted
    /// (`listen` backlog; the kernel caps it, on Linux at
    /// `net.core.somaxconn`). A burst of connects beyond it has its SYNs
    /// dropped, and those clients retry only after a second or more.
    pub listen_backlog: u32,
    /// Most TLS handshakes in progress at once (each holds a connection
    /// slot and, in fastnet-std, a thread, for up to the handshake timeout);
    /// more are refused at accept ([`RejectReason::Handshakes`]). At least
    /// 1; ignored without TLS.
    pub max_handshakes: usize,
    /// Bind with `SO_REUSEPORT`, so that several servers (processes or
    /// threads) can listen on one port and the kernel spreads connections
    /// over them. Unix only: elsewhere `bind` fails naming this setting.
    pub reuse_port: bool,
}

impl ServerConfig {
    /// Defaults for `codec`: 10 000 connections, no per-IP limit, one worker
    /// per core, 8 KiB buffers (or the maximum frame, if larger), 64 KiB of
    /// queued pushes per connection, `TCP_NODELAY` on, TCP keepalive after
    /// 60 s of silence, a listen backlog of 1024, at most 256 TLS
    /// handshakes at once, no `SO_REUSEPORT`, and the limits of
    /// [`ServerConfig::default_limits`].
    pub fn new(codec: CodecSpec) -> Self {
        ServerConfig {
            codec,
            reply_codec: None,
            limits: Self::default_limits(),
            max_connections: 10_000,
            max_connections_per_ip: None,
            per_ip_prefix: IpPrefix::default(),
            workers: 0,
            worker_idle_expiry: Duration::from_secs(10),
            rx_buffer: 8 * 1024,
            tx_buffer: 8 * 1024,
            push_queue: 64 * 1024,
            nodelay: true,
            keepalive: Some(DEFAULT_KEEPALIVE),
            listen_backlog: 1024,
            max_handshakes: 256,
            reuse_port: false,
        }
    }

    crate::setters! {
        codec: CodecSpec,
    }

    /// Sets [`reply_codec`](field@Self::reply_codec) (the name without
    /// `with_` is the getter [`reply_codec()`](method@Self::reply_codec)).
    pub const fn with_reply_codec(mut self, reply_codec: Option<CodecSpec>) -> Self {
        self.reply_codec = reply_codec;
        self
    }

    crate::setters! {
        limits: Limits,
        max_connections: usize,
        max_connections_per_ip: Option<usize>,
        per_ip_prefix: IpPrefix,
        workers: usize,
        worker_idle_expiry: Duration,
        rx_buffer: usize,
        tx_buffer: usize,
        push_queue: usize,
        nodelay: bool,
        keepalive: Option<Duration>,
        listen_backlog: u32,
        max_handshakes: usize,
        reuse_port: bool,
    }

    /// The limits a server starts with, safe against peers that stall:
    /// a frame must arrive whole within [`DEFAULT_READ_TIMEOUT`], queued
    /// bytes must be taken within [`DEFAULT_WRITE_STALL_TIMEOUT`], and a
    /// closing connection gets [`DEFAULT_DRAIN_TIMEOUT`] to flush. There is
    /// no idle timeout: a quiet connection between whole frames costs no
    /// buffers (it is parked), and many framed protocols keep connections
    /// open and silent for long stretches (devices, feeds, push channels);
    /// set one to reclaim them. A connection yields its thread after
    /// [`DEFAULT_WAKE_BUDGET`] reads and frames in a row, so one fast
    /// sender cannot hold the others up. No byte limit. Any of them can be
    /// turned off with `None`.
    pub const fn default_limits() -> Limits {
        Limits {
            idle_timeout: None,
            read_timeout: Some(DEFAULT_READ_TIMEOUT),
            write_stall_timeout: Some(DEFAULT_WRITE_STALL_TIMEOUT),
            max_bytes_in: None,
            tx_high_water: None,
            tx_low_water: None,
            drain_timeout: Some(DEFAULT_DRAIN_TIMEOUT),
            skip_malformed: false,
            wake_budget: NonZeroU32::new(DEFAULT_WAKE_BUDGET),
        }
    }

    /// The codec used for replies: [`reply_codec`](field@Self::reply_codec)
    /// if set, else [`codec`](field@Self::codec).
    pub fn reply_codec(&self) -> CodecSpec {
        self.reply_codec.unwrap_or(self.codec)
    }

    /// The receive buffer size actually used: never below the maximum frame.
    pub fn rx_buffer_len(&self) -> usize {
        self.rx_buffer.max(self.codec.max_frame())
    }

    /// The reply buffer size actually used: never below twice the reply
    /// codec's maximum frame, so a maximum-size reply always fits below the
    /// default high-water mark (half the buffer).
    pub fn tx_buffer_len(&self) -> usize {
        self.tx_buffer
            .max(self.reply_codec().max_frame().saturating_mul(2))
    }
}

/// How long a connection may be silent before TCP keepalive probes start,
/// by default ([`ServerConfig::keepalive`], and the clients' too): a
/// minute finds a vanished peer within minutes rather than the hours of
/// the usual system default, and costs an idle connection one small
/// packet a minute.
///
/// [`ServerConfig::keepalive`]: field@ServerConfig::keepalive
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(60);

/// How long a closing connection may take to flush by default
/// ([`Limits::drain_timeout`] of [`ServerConfig::new`]).
///
/// [`Limits::drain_timeout`]: field@Limits::drain_timeout
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a started frame may take to arrive whole by default
/// ([`Limits::read_timeout`] of [`ServerConfig::new`]): long enough for a
/// maximum-size frame over a slow mobile link, short enough that a peer
/// trickling bytes cannot hold a buffer for long.
///
/// [`Limits::read_timeout`]: field@Limits::read_timeout
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How long queued bytes may wait for the peer to take them by default
/// ([`Limits::write_stall_timeout`] of [`ServerConfig::new`]).
///
/// [`Limits::write_stall_timeout`]: field@Limits::write_stall_timeout
pub const DEFAULT_WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Reads and frames a connection handles in a row before it lets the
/// others on its thread run, by default ([`Limits::wake_budget`] of
/// [`ServerConfig::new`]): a pipelining client's batch of a few dozen
/// frames goes through in one turn, a flood takes turns.
///
/// [`Limits::wake_budget`]: field@Limits::wake_budget
pub const DEFAULT_WAKE_BUDGET: u32 = 64;

/// The network prefix by which per-IP limits count peers: addresses that
/// share their first `v4` (IPv4) or `v6` (IPv6) bits count as one.
/// Lengths beyond the address size count as the whole address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IpPrefix {
    /// Prefix length for IPv4 peers (and IPv4-mapped IPv6 ones), 0–32.
    pub v4: u8,
    /// Prefix length for IPv6 peers, 0–128.
    pub v6: u8,
}

impl Default for IpPrefix {
    /// /32 (one address) for IPv4, /64 (one host's usual allocation) for
    /// IPv6.
    fn default() -> Self {
        IpPrefix { v4: 32, v6: 64 }
    }
}

impl IpPrefix {
    /// The network `ip` belongs to: IPv4-mapped addresses as IPv4, the
    /// bits past the prefix cleared.
    pub fn network(&self, ip: core::net::IpAddr) -> core::net::IpAddr {
        use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
        match ip.to_canonical() {
            IpAddr::V4(a) => {
                let bits = u32::from(self.v4.min(32));
                let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
            }
            IpAddr::V6(a) => {
                let bits = u32::from(self.v6.min(128));
                let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
            }
        }
    }
}

/// Why a connection was refused before it was served.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectReason {
    /// `max_connections` reached.
    MaxConnections,
    /// `max_connections_per_ip` reached for the peer's address.
    MaxPerIp,
    /// Every worker is busy and the pool is at its limit.
    WorkersBusy,
    /// The handler's `on_connect` refused it.
    Refused,
    /// The server is shutting down.
    ShuttingDown,
    /// `max_handshakes` TLS handshakes are in progress.
    Handshakes,
}

impl RejectReason {
    /// Every reason, in a fixed order (for statistics tables).
    pub const ALL: [RejectReason; 6] = [
        RejectReason::MaxConnections,
        RejectReason::MaxPerIp,
        RejectReason::WorkersBusy,
        RejectReason::Refused,
        RejectReason::ShuttingDown,
        RejectReason::Handshakes,
    ];

    /// A short, stable name.
    pub const fn name(&self) -> &'static str {
        match self {
            RejectReason::MaxConnections => "max-connections",
            RejectReason::MaxPerIp => "max-per-ip",
            RejectReason::WorkersBusy => "workers-busy",
            RejectReason::Refused => "refused",
            RejectReason::ShuttingDown => "shutting-down",
            RejectReason::Handshakes => "handshakes",
        }
    }

    #[cfg(target_has_atomic = "64")]
    const fn index(&self) -> usize {
        match self {
            RejectReason::MaxConnections => 0,
            RejectReason::MaxPerIp => 1,
            RejectReason::WorkersBusy => 2,
            RejectReason::Refused => 3,
            RejectReason::ShuttingDown => 4,
            RejectReason::Handshakes => 5,
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RejectReason::MaxConnections => "connection limit reached",
            RejectReason::MaxPerIp => "per-IP connection limit reached",
            RejectReason::WorkersBusy => "all workers busy",
            RejectReason::Refused => "refused by the handler",
            RejectReason::ShuttingDown => "server shutting down",
            RejectReason::Handshakes => "TLS handshakes in progress at max_handshakes",
        })
    }
}

/// Close reasons in a fixed order, for statistics tables.
pub const CLOSE_REASONS: [CloseReason; 11] = [
    CloseReason::PeerClosed,
    CloseReason::IdleTimeout,
    CloseReason::ReadTimeout,
    CloseReason::FrameTooLarge,
    CloseReason::ByteLimit,
    CloseReason::Protocol(crate::Error::VarintOverflow),
    CloseReason::Local,
    CloseReason::Reset,
    CloseReason::Tls(crate::connection::TlsFailure::HandshakeTimeout),
    CloseReason::Panic,
    CloseReason::WriteStall,
];

#[cfg(target_has_atomic = "64")]
const fn close_index(reason: &CloseReason) -> usize {
    match reason {
        CloseReason::PeerClosed => 0,
        CloseReason::IdleTimeout => 1,
        CloseReason::ReadTimeout => 2,
        CloseReason::FrameTooLarge => 3,
        CloseReason::ByteLimit => 4,
        CloseReason::Protocol(_) => 5,
        CloseReason::Local => 6,
        CloseReason::Reset => 7,
        CloseReason::Tls(_) => 8,
        CloseReason::Panic => 9,
        CloseReason::WriteStall => 10,
    }
}

/// Admission control: the connection limits, total and per IP address.
///
/// Not thread-safe by itself; a driver keeps it behind its accept loop or a
/// lock. Addresses are compared after IPv4-mapped IPv6 addresses are turned
/// into IPv4, so a dual-stack listener cannot be used to double the per-IP
/// allowance, and IPv6 peers are limited like IPv4 peers.
#[cfg(feature = "alloc")]
#[derive(Clone, Debug, Default)]
pub struct Admission {
    max_total: usize,
    max_per_ip: Option<usize>,
    prefix: IpPrefix,
    open: usize,
    per_ip: alloc::collections::BTreeMap<core::net::IpAddr, usize>,
}

#[cfg(feature = "alloc")]
impl Admission {
    /// Limits from a server configuration.
    pub fn new(max_total: usize, max_per_ip: Option<usize>) -> Self {
        Admission {
            max_total,
            max_per_ip,
            prefix: IpPrefix::default(),
            open: 0,
            per_ip: Default::default(),
        }
    }

    /// Counts peers by network of `prefix` instead of the default
    /// (/32 IPv4, /64 IPv6).
    pub fn with_prefix(mut self, prefix: IpPrefix) -> Self {
        self.prefix = prefix;
        self
    }

    /// Counts a new connection from `ip`, or says why it must be refused.
    pub fn try_admit(&mut self, ip: core::net::IpAddr) -> Result<(), RejectReason> {
        if self.open >= self.max_total {
            return Err(RejectReason::MaxConnections);
        }
        let ip = self.prefix.network(ip);
        let count = self.per_ip.get(&ip).copied().unwrap_or(0);
        if self.max_per_ip.is_some_and(|max| count >= max) {
            return Err(RejectReason::MaxPerIp);
        }
        self.per_ip.insert(ip, count + 1);
        self.open += 1;
        Ok(())
    }

    /// A connection admitted from `ip` has ended.
    pub fn release(&mut self, ip: core::net::IpAddr) {
        let ip = self.prefix.network(ip);
        if let Some(count) = self.per_ip.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                self.per_ip.remove(&ip);
            }
            self.open -= 1;
        }
    }

    /// Connections currently admitted.
    pub fn open(&self) -> usize {
        self.open
    }
}

/// Live counters of a server, updated with relaxed atomics and cheap to
/// read while serving. Drivers add a connection's traffic in batches (per
/// wake-up, not per frame), and into one of [`TRAFFIC_SHARDS`] shards of
/// their choosing (a thread's or a core's), each on its own cache line, so
/// that threads on different cores do not pass one line back and forth on
/// every request; [`snapshot`](Self::snapshot) adds the shards up.
#[cfg(target_has_atomic = "64")]
#[derive(Debug, Default)]
pub struct ServerStats {
    accepted: core::sync::atomic::AtomicU64,
    rejected: [core::sync::atomic::AtomicU64; RejectReason::ALL.len()],
    closed: [core::sync::atomic::AtomicU64; CLOSE_REASONS.len()],
    pushes_dropped: core::sync::atomic::AtomicU64,
    accept_errors: core::sync::atomic::AtomicU64,
    traffic: [TrafficShard; TRAFFIC_SHARDS],
}

/// How many traffic shards [`ServerStats`] keeps; a shard index is taken
/// modulo this.
#[cfg(target_has_atomic = "64")]
pub const TRAFFIC_SHARDS: usize = 16;

/// One shard of traffic counters, alone on its cache line (two lines on
/// CPUs that fetch lines in pairs).
#[cfg(target_has_atomic = "64")]
#[derive(Debug, Default)]
#[repr(align(128))]
struct TrafficShard {
    frames_in: core::sync::atomic::AtomicU64,
    frames_out: core::sync::atomic::AtomicU64,
    bytes_in: core::sync::atomic::AtomicU64,
    bytes_out: core::sync::atomic::AtomicU64,
}

/// A point-in-time copy of [`ServerStats`]. With the feature `serde` it
/// serialises with every counter by name (`{"accepted":3,"rejected":
/// {"max_connections":0,..},"closed":{"peer_closed":2,..},..}`).
///
/// Counters may be added in a minor release: read them by name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct StatsSnapshot {
    /// Connections accepted (and served).
    pub accepted: u64,
    /// Connections refused, by reason.
    pub rejected: Rejected,
    /// Connections closed, by reason.
    pub closed: Closed,
    /// Frames received.
    pub frames_in: u64,
    /// Frames sent.
    pub frames_out: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Pushed frames dropped because their connection closed before they
    /// could be sent.
    pub pushes_dropped: u64,
    /// Failed accepts that cost a pause (out of descriptors or memory,
    /// say); a peer that left before it was accepted is not counted.
    pub accept_errors: u64,
}

/// Connections refused, one counter per [`RejectReason`].
///
/// Counters may be added in a minor release: read them by name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct Rejected {
    /// [`RejectReason::MaxConnections`].
    pub max_connections: u64,
    /// [`RejectReason::MaxPerIp`].
    pub max_per_ip: u64,
    /// [`RejectReason::WorkersBusy`].
    pub workers_busy: u64,
    /// [`RejectReason::Refused`].
    pub refused: u64,
    /// [`RejectReason::ShuttingDown`].
    pub shutting_down: u64,
    /// [`RejectReason::Handshakes`].
    pub handshakes: u64,
}

impl Rejected {
    /// The counter of `reason`.
    pub const fn get(&self, reason: RejectReason) -> u64 {
        match reason {
            RejectReason::MaxConnections => self.max_connections,
            RejectReason::MaxPerIp => self.max_per_ip,
            RejectReason::WorkersBusy => self.workers_busy,
            RejectReason::Refused => self.refused,
            RejectReason::ShuttingDown => self.shutting_down,
            RejectReason::Handshakes => self.handshakes,
        }
    }

    /// Every counter added up.
    pub fn total(&self) -> u64 {
        RejectReason::ALL.iter().map(|r| self.get(*r)).sum()
    }

    /// Each counter from `count` of its reason.
    #[cfg(target_has_atomic = "64")]
    fn from_fn(count: impl Fn(RejectReason) -> u64) -> Self {
        Rejected {
            max_connections: count(RejectReason::MaxConnections),
            max_per_ip: count(RejectReason::MaxPerIp),
            workers_busy: count(RejectReason::WorkersBusy),
            refused: count(RejectReason::Refused),
            shutting_down: count(RejectReason::ShuttingDown),
            handshakes: count(RejectReason::Handshakes),
        }
    }
}

/// Connections closed, one counter per kind of [`CloseReason`] (every
/// `Protocol(_)` counts together, and every `Tls(_)`).
///
/// Counters may be added in a minor release: read them by name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct Closed {
    /// [`CloseReason::PeerClosed`].
    pub peer_closed: u64,
    /// [`CloseReason::IdleTimeout`].
    pub idle_timeout: u64,
    /// [`CloseReason::ReadTimeout`].
    pub read_timeout: u64,
    /// [`CloseReason::WriteStall`].
    pub write_stall: u64,
    /// [`CloseReason::FrameTooLarge`].
    pub frame_too_large: u64,
    /// [`CloseReason::ByteLimit`].
    pub byte_limit: u64,
    /// [`CloseReason::Protocol`], whatever the error.
    pub protocol: u64,
    /// [`CloseReason::Local`].
    pub local: u64,
    /// [`CloseReason::Reset`].
    pub reset: u64,
    /// [`CloseReason::Tls`], whatever the failure.
    pub tls: u64,
    /// [`CloseReason::Panic`].
    pub panic: u64,
}

impl Closed {
    /// The counter of `reason`'s kind.
    pub const fn get(&self, reason: CloseReason) -> u64 {
        match reason {
            CloseReason::PeerClosed => self.peer_closed,
            CloseReason::IdleTimeout => self.idle_timeout,
            CloseReason::ReadTimeout => self.read_timeout,
            CloseReason::WriteStall => self.write_stall,
            CloseReason::FrameTooLarge => self.frame_too_large,
            CloseReason::ByteLimit => self.byte_limit,
            CloseReason::Protocol(_) => self.protocol,
            CloseReason::Local => self.local,
            CloseReason::Reset => self.reset,
            CloseReason::Tls(_) => self.tls,
            CloseReason::Panic => self.panic,
        }
    }

    /// Every counter added up.
    pub fn total(&self) -> u64 {
        CLOSE_REASONS.iter().map(|r| self.get(*r)).sum()
    }

    /// Each counter from `count` of its kind.
    #[cfg(target_has_atomic = "64")]
    fn from_fn(count: impl Fn(CloseReason) -> u64) -> Self {
        Closed {
            peer_closed: count(CloseReason::PeerClosed),
            idle_timeout: count(CloseReason::IdleTimeout),
            read_timeout: count(CloseReason::ReadTimeout),
            write_stall: count(CloseReason::WriteStall),
            frame_too_large: count(CloseReason::FrameTooLarge),
            byte_limit: count(CloseReason::ByteLimit),
            protocol: count(CloseReason::Protocol(crate::Error::VarintOverflow)),
            local: count(CloseReason::Local),
            reset: count(CloseReason::Reset),
            tls: count(CloseReason::Tls(
                crate::connection::TlsFailure::HandshakeTimeout,
            )),
            panic: count(CloseReason::Panic),
        }
    }
}

impl StatsSnapshot {
    /// Connections open: accepted and not yet closed.
    pub fn open(&self) -> u64 {
        self.accepted.saturating_sub(self.closed.total())
    }

    /// Connections refused for `reason`.
    pub fn rejected(&self, reason: RejectReason) -> u64 {
        self.rejected.get(reason)
    }

    /// Connections refused for any reason.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.total()
    }

    /// Connections closed for `reason` (every `Protocol(_)` counts
    /// together, and every `Tls(_)`).
    pub fn closed(&self, reason: CloseReason) -> u64 {
        self.closed.get(reason)
    }

    /// Connections closed for any reason.
    pub fn closed_total(&self) -> u64 {
        self.closed.total()
    }
}

impl fmt::Display for StatsSnapshot {
    /// One line: `accepted=.. open=.. rejected=.. closed=.. frames in/out .. bytes in/out ..`,
    /// listing only the reasons that occurred.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "accepted={} open={} rejected={}",
            self.accepted,
            self.open(),
            self.rejected_total()
        )?;
        for r in RejectReason::ALL {
            if self.rejected(r) > 0 {
                write!(f, " {}={}", r.name(), self.rejected(r))?;
            }
        }
        write!(f, " closed={}", self.closed_total())?;
        for r in CLOSE_REASONS {
            if self.closed(r) > 0 {
                write!(f, " {}={}", r.name(), self.closed(r))?;
            }
        }
        write!(
            f,
            " frames_in={} frames_out={} bytes_in={} bytes_out={}",
            self.frames_in, self.frames_out, self.bytes_in, self.bytes_out
        )?;
        if self.pushes_dropped > 0 {
            write!(f, " pushes_dropped={}", self.pushes_dropped)?;
        }
        if self.accept_errors > 0 {
            write!(f, " accept_errors={}", self.accept_errors)?;
        }
        Ok(())
    }
}

#[cfg(target_has_atomic = "64")]
impl ServerStats {
    /// All zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// A connection was accepted and will be served.
    pub fn on_accept(&self) {
        self.accepted
            .fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    }

    /// A connection was refused.
    pub fn on_reject(&self, reason: RejectReason) {
        self.rejected[reason.index()].fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    }

    /// An accept failed for a reason that makes the server pause (see
    /// [`StatsSnapshot::accept_errors`]).
    pub fn on_accept_error(&self) {
        self.accept_errors
            .fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    }

    /// A served connection closed.
    pub fn on_close(&self, reason: CloseReason) {
        self.closed[close_index(&reason)].fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    }

    /// Adds traffic: frames and bytes in and out since the last call for
    /// that connection (into shard 0; see [`add_traffic_on`](Self::add_traffic_on)).
    pub fn add_traffic(&self, frames_in: u64, frames_out: u64, bytes_in: u64, bytes_out: u64) {
        self.add_traffic_on(0, frames_in, frames_out, bytes_in, bytes_out);
    }

    /// [`add_traffic`](Self::add_traffic) into shard `shard` (modulo
    /// [`TRAFFIC_SHARDS`]): a driver passes its thread's or its core's
    /// number.
    pub fn add_traffic_on(
        &self,
        shard: usize,
        frames_in: u64,
        frames_out: u64,
        bytes_in: u64,
        bytes_out: u64,
    ) {
        use core::sync::atomic::Ordering::Relaxed;
        let t = &self.traffic[shard % TRAFFIC_SHARDS];
        if frames_in > 0 {
            t.frames_in.fetch_add(frames_in, Relaxed);
        }
        if frames_out > 0 {
            t.frames_out.fetch_add(frames_out, Relaxed);
        }
        if bytes_in > 0 {
            t.bytes_in.fetch_add(bytes_in, Relaxed);
        }
        if bytes_out > 0 {
            t.bytes_out.fetch_add(bytes_out, Relaxed);
        }
    }

    /// Adds one connection's counters, as
    /// [`Connection::take_stats`](crate::connection::Connection::take_stats)
    /// hands them out (into shard 0).
    pub fn add_conn(&self, stats: &crate::connection::ConnStats) {
        self.add_conn_on(0, stats);
    }

    /// [`add_conn`](Self::add_conn) into shard `shard`.
    pub fn add_conn_on(&self, shard: usize, stats: &crate::connection::ConnStats) {
        if stats.pushes_dropped > 0 {
            self.pushes_dropped
                .fetch_add(stats.pushes_dropped, core::sync::atomic::Ordering::Relaxed);
        }
        self.add_traffic_on(
            shard,
            stats.frames_in,
            stats.frames_out,
            stats.bytes_in,
            stats.bytes_out,
        );
    }

    /// Reads every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        use core::sync::atomic::Ordering::Relaxed;
        StatsSnapshot {
            accepted: self.accepted.load(Relaxed),
            rejected: Rejected::from_fn(|r| self.rejected[r.index()].load(Relaxed)),
            closed: Closed::from_fn(|r| self.closed[close_index(&r)].load(Relaxed)),
            frames_in: self.traffic.iter().map(|t| t.frames_in.load(Relaxed)).sum(),
            frames_out: self
                .traffic
                .iter()
                .map(|t| t.frames_out.load(Relaxed))
                .sum(),
            bytes_in: self.traffic.iter().map(|t| t.bytes_in.load(Relaxed)).sum(),
            bytes_out: self.traffic.iter().map(|t| t.bytes_out.load(Relaxed)).sum(),
            pushes_dropped: self.pushes_dropped.load(Relaxed),
            accept_errors: self.accept_errors.load(Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(feature = "alloc")]
    use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    #[test]
    fn server_config_setters_set_their_field() {
        // The literal names every field, so a new setting without a
        // setter fails here.
        let lines = CodecSpec::lines(100);
        let raw = CodecSpec::Raw { max_frame: 200 };
        let limits = Limits::none().idle_timeout(Some(Duration::from_secs(9)));
        let prefix = IpPrefix { v4: 24, v6: 48 };
        let second = Duration::from_secs(1);
        let set = ServerConfig::new(raw)
            .codec(lines)
            .with_reply_codec(Some(raw))
            .limits(limits)
            .max_connections(1)
            .max_connections_per_ip(Some(2))
            .per_ip_prefix(prefix)
            .workers(3)
            .worker_idle_expiry(second)
            .rx_buffer(4)
            .tx_buffer(5)
            .push_queue(6)
            .nodelay(false)
            .keepalive(None)
            .listen_backlog(7)
            .max_handshakes(8)
            .reuse_port(true);
        let want = ServerConfig {
            codec: lines,
            reply_codec: Some(raw),
            limits,
            max_connections: 1,
            max_connections_per_ip: Some(2),
            per_ip_prefix: prefix,
            workers: 3,
            worker_idle_expiry: second,
            rx_buffer: 4,
            tx_buffer: 5,
            push_queue: 6,
            nodelay: false,
            keepalive: None,
            listen_backlog: 7,
            max_handshakes: 8,
            reuse_port: true,
        };
        assert_eq!(set, want);
        assert_eq!(set.reply_codec(), raw);
    }

    #[cfg(feature = "alloc")]
    #[test]
    fn admission_limits_total_and_per_ip_including_ipv6() {
        let mut a = Admission::new(3, Some(1));
        let v4 = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        let mapped = IpAddr::V6(Ipv4Addr::new(127, 0, 0, 1).to_ipv6_mapped());
        assert_eq!(a.try_admit(v4), Ok(()));
        assert_eq!(a.try_admit(v4), Err(RejectReason::MaxPerIp));
        // Peer mistake: a per-IP limit that does nothing for IPv6.
        assert_eq!(a.try_admit(v6), Ok(()));
        assert_eq!(a.try_admit(v6), Err(RejectReason::MaxPerIp));
        assert_eq!(
            a.try_admit(mapped),
            Err(RejectReason::MaxPerIp),
            "mapped v4 is v4"
        );
        assert_eq!(a.try_admit(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))), Ok(()));
        assert_eq!(
            a.try_admit(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2))),
            Err(RejectReason::MaxConnections)
        );
        a.release(mapped);
        assert_eq!(a.open(), 2);
        assert_eq!(a.try_admit(v4), Ok(()));
        a.release(IpAddr::V4(Ipv4Addr::new(1, 1, 1, 1)));
        assert_eq!(a.open(), 3, "releasing an unknown address changes nothing");
    }

    #[cfg(feature = "alloc")]
    #[test]
    fn per_ip_limits_count_by_network() {
        let v6 =
            |last: u16, net: u16| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, net, 0, 0, 0, last));
        // Six addresses of one /64 are one peer by default.
        let mut a = Admission::new(100, Some(3));
        for i in 0..3 {
            assert_eq!(a.try_admit(v6(i, 1)), Ok(()));
        }
        for i in 3..6 {
            assert_eq!(a.try_admit(v6(i, 1)), Err(RejectReason::MaxPerIp));
        }
        assert_eq!(a.try_admit(v6(0, 2)), Ok(()), "another /64");
        a.release(v6(5, 1));
        assert_eq!(a.try_admit(v6(9, 1)), Ok(()), "released by network");
        // IPv4 by /24 when asked; by address otherwise.
        let v4 = |last| IpAddr::V4(Ipv4Addr::new(192, 0, 2, last));
        let mut a = Admission::new(100, Some(1)).with_prefix(IpPrefix { v4: 24, v6: 128 });
        assert_eq!(a.try_admit(v4(1)), Ok(()));
        assert_eq!(a.try_admit(v4(2)), Err(RejectReason::MaxPerIp));
        assert_eq!(a.try_admit(v6(1, 1)), Ok(()));
        assert_eq!(a.try_admit(v6(2, 1)), Ok(()), "/128: every address its own");
        let mut a = Admission::new(100, Some(1));
        assert_eq!(a.try_admit(v4(1)), Ok(()));
        assert_eq!(a.try_admit(v4(2)), Ok(()));
        // Out-of-range lengths count the whole address; /0 is everyone.
        let wide = IpPrefix { v4: 200, v6: 255 };
        assert_eq!(wide.network(v4(7)), v4(7));
        assert_eq!(wide.network(v6(7, 1)), v6(7, 1));
        let all = IpPrefix { v4: 0, v6: 0 };
        assert_eq!(all.network(v4(7)), IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert_eq!(all.network(v6(7, 1)), IpAddr::V6(Ipv6Addr::UNSPECIFIED));
        // Mapped IPv4 is IPv4, masked as IPv4.
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 9).to_ipv6_mapped());
        assert_eq!(IpPrefix { v4: 24, v6: 64 }.network(mapped), v4(0));
    }

    #[test]
    fn stats_count_and_display() {
        let s = ServerStats::new();
        s.on_accept();
        s.on_accept();
        s.on_reject(RejectReason::MaxPerIp);
        s.on_close(CloseReason::Protocol(crate::Error::InvalidCobs {
            pos: 1,
            code: 9,
        }));
        s.add_traffic(3, 2, 30, 20);
        s.on_accept_error();
        s.on_accept();
        s.on_close(CloseReason::Tls(crate::connection::TlsFailure::AlertSent(
            42,
        )));
        let snap = s.snapshot();
        assert_eq!(snap.open(), 1);
        assert_eq!(
            snap.closed(CloseReason::Tls(
                crate::connection::TlsFailure::HandshakeEof
            )),
            1
        );
        assert_eq!(snap.rejected(RejectReason::MaxPerIp), 1);
        assert_eq!(
            snap.closed(CloseReason::Protocol(crate::Error::VarintOverflow)),
            1
        );
        assert_eq!(
            std::format!("{snap}"),
            "accepted=3 open=1 rejected=1 max-per-ip=1 closed=2 protocol=1 tls=1 frames_in=3 frames_out=2 bytes_in=30 bytes_out=20 accept_errors=1"
        );
        assert_eq!(snap.accept_errors, 1);
    }

    #[test]
    fn named_counters_match_the_accessors() {
        let s = ServerStats::new();
        for (i, r) in RejectReason::ALL.into_iter().enumerate() {
            for _ in 0..=i {
                s.on_reject(r);
            }
        }
        for (i, r) in CLOSE_REASONS.into_iter().enumerate() {
            for _ in 0..=i {
                s.on_close(r);
            }
        }
        let snap = s.snapshot();
        for (i, r) in RejectReason::ALL.into_iter().enumerate() {
            assert_eq!(snap.rejected(r), i as u64 + 1, "{r:?}");
        }
        for (i, r) in CLOSE_REASONS.into_iter().enumerate() {
            assert_eq!(snap.closed(r), i as u64 + 1, "{r:?}");
        }
        assert_eq!((snap.rejected.refused, snap.closed.write_stall), (4, 11));
        assert_eq!((snap.rejected_total(), snap.closed_total()), (21, 66));
    }

    #[test]
    #[cfg(target_has_atomic = "64")]
    fn traffic_shards_add_up_and_any_index_is_taken_modulo() {
        let s = ServerStats::new();
        let stats = crate::connection::ConnStats {
            bytes_in: 10,
            bytes_out: 7,
            frames_in: 2,
            frames_out: 1,
            frames_skipped: 0,
            pushes_dropped: 1,
        };
        for shard in [0, 1, 5, TRAFFIC_SHARDS - 1, TRAFFIC_SHARDS, usize::MAX] {
            s.add_conn_on(shard, &stats);
        }
        s.add_traffic(1, 1, 1, 1);
        let snap = s.snapshot();
        assert_eq!(
            (
                snap.frames_in,
                snap.frames_out,
                snap.bytes_in,
                snap.bytes_out
            ),
            (13, 7, 61, 43)
        );
        assert_eq!(snap.pushes_dropped, 6);
        // Each shard has a cache line of its own.
        assert!(core::mem::align_of::<TrafficShard>() >= 64);
    }

    #[test]
    fn config_defaults() {
        let c = ServerConfig::new(CodecSpec::lines(100_000));
        assert_eq!(c.rx_buffer_len(), 100_000);
        assert_eq!(c.tx_buffer_len(), 200_000);
        assert_eq!(c.reply_codec(), c.codec);
    }
}
