//! What the harness reads about a server process from `/proc`: CPU time
//! (all threads, exited ones included) and memory.

use std::io;

/// Clock ticks per second of `/proc/PID/stat`'s CPU times.
pub fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    let n = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if n > 0 {
        n as u64
    } else {
        100
    }
}

/// User and system CPU time of process `pid` so far, in microseconds.
/// Covers every thread of the process, including threads that have exited.
pub fn cpu_time_us(pid: u32) -> io::Result<CpuTime> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let (user, system) = parse_cpu_ticks(&stat).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("cannot parse /proc/{pid}/stat"),
        )
    })?;
    let us = |ticks: u64| ticks * 1_000_000 / clock_ticks_per_second();
    Ok(CpuTime {
        user_us: us(user),
        system_us: us(system),
    })
}

/// CPU time of a process, split.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTime {
    /// In user space, microseconds.
    pub user_us: u64,
    /// In the kernel on the process's behalf, microseconds.
    pub system_us: u64,
}

impl CpuTime {
    /// What was spent between `earlier` and `self`.
    pub fn since(self, earlier: CpuTime) -> CpuTime {
        CpuTime {
            user_us: self.user_us.saturating_sub(earlier.user_us),
            system_us: self.system_us.saturating_sub(earlier.system_us),
        }
    }

    /// User plus system, microseconds.
    pub fn total_us(self) -> u64 {
        self.user_us + self.system_us
    }
}

/// utime and stime (fields 14 and 15) of a `/proc/PID/stat` line, in ticks.
///
/// ```
/// use fastnet_bench_echo::procfs::parse_cpu_ticks;
/// let line = "42 (a b) S 1 42 42 0 -1 4194304 100 0 0 0 250 30 0 0 20 0 3 0 1 2 3";
/// assert_eq!(parse_cpu_ticks(line), Some((250, 30)));
/// ```
pub fn parse_cpu_ticks(stat: &str) -> Option<(u64, u64)> {
    // The command name may hold spaces and parentheses; fields restart
    // after its last ')'. Field 3 (state) is then the first.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime, stime))
}

/// A `kB` figure from `/proc/PID/status`, such as `VmRSS` (resident now)
/// or `VmHWM` (peak resident), in KiB.
pub fn status_kib(pid: u32, key: &str) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_status_kib(&status, key).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("no {key} in /proc/{pid}/status"),
        )
    })
}

/// The value of `key` in a `/proc/PID/status` text, in KiB.
///
/// ```
/// use fastnet_bench_echo::procfs::parse_status_kib;
/// let status = "Name:\tx\nVmHWM:\t   10240 kB\nVmRSS:\t    8000 kB\n";
/// assert_eq!(parse_status_kib(status, "VmRSS"), Some(8000));
/// ```
pub fn parse_status_kib(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let value = line.strip_prefix(key)?.strip_prefix(':')?;
        value.trim().strip_suffix("kB")?.trim().parse().ok()
    })
}

/// Threads of process `pid` now.
pub fn threads(pid: u32) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:")?.trim().parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no Threads"))
}
