//! Nothing is lost silently: every item runs or is dropped, exactly once.
mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::{within, Ledger, Tracked, HANG};
use darksidesync_core::{Batch, Hub, PostErrorKind};

#[test]
fn every_item_runs_or_is_dropped_exactly_once_across_a_close() {
    const PRODUCERS: usize = 4;
    const PER: usize = 5_000;
    within(HANG, || {
        for round in 0..20 {
            let ledger = Ledger::new(PRODUCERS * PER);
            let hub: Hub<Tracked> = Hub::with_capacity(64);
            let port = hub.register("acct", |_| {}).unwrap();
            let refused = Arc::new(AtomicUsize::new(0));
            let producers: Vec<_> = (0..PRODUCERS)
                .map(|p| {
                    let (port, ledger, refused) = (port.clone(), ledger.clone(), refused.clone());
                    thread::spawn(move || {
                        for i in 0..PER {
                            let id = p * PER + i;
                            let item = Tracked::new(&ledger, id, p, i as u64);
                            // Alternate the full-queue behaviours.
                            let r = match i % 3 {
                                0 => port.post(item),
                                1 => port.try_post(item),
                                _ => port.post_timeout(item, Duration::from_micros(50)),
                            };
                            if let Err(e) = r {
                                // The refused item comes back; dropping it is its outcome.
                                assert!(matches!(
                                    e.kind,
                                    PostErrorKind::Full | PostErrorKind::Closed
                                ));
                                refused.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                    })
                })
                .collect();
            // Run some items, then close while producers are still posting.
            let mut batch = Batch::new();
            let mut ran = 0;
            while ran < 1_000 + round * 100 {
                hub.wait(Some(Duration::from_millis(10)));
                hub.drain(usize::MAX, &mut batch);
                for item in &mut batch {
                    item.run();
                    ran += 1;
                }
            }
            hub.close();
            for t in producers {
                t.join().unwrap();
            }
            let (r, d, pending) = ledger.tally();
            assert_eq!(pending, 0, "an item was neither run nor dropped");
            assert_eq!(r, ran);
            assert_eq!(r + d, PRODUCERS * PER);
            let s = hub.stats();
            assert_eq!(s.posted, s.delivered + s.cancelled + s.depth as u64);
            assert_eq!(s.refused as usize, refused.load(Ordering::SeqCst));
            assert_eq!(s.delivered as usize, ran);
            assert_eq!(s.depth, 0);
        }
    });
}

#[test]
fn items_left_in_a_dropped_batch_take_their_drop_path() {
    let ledger = Ledger::new(3);
    let hub: Hub<Tracked> = Hub::new();
    let port = hub.register("p", |_| {}).unwrap();
    for id in 0..3 {
        port.post(Tracked::new(&ledger, id, 0, id as u64)).unwrap();
    }
    let mut batch = Batch::new();
    hub.drain(usize::MAX, &mut batch);
    batch.pop().unwrap().run();
    drop(batch);
    assert_eq!(ledger.tally(), (1, 2, 0));
}

#[test]
fn stats_count_each_kind_of_outcome() {
    let hub: Hub<u8> = Hub::with_capacity(2);
    let port = hub.register("p", |_| {}).unwrap();
    port.post(1).unwrap();
    port.post(2).unwrap();
    assert_eq!(port.try_post(3).unwrap_err().kind, PostErrorKind::Full);
    let mut batch = Batch::new();
    hub.drain(1, &mut batch);
    port.post(4).unwrap();
    let s = hub.stats();
    assert_eq!(
        (s.posted, s.delivered, s.refused, s.cancelled),
        (3, 1, 1, 0)
    );
    assert_eq!((s.depth, s.peak_depth, s.capacity, s.ports), (2, 2, 2, 1));
    hub.close();
    let s = hub.stats();
    assert_eq!((s.cancelled, s.depth, s.ports), (2, 0, 0));
}
