//! The cross-driver suite, run against fastnet-smol in both executor
//! layouts: [`Layout::PerThread`] (the default) and [`Layout::Shared`].
//!
//! The suite's `before_echo` sleeps the thread; on an executor that would
//! stall every connection of the worker, so this echo handler awaits an
//! async-io timer for [`SLEEP_TAG`] frames instead (same wire behaviour).

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use fastnet_proto::connection::CloseReason;
use fastnet_proto::server::{RejectReason, ServerConfig};
use fastnet_smol::{ConnInfo, Ctx, Handler, Layout, Server};
use fastnet_tests::{Events, RunningServer, TestDriver, SLEEP_TAG};

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
    let server = Server::builder(config.codec)
        .config(config)
        .workers(2)
        .layout(layout)
        .bind()
        .expect("bind");
    let addr = server.local_addr().expect("local addr");
    let stats = server.stats();
    let shutdown = server.shutdown_handle();
    let events = Events::new();
    let handler = Echo {
        events: Arc::clone(&events),
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

/// The default layout: one executor per thread.
struct Smol;

impl TestDriver for Smol {
    const NAME: &'static str = "fastnet-smol";

    fn start_echo(config: ServerConfig) -> RunningServer {
        start_echo(config, Layout::PerThread)
    }
}

/// One executor shared by all threads.
struct SmolShared;

impl TestDriver for SmolShared {
    const NAME: &'static str = "fastnet-smol (shared executor)";

    fn start_echo(config: ServerConfig) -> RunningServer {
        start_echo(config, Layout::Shared)
    }
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
