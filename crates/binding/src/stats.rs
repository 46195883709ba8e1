//! [`Stats`]: a library's counters, as the module keeps them.

use crate::ffi;

/// A library's counters (see `dss2_stats_t`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Items accepted (posts and calls).
    pub posted: u64,
    /// Items whose closure ran on the Lua thread.
    pub ran: u64,
    /// Accepted items dropped unrun.
    pub cancelled: u64,
    /// Posts and calls refused (full, closed, would deadlock ...).
    pub refused: u64,
    /// Calls answered.
    pub replies: u64,
    /// Calls whose closure failed (returned `Err` or panicked).
    pub errors: u64,
    /// Calls that timed out.
    pub timeouts: u64,
    /// Keep-alive references held now (the registration's own included,
    /// see [`Dss::unref`](crate::Dss::unref)).
    pub keep_alive: u64,
}

impl From<ffi::Stats> for Stats {
    fn from(s: ffi::Stats) -> Stats {
        Stats {
            posted: s.posted,
            ran: s.ran,
            cancelled: s.cancelled,
            refused: s.refused,
            replies: s.replies,
            errors: s.errors,
            timeouts: s.timeouts,
            keep_alive: s.keep_alive,
        }
    }
}
