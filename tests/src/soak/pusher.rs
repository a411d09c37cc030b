//! The soak's server pushes: what a push carries, how a client checks one,
//! and the pusher thread that sends them through the handles the echo
//! handler records.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use fastnet_proto::connection::SendError;
use fastnet_proto::server::StatsSnapshot;

use super::Shared;
use crate::push::HANDLE_TAG;
use crate::{Events, PushHandle, Rng};

/// The first bytes of every push; no echoed payload starts with `0xff`.
pub(super) const PUSH_TAG: &[u8; 4] = b"\xffPSH";
/// Tag, connection id, sequence number.
const HEADER: usize = 4 + 8 + 8;
/// The pusher's period: each reading client gets one push per period.
pub(super) const PUSH_INTERVAL: Duration = Duration::from_millis(20);
/// Pushes per period to a client that stalls, each of the largest size,
/// until one comes back `Full`: 512 KiB a period fills the push queue and
/// the server's socket send buffer (on loopback it grows to megabytes, up
/// to `tcp_wmem`'s maximum, 4 MiB by default) in a fraction of the
/// client's stall, even when the pusher gets the processor only now and
/// then.
const STALL_FILL: usize = 64;
/// Pushes per period to a stalling client once one was refused.
const STALL_BURST: usize = 6;
/// A send slower than this fails the soak: a push must never wait for
/// its peer. One that did would wait out a stalled client's stall (half
/// the idle timeout: 2.5 s in the soak, 750 ms in the smoke run); the
/// scheduler alone delays a send by up to some 130 ms when fastnet-std's
/// 2000 connection threads share two cores.
pub(super) const SEND_BOUND: Duration = Duration::from_millis(500);

/// The handle frame a client sends to be pushed to: the tag, then whether
/// it will stall, then its id.
pub(super) fn handle_frame(id: u64, stall: bool) -> Vec<u8> {
    let mut f = HANDLE_TAG.to_vec();
    f.push(if stall { b's' } else { b'r' });
    f.extend_from_slice(&id.to_be_bytes());
    f
}

/// What [`handle_frame`] said, from the bytes after its tag.
fn parse_note(note: &[u8]) -> Option<(u64, bool)> {
    let (&mode, id) = note.split_first()?;
    let id = u64::from_be_bytes(id.try_into().ok()?);
    match mode {
        b'r' => Some((id, false)),
        b's' => Some((id, true)),
        _ => None,
    }
}

/// The window of the shared pool that push `seq` to connection `id`
/// carries after its header: both sides compute it, so a client checks
/// every byte without the pusher telling it.
fn body(id: u64, seq: u64, stall: bool, sh: &Shared) -> (usize, usize) {
    let mut r = Rng::new(id ^ seq.rotate_left(32) ^ 0x9a5e);
    let len = if stall {
        sh.max_payload - HEADER
    } else {
        r.upto(1024)
    };
    (r.upto(sh.pool.len() - len), len)
}

/// Writes push `seq` for connection `id` into `out`.
fn encode(out: &mut Vec<u8>, id: u64, seq: u64, stall: bool, sh: &Shared) {
    let (at, len) = body(id, seq, stall, sh);
    out.clear();
    out.extend_from_slice(PUSH_TAG);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&sh.pool[at..at + len]);
}

/// Checks that `payload` is push `seq` for connection `id`, whole.
pub(super) fn check(
    payload: &[u8],
    id: u64,
    seq: u64,
    stall: bool,
    sh: &Shared,
) -> Result<(), String> {
    let field = |at: usize| {
        payload
            .get(at..at + 8)
            .map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes")))
    };
    let (Some(got_id), Some(got_seq)) = (field(4), field(12)) else {
        return Err(format!(
            "a push of {} bytes, shorter than its header",
            payload.len()
        ));
    };
    if got_id != id {
        return Err(format!(
            "push for connection {got_id:#x} delivered to {id:#x}"
        ));
    }
    if got_seq != seq {
        return Err(format!("push {got_seq} arrived when {seq} was next"));
    }
    let (at, len) = body(id, seq, stall, sh);
    if payload[HEADER..] != sh.pool[at..at + len] {
        return Err(format!(
            "push {seq}: {len} bytes sent, {} different bytes arrived",
            payload.len() - HEADER
        ));
    }
    Ok(())
}

/// What the pusher did.
#[derive(Debug, Default)]
pub(super) struct PushTally {
    /// Handles taken from the handler's record.
    pub(super) handles: u64,
    /// Sends accepted.
    pub(super) sent: u64,
    /// Sends refused with `Full`.
    pub(super) refused: u64,
    /// Accepted, then dropped at close without being sent
    /// (`ConnHandle::undelivered`, summed when each handle first said
    /// `Closed`).
    pub(super) undelivered: u64,
    /// Every send, and the slowest.
    pub(super) sends: u64,
    pub(super) slowest: Duration,
    /// Sends that took longer than [`SEND_BOUND`].
    pub(super) slow: u64,
    pub(super) failures: Vec<String>,
}

impl PushTally {
    /// Every push the server took reached its client or was counted
    /// dropped, by the handle and by the server alike; pushes are frames
    /// out besides the echoes; no send waited for its peer. `push_clients`
    /// and `delivered` are what the clients saw, `verified` the echo
    /// frames they checked; `who` names the server in messages.
    pub(super) fn assert_accounted(
        &self,
        stats: &StatsSnapshot,
        push_clients: u64,
        delivered: u64,
        verified: u64,
        who: &str,
    ) {
        assert_eq!(
            self.handles, push_clients,
            "{who}one handle per push client"
        );
        assert_eq!(
            self.sent,
            delivered + self.undelivered,
            "{who}pushes taken = delivered + undelivered"
        );
        assert_eq!(stats.pushes_dropped, self.undelivered, "{who}{stats}");
        assert_eq!(
            stats.frames_out,
            stats.frames_in + self.sent - self.undelivered,
            "{who}{stats}"
        );
        assert!(stats.frames_out >= verified, "{who}{stats}");
        assert!(
            self.slowest < SEND_BOUND,
            "{who}a push took {:?} ({} of {} over {:?}): a send must not wait for its peer",
            self.slowest,
            self.slow,
            self.sends,
            SEND_BOUND
        );
    }
}

/// A connection being pushed to.
struct Target {
    handle: Arc<dyn PushHandle>,
    id: u64,
    stall: bool,
    /// The next push's number: a refused one is sent again with the same
    /// number, so a client sees 0, 1, 2, … with no gap.
    seq: u64,
    /// A send to it came back `Full`.
    refused: bool,
}

/// Pushes to every recorded handle once per [`PUSH_INTERVAL`] until `stop`
/// is set (once every connection is closed) and every handle said
/// `Closed`.
pub(super) fn pusher(events: Arc<Events>, sh: Arc<Shared>, stop: Arc<AtomicBool>) -> PushTally {
    let mut tally = PushTally::default();
    let mut live: Vec<Target> = Vec::new();
    let mut frame = Vec::with_capacity(sh.max_payload);
    let mut next = Instant::now();
    let mut give_up: Option<Instant> = None;
    loop {
        let stopping = stop.load(Ordering::SeqCst);
        for (note, handle) in events.take_handles() {
            tally.handles += 1;
            match parse_note(&note) {
                Some((id, stall)) => live.push(Target {
                    handle,
                    id,
                    stall,
                    seq: 0,
                    refused: false,
                }),
                None => tally
                    .failures
                    .push(format!("a handle frame noting {note:?}")),
            }
        }
        live.retain_mut(|t| {
            let burst = match (t.stall, t.refused) {
                (true, false) => STALL_FILL,
                (true, true) => STALL_BURST,
                (false, _) => 1,
            };
            for _ in 0..burst {
                encode(&mut frame, t.id, t.seq, t.stall, &sh);
                let began = Instant::now();
                let sent = t.handle.send(&frame);
                let took = began.elapsed();
                tally.sends += 1;
                tally.slowest = tally.slowest.max(took);
                if took > SEND_BOUND {
                    tally.slow += 1;
                }
                match sent {
                    Ok(()) => {
                        tally.sent += 1;
                        t.seq += 1;
                    }
                    Err(SendError::Full { .. }) => {
                        tally.refused += 1;
                        t.refused = true;
                        return true;
                    }
                    Err(SendError::Closed) => {
                        // Final: the queue was closed and counted under
                        // the same lock that refuses this send.
                        tally.undelivered += t.handle.undelivered();
                        return false;
                    }
                    Err(e) => {
                        tally.failures.push(format!("push to {:#x}: {e}", t.id));
                        return false;
                    }
                }
            }
            true
        });
        if stopping {
            if live.is_empty() {
                break;
            }
            let limit = *give_up.get_or_insert_with(|| Instant::now() + Duration::from_secs(5));
            if Instant::now() > limit {
                for t in &live {
                    tally.failures.push(format!(
                        "connection {:#x} still takes pushes after the server closed every connection",
                        t.id
                    ));
                }
                break;
            }
        }
        next += PUSH_INTERVAL;
        let now = Instant::now();
        match next.checked_duration_since(now) {
            Some(wait) => thread::sleep(wait),
            // Behind (a loaded machine): keep the period, skip the debt.
            None => next = now,
        }
    }
    tally
}
