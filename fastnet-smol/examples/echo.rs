//! Run: cargo run --release -p fastnet-smol --example echo -- [ADDR] [CODEC]
//! (ADDR defaults to 127.0.0.1:7000; CODEC is `lines` (default) or `u16` for
//! a 2-byte big-endian length prefix). Try: `printf 'hi\n' | nc 127.0.0.1 7000`.
//!
//! A framed echo server: every frame comes back as it arrived. Replies to
//! all frames that arrived in one read leave in one write.

use fastnet_proto::codec::{Endian, LengthFieldConfig};
use fastnet_smol::{CodecSpec, ConnInfo, Ctx, Handler, Server};

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
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:7000".into());
    let codec = match args.next().as_deref() {
        Some("u16") => {
            let mut cfg = LengthFieldConfig::new(2, Endian::Big);
            cfg.max_frame = 64 * 1024;
            CodecSpec::LengthField(cfg)
        }
        _ => CodecSpec::lines(64 * 1024),
    };
    let server = Server::builder(codec).addr(addr).bind()?;
    eprintln!("echo listening on {}", server.local_addr());
    let stats = server.run(Echo)?;
    eprintln!("{stats}");
    Ok(())
}
