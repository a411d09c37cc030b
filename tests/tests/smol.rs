//! The cross-driver suite, run against fastnet-smol in both executor
//! layouts: [`Layout::PerThread`] (the default) and [`Layout::Shared`].
//!
//! The suite's `before_echo` sleeps the thread; on an executor that would
//! stall every connection of the worker, so this echo handler awaits an
//! async-io timer for [`SLEEP_TAG`] frames instead (same wire behaviour).
//! In the default layout the handler answers all other frames at once
//! (`Handler::on_frame_now`), in the shared one through `on_frame`, so the
//! suite holds both of the driver's ways of handing out a frame.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use fastnet_proto::codec::{Decoder, Encoder};
use fastnet_proto::connection::CloseReason;
use fastnet_proto::server::{RejectReason, ServerConfig};
use fastnet_smol::{Client, ConnInfo, Ctx, Handler, Layout, Pool, PoolConfig, Server};
use fastnet_tests::{wants_handle, Events, PushHandle, RunningServer, TestDriver, SLEEP_TAG};

/// The suite's view of a connection handle.
struct Handle(fastnet_smol::ConnHandle);

impl PushHandle for Handle {
    fn send(&self, payload: &[u8]) -> Result<(), fastnet_proto::connection::SendError> {
        self.0.send(payload)
    }
    fn close(&self) {
        self.0.close();
    }
    fn undelivered(&self) -> u64 {
        self.0.undelivered()
    }
}

/// Echoes every frame; records what happened. With `at_once` (the default
/// layout's runs) it answers frames in `on_frame_now` and declines only
/// the sleep-tagged ones, which `on_frame` awaits, so one connection's
/// frames alternate between the two; without (the shared executor's
/// runs), every frame goes through `on_frame`.
struct Echo {
    events: Arc<Events>,
    at_once: bool,
}

impl Echo {
    fn echo(&self, ctx: &mut Ctx<'_, ()>, frame: &[u8]) {
        fastnet_tests::panic_if_tagged(frame);
        if wants_handle(frame) {
            self.events.record_handle(frame, Handle(ctx.handle()));
        }
        if ctx.send(frame).is_err() {
            ctx.close();
        }
    }
}

impl Handler for Echo {
    type State = ();

    fn on_connect(&self, _info: &ConnInfo) -> Option<()> {
        self.events.before_connect();
        Some(())
    }

    fn on_frame_now(&self, ctx: &mut Ctx<'_, ()>, frame: &[u8]) -> bool {
        if !self.at_once || frame.starts_with(SLEEP_TAG) {
            return false;
        }
        self.echo(ctx, frame);
        true
    }

    async fn on_frame(&self, ctx: &mut Ctx<'_, ()>, frame: &[u8]) {
        if let Some([hi, lo, ..]) = frame.strip_prefix(SLEEP_TAG) {
            let ms = u64::from(u16::from_be_bytes([*hi, *lo]));
            smol::Timer::after(Duration::from_millis(ms)).await;
        }
        self.echo(ctx, frame);
    }

    fn on_close(&self, _info: &ConnInfo, _state: (), reason: CloseReason) {
        self.events.record_close(reason);
    }

    fn on_reject(&self, _peer: SocketAddr, reason: RejectReason) {
        self.events.record_reject(reason);
    }
}

/// Starts the echo server with `layout` on two threads.
fn start_echo(config: ServerConfig, layout: Layout) -> RunningServer {
    start_echo_on(SocketAddr::from(([127, 0, 0, 1], 0)), config, layout).expect("bind")
}

/// Binds a server that is never run.
fn bind_unserved(config: ServerConfig, layout: Layout) -> (SocketAddr, Box<dyn std::any::Any>) {
    let server = Server::builder(config.codec)
        .config(config)
        .layout(layout)
        .bind()
        .expect("bind");
    (server.local_addr(), Box::new(server))
}

/// Starts the echo server on `addr` with `layout` on two threads.
fn start_echo_on(
    addr: SocketAddr,
    config: ServerConfig,
    layout: Layout,
) -> io::Result<RunningServer> {
    let server = Server::builder(config.codec)
        .addr(addr)
        .config(config)
        .workers(2)
        .layout(layout)
        .bind()?;
    Ok(run(server, layout))
}

/// Starts the echo server with a codec of the user's own, with `layout` on
/// two threads.
fn start_echo_with<D, E>(
    config: ServerConfig,
    layout: Layout,
    decoder: D,
    encoder: E,
) -> RunningServer
where
    D: Decoder + Clone + Send + Sync + 'static,
    E: Encoder + Send + Sync + 'static,
{
    let server = Server::builder_with(decoder, encoder)
        .config(config)
        .workers(2)
        .layout(layout)
        .bind()
        .expect("bind");
    run(server, layout)
}

/// Runs the echo handler on the server's own threads, from a background
/// thread.
fn run<D, E>(server: Server<D, E>, layout: Layout) -> RunningServer
where
    D: Decoder + Clone + Send + Sync + 'static,
    E: Encoder + Send + Sync + 'static,
{
    let addr = server.local_addr();
    let stats = server.stats();
    let shutdown = server.shutdown_handle();
    let events = Events::new();
    let handler = Echo {
        events: Arc::clone(&events),
        at_once: matches!(layout, Layout::PerThread),
    };
    let serving = thread::spawn(move || server.run(handler));
    RunningServer::new(
        addr,
        events,
        move || stats.snapshot(),
        move |deadline| shutdown.shutdown(deadline),
        move || serving.join().expect("serve panicked"),
    )
}

/// Echoes `payloads` through the driver's `Client` or `Pool` (see
/// [`TestDriver::echo_through_client`]), each reply within two seconds.
fn echo_through_client<D, E>(
    addr: SocketAddr,
    decoder: D,
    encoder: E,
    payloads: &[Vec<u8>],
    pooled: bool,
) -> io::Result<Vec<Vec<u8>>>
where
    D: Decoder + Clone + Send + Sync + 'static,
    E: Encoder + Clone + Send + Sync + 'static,
{
    let timeout = Duration::from_secs(2);
    async fn echo<D: Decoder, E: Encoder>(
        client: &mut Client<D, E>,
        part: &[Vec<u8>],
        replies: &mut Vec<Vec<u8>>,
    ) -> io::Result<()> {
        for p in part {
            let mut reply = Vec::new();
            client.request(p, &mut reply).await?;
            replies.push(reply);
        }
        Ok(())
    }
    let (first, rest) = payloads.split_at(payloads.len() / 2);
    let work = async {
        let mut replies = Vec::new();
        if pooled {
            let pool = Pool::with_codec(addr, decoder, encoder, PoolConfig::default())?;
            echo(&mut *pool.get().await?, first, &mut replies).await?;
            echo(&mut *pool.get().await?, rest, &mut replies).await?;
            assert_eq!(pool.stats().connects, 1, "the connection is reused");
        } else {
            let mut client = Client::connect_with(addr, decoder, encoder, timeout).await?;
            echo(&mut client, first, &mut replies).await?;
            echo(&mut client, rest, &mut replies).await?;
        }
        Ok(replies)
    };
    smol::block_on(smol::future::or(work, async {
        smol::Timer::after(Duration::from_secs(10)).await;
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "no replies within 10 s",
        ))
    }))
}

/// fastnet-smol with one layout: `SHARED` false is the default (one
/// executor per thread), true one executor shared by all threads.
struct SmolWith<const SHARED: bool>;

/// The default layout: one executor per thread.
type Smol = SmolWith<false>;

/// One executor shared by all threads.
type SmolShared = SmolWith<true>;

impl<const SHARED: bool> SmolWith<SHARED> {
    const LAYOUT: Layout = if SHARED {
        Layout::Shared
    } else {
        Layout::PerThread
    };
}

impl<const SHARED: bool> TestDriver for SmolWith<SHARED> {
    const NAME: &'static str = if SHARED {
        "fastnet-smol (shared executor)"
    } else {
        "fastnet-smol"
    };

    fn start_echo(config: ServerConfig) -> RunningServer {
        start_echo(config, Self::LAYOUT)
    }

    fn start_echo_on(addr: SocketAddr, config: ServerConfig) -> Option<io::Result<RunningServer>> {
        Some(start_echo_on(addr, config, Self::LAYOUT))
    }

    fn bind_unserved(config: ServerConfig) -> (SocketAddr, Box<dyn std::any::Any>) {
        bind_unserved(config, Self::LAYOUT)
    }

    fn config_in_force(config: ServerConfig) -> ServerConfig {
        let server = Server::builder(config.codec)
            .config(config)
            .layout(Self::LAYOUT)
            .bind()
            .expect("bind");
        *server.config()
    }

    fn start_echo_with<D, E>(config: ServerConfig, decoder: D, encoder: E) -> RunningServer
    where
        D: Decoder + Clone + Send + Sync + 'static,
        E: Encoder + Send + Sync + 'static,
    {
        start_echo_with(config, Self::LAYOUT, decoder, encoder)
    }

    #[cfg(feature = "tls")]
    fn start_tls_echo(
        config: ServerConfig,
        tls: fastnet_smol::tls::TlsServerConfig,
    ) -> Option<RunningServer> {
        let server = Server::builder(config.codec)
            .config(config)
            .workers(2)
            .layout(Self::LAYOUT)
            .tls(tls)
            .bind()
            .expect("bind");
        Some(run(server, Self::LAYOUT))
    }

    fn echo_through_client<D, E>(
        addr: SocketAddr,
        decoder: D,
        encoder: E,
        payloads: &[Vec<u8>],
        pooled: bool,
    ) -> io::Result<Vec<Vec<u8>>>
    where
        D: Decoder + Clone + Send + Sync + 'static,
        E: Encoder + Clone + Send + Sync + 'static,
    {
        echo_through_client(addr, decoder, encoder, payloads, pooled)
    }
}

#[test]
fn user_codec_echo() {
    fastnet_tests::user_codec_echo::<Smol>();
}

#[test]
fn user_codec_echo_shared() {
    fastnet_tests::user_codec_echo::<SmolShared>();
}

#[test]
fn user_codec_echo_through_driver_clients() {
    fastnet_tests::user_codec_echo_through_driver_clients::<Smol>();
}

#[test]
fn user_codec_echo_through_driver_clients_shared() {
    fastnet_tests::user_codec_echo_through_driver_clients::<SmolShared>();
}

#[test]
fn user_codec_bad_checksum_closes_only_that_connection() {
    fastnet_tests::user_codec_bad_checksum_closes_only_that_connection::<Smol>();
}

#[test]
fn user_codec_bad_checksum_closes_only_that_connection_shared() {
    fastnet_tests::user_codec_bad_checksum_closes_only_that_connection::<SmolShared>();
}

#[test]
fn listen_backlog_holds_a_connect_burst() {
    fastnet_tests::listen_backlog_holds_a_connect_burst::<Smol>();
}

#[test]
fn listen_backlog_holds_a_connect_burst_shared() {
    fastnet_tests::listen_backlog_holds_a_connect_burst::<SmolShared>();
}

#[test]
fn echo_500_clients() {
    fastnet_tests::echo_500_clients::<Smol>();
}

#[test]
fn echo_500_clients_shared() {
    fastnet_tests::echo_500_clients::<SmolShared>();
}

#[test]
fn max_connections_refused() {
    fastnet_tests::max_connections_refused::<Smol>();
}

#[test]
fn max_connections_refused_shared() {
    fastnet_tests::max_connections_refused::<SmolShared>();
}

#[test]
fn max_connections_per_ip_refused() {
    fastnet_tests::max_connections_per_ip_refused::<Smol>();
}

#[test]
fn max_connections_per_ip_refused_shared() {
    fastnet_tests::max_connections_per_ip_refused::<SmolShared>();
}

#[test]
fn smallest_wake_budget_loses_nothing() {
    fastnet_tests::smallest_wake_budget_loses_nothing::<Smol>();
}

#[test]
fn smallest_wake_budget_loses_nothing_shared() {
    fastnet_tests::smallest_wake_budget_loses_nothing::<SmolShared>();
}

#[test]
fn every_duration_at_its_maximum() {
    fastnet_tests::every_duration_at_its_maximum::<Smol>();
}

#[test]
fn every_duration_at_its_maximum_shared() {
    fastnet_tests::every_duration_at_its_maximum::<SmolShared>();
}

#[test]
fn panicking_handler_costs_only_its_connection() {
    fastnet_tests::panicking_handler_costs_only_its_connection::<Smol>();
}

#[test]
fn panicking_handler_costs_only_its_connection_shared() {
    fastnet_tests::panicking_handler_costs_only_its_connection::<SmolShared>();
}

#[test]
fn oversize_closes_only_that_connection() {
    fastnet_tests::oversize_closes_only_that_connection::<Smol>();
}

#[test]
fn oversize_closes_only_that_connection_shared() {
    fastnet_tests::oversize_closes_only_that_connection::<SmolShared>();
}

#[test]
fn idle_timeout_closes_silent_client() {
    fastnet_tests::idle_timeout_closes_silent_client::<Smol>();
}

#[test]
fn idle_timeout_closes_silent_client_shared() {
    fastnet_tests::idle_timeout_closes_silent_client::<SmolShared>();
}

#[test]
fn slow_loris_closed_by_read_timeout() {
    fastnet_tests::slow_loris_closed_by_read_timeout::<Smol>();
}

#[test]
fn slow_loris_closed_by_read_timeout_shared() {
    fastnet_tests::slow_loris_closed_by_read_timeout::<SmolShared>();
}

#[test]
fn graceful_shutdown_delivers_in_flight_replies() {
    fastnet_tests::graceful_shutdown_delivers_in_flight_replies::<Smol>();
}

#[test]
fn graceful_shutdown_delivers_in_flight_replies_shared() {
    fastnet_tests::graceful_shutdown_delivers_in_flight_replies::<SmolShared>();
}

#[test]
fn shutdown_deadline_closes_busy_connections() {
    fastnet_tests::shutdown_deadline_closes_busy_connections::<Smol>();
}

#[test]
fn shutdown_deadline_closes_busy_connections_shared() {
    fastnet_tests::shutdown_deadline_closes_busy_connections::<SmolShared>();
}

#[test]
fn adversarial_oversize_length_header() {
    fastnet_tests::adversarial::oversize_length_header::<Smol>();
}

#[test]
fn adversarial_oversize_length_header_shared() {
    fastnet_tests::adversarial::oversize_length_header::<SmolShared>();
}

#[test]
fn adversarial_oversize_line_without_delimiter() {
    fastnet_tests::adversarial::oversize_line_without_delimiter::<Smol>();
}

#[test]
fn adversarial_oversize_line_without_delimiter_shared() {
    fastnet_tests::adversarial::oversize_line_without_delimiter::<SmolShared>();
}

#[test]
fn adversarial_length_overflow() {
    fastnet_tests::adversarial::length_overflow::<Smol>();
}

#[test]
fn adversarial_length_overflow_shared() {
    fastnet_tests::adversarial::length_overflow::<SmolShared>();
}

#[test]
fn adversarial_length_below_header() {
    fastnet_tests::adversarial::length_below_header::<Smol>();
}

#[test]
fn adversarial_length_below_header_shared() {
    fastnet_tests::adversarial::length_below_header::<SmolShared>();
}

#[test]
fn adversarial_invalid_varint() {
    fastnet_tests::adversarial::invalid_varint::<Smol>();
}

#[test]
fn adversarial_invalid_varint_shared() {
    fastnet_tests::adversarial::invalid_varint::<SmolShared>();
}

#[test]
fn adversarial_invalid_cobs() {
    fastnet_tests::adversarial::invalid_cobs::<Smol>();
}

#[test]
fn adversarial_invalid_cobs_shared() {
    fastnet_tests::adversarial::invalid_cobs::<SmolShared>();
}

#[test]
fn adversarial_slow_loris_trickle() {
    fastnet_tests::adversarial::slow_loris_trickle::<Smol>();
}

#[test]
fn adversarial_slow_loris_trickle_shared() {
    fastnet_tests::adversarial::slow_loris_trickle::<SmolShared>();
}

#[test]
fn adversarial_one_byte_reader_closed_by_write_stall() {
    fastnet_tests::adversarial::one_byte_reader_closed_by_write_stall::<Smol>();
}

#[test]
fn adversarial_one_byte_reader_closed_by_write_stall_shared() {
    fastnet_tests::adversarial::one_byte_reader_closed_by_write_stall::<SmolShared>();
}

#[test]
fn adversarial_trickle_under_skip_closed_by_read_timeout() {
    fastnet_tests::adversarial::trickle_under_skip_closed_by_read_timeout::<Smol>();
}

#[test]
fn adversarial_trickle_under_skip_closed_by_read_timeout_shared() {
    fastnet_tests::adversarial::trickle_under_skip_closed_by_read_timeout::<SmolShared>();
}

#[test]
fn adversarial_half_open_peer_closed_under_defaults() {
    fastnet_tests::adversarial::half_open_peer_closed_under_defaults::<Smol>();
}

#[test]
fn adversarial_half_open_peer_closed_under_defaults_shared() {
    fastnet_tests::adversarial::half_open_peer_closed_under_defaults::<SmolShared>();
}

#[test]
fn adversarial_never_reading_client() {
    fastnet_tests::adversarial::never_reading_client::<Smol>();
}

#[test]
fn adversarial_never_reading_client_shared() {
    fastnet_tests::adversarial::never_reading_client::<SmolShared>();
}

#[test]
fn adversarial_connection_flood() {
    fastnet_tests::adversarial::connection_flood::<Smol>();
}

#[test]
fn adversarial_connection_flood_shared() {
    fastnet_tests::adversarial::connection_flood::<SmolShared>();
}

#[test]
fn adversarial_per_ip_flood() {
    fastnet_tests::adversarial::per_ip_flood::<Smol>();
}

#[test]
fn adversarial_per_ip_flood_shared() {
    fastnet_tests::adversarial::per_ip_flood::<SmolShared>();
}

#[test]
fn adversarial_reset_mid_frame() {
    fastnet_tests::adversarial::reset_mid_frame::<Smol>();
}

#[test]
fn adversarial_reset_mid_frame_shared() {
    fastnet_tests::adversarial::reset_mid_frame::<SmolShared>();
}

#[test]
fn adversarial_half_close_after_sending() {
    fastnet_tests::adversarial::half_close_after_sending::<Smol>();
}

#[test]
fn adversarial_half_close_after_sending_shared() {
    fastnet_tests::adversarial::half_close_after_sending::<SmolShared>();
}

#[test]
fn adversarial_tiny_frame_burst() {
    fastnet_tests::adversarial::tiny_frame_burst::<Smol>();
}

#[test]
fn adversarial_tiny_frame_burst_shared() {
    fastnet_tests::adversarial::tiny_frame_burst::<SmolShared>();
}

#[test]
fn adversarial_oversize_skip_keeps_connection() {
    fastnet_tests::adversarial::oversize_skip_keeps_connection::<Smol>();
}

#[test]
fn adversarial_oversize_skip_keeps_connection_shared() {
    fastnet_tests::adversarial::oversize_skip_keeps_connection::<SmolShared>();
}

#[test]
fn adversarial_max_size_frames_default_buffers() {
    fastnet_tests::adversarial::max_size_frames_default_buffers::<Smol>();
}

#[test]
fn adversarial_max_size_frames_default_buffers_shared() {
    fastnet_tests::adversarial::max_size_frames_default_buffers::<SmolShared>();
}

#[test]
fn adversarial_shutdown_with_offenders_connected() {
    fastnet_tests::adversarial::shutdown_with_offenders_connected::<Smol>();
}

#[test]
fn adversarial_shutdown_with_offenders_connected_shared() {
    fastnet_tests::adversarial::shutdown_with_offenders_connected::<SmolShared>();
}

#[test]
#[ignore = "soak: minutes; FASTNET_SOAK_SECS, FASTNET_SOAK_CONNS"]
fn soak() {
    fastnet_tests::soak::soak::<Smol>();
}

#[test]
#[ignore = "soak: minutes; FASTNET_SOAK_SECS, FASTNET_SOAK_CONNS"]
fn soak_shared() {
    fastnet_tests::soak::soak::<SmolShared>();
}

#[test]
fn soak_smoke() {
    fastnet_tests::soak::soak_with::<Smol>(fastnet_tests::soak::SoakParams::smoke());
}

#[test]
fn soak_smoke_shared() {
    fastnet_tests::soak::soak_with::<SmolShared>(fastnet_tests::soak::SoakParams::smoke());
}

#[test]
fn push_to_a_stalled_peer_is_full_at_once() {
    fastnet_tests::push::push_to_a_stalled_peer_is_full_at_once::<Smol>();
}

#[test]
fn push_to_a_stalled_peer_is_full_at_once_shared() {
    fastnet_tests::push::push_to_a_stalled_peer_is_full_at_once::<SmolShared>();
}

#[test]
fn pushes_keep_the_idle_timer_and_count() {
    fastnet_tests::push::pushes_keep_the_idle_timer_and_count::<Smol>();
}

#[test]
fn pushes_keep_the_idle_timer_and_count_shared() {
    fastnet_tests::push::pushes_keep_the_idle_timer_and_count::<SmolShared>();
}

#[test]
fn adversarial_per_ip_limit_counts_by_prefix() {
    fastnet_tests::adversarial::per_ip_limit_counts_by_prefix::<Smol>();
}

#[test]
fn adversarial_per_ip_limit_counts_by_prefix_shared() {
    fastnet_tests::adversarial::per_ip_limit_counts_by_prefix::<SmolShared>();
}

#[test]
#[ignore = "the child process of the descriptor tests (runs only with FASTNET_TESTS_CHILD)"]
fn descriptor_child() {
    fastnet_tests::sockets::child::<Smol>();
}

#[test]
#[ignore = "the child process of the descriptor tests (runs only with FASTNET_TESTS_CHILD)"]
fn descriptor_child_shared() {
    fastnet_tests::sockets::child::<SmolShared>();
}

#[test]
fn accept_recovers_when_descriptors_free() {
    fastnet_tests::sockets::accept_recovers_when_descriptors_free::<Smol>("descriptor_child");
}

#[test]
fn accept_recovers_when_descriptors_free_shared() {
    fastnet_tests::sockets::accept_recovers_when_descriptors_free::<SmolShared>(
        "descriptor_child_shared",
    );
}

#[test]
fn max_connections_fits_the_descriptor_limit() {
    // One descriptor a connection: its socket.
    fastnet_tests::sockets::max_connections_fits_the_descriptor_limit::<Smol>(
        "descriptor_child",
        1,
    );
}

#[test]
fn keepalive_on_accepted_sockets() {
    fastnet_tests::sockets::keepalive_on_accepted_sockets::<Smol>();
}

#[test]
fn keepalive_on_accepted_sockets_shared() {
    fastnet_tests::sockets::keepalive_on_accepted_sockets::<SmolShared>();
}

#[cfg(feature = "tracing")]
#[test]
fn connection_life_is_traced() {
    fastnet_tests::tracing::connection_life_is_traced::<Smol>();
}

#[cfg(feature = "tracing")]
#[test]
fn connection_life_is_traced_shared() {
    fastnet_tests::tracing::connection_life_is_traced::<SmolShared>();
}

#[test]
fn reuse_port_shares_a_port() {
    fastnet_tests::reuse_port_shares_a_port::<Smol>();
}

#[test]
fn a_quiet_connection_wakes_for_pushes_and_requests() {
    fastnet_tests::push::a_quiet_connection_wakes_for_pushes_and_requests::<Smol>();
}

#[test]
fn a_quiet_connection_wakes_for_pushes_and_requests_shared() {
    fastnet_tests::push::a_quiet_connection_wakes_for_pushes_and_requests::<SmolShared>();
}

#[cfg(feature = "tls")]
#[test]
fn tls_close_notify_with_the_last_flight_closes_at_once() {
    fastnet_tests::tls::close_notify_with_the_last_flight_closes_at_once::<Smol>();
}

#[cfg(feature = "tls")]
#[test]
fn tls_close_notify_with_the_last_flight_closes_at_once_shared() {
    fastnet_tests::tls::close_notify_with_the_last_flight_closes_at_once::<SmolShared>();
}
