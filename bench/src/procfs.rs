//! CPU time and memory of a process, from `/proc`: per server, and of the generator itself.

use std::time::Duration;

/// Why `/proc` could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} has no {field}")]
    Missing { path: String, field: &'static str },
}

/// A process to look at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Process {
    /// The generator itself.
    Current,
    Pid(u32),
}

impl Process {
    fn path(self, file: &str) -> String {
        match self {
            Process::Current => format!("/proc/self/{file}"),
            Process::Pid(pid) => format!("/proc/{pid}/{file}"),
        }
    }

    fn read(self, file: &str) -> Result<(String, String), ProcError> {
        let path = self.path(file);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok((path, text)),
            Err(source) => Err(ProcError::Read { path, source }),
        }
    }

    /// User + system CPU time of every thread so far (`/proc/<pid>/stat`, in clock ticks).
    pub fn cpu_time(self) -> Result<Duration, ProcError> {
        self.cpu_times().map(|t| t.user + t.system)
    }

    /// User and system CPU time apart: system time is mostly the kernel's TCP work.
    pub fn cpu_times(self) -> Result<CpuTimes, ProcError> {
        let (path, text) = self.read("stat")?;
        // The command name, in parentheses, may hold spaces: fields count from after it.
        let fields: Vec<&str> = text
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        // utime and stime are fields 14 and 15 of stat(5); field 3 is the first after ')'.
        let tick = |index: usize, field| {
            fields
                .get(index)
                .and_then(|v| v.parse::<u64>().ok())
                .map(|ticks| Duration::from_secs_f64(ticks as f64 / clock_ticks_per_second()))
                .ok_or_else(|| ProcError::Missing {
                    path: path.clone(),
                    field,
                })
        };
        Ok(CpuTimes {
            user: tick(11, "utime")?,
            system: tick(12, "stime")?,
        })
    }

    /// Resident and peak resident memory (`VmRSS`, `VmHWM` of `/proc/<pid>/status`).
    pub fn memory(self) -> Result<Memory, ProcError> {
        let (path, text) = self.read("status")?;
        let kib = |field: &'static str| {
            text.lines()
                .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .ok_or_else(|| ProcError::Missing {
                    path: path.clone(),
                    field,
                })
        };
        Ok(Memory {
            rss_bytes: kib("VmRSS")? * 1024,
            peak_rss_bytes: kib("VmHWM")? * 1024,
        })
    }
}

/// CPU time in user space and in the kernel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuTimes {
    pub user: Duration,
    pub system: Duration,
}

impl CpuTimes {
    pub fn since(self, earlier: CpuTimes) -> CpuTimes {
        CpuTimes {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }
}

/// Memory of a process, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Memory {
    pub rss_bytes: u64,
    pub peak_rss_bytes: u64,
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let before = Process::Current.cpu_time().unwrap();
        let mut x = 0u64;
        let started = std::time::Instant::now();
        while started.elapsed() < Duration::from_millis(50) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        assert!(Process::Current.cpu_time().unwrap() >= before);
        let memory = Process::Current.memory().unwrap();
        assert!(memory.rss_bytes > 0 && memory.peak_rss_bytes >= memory.rss_bytes);
    }

    #[test]
    fn a_missing_process_is_an_error() {
        assert!(matches!(
            Process::Pid(u32::MAX).cpu_time(),
            Err(ProcError::Read { .. })
        ));
    }
}
