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
        for slot in st.ports.iter_mut() {
            slot.waits = (on && slot.live).then(|| Arc::new(WaitHistogram::new()));
        }
        st.waits_version += 1;
        self.timing.store(on, Ordering::Relaxed);
        was
    }

    /// A port registered in slot `index`: its histogram, while timing is on.
    pub(super) fn timing_registered(&self, st: &mut State<T>, index: u32) {
        if st.waits.is_some() {
            st.ports[index as usize].waits = Some(Arc::new(WaitHistogram::new()));
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
            cache
                .ports
                .extend(st.ports.iter().enumerate().map(|(i, s)| {
                    s.waits.as_ref().map(|h| {
                        let key = PortKey {
                            index: i as u32,
                            generation: s.generation,
                        };
                        (key, h.clone())
                    })
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
            let st = self.lock();
            if st.closed || !st.port_live(key) {
                return None;
            }
            st.ports[key.index as usize].waits.clone()
        };
        h.map(|h| h.snapshot())
    }

    /// The waits of the live ports named `name`, added together; `None`
    /// while timing is off or when no live port has that name.
    pub(crate) fn named_waits(&self, name: &str) -> Option<Waits> {
        let found: Vec<Arc<WaitHistogram>> = {
            let st = self.lock();
            st.ports
                .iter()
                .filter(|s| s.live && s.name == name)
                .filter_map(|s| s.waits.clone())
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
