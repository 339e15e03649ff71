//! Memory figures from `/proc/<pid>/status` (Linux).

use std::fs;

/// Resident set sizes of a process, in KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rss {
    /// `VmRSS`: resident now.
    pub current_kib: u64,
    /// `VmHWM`: the peak resident set since the process started.
    pub peak_kib: u64,
}

/// The RSS of process `pid`, or of this process when `pid` is `None`; `None` off Linux or when
/// the process is gone.
#[must_use]
pub fn rss(pid: Option<u32>) -> Option<Rss> {
    let path = pid.map_or_else(
        || "/proc/self/status".to_owned(),
        |p| format!("/proc/{p}/status"),
    );
    let status = fs::read_to_string(path).ok()?;
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
    };
    Some(Rss {
        current_kib: field("VmRSS:")?,
        peak_kib: field("VmHWM:")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_rss_is_readable() {
        if cfg!(target_os = "linux") {
            let r = rss(None).expect("own /proc status");
            assert!(r.current_kib > 0 && r.peak_kib >= r.current_kib);
        }
    }
}
