//! Helpers shared by this crate's integration tests.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use fastnet_proto::codec::{CodecSpec, Endian, LengthFieldConfig};
use fastnet_std::{
    CloseReason, ConnHandle, ConnInfo, Ctx, Handler, RejectReason, Server, ServerBuilder,
    ShutdownHandle, StatsSnapshot,
};
/// The one polling helper of the workspace's tests.
pub use fastnet_tls::test_pki::wait_until;

pub fn codec(max_frame: usize) -> CodecSpec {
    CodecSpec::LengthField(LengthFieldConfig::new(4, Endian::Big).max_frame(max_frame))
}

/// What the test handler saw.
#[derive(Default, Debug)]
pub struct Seen {
    pub closes: Mutex<Vec<CloseReason>>,
    pub rejects: Mutex<Vec<RejectReason>>,
    pub handles: Mutex<Vec<ConnHandle>>,
}

/// Echoes; `bye` closes the connection; `handle` publishes a handle;
/// refuses connections while `refuse` is set.
pub struct TestHandler {
    pub seen: Arc<Seen>,
    pub refuse: bool,
}

impl Handler for TestHandler {
    type State = ();

    fn on_connect(&self, _info: &ConnInfo) -> Option<()> {
        (!self.refuse).then_some(())
    }

    fn on_frame(&self, ctx: &mut Ctx<'_, ()>, frame: &[u8]) {
        match frame {
            b"bye" => ctx.close(),
            b"handle" => {
                self.seen.handles.lock().unwrap().push(ctx.handle());
                ctx.send(b"ok").unwrap();
            }
            _ => ctx.send(frame).unwrap(),
        }
    }

    fn on_close(&self, _info: &ConnInfo, _state: (), reason: CloseReason) {
        self.seen.closes.lock().unwrap().push(reason);
    }

    fn on_reject(&self, _peer: SocketAddr, reason: RejectReason) {
        self.seen.rejects.lock().unwrap().push(reason);
    }
}

pub struct Running {
    pub addr: SocketAddr,
    pub seen: Arc<Seen>,
    pub shutdown: ShutdownHandle,
    pub server_stats: Arc<fastnet_std::ServerStats>,
    pub workers: fastnet_std::WorkerPool,
    join: Option<thread::JoinHandle<std::io::Result<StatsSnapshot>>>,
}

impl Running {
    pub fn stop(mut self) -> StatsSnapshot {
        self.shutdown.shutdown(Duration::from_secs(2));
        self.join.take().unwrap().join().unwrap().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(join) = self.join.take() {
            self.shutdown.shutdown(Duration::from_secs(1));
            let _ = join.join();
        }
    }
}

pub fn start(builder: ServerBuilder, refuse: bool) -> Running {
    let server: Server = builder.bind().unwrap();
    let seen = Arc::new(Seen::default());
    let (addr, shutdown, server_stats, workers) = (
        server.local_addr(),
        server.shutdown_handle(),
        server.stats(),
        server.worker_pool(),
    );
    let handler = TestHandler {
        seen: Arc::clone(&seen),
        refuse,
    };
    let join = thread::spawn(move || server.serve(handler));
    Running {
        addr,
        seen,
        shutdown,
        server_stats,
        workers,
        join: Some(join),
    }
}
