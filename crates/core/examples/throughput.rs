//! Post-to-drain throughput with N producers, printing items/s and how many
//! wake-ups (batches) it took: `cargo run --release -p darksidesync-core
//! --example throughput -- [producers] [items]`.
use std::time::Instant;

use darksidesync_core::{Batch, Hub};

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<u64>().expect("a number"));
    let producers = args.next().unwrap_or(1);
    let items = args.next().unwrap_or(10_000_000);
    let hub: Hub<u64> = Hub::new();
    let port = hub.register("throughput", |_| {}).unwrap();
    let per = items / producers;
    let start = Instant::now();
    let threads: Vec<_> = (0..producers)
        .map(|_| {
            let port = port.clone();
            std::thread::spawn(move || {
                (0..per).for_each(|i| {
                    port.post(i).unwrap();
                })
            })
        })
        .collect();
    let (mut got, mut drains, mut sum) = (0, 0u64, 0u64);
    let mut batch = Batch::new();
    while got < per * producers {
        hub.wait(None);
        got += hub.drain(usize::MAX, &mut batch) as u64;
        drains += 1;
        sum = batch.by_ref().fold(sum, u64::wrapping_add);
    }
    let secs = start.elapsed().as_secs_f64();
    threads.into_iter().for_each(|t| t.join().unwrap());
    let s = hub.stats();
    println!(
        "{producers} producer(s): {:.2} M items/s, {} drains, {} wake-ups ({:.0} items per wake-up), peak depth {} [{sum}]",
        got as f64 / secs / 1e6,
        drains,
        s.wakeups,
        got as f64 / s.wakeups as f64,
        s.peak_depth
    );
}
