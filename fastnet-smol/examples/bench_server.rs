//! Run: cargo run --release -p fastnet-smol --example bench_server -- [ADDR] [--layout shared|per-thread] [--workers N]
//! (ADDR defaults to 127.0.0.1:7000.) Then load it with
//! `fastnet bench --addr ADDR --conns 1000 --size 512 --duration 10s`.
//!
//! The echo server the benchmarks measure: `fastnet bench`'s default codec
//! (`len=u32be`, 4-byte big-endian length before the payload, frames of at
//! most 64 KiB), an echo handler that answers at once, and a choice of
//! executor layout, so layouts can be compared on the same load. Prints
//! its pid and address and serves until killed.

use fastnet_proto::codec::{Endian, LengthFieldConfig};
use fastnet_smol::{CodecSpec, ConnInfo, Ctx, Handler, Layout, Server};

/// Echoes every frame.
struct Echo;

impl Handler for Echo {
    type State = ();

    fn on_connect(&self, _info: &ConnInfo) -> Option<()> {
        Some(())
    }

    // Answered at once, in a plain call: no future is made, and the
    // reply is encoded inline.
    fn on_frame_now(&self, ctx: &mut Ctx<'_, ()>, frame: &[u8]) -> bool {
        let _ = ctx.send(frame);
        true
    }

    // Never called: `on_frame_now` declines no frame.
    async fn on_frame(&self, ctx: &mut Ctx<'_, ()>, frame: &[u8]) {
        let _ = ctx.send(frame);
    }
}

fn main() -> std::io::Result<()> {
    let mut addr = "127.0.0.1:7000".to_string();
    let mut layout = Layout::default();
    let mut workers = 0;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--layout" => {
                layout = match args.next().as_deref() {
                    Some("shared") => Layout::Shared,
                    Some("per-thread") => Layout::PerThread,
                    other => panic!("--layout shared|per-thread, not {other:?}"),
                }
            }
            "--workers" => workers = args.next().and_then(|n| n.parse().ok()).expect("N"),
            _ => addr = arg,
        }
    }
    let mut cfg = LengthFieldConfig::new(4, Endian::Big);
    cfg.max_frame = 64 * 1024;
    let server = Server::builder(CodecSpec::LengthField(cfg))
        .addr(addr)
        .layout(layout)
        .workers(workers)
        .max_connections(100_000)
        .bind()?;
    println!(
        "pid {} listening on {} ({layout:?})",
        std::process::id(),
        server.local_addr()
    );
    server.run(Echo)?;
    Ok(())
}
