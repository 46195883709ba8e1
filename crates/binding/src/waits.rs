//! [`Waits`]: how long a library's items (or its state's) waited in the
//! queue, as the module measures them while timing is on.

use std::time::Duration;

use crate::ffi;

/// How long items waited in the queue, from the post (or call) to the
/// moment the Lua thread took them to run (see `dss2_waits_t`). Measured
/// only while timing is on in the state (`darksidesync.timing(true)` from
/// Lua); [`Dss::waits`](crate::Dss::waits) gives `None` while it is off.
///
/// `p50` and `p99` are never below the true value and at most 12.5 %
/// above it; `max`, `count` and `total` are exact.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Waits {
    /// Items taken to run since timing was turned on.
    pub count: u64,
    /// The median wait.
    pub p50: Duration,
    /// The 99th percentile.
    pub p99: Duration,
    /// The longest wait.
    pub max: Duration,
    /// All waits added up (`total / count` is the mean).
    pub total: Duration,
}

impl Waits {
    /// `None` when the module says timing is off.
    pub(crate) fn from_ffi(w: &ffi::Waits) -> Option<Waits> {
        (w.enabled != 0).then(|| Waits {
            count: w.count,
            p50: Duration::from_nanos(w.p50_ns),
            p99: Duration::from_nanos(w.p99_ns),
            max: Duration::from_nanos(w.max_ns),
            total: Duration::from_nanos(w.total_ns),
        })
    }
}
