//! The cross-driver suite, run against fastnet-std.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread;

use fastnet_proto::connection::CloseReason;
use fastnet_proto::server::{RejectReason, ServerConfig};
use fastnet_std::{ConnInfo, Ctx, Handler, Server};
use fastnet_tests::{before_echo, Events, RunningServer, TestDriver};

/// Echoes every frame; records what happened.
struct Echo {
    events: Arc<Events>,
}

impl Handler for Echo {
    type State = ();

    fn on_connect(&self, _info: &ConnInfo) -> Option<()> {
        Some(())
    }

    fn on_frame(&self, ctx: &mut Ctx<'_, ()>, frame: &[u8]) {
        before_echo(frame);
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

struct Std;

impl TestDriver for Std {
    const NAME: &'static str = "fastnet-std";

    fn start_echo(config: ServerConfig) -> RunningServer {
        let server = Server::builder(config.codec)
            .config(config)
            .bind()
            .expect("bind");
        let addr = server.local_addr();
        let stats = server.stats();
        let shutdown = server.shutdown_handle();
        let events = Events::new();
        let handler = Echo {
            events: Arc::clone(&events),
        };
        let serving = thread::spawn(move || server.serve(handler));
        RunningServer::new(
            addr,
            events,
            move || stats.snapshot(),
            move |deadline| shutdown.shutdown(deadline),
            move || serving.join().expect("serve panicked"),
        )
    }
}

#[test]
fn echo_500_clients() {
    fastnet_tests::echo_500_clients::<Std>();
}

#[test]
fn max_connections_refused() {
    fastnet_tests::max_connections_refused::<Std>();
}

#[test]
fn max_connections_per_ip_refused() {
    fastnet_tests::max_connections_per_ip_refused::<Std>();
}

#[test]
fn oversize_closes_only_that_connection() {
    fastnet_tests::oversize_closes_only_that_connection::<Std>();
}

#[test]
fn idle_timeout_closes_silent_client() {
    fastnet_tests::idle_timeout_closes_silent_client::<Std>();
}

#[test]
fn slow_loris_closed_by_read_timeout() {
    fastnet_tests::slow_loris_closed_by_read_timeout::<Std>();
}

#[test]
fn graceful_shutdown_delivers_in_flight_replies() {
    fastnet_tests::graceful_shutdown_delivers_in_flight_replies::<Std>();
}

#[test]
fn shutdown_deadline_closes_busy_connections() {
    fastnet_tests::shutdown_deadline_closes_busy_connections::<Std>();
}
