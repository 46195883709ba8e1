//! Helpers shared by the core's tests: items that record whether they ran or
//! were dropped, and a watchdog that turns a hang into a failure.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

/// Per-item outcome log: 0 = pending, 1 = ran, 2 = dropped; anything else is
/// a double outcome.
pub struct Ledger {
    slots: Vec<AtomicU8>,
}

impl Ledger {
    pub fn new(n: usize) -> Arc<Ledger> {
        Arc::new(Ledger {
            slots: (0..n).map(|_| AtomicU8::new(0)).collect(),
        })
    }

    fn mark(&self, id: usize, how: u8) {
        let old = self.slots[id].swap(how, Ordering::SeqCst);
        assert_eq!(old, 0, "item {id} had outcome {old} before outcome {how}");
    }

    /// (ran, dropped, pending) counts.
    pub fn tally(&self) -> (usize, usize, usize) {
        let mut t = (0, 0, 0);
        for s in &self.slots {
            match s.load(Ordering::SeqCst) {
                1 => t.0 += 1,
                2 => t.1 += 1,
                0 => t.2 += 1,
                x => panic!("impossible outcome {x}"),
            }
        }
        t
    }

    pub fn outcome(&self, id: usize) -> u8 {
        self.slots[id].load(Ordering::SeqCst)
    }
}

/// An item that records exactly one outcome: `run()` or its drop.
pub struct Tracked {
    pub id: usize,
    pub producer: usize,
    pub seq: u64,
    ledger: Option<Arc<Ledger>>,
}

impl Tracked {
    pub fn new(ledger: &Arc<Ledger>, id: usize, producer: usize, seq: u64) -> Tracked {
        Tracked {
            id,
            producer,
            seq,
            ledger: Some(ledger.clone()),
        }
    }

    pub fn run(mut self) -> (usize, u64) {
        if let Some(l) = self.ledger.take() {
            l.mark(self.id, 1);
        }
        (self.producer, self.seq)
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if let Some(l) = self.ledger.take() {
            l.mark(self.id, 2);
        }
    }
}

/// Runs `f` on a thread and fails the test if it does not finish within
/// `limit` (a hang detector, generous on purpose: not a speed assertion).
pub fn within<R: Send + 'static>(limit: Duration, f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(r) => r,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("hung: did not finish within {limit:?}"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the checked code panicked"),
    }
}

pub const HANG: Duration = Duration::from_secs(60);
