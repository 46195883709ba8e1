//! FIFO: one order per hub, across producers and ports.
mod common;

use std::thread;

use common::{within, HANG};
use darksidesync_core::{Batch, Hub};

#[test]
fn each_of_8_producers_is_seen_in_its_own_order() {
    const PRODUCERS: usize = 8;
    const PER: u64 = 20_000;
    within(HANG, || {
        // A small capacity makes producers block and resume often.
        let hub: Hub<(usize, u64)> = Hub::with_capacity(256);
        let port = hub.register("fifo", |_| {}).unwrap();
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let port = port.clone();
                thread::spawn(move || {
                    for seq in 0..PER {
                        port.post((p, seq)).unwrap();
                    }
                })
            })
            .collect();
        let mut next = [0u64; PRODUCERS];
        let mut seen = 0u64;
        let mut batch = Batch::new();
        while seen < PRODUCERS as u64 * PER {
            hub.wait(None);
            hub.drain(usize::MAX, &mut batch);
            for (p, seq) in &mut batch {
                assert_eq!(seq, next[p], "producer {p} out of order");
                next[p] += 1;
                seen += 1;
            }
        }
        for t in producers {
            t.join().unwrap();
        }
        assert!(next.iter().all(|&n| n == PER));
        assert!(hub.is_empty());
    });
}

#[test]
fn ports_share_one_order() {
    let hub: Hub<u32> = Hub::new();
    let a = hub.register("a", |_| {}).unwrap();
    let b = hub.register("b", |_| {}).unwrap();
    for i in 0..100 {
        if i % 3 == 0 {
            a.post(i).unwrap()
        } else {
            b.post(i).unwrap()
        };
    }
    let mut batch = Batch::new();
    assert_eq!(hub.drain(usize::MAX, &mut batch), 100);
    assert_eq!(batch.collect::<Vec<_>>(), (0..100).collect::<Vec<_>>());
}

#[test]
fn drain_takes_at_most_max_and_keeps_the_rest_in_order() {
    let hub: Hub<u32> = Hub::new();
    let port = hub.register("p", |_| {}).unwrap();
    for i in 0..10 {
        port.post(i).unwrap();
    }
    let mut batch = Batch::new();
    assert_eq!(hub.drain(3, &mut batch), 3);
    assert_eq!(hub.len(), 7);
    // Draining into a batch that still holds items appends after them.
    assert_eq!(hub.drain(2, &mut batch), 2);
    assert_eq!(batch.by_ref().collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
    assert_eq!(hub.drain(usize::MAX, &mut batch), 5);
    assert_eq!(batch.collect::<Vec<_>>(), vec![5, 6, 7, 8, 9]);
    assert_eq!(hub.drain(usize::MAX, &mut Batch::new()), 0);
}
