//! The promises of section 4 on the no-wait path (`Port::post_nowait`),
//! the side ring included: a queued item wakes the descriptor and the UDP
//! port whatever order they were set up in, the capacity bound is exact
//! with many producers, the `stats()` identity holds in every snapshot,
//! and per-producer FIFO holds while a signal handler posts on the
//! consumer thread. Each test observes that the side ring was used
//! (`Hub::side_ring_posts`) instead of assuming it.
mod common;

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use common::{within, HANG};
use darksidesync_core::{Batch, Hub, Port, PostErrorKind, Stats};

/// Posts `item` without waiting, retrying while the queue is full.
fn post_retrying<T: Send + 'static>(port: &Port<T>, mut item: T, stop: &AtomicBool) -> bool {
    loop {
        match port.post_nowait(item) {
            Ok(_) => return true,
            Err(e) => {
                assert_eq!(e.kind, PostErrorKind::Full, "only Full is expected");
                if stop.load(Ordering::Relaxed) {
                    return false;
                }
                item = e.item;
                thread::yield_now();
            }
        }
    }
}

/// `producers` threads, producer `p` posting `(p, 0)`, `(p, 1)`, ...
/// `(p, each - 1)` without waiting (retrying while full) until `stop`.
fn spawn_producers(
    port: &Port<(u64, u64)>,
    producers: u64,
    each: u64,
    stop: &Arc<AtomicBool>,
) -> Vec<thread::JoinHandle<()>> {
    (0..producers)
        .map(|p| {
            let (port, stop) = (port.clone(), stop.clone());
            thread::spawn(move || {
                for i in 0..each {
                    if !post_retrying(&port, (p, i), &stop) {
                        return;
                    }
                }
            })
        })
        .collect()
}

fn identity_holds(s: &Stats) -> bool {
    s.posted == s.delivered + s.cancelled + s.depth as u64
}

#[test]
fn fd_first_called_after_nowait_posts_is_readable_until_they_are_taken() {
    let hub: Hub<u8> = Hub::new();
    let port = hub.register("p", |_| {}).unwrap();
    for i in 0..3 {
        port.post_nowait(i).unwrap();
    }
    // A fresh queue has no buffer, so these went through the side ring.
    assert!(hub.side_ring_posts() > 0, "precondition: the ring was used");
    let fd = hub.fd().unwrap();
    assert!(
        darksidesync_core::waker::poll_readable(fd, 200),
        "3 items queued, fd() called after them: readable"
    );
    let mut batch = Batch::new();
    assert_eq!(hub.drain(usize::MAX, &mut batch), 3);
    assert!(
        !darksidesync_core::waker::poll_readable(fd, 0),
        "taken: not readable"
    );
}

fn udp_receiver() -> UdpSocket {
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    rx
}

#[test]
fn udp_port_set_after_nowait_posts_gets_a_datagram() {
    let rx = udp_receiver();
    let hub: Hub<u8> = Hub::new();
    let port = hub.register("p", |_| {}).unwrap();
    port.post_nowait(1).unwrap();
    assert!(hub.side_ring_posts() > 0, "precondition: the ring was used");
    hub.set_udp_port(Some(rx.local_addr().unwrap().port()))
        .unwrap();
    let mut buf = [0u8; 64];
    assert!(
        rx.recv(&mut buf).is_ok(),
        "a queued item sends the datagram"
    );
}

#[test]
fn nowait_posts_through_the_ring_send_the_datagram() {
    let rx = udp_receiver();
    let hub: Hub<u8> = Hub::new();
    hub.set_udp_port(Some(rx.local_addr().unwrap().port()))
        .unwrap();
    let port = hub.register("p", |_| {}).unwrap();
    port.post_nowait(1).unwrap();
    assert!(hub.side_ring_posts() > 0, "precondition: the ring was used");
    let mut buf = [0u8; 64];
    assert!(rx.recv(&mut buf).is_ok(), "the ring post sent the datagram");
}

/// 4 producers post without waiting into a hub of capacity `cap` while the
/// consumer drains one item at a time; every snapshot keeps the bound and
/// the identity.
fn bound_and_identity_hold(cap: usize) {
    const PRODUCERS: u64 = 4;
    const EACH: u64 = 5_000;
    within(HANG, move || {
        let hub: Hub<(u64, u64)> = Hub::with_capacity(cap);
        let port = hub.register("p", |_| {}).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let producers = spawn_producers(&port, PRODUCERS, EACH, &stop);
        let mut next = [0u64; PRODUCERS as usize];
        let mut batch = Batch::new();
        let mut got = 0;
        let mut snapshots = 0u64;
        while got < PRODUCERS * EACH {
            let s = hub.stats();
            snapshots += 1;
            assert!(s.depth <= cap, "depth {} above capacity {cap}", s.depth);
            assert!(hub.len() <= cap, "queuesize above capacity {cap}");
            assert!(identity_holds(&s), "identity broken: {s:?}");
            hub.wait(Some(Duration::from_millis(20)));
            hub.drain(1, &mut batch);
            for (p, i) in &mut batch {
                assert_eq!(i, next[p as usize], "producer {p}: order or duplicate");
                next[p as usize] += 1;
                got += 1;
            }
        }
        stop.store(true, Ordering::Relaxed);
        for t in producers {
            t.join().unwrap();
        }
        let s = hub.stats();
        assert!(s.peak_depth <= cap, "peak_depth {} > {cap}", s.peak_depth);
        assert!(identity_holds(&s), "{s:?}");
        assert!(snapshots > 0);
        assert!(hub.side_ring_posts() > 0, "precondition: the ring was used");
    });
}

#[test]
fn capacity_1_bounds_nowait_posts_from_4_threads() {
    bound_and_identity_hold(1);
}

#[test]
fn capacity_20_bounds_nowait_posts_from_4_threads() {
    bound_and_identity_hold(20);
}

#[test]
fn stats_identity_holds_in_every_snapshot_under_nowait_load() {
    within(HANG, || {
        let hub: Hub<u64> = Hub::with_capacity(1 << 16);
        let port = hub.register("p", |_| {}).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let producers: Vec<_> = (0..4)
            .map(|_| {
                let (port, stop) = (port.clone(), stop.clone());
                thread::spawn(move || {
                    let mut i = 0;
                    while !stop.load(Ordering::Relaxed) && i < 200_000 {
                        let _ = port.post_nowait(i);
                        i += 1;
                    }
                })
            })
            .collect();
        let mut batch = Batch::new();
        let deadline = Instant::now() + Duration::from_millis(1500);
        let mut snapshots = 0;
        while Instant::now() < deadline {
            let s = hub.stats();
            assert!(identity_holds(&s), "snapshot {snapshots}: {s:?}");
            snapshots += 1;
            hub.drain(64, &mut batch);
            while batch.pop().is_some() {}
        }
        stop.store(true, Ordering::Relaxed);
        for t in producers {
            t.join().unwrap();
        }
        assert!(snapshots > 100, "observed {snapshots} snapshots");
        assert!(hub.side_ring_posts() > 0, "precondition: the ring was used");
    });
}

// A signal handler on the consumer thread posts without waiting while
// producers do the same: per-producer FIFO and exactly-once hold (the
// handler is a producer of its own).

static SIGNAL_PORT: OnceLock<Port<(u64, u64)>> = OnceLock::new();
static SIGNAL_SEQ: AtomicU64 = AtomicU64::new(0);
static SIGNAL_REFUSED: AtomicU64 = AtomicU64::new(0);
const HANDLER: u64 = 99;

extern "C" fn post_from_handler(_: libc::c_int) {
    if let Some(port) = SIGNAL_PORT.get() {
        let seq = SIGNAL_SEQ.load(Ordering::Relaxed);
        match port.post_nowait((HANDLER, seq)) {
            Ok(_) => SIGNAL_SEQ.store(seq + 1, Ordering::Relaxed),
            Err(_) => {
                SIGNAL_REFUSED.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[test]
fn fifo_holds_while_a_signal_handler_posts_on_the_consumer_thread() {
    const PRODUCERS: u64 = 3;
    const EACH: u64 = 30_000;
    within(HANG, || {
        let hub: Hub<(u64, u64)> = Hub::with_capacity(256);
        let port = hub.register("p", |_| {}).unwrap();
        SIGNAL_PORT.set(port.clone()).ok().unwrap();
        // SAFETY: installs a handler that only makes a no-wait post, which
        // the core documents as async-signal-safe for a `(u64, u64)` item.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = post_from_handler as *const () as usize;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            assert_eq!(libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut()), 0);
        }
        // SAFETY: pthread_self has no preconditions.
        let consumer = unsafe { libc::pthread_self() } as u64;
        hub.bind_consumer();
        let stop = Arc::new(AtomicBool::new(false));
        let producers = spawn_producers(&port, PRODUCERS, EACH, &stop);
        let signaller = {
            let stop = stop.clone();
            thread::spawn(move || {
                let mut sent = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    // SAFETY: the consumer thread outlives this thread
                    // (joined before the test returns).
                    unsafe { libc::pthread_kill(consumer as libc::pthread_t, libc::SIGUSR1) };
                    sent += 1;
                    thread::sleep(Duration::from_micros(20));
                }
                sent
            })
        };
        let mut next = [0u64; PRODUCERS as usize];
        let mut handler_next = 0u64;
        let mut batch = Batch::new();
        let mut got = 0;
        while got < PRODUCERS * EACH {
            hub.wait(Some(Duration::from_millis(20)));
            hub.drain(16, &mut batch);
            for (p, i) in &mut batch {
                if p == HANDLER {
                    assert_eq!(i, handler_next, "handler: order or duplicate");
                    handler_next += 1;
                } else {
                    assert_eq!(i, next[p as usize], "producer {p}: order or duplicate");
                    next[p as usize] += 1;
                    got += 1;
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        for t in producers {
            t.join().unwrap();
        }
        let sent = signaller.join().unwrap();
        // SAFETY: restores the default action; no handler runs after this.
        unsafe { libc::signal(libc::SIGUSR1, libc::SIG_IGN) };
        while hub.drain(usize::MAX, &mut batch) > 0 {
            for (p, i) in &mut batch {
                assert_eq!(p, HANDLER);
                assert_eq!(i, handler_next, "handler: order or duplicate");
                handler_next += 1;
            }
        }
        assert_eq!(handler_next, SIGNAL_SEQ.load(Ordering::Relaxed));
        assert!(
            sent > 0 && handler_next > 0,
            "signals sent {sent}, posted {handler_next}"
        );
        assert!(hub.side_ring_posts() > 0, "precondition: the ring was used");
        let s = hub.stats();
        assert!(s.peak_depth <= 256, "{s:?}");
        assert!(identity_holds(&s), "{s:?}");
    });
}
