//! Where the time goes: the waits of items in the queue, post to take,
//! per hub and per port, only while timing is on.
use std::thread;
use std::time::Duration;

use darksidesync_core::{Batch, Hub, Waits};

/// Longer than any clock step between post and take in these tests: items
/// held back this long must show at least this wait.
const HELD: Duration = Duration::from_millis(30);

fn take_all(hub: &Hub<u32>, batch: &mut Batch<u32>) -> Vec<u32> {
    hub.drain(usize::MAX, batch);
    batch.collect()
}

#[test]
fn timing_is_off_by_default_and_reads_as_nothing() {
    let hub: Hub<u32> = Hub::new();
    let port = hub.register("a", |_| {}).unwrap();
    port.post(1).unwrap();
    let mut batch = Batch::new();
    assert_eq!(take_all(&hub, &mut batch), [1]);
    assert!(!hub.timing());
    assert_eq!(hub.waits(), None);
    assert_eq!(port.waits(), None);
    assert_eq!(port.hub_waits(), None);
    assert_eq!(hub.named_waits("a"), None);
}

#[test]
fn held_items_show_at_least_the_time_they_were_held() {
    let hub: Hub<u32> = Hub::new();
    let a = hub.register("a", |_| {}).unwrap();
    let b = hub.register("b", |_| {}).unwrap();
    assert!(!hub.set_timing(true));
    assert!(hub.timing());
    let producer = thread::spawn(move || {
        for i in 0..5 {
            a.post(i).unwrap();
        }
        a
    });
    let a = producer.join().unwrap();
    thread::sleep(HELD);
    let mut batch = Batch::new();
    assert_eq!(take_all(&hub, &mut batch), [0, 1, 2, 3, 4]);
    let w = hub.waits().unwrap();
    assert_eq!(w.count, 5);
    assert!(w.p50 >= HELD && w.p99 >= w.p50 && w.max >= w.p99, "{w:?}");
    assert!(w.total >= HELD * 5, "{w:?}");
    // The same items, by port and by name; the other port saw none.
    assert_eq!(a.waits().unwrap().count, 5);
    assert_eq!(hub.named_waits("a").unwrap().count, 5);
    assert_eq!(b.waits(), Some(Waits::default()));
    assert_eq!(a.hub_waits().unwrap().count, 5);
    assert_eq!(hub.named_waits("nobody"), None);
}

#[test]
fn a_wait_ends_when_the_consumer_takes_the_item_not_at_the_drain() {
    let hub: Hub<u32> = Hub::new();
    let port = hub.register("a", |_| {}).unwrap();
    hub.set_timing(true);
    port.post(1).unwrap();
    port.post(2).unwrap();
    let mut batch = Batch::new();
    hub.drain(usize::MAX, &mut batch);
    assert_eq!(hub.waits().unwrap().count, 0, "drained, not taken");
    assert_eq!(batch.pop(), Some(1));
    assert_eq!(hub.waits().unwrap().count, 1);
    // The second item waits in the batch: that is still a wait.
    thread::sleep(HELD);
    assert_eq!(batch.pop(), Some(2));
    let w = hub.waits().unwrap();
    assert_eq!(w.count, 2);
    assert!(w.max >= HELD, "{w:?}");
}

#[test]
fn turning_timing_off_drops_the_histograms_and_on_starts_afresh() {
    let hub: Hub<u32> = Hub::new();
    let port = hub.register("a", |_| {}).unwrap();
    hub.set_timing(true);
    port.post(1).unwrap();
    let mut batch = Batch::new();
    take_all(&hub, &mut batch);
    assert_eq!(hub.waits().unwrap().count, 1);
    assert!(hub.set_timing(false));
    port.post(2).unwrap();
    take_all(&hub, &mut batch);
    assert_eq!(hub.waits(), None);
    assert_eq!(port.waits(), None);
    // Posted while off: not timed once it is on again.
    port.post(3).unwrap();
    hub.set_timing(true);
    port.post(4).unwrap();
    assert_eq!(take_all(&hub, &mut batch), [3, 4]);
    assert_eq!(hub.waits().unwrap().count, 1);
    assert_eq!(port.waits().unwrap().count, 1);
}

#[test]
fn ports_registered_while_timing_is_on_are_timed_and_stale_ones_read_nothing() {
    let hub: Hub<u32> = Hub::new();
    hub.set_timing(true);
    let port = hub.register("late", |_| {}).unwrap();
    port.post(7).unwrap();
    let mut batch = Batch::new();
    take_all(&hub, &mut batch);
    assert_eq!(port.waits().unwrap().count, 1);
    // Two ports of one name add up.
    let twin = hub.register("late", |_| {}).unwrap();
    twin.post(8).unwrap();
    take_all(&hub, &mut batch);
    assert_eq!(hub.named_waits("late").unwrap().count, 2);
    assert!(port.unregister());
    assert_eq!(port.waits(), None);
    assert_eq!(hub.named_waits("late").unwrap().count, 1);
    assert_eq!(hub.waits().unwrap().count, 2);
}

#[test]
fn no_wait_posts_through_the_side_ring_are_timed_too() {
    let hub: Hub<u32> = Hub::new();
    let port = hub.register("a", |_| {}).unwrap();
    hub.set_timing(true);
    for i in 0..200 {
        port.post_nowait(i).unwrap();
    }
    thread::sleep(HELD);
    let mut batch = Batch::new();
    assert_eq!(take_all(&hub, &mut batch).len(), 200);
    let w = port.waits().unwrap();
    assert_eq!(w.count, 200);
    assert!(w.p50 >= HELD, "{w:?}");
}
