//! Timing (`crate::waits`): turning it on and off, the timestamps of
//! posts, the consumer's cache of the histograms, and their readers.
//!
//! The histograms exist only while timing is on: turning it on allocates
//! a fresh one for the hub and for each live port (and for each port
//! registered while on), turning it off drops them. Every change bumps
//! `State::waits_version`, which a drain compares with its batch's
//! `WaitCache` to refresh it under the lock it already holds.

use std::sync::Arc;

use super::{Entry, PortKey, Shared, State};
use crate::sync::Ordering;
use crate::waits::{now_ns, Counts, WaitCache, WaitHistogram, Waits};

impl<T> Shared<T> {
    /// The timestamp of a post now: the clock when timing is on, else 0.
    #[inline]
    pub(crate) fn stamp(&self) -> u64 {
        if self.timing.load(Ordering::Relaxed) {
            now_ns()
        } else {
            0
        }
    }

    pub(crate) fn timing(&self) -> bool {
        self.timing.load(Ordering::Relaxed)
    }

    /// Turns timing on (fresh, empty histograms) or off (histograms
    /// dropped); returns whether it was on. Setting the current value
    /// changes nothing.
    pub(crate) fn set_timing(&self, on: bool) -> bool {
        let mut st = self.lock();
        let was = st.waits.is_some();
        if on == was {
            return was;
        }
        st.waits = on.then(|| Arc::new(WaitHistogram::new()));
        for book in st.books.iter_mut().flatten() {
            let live = self.ports.is_live(book.key);
            book.waits = (on && live).then(|| Arc::new(WaitHistogram::new()));
        }
        st.waits_version += 1;
        self.timing.store(on, Ordering::Relaxed);
        was
    }

    /// The port `key` registered: its histogram, while timing is on.
    pub(super) fn timing_registered(&self, st: &mut State<T>, key: PortKey) {
        if st.waits.is_some() {
            if let Some(book) = st.book(key) {
                book.waits = Some(Arc::new(WaitHistogram::new()));
            }
        }
        Self::timing_changed(st);
    }

    /// The histograms changed (a port came or went): caches refresh.
    pub(super) fn timing_changed(st: &mut State<T>) {
        if st.waits.is_some() {
            st.waits_version += 1;
        }
    }

    /// Brings a consumer's cache up to date (under the lock, by a drain).
    #[inline]
    pub(super) fn refresh_cache(st: &State<T>, cache: &mut WaitCache) {
        if cache.version == st.waits_version {
            return;
        }
        cache.version = st.waits_version;
        cache.hub = st.waits.clone();
        cache.ports.clear();
        if cache.hub.is_some() {
            let books = st.books.iter();
            cache.ports.extend(books.map(|b| {
                let b = b.as_ref()?;
                Some((b.key, b.waits.clone()?))
            }));
        }
    }

    /// The hub's waits; `None` while timing is off.
    pub(crate) fn waits(&self) -> Option<Waits> {
        let hub = self.lock().waits.clone();
        hub.map(|h| h.snapshot())
    }

    /// The waits of the live port `key`; `None` while timing is off or once
    /// the port is stale.
    pub(crate) fn port_waits(&self, key: PortKey) -> Option<Waits> {
        let h = {
            let mut st = self.lock();
            if st.closed || !self.port_live(key) {
                return None;
            }
            st.book(key)?.waits.clone()
        };
        h.map(|h| h.snapshot())
    }

    /// The waits of the live ports named `name`, added together; `None`
    /// while timing is off or when no live port has that name.
    pub(crate) fn named_waits(&self, name: &str) -> Option<Waits> {
        let found: Vec<Arc<WaitHistogram>> = {
            let st = self.lock();
            st.books
                .iter()
                .flatten()
                .filter(|b| b.name == name && self.ports.is_live(b.key))
                .filter_map(|b| b.waits.clone())
                .collect()
        };
        if found.is_empty() {
            return None;
        }
        let mut counts = Box::<Counts>::default();
        for h in &found {
            counts.add(h);
        }
        Some(counts.waits())
    }
}

impl<T> Entry<T> {
    /// Records this entry's wait in `cache` when it was timed: the
    /// consumer takes it to run now.
    #[inline]
    pub(crate) fn taken(&self, cache: &WaitCache) {
        if self.posted_at != 0 {
            cache.record(self.port, self.posted_at);
        }
    }
}
