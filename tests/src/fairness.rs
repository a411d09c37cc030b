//! The work budget: a connection that has handled its budget of reads and
//! frames lets the others on its thread run, then carries on where it
//! stopped, without waiting for the socket (bytes may be left in it, and
//! no readiness event will say so).

use std::num::NonZeroU32;
use std::thread;
use std::time::Duration;

use fastnet_proto::connection::CloseReason;

use crate::{config, wait_until, FrameClient, Rng, TestDriver};

/// With a budget of one (a yield after every read and every frame), every
/// byte of many pipelined clients still arrives, in order, and every
/// connection closes as the peer's: no yield loses a wake-up.
pub fn smallest_wake_budget_loses_nothing<D: TestDriver>() {
    const CLIENTS: usize = 8;
    const BATCHES: usize = 20;
    const PER_BATCH: usize = 50;
    let mut cfg = config(1024);
    cfg.limits.wake_budget = NonZeroU32::new(1);
    let mut server = D::start_echo(cfg);
    let addr = server.addr();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            thread::spawn(move || {
                let mut rng = Rng::new(500 + i as u64);
                let mut c = FrameClient::connect(addr, 1024).expect("connect");
                for _ in 0..BATCHES {
                    // A batch in one go: many frames per read.
                    let batch: Vec<Vec<u8>> = (0..PER_BATCH)
                        .map(|_| {
                            let len = 1 + rng.upto(200);
                            rng.bytes(len).into_iter().map(|b| b & 0x7f).collect()
                        })
                        .collect();
                    for f in &batch {
                        c.send(f).expect("send");
                    }
                    for f in &batch {
                        let got = c.recv().expect("recv").expect("open");
                        assert_eq!(got, &f[..], "client {i}: echo differs");
                    }
                }
            })
        })
        .collect();
    for c in clients {
        c.join().expect("every client gets every echo");
    }
    assert!(
        wait_until(Duration::from_secs(5), || {
            server.events().closed(CloseReason::PeerClosed) == CLIENTS
        }),
        "{}: closes {:?}",
        D::NAME,
        server.events().closes()
    );
    let (_, stats) = server.shutdown(Duration::from_secs(2));
    assert_eq!(stats.frames_in, (CLIENTS * BATCHES * PER_BATCH) as u64);
    assert_eq!(stats.frames_out, stats.frames_in);
}

/// `Duration::MAX` ("never") in every duration a server takes: the idle,
/// read, write-stall and drain timeouts, a worker's idle expiry, and the
/// shutdown deadline. Nothing panics, connections are served, and a
/// shutdown with no connection open returns at once.
pub fn every_duration_at_its_maximum<D: TestDriver>() {
    let mut cfg = config(1024);
    cfg.limits.idle_timeout = Some(Duration::MAX);
    cfg.limits.read_timeout = Some(Duration::MAX);
    cfg.limits.write_stall_timeout = Some(Duration::MAX);
    cfg.limits.drain_timeout = Some(Duration::MAX);
    cfg.worker_idle_expiry = Duration::MAX;
    let mut server = D::start_echo(cfg);
    let addr = server.addr();
    for i in 0..4u8 {
        let mut c = FrameClient::connect(addr, 1024).expect("connect");
        c.roundtrip(&[i; 10]).expect("served");
        // Half a frame, then gone: the read timer was armed at "never".
        c.send_raw(&[0, 0, 0, 9, 1]).expect("send");
    }
    assert!(
        wait_until(Duration::from_secs(5), || {
            server.events().closed(CloseReason::PeerClosed) == 4
        }),
        "{}: closes {:?}",
        D::NAME,
        server.events().closes()
    );
    let (took, stats) = server.shutdown(Duration::MAX);
    assert!(
        took < Duration::from_secs(5),
        "{}: shutdown took {took:?}",
        D::NAME
    );
    assert_eq!(stats.frames_in, 4);
}
