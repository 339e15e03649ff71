//! The counters of a transport's calls.

use p2p_proto::rpc::log::LogReply;
use p2p_proto::rpc::message::AcceptStat;

use crate::monitor::names;

/// The metrics of one transport's calls, registered once per connection (or
/// socket): a batch of logged calls costs two counter additions.
pub(super) struct CallMetrics {
    pub(super) transport: &'static str,
    pub(super) ok: metrics::Counter,
    pub(super) system_err: metrics::Counter,
    pub(super) lines: metrics::Counter,
}

impl CallMetrics {
    pub(super) fn new(transport: &'static str) -> Self {
        let calls = |result: &'static str| metrics::counter!(names::LOG_CALLS, "transport" => transport, "result" => result);
        Self {
            transport,
            ok: calls("ok"),
            system_err: calls("system_err"),
            lines: metrics::counter!(names::LOG_LINES_WRITTEN),
        }
    }

    /// Counts a call that logged nothing: its reply's status, or `dropped`
    /// when it gets no reply.
    pub(super) fn unlogged(&self, reply: Option<&LogReply>) {
        let result = reply.map_or("dropped", reply_result);
        metrics::counter!(names::LOG_CALLS, "transport" => self.transport, "result" => result)
            .increment(1);
    }
}

/// The `result` label of a reply that logged nothing.
pub(super) fn reply_result(reply: &LogReply) -> &'static str {
    match reply.accept_stat() {
        Some(AcceptStat::Success) => "null",
        Some(AcceptStat::ProgUnavail) => "prog_unavail",
        Some(AcceptStat::ProgMismatch { .. }) => "prog_mismatch",
        Some(AcceptStat::ProcUnavail) => "proc_unavail",
        Some(AcceptStat::GarbageArgs) => "garbage_args",
        Some(AcceptStat::SystemErr) => "system_err",
        None => "denied",
    }
}
