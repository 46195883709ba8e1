//! Project tasks that cargo alone cannot express. Run as `cargo xtask <task>`.
//!
//! * `test`  — the whole test suite, installing what it needs (CI runs this).
//! * `deps`  — only the install step of `test`.
//! * `loom`  — the core's loom model checks.
//! * `bench` — the core's benchmarks.

mod cmd;
mod deps;
mod test;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (task, rest) = match args.split_first() {
        Some((t, rest)) => (t.as_str(), rest),
        None => ("help", &[][..]),
    };
    let result = match task {
        "test" => test::all(),
        "deps" => deps::ensure(),
        "loom" => test::loom(),
        "bench" => test::bench_core(rest),
        _ => {
            eprintln!("usage: cargo xtask <test|deps|loom|bench>");
            return if task == "help" { ExitCode::SUCCESS } else { ExitCode::from(2) };
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask {task}: {e}");
            ExitCode::FAILURE
        }
    }
}
