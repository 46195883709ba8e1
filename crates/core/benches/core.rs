//! The core alone, no Lua: post-to-drain throughput with 1, 2 and 4
//! producers (and uncontended, with timing of queue waits off and on),
//! and the round trip of a blocking call with a spinning consumer.
//!
//! Run with `cargo xtask bench` (or `cargo bench -p darksidesync-core`).
//! Besides criterion's report, the round-trip group prints p50/p99 from a
//! direct sample, since criterion reports means.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use darksidesync_core::{Batch, Hub, Reply};

const ITEMS: u64 = 1_000_000;

/// Posts `ITEMS` in total from `producers` threads and drains them all on
/// this thread; returns the elapsed time.
fn post_to_drain(producers: u64) -> Duration {
    let hub: Hub<u64> = Hub::new();
    let port = hub.register("bench", |_| {}).unwrap();
    let per = ITEMS / producers;
    let start = Instant::now();
    let threads: Vec<_> = (0..producers)
        .map(|_| {
            let port = port.clone();
            thread::spawn(move || {
                for i in 0..per {
                    port.post(i).unwrap();
                }
            })
        })
        .collect();
    let mut batch = Batch::new();
    let mut sum = 0u64;
    let mut got = 0;
    while got < per * producers {
        hub.wait(None);
        got += hub.drain(usize::MAX, &mut batch) as u64;
        for v in &mut batch {
            sum = sum.wrapping_add(v);
        }
    }
    let elapsed = start.elapsed();
    black_box(sum);
    for t in threads {
        t.join().unwrap();
    }
    elapsed
}

fn throughput(c: &mut Criterion) {
    // The cost of the code itself: post and drain on one thread, so no
    // cache line crosses cores.
    let mut g = c.benchmark_group("uncontended");
    g.throughput(Throughput::Elements(1_000));
    g.bench_function("post_1000_then_drain", |b| {
        let hub: Hub<u64> = Hub::new();
        let port = hub.register("bench", |_| {}).unwrap();
        let mut batch = Batch::new();
        b.iter(|| {
            for i in 0..1_000 {
                port.post(i).unwrap();
            }
            hub.drain(usize::MAX, &mut batch);
            batch.by_ref().map(black_box).count()
        })
    });
    // The same with timing of queue waits on: the cost of two clock reads
    // and a histogram record per item.
    g.bench_function("post_1000_then_drain_timed", |b| {
        let hub: Hub<u64> = Hub::new();
        hub.set_timing(true);
        let port = hub.register("bench", |_| {}).unwrap();
        let mut batch = Batch::new();
        b.iter(|| {
            for i in 0..1_000 {
                port.post(i).unwrap();
            }
            hub.drain(usize::MAX, &mut batch);
            batch.by_ref().map(black_box).count()
        })
    });
    g.finish();

    let mut g = c.benchmark_group("post_to_drain");
    g.throughput(Throughput::Elements(ITEMS));
    g.sample_size(20);
    for producers in [1u64, 2, 4] {
        g.bench_function(format!("{producers}_producers"), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| post_to_drain(producers)).sum())
        });
    }
    g.finish();
}

/// A consumer thread that spins on the hub and answers every call with
/// its argument plus one, until `stop`.
fn spinning_consumer(
    stop: Arc<AtomicBool>,
) -> (
    darksidesync_core::Port<(u64, Reply<u64>)>,
    thread::JoinHandle<()>,
) {
    let (tx, rx) = std::sync::mpsc::channel();
    let t = thread::spawn(move || {
        let hub: Hub<(u64, Reply<u64>)> = Hub::new();
        tx.send(hub.register("bench", |_| {}).unwrap()).unwrap();
        let mut batch = Batch::new();
        while !stop.load(Ordering::Relaxed) {
            if hub.drain(usize::MAX, &mut batch) == 0 {
                std::hint::spin_loop();
                continue;
            }
            for (v, reply) in &mut batch {
                let _ = reply.send(v + 1);
            }
        }
    });
    (rx.recv().unwrap(), t)
}

fn round_trip(c: &mut Criterion) {
    let stop = Arc::new(AtomicBool::new(false));
    let (port, consumer) = spinning_consumer(stop.clone());
    let mut g = c.benchmark_group("call_round_trip");
    g.bench_function("spinning_consumer", |b| {
        b.iter(|| port.call(|r| (black_box(1), r), None).unwrap())
    });
    g.finish();

    // Percentiles from a direct sample.
    let mut samples: Vec<Duration> = (0..200_000)
        .map(|i| {
            let t = Instant::now();
            black_box(port.call(|r| (i, r), None).unwrap());
            t.elapsed()
        })
        .collect();
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    println!(
        "call_round_trip/spinning_consumer percentiles: p50 {:?}  p99 {:?}  p99.9 {:?}",
        pct(0.50),
        pct(0.99),
        pct(0.999)
    );
    stop.store(true, Ordering::Relaxed);
    consumer.join().unwrap();
}

criterion_group!(benches, throughput, round_trip);
criterion_main!(benches);
