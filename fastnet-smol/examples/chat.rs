//! Run: cargo run -p fastnet-smol --example chat -- [ADDR]   (default 127.0.0.1:7001)
//! Then connect a few clients with `nc 127.0.0.1 7001`, type lines, and
//! `/nick NAME` to pick a name.
//!
//! A line-based chat room: every line a client sends is broadcast to every
//! other connected client as `NICK: line`. Broadcast is a loop over the
//! `ConnHandle`s registered in `on_open`; a handle's `send` never blocks,
//! so one slow client cannot stall the room (its queue reports `Full` and
//! the message is dropped for that client only).

use std::collections::BTreeMap;
use std::future::{ready, Future};
use std::sync::{Arc, Mutex};

use fastnet_smol::{CloseReason, CodecSpec, ConnHandle, ConnInfo, Ctx, Handler, Server};

/// The room: who is connected, under which nick.
#[derive(Clone, Default)]
pub(crate) struct Chat {
    members: Arc<Mutex<BTreeMap<u64, (ConnHandle, String)>>>,
}

impl Chat {
    /// Sends `line` to every member except `except`.
    fn broadcast(&self, except: u64, line: &str) {
        let members = self.members.lock().unwrap();
        for (id, (handle, _)) in members.iter() {
            if *id != except {
                let _ = handle.send(line.as_bytes());
            }
        }
    }
}

impl Handler for Chat {
    /// The member's nick.
    type State = String;

    fn on_connect(&self, info: &ConnInfo) -> Option<String> {
        Some(format!("guest{}", info.id()))
    }

    fn on_open(&self, ctx: &mut Ctx<'_, String>) {
        let nick = ctx.state().clone();
        let _ = ctx.send(format!("* welcome {nick}").as_bytes());
        self.broadcast(ctx.id(), &format!("* {nick} joined"));
        self.members
            .lock()
            .unwrap()
            .insert(ctx.id(), (ctx.handle(), nick));
    }

    fn on_frame(&self, ctx: &mut Ctx<'_, String>, frame: &[u8]) -> impl Future<Output = ()> + Send {
        let line = String::from_utf8_lossy(frame);
        if let Some(name) = line.strip_prefix("/nick ") {
            let name = name.trim().to_string();
            let old = std::mem::replace(ctx.state_mut(), name.clone());
            if let Some(entry) = self.members.lock().unwrap().get_mut(&ctx.id()) {
                entry.1 = name.clone();
            }
            let _ = ctx.send(format!("* you are now {name}").as_bytes());
            self.broadcast(ctx.id(), &format!("* {old} is now {name}"));
        } else if line == "/quit" {
            let _ = ctx.send(b"* bye");
            ctx.close();
        } else {
            self.broadcast(ctx.id(), &format!("{}: {line}", ctx.state()));
        }
        ready(())
    }

    fn on_close(&self, info: &ConnInfo, nick: String, _reason: CloseReason) {
        self.members.lock().unwrap().remove(&info.id());
        self.broadcast(info.id(), &format!("* {nick} left"));
    }
}

#[allow(dead_code)] // The chat test includes this file for `Chat` only.
fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7001".into());
    let server = Server::builder(CodecSpec::lines(4096)).addr(addr).bind()?;
    eprintln!("chat listening on {}", server.local_addr());
    server.run(Chat::default())?;
    Ok(())
}
