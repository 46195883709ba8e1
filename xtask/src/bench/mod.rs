//! `cargo xtask bench [--quick] [--repeat N] [--out DIR]`
//!
//! Runs every benchmark scenario in one run, under the same load, and
//! writes `results.md` (a table: each figure with its ratio to the row it
//! should approach, its target and MET / NOT MET), `results.svg` (a chart
//! drawn here) and `raw.txt` (every run's figures) to `bench/results/` (or
//! `--out DIR`). The rows:
//!
//! * limits, no darksidesync: a pure-Lua loop doing the Lua side of
//!   `poll()`, and C calling a Lua function per item through `lua_pcall`;
//! * the public paths: the C utility `bench/c/dssbench.c` (written only
//!   against `include/darksidesync.h`) through DSS API 1v0 (`poll()` busy
//!   with 1 and 2 producers, `poll()` over a pre-filled queue, `dispatch()`,
//!   a luv loop woken by `fd()`, the blocking `deliver` round trip) and 2v0
//!   (post + `dispatch()`, `call` round trip); the Rust library
//!   `bench/rust` (only on `darksidesync-binding`; post + `dispatch()`,
//!   `call` round trip); 8 states in one C host (`bench/c/manystates.c`),
//!   each fed by its own 2v0 producer, against 1 state;
//! * the internal path (`darksidesync.benchlib`, `Item::call`): throughput,
//!   round trips (Lua in `wait()`, in a luv loop, in a cqueues loop),
//!   wake-ups, memory, 8 states in the Rust example `many_states`;
//! * the no-wait posts (1v0 fire-and-forget `deliver`, 2v0 `post(..., 0)`)
//!   with 1 and 4 producers, their peak queue depth against the capacity;
//! * the peers: luv's `uv.new_work` and `async:send`;
//! * the public paths again on LuaJIT and Lua 5.1 (scenario names prefixed
//!   `jit_`, `lua51_`), each against that interpreter's own limits and
//!   internal path in the same run.
//!
//! The Lua scenarios are `bench/lua/scenarios.lua`, run by `lua5.4` (and
//! `luajit`, `lua5.1`), one process per run so memory figures start from a
//! clean heap. Every
//! scenario is repeated `--repeat` times (default 3), interleaved (all
//! scenarios once, then again), and the median of each figure is reported,
//! so a burst of load from elsewhere hits all of them alike.
//!
//! Every throughput scenario checks that each item arrived exactly once
//! (count and sum of the integers the items carry) and fails the run
//! otherwise, as does any crash of our own scenarios; speed never fails it.
//!
//! `--quick` is the smoke run `cargo xtask test` does: a few thousand items
//! per scenario, the module built by `lua-specs` (dev profile), results in
//! `target/bench-smoke/`. It checks that the harness works, not speed.
//!
//! A run into `bench/results/` (no `--out`, not `--quick`) also writes
//! README.md's performance table: the summary at the top of `results.md`,
//! between markers. `cargo xtask bench --readme` writes it again from the
//! results file alone; `cargo xtask drift` fails when the two differ.
//!
//! `--only a,b,...` runs only the scenarios whose names (as in `raw.txt`)
//! start with one of the prefixes, e.g. `--only c1_,c2_,dispatch_1,limit_`
//! to compare the public paths with the internal one and the limits
//! (rows whose scenarios did not run show `n/a`).
//!
//! `cargo xtask bench --perf <scenario>` runs one scenario (names as in
//! `raw.txt`) under `perf record` and prints where its time goes.
//!
//! `cargo xtask bench --criterion [args]` runs the core's criterion
//! benchmarks (`crates/core/benches/core.rs`) instead.

mod fixtures;
mod profile;
mod report;
mod rows;
mod runner;
mod scenarios;
mod svg;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cmd::{cargo, run, Result};
use crate::module;
use crate::root;
use report::Report;
use runner::{Env, Figures};

pub fn main(args: &[String]) -> Result {
    if args.first().map(String::as_str) == Some("--criterion") {
        return run(cargo()
            .args(["bench", "-p", "darksidesync-core", "--bench", "core", "--"])
            .args(&args[1..]));
    }
    if args.first().map(String::as_str) == Some("--readme") {
        return write_readme();
    }
    let (mut quick, mut repeat, mut out, mut perf) = (false, None, None, None);
    let mut only: Vec<String> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--repeat" => {
                repeat = Some(
                    it.next()
                        .and_then(|n| n.parse::<usize>().ok())
                        .ok_or("--repeat needs a number")?,
                )
            }
            "--out" => out = Some(PathBuf::from(it.next().ok_or("--out needs a folder")?)),
            "--perf" => perf = Some(it.next().ok_or("--perf needs a scenario name")?.clone()),
            "--only" => only.extend(
                it.next()
                    .ok_or("--only needs scenario names (comma-separated prefixes)")?
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .map(str::to_string),
            ),
            other => {
                return Err(format!(
                    "bench: unexpected argument {other:?} (see cargo xtask help)"
                ))
            }
        }
    }
    let command = format!("cargo xtask bench {}", args.join(" "))
        .trim_end()
        .to_string();
    let repeat = repeat.unwrap_or(if quick { 1 } else { 3 }).max(1);
    let sizes = if quick {
        &scenarios::QUICK
    } else {
        &scenarios::FULL
    };
    let lua54 = module::version("5.4")?;
    let mut others = Vec::new();
    for (name, prefix) in scenarios::OTHER_LUAS {
        others.push((module::version(name)?, prefix));
    }
    let other_luas: Vec<_> = others.iter().map(|(lua, _)| *lua).collect();
    let fixtures = fixtures::build(lua54, &other_luas, quick)?;
    let env = Env {
        fixtures: &fixtures,
        lua54,
        watchdog: Duration::from_secs(if quick { 60 } else { 900 }),
    };
    let mut scenarios = scenarios::list(sizes, lua54, &others);
    if let Some(name) = &perf {
        return profile::main(&env, &scenarios, name, out.as_deref());
    }
    env.check_peers()?;
    // The README's table follows the results of the repository only.
    let readme = out.is_none() && !quick;
    let out = out.unwrap_or_else(|| {
        root().join(if quick {
            "target/bench-smoke"
        } else {
            "bench/results"
        })
    });
    if !only.is_empty() {
        scenarios.retain(|s| only.iter().any(|p| s.name.starts_with(p.as_str())));
        if scenarios.is_empty() {
            return Err(format!(
                "bench --only {}: no scenario matches",
                only.join(",")
            ));
        }
    }
    let load_before = loadavg();
    let mut runs: BTreeMap<String, Vec<Figures>> = BTreeMap::new();
    for round in 1..=repeat {
        for s in &scenarios {
            eprintln!("bench [{round}/{repeat}] {} {}", s.name, s.args.join(" "));
            let figures = env.run_peer_tolerant(s)?;
            runs.entry(s.name.clone()).or_default().push(figures);
        }
    }
    let load_after = loadavg();
    let mut medians: BTreeMap<String, Figures> = runs
        .iter()
        .map(|(k, v)| (k.clone(), runner::median(v)))
        .collect();
    for (name, list) in &runs {
        let total: f64 = list.iter().filter_map(|f| f.get("crashes")).sum();
        medians
            .entry(name.clone())
            .or_default()
            .insert("crashes_total".into(), total);
    }

    let report = Report {
        m: &medians,
        quick,
        repeat,
        sizes,
        load_before,
        load_after,
        command,
    };
    fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let md = report.markdown();
    write(&out.join("results.md"), &md)?;
    write(&out.join("results.svg"), &report.svg())?;
    write(&out.join("raw.txt"), &runner::raw(&runs))?;
    println!("{md}");
    println!("wrote {}", out.join("results.md").display());
    if readme {
        write_readme()?;
    }
    Ok(())
}

const RESULTS: &str = "bench/results/results.md";

fn read(path: &str) -> Result<String> {
    fs::read_to_string(root().join(path)).map_err(|e| format!("cannot read {path}: {e}"))
}

/// `cargo xtask bench --readme`: README.md's performance table from
/// `bench/results/results.md`'s summary.
fn write_readme() -> Result {
    let results = read(RESULTS)?;
    let readme = report::with_summary(&read("README.md")?, report::summary(&results)?)?;
    write(&root().join("README.md"), &readme)?;
    println!("README.md: performance table from {RESULTS}");
    Ok(())
}

/// For `cargo xtask drift`: fails unless README.md's performance table is
/// the summary of `bench/results/results.md`.
pub fn check_readme() -> Result {
    report::check_summary(&read("README.md")?, &read(RESULTS)?)
}

fn write(path: &Path, text: &str) -> Result {
    fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}
