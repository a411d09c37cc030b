//! Run with: cargo run -p fastnet-std --example std-echo -- 127.0.0.1:7000
//! then, for example: printf 'hello\nworld\n' | nc 127.0.0.1 7000
//!
//! A lines echo server with idle and read timeouts; Ctrl-C stops it, or it
//! stops by itself after the optional second argument (seconds) and prints
//! its statistics.

use std::time::Duration;

use fastnet_proto::codec::CodecSpec;
use fastnet_std::{CloseReason, ConnInfo, Ctx, Handler, Limits, Server};

/// Echoes every line back.
struct Echo;

impl Handler for Echo {
    type State = ();

    fn on_connect(&self, _info: &ConnInfo) -> Option<()> {
        Some(())
    }

    fn on_frame(&self, ctx: &mut Ctx<'_, ()>, frame: &[u8]) {
        if ctx.send(frame).is_err() {
            ctx.close();
        }
    }

    fn on_close(&self, info: &ConnInfo, _state: (), reason: CloseReason) {
        eprintln!("{} closed: {reason}", info.peer_addr());
    }
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:7000".into());
    let run_for = args.next().and_then(|s| s.parse::<u64>().ok());

    let server = Server::builder(CodecSpec::lines(64 * 1024))
        .addr(addr)
        .limits(
            Limits::default()
                .idle_timeout(Some(Duration::from_secs(60)))
                .read_timeout(Some(Duration::from_secs(10))),
        )
        .bind()?;
    eprintln!("echo server on {}", server.local_addr());
    if let Some(secs) = run_for {
        let shutdown = server.shutdown_handle();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(secs));
            shutdown.shutdown(Duration::from_secs(2));
        });
    }
    let stats = server.serve(Echo)?;
    eprintln!("{stats}");
    Ok(())
}
