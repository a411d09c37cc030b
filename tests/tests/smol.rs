//! The cross-driver suite, run against fastnet-smol in both executor
//! layouts: [`Layout::PerThread`] (the default) and [`Layout::Shared`].
//!
//! The suite's `before_echo` sleeps the thread; on an executor that would
//! stall every connection of the worker, so this echo handler awaits an
//! async-io timer for [`SLEEP_TAG`] frames instead (same wire behaviour).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use fastnet_proto::connection::CloseReason;
use fastnet_proto::server::{RejectReason, ServerConfig};
use fastnet_smol::{ConnInfo, Ctx, Handler, Layout, Server};
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

/// Echoes every frame; records what happened.
struct Echo {
    events: Arc<Events>,
}

impl Handler for Echo {
    type State = ();

    fn on_connect(&self, _info: &ConnInfo) -> Option<()> {
        Some(())
    }

    async fn on_frame(&self, ctx: &mut Ctx<'_, ()>, frame: &[u8]) {
        if let Some([hi, lo, ..]) = frame.strip_prefix(SLEEP_TAG) {
            let ms = u64::from(u16::from_be_bytes([*hi, *lo]));
            smol::Timer::after(Duration::from_millis(ms)).await;
        }
        if wants_handle(frame) {
            self.events.record_handle(Handle(ctx.handle()));
        }
        if ctx.send(frame).is_err() {
            ctx.close();
        }
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
    let addr = server.local_addr();
    let stats = server.stats();
    let shutdown = server.shutdown_handle();
    let events = Events::new();
    let handler = Echo {
        events: Arc::clone(&events),
    };
    let serving = thread::spawn(move || server.run(handler));
    Ok(RunningServer::new(
        addr,
        events,
        move || stats.snapshot(),
        move |deadline| shutdown.shutdown(deadline),
        move || serving.join().expect("serve panicked"),
    ))
}

/// The default layout: one executor per thread.
struct Smol;

impl TestDriver for Smol {
    const NAME: &'static str = "fastnet-smol";

    fn start_echo(config: ServerConfig) -> RunningServer {
        start_echo(config, Layout::PerThread)
    }

    fn start_echo_on(addr: SocketAddr, config: ServerConfig) -> Option<io::Result<RunningServer>> {
        Some(start_echo_on(addr, config, Layout::PerThread))
    }

    fn bind_unserved(config: ServerConfig) -> (SocketAddr, Box<dyn std::any::Any>) {
        bind_unserved(config, Layout::PerThread)
    }
}

/// One executor shared by all threads.
struct SmolShared;

impl TestDriver for SmolShared {
    const NAME: &'static str = "fastnet-smol (shared executor)";

    fn start_echo(config: ServerConfig) -> RunningServer {
        start_echo(config, Layout::Shared)
    }

    fn start_echo_on(addr: SocketAddr, config: ServerConfig) -> Option<io::Result<RunningServer>> {
        Some(start_echo_on(addr, config, Layout::Shared))
    }

    fn bind_unserved(config: ServerConfig) -> (SocketAddr, Box<dyn std::any::Any>) {
        bind_unserved(config, Layout::Shared)
    }
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
