//! What a load run measured, and the tallies behind it.

use super::*;

/// What one load run measured.
#[derive(Debug, Default, Clone)]
pub(crate) struct RunResult {
    /// Operations of the measured phase that completed with the expected reply.
    pub(crate) ops: usize,
    /// Connection errors, timeouts, malformed or missing replies.
    pub(crate) errors: usize,
    /// Replies that decoded but were not the expected result.
    pub(crate) unexpected: usize,
    /// Requests the server answered in all phases (setup and cleanup included): what its console
    /// and log service must show.
    pub(crate) handled: usize,
    pub(crate) elapsed: Duration,
    pub(crate) latency: Summary,
    /// TCP segments the host sent during the measured phase (Linux), both ends together.
    pub(crate) segments: Option<u64>,
    pub(crate) first_error: Option<String>,
}

impl RunResult {
    pub(crate) fn rate(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub(crate) fn line(&self, what: &str) -> String {
        let mut s = format!(
            "{what:<10} {:>9.0} ops/s  {:>8} ops  errors {}  unexpected {}  {}",
            self.rate(),
            self.ops,
            self.errors,
            self.unexpected,
            self.latency
        );
        if let (Some(segments), ops @ 1..) = (self.segments, self.ops) {
            let _ = write!(s, "  TCP segments/op {:.2}", segments as f64 / ops as f64);
        }
        if let Some(e) = &self.first_error {
            let _ = write!(s, "  (first error: {e})");
        }
        s
    }

    /// Why this run cannot be reported, if it cannot: no operation completed, or some failed or
    /// got an unexpected reply.
    pub(crate) fn problem(&self) -> Option<String> {
        (self.errors > 0 || self.unexpected > 0 || self.ops == 0).then(|| {
            format!(
                "{} ops, {} errors, {} unexpected{}",
                self.ops,
                self.errors,
                self.unexpected,
                self.first_error
                    .as_deref()
                    .map(|e| format!(" (first: {e})"))
                    .unwrap_or_default()
            )
        })
    }
}

/// Per-client tallies, merged at the end.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) ops: usize,
    pub(crate) errors: usize,
    pub(crate) unexpected: usize,
    pub(crate) handled: usize,
    pub(crate) latencies: Latencies,
    pub(crate) first_error: Option<String>,
}

impl Tally {
    pub(crate) fn error(&mut self, e: impl std::fmt::Display) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(e.to_string());
        }
    }

    pub(crate) fn merge_into(tallies: Vec<Self>, elapsed: Duration) -> RunResult {
        let mut all = Latencies::default();
        let mut r = RunResult {
            elapsed,
            ..RunResult::default()
        };
        for t in tallies {
            r.ops += t.ops;
            r.errors += t.errors;
            r.unexpected += t.unexpected;
            r.handled += t.handled;
            all.merge(t.latencies);
            if r.first_error.is_none() {
                r.first_error = t.first_error;
            }
        }
        r.latency = all.summary();
        r
    }
}
