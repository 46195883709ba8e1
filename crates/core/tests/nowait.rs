//! `Port::post_nowait` under contention: producers racing each other, a
//! locked producer and the consumer, so posts take both the locked path and
//! the side ring. Every item comes out exactly once, each producer's order
//! kept.

use std::thread;

use darksidesync_core::{Batch, Hub, PostErrorKind};

#[test]
fn nowait_under_contention_delivers_each_item_once_in_producer_order() {
    const PRODUCERS: u64 = 4;
    const EACH: u64 = 20_000;
    let hub: Hub<(u64, u64)> = Hub::with_capacity(1 << 20);
    let port = hub.register("p", |_| {}).unwrap();
    let mut producers = Vec::new();
    for p in 0..PRODUCERS {
        let port = port.clone();
        producers.push(thread::spawn(move || {
            let mut refused = 0u64;
            for i in 0..EACH {
                let mut item = (p, i);
                loop {
                    // Producer 0 takes the lock the ordinary way, the others
                    // never wait for it.
                    let r = if p == 0 {
                        port.try_post(item)
                    } else {
                        port.post_nowait(item)
                    };
                    match r {
                        Ok(_) => break,
                        Err(e) => {
                            assert_eq!(e.kind, PostErrorKind::Full);
                            refused += 1;
                            item = e.item;
                            thread::yield_now();
                        }
                    }
                }
            }
            refused
        }));
    }
    let mut next = vec![0u64; PRODUCERS as usize];
    let mut batch = Batch::new();
    let mut got = 0;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while got < PRODUCERS * EACH {
        assert!(
            std::time::Instant::now() < deadline,
            "items missing after 60 s"
        );
        hub.wait(Some(std::time::Duration::from_millis(50)));
        hub.drain(usize::MAX, &mut batch);
        for (p, i) in &mut batch {
            assert_eq!(i, next[p as usize], "producer {p}: order or duplicate");
            next[p as usize] += 1;
            got += 1;
        }
    }
    let refused: u64 = producers.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(hub.drain(usize::MAX, &mut batch), 0, "nothing extra");
    // Observed, not assumed: the first posts meet a queue with no buffer.
    assert!(hub.side_ring_posts() > 0, "the side ring was never used");
    let stats = hub.stats();
    assert_eq!(stats.posted, PRODUCERS * EACH);
    assert_eq!(stats.delivered, PRODUCERS * EACH);
    assert_eq!(stats.refused, refused);
}

#[test]
fn nowait_is_refused_once_closed() {
    let hub: Hub<u8> = Hub::new();
    let port = hub.register("p", |_| {}).unwrap();
    hub.close();
    assert_eq!(port.post_nowait(1).unwrap_err().kind, PostErrorKind::Closed);
}

#[test]
fn nowait_wakes_the_descriptor() {
    let hub: Hub<u8> = Hub::new();
    let port = hub.register("p", |_| {}).unwrap();
    hub.fd().unwrap();
    assert_eq!(hub.fd_readable(), Some(false));
    port.post_nowait(1).unwrap();
    assert_eq!(hub.fd_readable(), Some(true));
    let mut batch = Batch::new();
    assert_eq!(hub.drain(usize::MAX, &mut batch), 1);
    assert_eq!(hub.fd_readable(), Some(false));
}

#[test]
fn items_waiting_in_the_ring_count_toward_the_capacity_of_ordinary_posts() {
    // A fresh hub's queue has no buffer yet, so a no-wait post lands in the
    // side ring; an ordinary post must then see the hub as full (it was
    // accepted beyond the capacity, and a NOWAIT call then blocked forever
    // for a reply nobody would give).
    let hub: Hub<u32> = Hub::with_capacity(1);
    let port = hub.register("p", |_| {}).unwrap();
    port.post_nowait(1).unwrap();
    let refused = port.try_post(2).unwrap_err();
    assert_eq!(refused.kind, PostErrorKind::Full);
    assert_eq!(refused.item, 2);
    let mut batch = Batch::new();
    assert_eq!(hub.drain(usize::MAX, &mut batch), 1);
    assert_eq!(batch.pop(), Some(1));
    port.try_post(3).unwrap();
    assert_eq!(hub.stats().posted, 2);
}
