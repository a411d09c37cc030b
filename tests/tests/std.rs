//! The cross-driver suite, run against fastnet-std.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use fastnet_proto::codec::{Decoder, Encoder};
use fastnet_proto::connection::CloseReason;
use fastnet_proto::server::{RejectReason, ServerConfig};
use fastnet_std::{Client, ConnInfo, Ctx, Handler, Pool, PoolConfig, Server};
use fastnet_tests::{before_echo, wants_handle, Events, PushHandle, RunningServer, TestDriver};

/// The suite's view of a connection handle.
struct Handle(fastnet_std::ConnHandle);

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
        self.events.before_connect();
        Some(())
    }

    fn on_frame(&self, ctx: &mut Ctx<'_, ()>, frame: &[u8]) {
        before_echo(frame);
        fastnet_tests::panic_if_tagged(frame);
        if wants_handle(frame) {
            self.events.record_handle(frame, Handle(ctx.handle()));
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

struct Std;

impl TestDriver for Std {
    const NAME: &'static str = "fastnet-std";

    fn start_echo(config: ServerConfig) -> RunningServer {
        serve(
            Server::builder(config.codec)
                .config(config)
                .bind()
                .expect("bind"),
        )
    }

    fn start_echo_on(addr: SocketAddr, config: ServerConfig) -> Option<io::Result<RunningServer>> {
        Some(
            Server::builder(config.codec)
                .addr(addr)
                .config(config)
                .bind()
                .map(serve),
        )
    }

    fn bind_unserved(config: ServerConfig) -> (SocketAddr, Box<dyn std::any::Any>) {
        let server = Server::builder(config.codec)
            .config(config)
            .bind()
            .expect("bind");
        (server.local_addr(), Box::new(server))
    }

    fn config_in_force(config: ServerConfig) -> ServerConfig {
        let server = Server::builder(config.codec)
            .config(config)
            .bind()
            .expect("bind");
        *server.config()
    }

    fn start_echo_with<Dec, Enc>(config: ServerConfig, decoder: Dec, encoder: Enc) -> RunningServer
    where
        Dec: Decoder + Clone + Send + Sync + 'static,
        Enc: Encoder + Send + Sync + 'static,
    {
        serve(
            Server::builder_with(decoder, encoder)
                .config(config)
                .bind()
                .expect("bind"),
        )
    }

    #[cfg(feature = "tls")]
    fn start_tls_echo(
        config: ServerConfig,
        tls: fastnet_std::tls::TlsServerConfig,
    ) -> Option<RunningServer> {
        Some(serve(
            Server::builder(config.codec)
                .config(config)
                .tls(tls)
                .bind()
                .expect("bind"),
        ))
    }

    fn echo_through_client<Dec, Enc>(
        addr: SocketAddr,
        decoder: Dec,
        encoder: Enc,
        payloads: &[Vec<u8>],
        pooled: bool,
    ) -> io::Result<Vec<Vec<u8>>>
    where
        Dec: Decoder + Clone + Send + Sync + 'static,
        Enc: Encoder + Clone + Send + Sync + 'static,
    {
        let timeout = Duration::from_secs(2);
        let mut replies = Vec::new();
        let mut echo = |client: &mut Client<Dec, Enc>, part: &[Vec<u8>]| {
            client.set_read_timeout(Some(timeout))?;
            for p in part {
                let mut reply = Vec::new();
                client.request(p, &mut reply)?;
                replies.push(reply);
            }
            Ok::<_, io::Error>(())
        };
        let (first, rest) = payloads.split_at(payloads.len() / 2);
        if pooled {
            let pool = Pool::with_codec(addr, decoder, encoder, PoolConfig::default())?;
            echo(&mut *pool.get()?, first)?;
            echo(&mut *pool.get()?, rest)?;
            assert_eq!(pool.stats().connects, 1, "the connection is reused");
        } else {
            let mut client = Client::connect_with(addr, decoder, encoder, timeout)?;
            echo(&mut client, first)?;
            echo(&mut client, rest)?;
        }
        Ok(replies)
    }
}

/// Serves the echo handler on a background thread.
fn serve<D, E>(server: Server<D, E>) -> RunningServer
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

#[test]
fn user_codec_echo() {
    fastnet_tests::user_codec_echo::<Std>();
}

#[test]
fn user_codec_echo_through_driver_clients() {
    fastnet_tests::user_codec_echo_through_driver_clients::<Std>();
}

#[test]
fn user_codec_bad_checksum_closes_only_that_connection() {
    fastnet_tests::user_codec_bad_checksum_closes_only_that_connection::<Std>();
}

#[test]
fn echo_500_clients() {
    fastnet_tests::echo_500_clients::<Std>();
}

#[test]
fn listen_backlog_holds_a_connect_burst() {
    fastnet_tests::listen_backlog_holds_a_connect_burst::<Std>();
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
fn smallest_wake_budget_loses_nothing() {
    fastnet_tests::smallest_wake_budget_loses_nothing::<Std>();
}

#[test]
fn every_duration_at_its_maximum() {
    fastnet_tests::every_duration_at_its_maximum::<Std>();
}

#[test]
fn panicking_handler_costs_only_its_connection() {
    fastnet_tests::panicking_handler_costs_only_its_connection::<Std>();
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

#[test]
fn adversarial_oversize_length_header() {
    fastnet_tests::adversarial::oversize_length_header::<Std>();
}

#[test]
fn adversarial_oversize_line_without_delimiter() {
    fastnet_tests::adversarial::oversize_line_without_delimiter::<Std>();
}

#[test]
fn adversarial_length_overflow() {
    fastnet_tests::adversarial::length_overflow::<Std>();
}

#[test]
fn adversarial_length_below_header() {
    fastnet_tests::adversarial::length_below_header::<Std>();
}

#[test]
fn adversarial_invalid_varint() {
    fastnet_tests::adversarial::invalid_varint::<Std>();
}

#[test]
fn adversarial_invalid_cobs() {
    fastnet_tests::adversarial::invalid_cobs::<Std>();
}

#[test]
fn adversarial_slow_loris_trickle() {
    fastnet_tests::adversarial::slow_loris_trickle::<Std>();
}

#[test]
fn adversarial_one_byte_reader_closed_by_write_stall() {
    fastnet_tests::adversarial::one_byte_reader_closed_by_write_stall::<Std>();
}

#[test]
fn adversarial_trickle_under_skip_closed_by_read_timeout() {
    fastnet_tests::adversarial::trickle_under_skip_closed_by_read_timeout::<Std>();
}

#[test]
fn adversarial_half_open_peer_closed_under_defaults() {
    fastnet_tests::adversarial::half_open_peer_closed_under_defaults::<Std>();
}

#[test]
fn adversarial_never_reading_client() {
    fastnet_tests::adversarial::never_reading_client::<Std>();
}

#[test]
fn adversarial_connection_flood() {
    fastnet_tests::adversarial::connection_flood::<Std>();
}

#[test]
fn adversarial_per_ip_flood() {
    fastnet_tests::adversarial::per_ip_flood::<Std>();
}

#[test]
fn adversarial_reset_mid_frame() {
    fastnet_tests::adversarial::reset_mid_frame::<Std>();
}

#[test]
fn adversarial_half_close_after_sending() {
    fastnet_tests::adversarial::half_close_after_sending::<Std>();
}

#[test]
fn adversarial_tiny_frame_burst() {
    fastnet_tests::adversarial::tiny_frame_burst::<Std>();
}

#[test]
fn adversarial_oversize_skip_keeps_connection() {
    fastnet_tests::adversarial::oversize_skip_keeps_connection::<Std>();
}

#[test]
fn adversarial_max_size_frames_default_buffers() {
    fastnet_tests::adversarial::max_size_frames_default_buffers::<Std>();
}

#[test]
fn adversarial_shutdown_with_offenders_connected() {
    fastnet_tests::adversarial::shutdown_with_offenders_connected::<Std>();
}

#[test]
#[ignore = "soak: minutes; FASTNET_SOAK_SECS, FASTNET_SOAK_CONNS"]
fn soak() {
    fastnet_tests::soak::soak::<Std>();
}

#[test]
fn soak_smoke() {
    fastnet_tests::soak::soak_with::<Std>(fastnet_tests::soak::SoakParams::smoke());
}

#[test]
fn push_to_a_stalled_peer_is_full_at_once() {
    fastnet_tests::push::push_to_a_stalled_peer_is_full_at_once::<Std>();
}

#[test]
fn pushes_keep_the_idle_timer_and_count() {
    fastnet_tests::push::pushes_keep_the_idle_timer_and_count::<Std>();
}

#[test]
fn adversarial_per_ip_limit_counts_by_prefix() {
    fastnet_tests::adversarial::per_ip_limit_counts_by_prefix::<Std>();
}

#[test]
#[ignore = "the child process of the descriptor tests (runs only with FASTNET_TESTS_CHILD)"]
fn descriptor_child() {
    fastnet_tests::sockets::child::<Std>();
}

#[test]
fn accept_recovers_when_descriptors_free() {
    fastnet_tests::sockets::accept_recovers_when_descriptors_free::<Std>("descriptor_child");
}

#[test]
fn max_connections_fits_the_descriptor_limit() {
    // Its socket (a wake-up pair only with push handles, and only if one
    // can be made).
    fastnet_tests::sockets::max_connections_fits_the_descriptor_limit::<Std>("descriptor_child", 1);
}

#[test]
fn keepalive_on_accepted_sockets() {
    fastnet_tests::sockets::keepalive_on_accepted_sockets::<Std>();
}

#[cfg(feature = "tracing")]
#[test]
fn connection_life_is_traced() {
    fastnet_tests::tracing::connection_life_is_traced::<Std>();
}

#[test]
fn reuse_port_shares_a_port() {
    fastnet_tests::reuse_port_shares_a_port::<Std>();
}

#[test]
fn a_quiet_connection_wakes_for_pushes_and_requests() {
    fastnet_tests::push::a_quiet_connection_wakes_for_pushes_and_requests::<Std>();
}

#[cfg(feature = "tls")]
#[test]
fn tls_close_notify_with_the_last_flight_closes_at_once() {
    fastnet_tests::tls::close_notify_with_the_last_flight_closes_at_once::<Std>();
}
