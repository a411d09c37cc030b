//! Time from a tick counter.

use core::time::Duration;

/// Turns a free-running, wrapping 32-bit tick counter (a SysTick interrupt
/// count, a timer peripheral) into the time since boot that [`Connection`]
/// takes.
///
/// A 32-bit counter at 1 kHz wraps after about 49 days; the clock extends
/// it to 64 bits, so time never runs backwards, provided
/// [`now`](Self::now) is called at least once per wrap (a main loop does
/// that many times a second).
///
/// [`Connection`]: fastnet_proto::Connection
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TickClock {
    hz: u32,
    last: u32,
    ticks: u64,
}

impl TickClock {
    /// A clock for a counter that ticks `hz` times a second (`hz` ≥ 1),
    /// starting at counter value 0.
    pub const fn new(hz: u32) -> Self {
        TickClock {
            hz: if hz == 0 { 1 } else { hz },
            last: 0,
            ticks: 0,
        }
    }

    /// The time since the counter was 0, given its current value.
    pub fn now(&mut self, counter: u32) -> Duration {
        // Wrapping difference: correct across the counter's wrap.
        self.ticks += u64::from(counter.wrapping_sub(self.last));
        self.last = counter;
        let hz = u64::from(self.hz);
        let secs = self.ticks / hz;
        let frac = self.ticks % hz;
        // frac < hz <= u32::MAX, so the product fits a u64.
        Duration::from_secs(secs) + Duration::from_nanos(frac * 1_000_000_000 / hz)
    }
}
