//! Waking a worker out of its wait for the socket, for pushes: the worker
//! of a connection with handles waits for its socket and a wake-up socket
//! pair together (`poll(2)`), and a pusher writes one byte to the pair.
//! Connections without handles never pay for this: they block in `read`.

use std::io;
use std::net::TcpStream;
use std::time::Duration;

/// What ended a [`wait`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ready {
    /// The socket has input (or an error, or its end): read it.
    Input,
    /// A pusher signalled (or, without a wake-up pair, the polling
    /// interval passed): look at the push queue.
    Woken,
    /// The wait's timeout passed.
    Timeout,
}

/// How often a worker without a wake-up pair looks for pushes.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// A wake-up socket pair: `signal` from any thread, `wait` on the worker.
#[cfg(unix)]
#[derive(Debug)]
pub(crate) struct Wake {
    rx: std::os::unix::net::UnixStream,
    tx: std::os::unix::net::UnixStream,
}

#[cfg(unix)]
impl Wake {
    pub(crate) fn new() -> io::Result<Self> {
        let (rx, tx) = std::os::unix::net::UnixStream::pair()?;
        rx.set_nonblocking(true)?;
        tx.set_nonblocking(true)?;
        Ok(Wake { rx, tx })
    }

    /// Wakes the waiting worker; a full pair means a wake-up is pending
    /// already.
    pub(crate) fn signal(&self) {
        let _ = io::Write::write(&mut &self.tx, &[1]);
    }

    /// Consumes the pending wake-ups.
    fn clear(&self) {
        let mut buf = [0u8; 64];
        while let Ok(n) = io::Read::read(&mut &self.rx, &mut buf) {
            if n < buf.len() {
                break;
            }
        }
    }
}

/// Waits until `stream` has input, `wake` is signalled, or `timeout`
/// passes (`None`: no timeout).
#[cfg(unix)]
pub(crate) fn wait(
    stream: &TcpStream,
    wake: Option<&Wake>,
    timeout: Option<Duration>,
) -> io::Result<Ready> {
    let (timeout, interval) = match wake {
        Some(_) => (timeout, false),
        None => (
            Some(timeout.map_or(POLL_INTERVAL, |t| t.min(POLL_INTERVAL))),
            true,
        ),
    };
    poll_ready(stream, wake, timeout, interval)
}

/// Waits until `stream` has input (the end of input included) or
/// `timeout` passes: for a connection nobody can push to.
#[cfg(unix)]
pub(crate) fn wait_input(stream: &TcpStream, timeout: Option<Duration>) -> io::Result<Ready> {
    poll_ready(stream, None, timeout, false)
}

/// `poll` on `stream` and `wake`; `interval`: a timeout means "look for
/// pushes" (no wake-up pair), so it reads as `Woken`.
#[cfg(unix)]
fn poll_ready(
    stream: &TcpStream,
    wake: Option<&Wake>,
    timeout: Option<Duration>,
    interval: bool,
) -> io::Result<Ready> {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let timespec = timeout.map(|t| {
        Timespec::try_from(t).unwrap_or(Timespec {
            tv_sec: i64::MAX,
            tv_nsec: 0,
        })
    });
    let mut fds = [PollFd::new(stream, PollFlags::IN)];
    let mut both;
    let fds: &mut [PollFd<'_>] = match wake {
        Some(w) => {
            both = [fds[0].clone(), PollFd::new(&w.rx, PollFlags::IN)];
            &mut both
        }
        None => &mut fds,
    };
    let n = match poll(fds, timespec.as_ref()) {
        Ok(n) => n,
        Err(rustix::io::Errno::INTR) => return Ok(Ready::Woken),
        Err(e) => return Err(e.into()),
    };
    if n == 0 {
        return Ok(if interval {
            Ready::Woken
        } else {
            Ready::Timeout
        });
    }
    if let (Some(w), Some(fd)) = (wake, fds.get(1)) {
        if !fd.revents().is_empty() {
            w.clear();
            return Ok(Ready::Woken);
        }
    }
    Ok(Ready::Input)
}

/// Elsewhere no wake-up pair: the worker reads with a short timeout and
/// looks for pushes in between.
#[cfg(not(unix))]
#[derive(Debug)]
pub(crate) struct Wake;

#[cfg(not(unix))]
impl Wake {
    pub(crate) fn new() -> io::Result<Self> {
        Err(io::ErrorKind::Unsupported.into())
    }

    pub(crate) fn signal(&self) {}
}

/// Without `poll`, the read itself is the wait: its timeout is shortened
/// so pushes are looked for every [`POLL_INTERVAL`].
#[cfg(not(unix))]
pub(crate) fn wait(
    stream: &TcpStream,
    _wake: Option<&Wake>,
    timeout: Option<Duration>,
) -> io::Result<Ready> {
    let _ = stream.set_read_timeout(Some(
        timeout.map_or(POLL_INTERVAL, |t| t.min(POLL_INTERVAL)),
    ));
    Ok(Ready::Input)
}

/// Without `poll` there is no waiting apart from a read: input is
/// assumed, and the read that follows waits.
#[cfg(not(unix))]
pub(crate) fn wait_input(_stream: &TcpStream, _timeout: Option<Duration>) -> io::Result<Ready> {
    Ok(Ready::Input)
}

#[cfg(test)]
#[cfg(unix)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn wakes_on_signal_input_and_timeout() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut peer = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        let wake = Wake::new().unwrap();
        let ms = Some(Duration::from_millis(1));
        assert_eq!(wait(&s, Some(&wake), ms).unwrap(), Ready::Timeout);
        wake.signal();
        wake.signal();
        assert_eq!(wait(&s, Some(&wake), None).unwrap(), Ready::Woken);
        assert_eq!(
            wait(&s, Some(&wake), ms).unwrap(),
            Ready::Timeout,
            "cleared"
        );
        io::Write::write_all(&mut peer, b"x").unwrap();
        assert_eq!(wait(&s, Some(&wake), None).unwrap(), Ready::Input);
        // Without a pair, the polling interval stands in for a signal.
        drop(peer);
        let (s2, _) = (TcpStream::connect(l.local_addr().unwrap()).unwrap(), ());
        assert_eq!(wait(&s2, None, None).unwrap(), Ready::Woken);
    }
}
