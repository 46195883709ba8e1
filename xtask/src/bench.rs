//! `cargo xtask bench [--quick] [--repeat N] [--out DIR]`
//!
//! Runs every benchmark scenario for darksidesync and for its peers (luv's
//! `uv.new_work` and `async:send`) in one run, under the same load, and
//! writes `results.md` (a table with the ratios and targets) and
//! `results.svg` (a chart drawn here, no plotting tool needed) to
//! `bench/results/` (or `--out DIR`).
//!
//! * The Lua scenarios are `bench/lua/scenarios.lua`, run by `lua5.4`
//!   against the module built in release mode (`target/module/5.4`), one
//!   process per run so memory figures start from a clean heap.
//! * "Many states" is the Rust example `crates/lua/examples/many_states.rs`
//!   (8 vendored Lua 5.4 states on 8 threads, one producer), run beside the
//!   same binary with one state.
//! * Every scenario is repeated `--repeat` times (default 3), interleaved
//!   (all scenarios once, then again), and the median of each figure is
//!   reported, so a burst of load from elsewhere hits all of them alike.
//!
//! `--quick` is the smoke run `cargo xtask test` does: a few thousand items
//! per scenario, the module built by `lua-specs` (dev profile), results in
//! `target/bench-smoke/`. It checks that the harness works, not speed.
//!
//! `cargo xtask bench --criterion [args]` runs the core's criterion
//! benchmarks (`crates/core/benches/core.rs`) instead.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cmd::{cargo, run, Result};
use crate::module;
use crate::root;

/// One scenario run: a name, the program and its arguments.
struct Scenario {
    name: String,
    program: Program,
    args: Vec<String>,
}

enum Program {
    /// `lua5.4 bench/lua/scenarios.lua <args>`.
    Lua,
    /// The `many_states` example.
    ManyStates,
}

/// Sizes of one run.
struct Sizes {
    items: u64,
    poll_items: u64,
    calls: u64,
    queued: u64,
    stream: u64,
    stream_capacity: u64,
    states_items: u64,
    luv_work: u64,
    luv_async: u64,
}

/// How many crashed runs of a peer are retried (each costs well under a
/// second; a crash is luv's own race, counted in the results).
const PEER_RETRIES: f64 = 20.0;

const FULL: Sizes = Sizes {
    items: 4_000_000,
    poll_items: 2_000_000,
    calls: 5_000,
    queued: 1_000_000,
    stream: 10_000_000,
    stream_capacity: 65_536,
    states_items: 4_000_000,
    luv_work: 200_000,
    luv_async: 100_000,
};

const QUICK: Sizes = Sizes {
    items: 4_000,
    poll_items: 4_000,
    calls: 100,
    queued: 4_000,
    stream: 20_000,
    stream_capacity: 1_024,
    states_items: 4_000,
    luv_work: 2_000,
    luv_async: 2_000,
};

/// The gap between two blocking calls, so the Lua side is really asleep
/// (in `wait()` or in luv's `epoll_wait`) when each call arrives.
const CALL_GAP_US: u64 = 50;

type Figures = BTreeMap<String, f64>;

pub fn main(args: &[String]) -> Result {
    if args.first().map(String::as_str) == Some("--criterion") {
        return run(cargo()
            .args(["bench", "-p", "darksidesync-core", "--bench", "core", "--"])
            .args(&args[1..]));
    }
    let (mut quick, mut repeat, mut out) = (false, None, None);
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
            other => {
                return Err(format!(
                    "bench: unexpected argument {other:?} (see cargo xtask help)"
                ))
            }
        }
    }
    let repeat = repeat.unwrap_or(if quick { 1 } else { 3 }).max(1);
    let out = out.unwrap_or_else(|| {
        root().join(if quick {
            "target/bench-smoke"
        } else {
            "bench/results"
        })
    });
    let sizes = if quick { &QUICK } else { &FULL };

    // Build what the scenarios need.
    let lua = module::version("5.4")?;
    let lib = if quick {
        // The module `lua-specs` just built: no second build in the test run.
        let base = root().join("target/lua-modules/5.4");
        let so = module::build(lua, &base.join("cargo"), "dev")?;
        module::install(&so, &base.join("lib"))?;
        base.join("lib")
    } else {
        let so = module::build(lua, &root().join("target/module/5.4"), "release")?;
        let lib = root().join("target/bench/lib");
        module::install(&so, &lib)?;
        lib
    };
    run(cargo().args([
        "build",
        "--release",
        "-p",
        "darksidesync-lua",
        "--example",
        "many_states",
    ]))?;
    let env = Env {
        lib,
        interpreter: lua.interpreter,
    };
    env.check_peers()?;

    let scenarios = scenarios(sizes);
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
    let mut medians: BTreeMap<String, Figures> =
        runs.iter().map(|(k, v)| (k.clone(), median(v))).collect();
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
    };
    fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let md = report.markdown();
    write(&out.join("results.md"), &md)?;
    write(&out.join("results.svg"), &report.svg())?;
    write(&out.join("raw.txt"), &raw(&runs))?;
    println!("{md}");
    println!("wrote {}", out.join("results.md").display());
    Ok(())
}

fn write(path: &Path, text: &str) -> Result {
    fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn scenarios(z: &Sizes) -> Vec<Scenario> {
    let lua = |name: &str, args: &[String]| Scenario {
        name: name.into(),
        program: Program::Lua,
        args: args.to_vec(),
    };
    let s = |v: u64| v.to_string();
    let mut list = Vec::new();
    for p in [1u64, 2, 4] {
        list.push(lua(
            &format!("dispatch_{p}"),
            &["throughput".into(), "dispatch".into(), s(p), s(z.items / p)],
        ));
        list.push(lua(
            &format!("poll_{p}"),
            &[
                "throughput".into(),
                "poll".into(),
                s(p),
                s(z.poll_items / p),
            ],
        ));
    }
    list.push(lua(
        "roundtrip_wait",
        &[
            "roundtrip".into(),
            "wait".into(),
            s(z.calls),
            s(CALL_GAP_US),
        ],
    ));
    list.push(lua(
        "roundtrip_luv",
        &["roundtrip".into(), "luv".into(), s(z.calls), s(CALL_GAP_US)],
    ));
    list.push(lua("queued", &["queued".into(), s(z.queued)]));
    list.push(lua(
        "stream",
        &["stream".into(), s(z.stream), s(z.stream_capacity)],
    ));
    for states in [1u64, 8] {
        list.push(Scenario {
            name: format!("states_{states}"),
            program: Program::ManyStates,
            args: vec![s(states), s(z.states_items)],
        });
    }
    list.push(lua("luv_work", &["luv_work".into(), s(z.luv_work)]));
    list.push(lua("luv_async", &["luv_async".into(), s(z.luv_async)]));
    list
}

struct Env {
    lib: PathBuf,
    interpreter: &'static str,
}

impl Env {
    fn lua(&self) -> Command {
        let mut cmd = Command::new(self.interpreter);
        cmd.env(
            "LUA_PATH",
            format!("{0}/?.lua;{0}/?/init.lua;;", self.lib.display()),
        )
        .env("LUA_CPATH", format!("{}/?.so;;", self.lib.display()));
        for v in ["LUA_PATH_5_4", "LUA_CPATH_5_4", "LUA_INIT", "LUA_INIT_5_4"] {
            cmd.env_remove(v);
        }
        cmd
    }

    /// The peers come from Debian's lua-luv; without it the run fails
    /// rather than reporting figures without their peers.
    fn check_peers(&self) -> Result {
        let ok = self
            .lua()
            .args(["-e", "require 'luv'"])
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            Ok(())
        } else {
            Err(format!(
                "{} cannot require luv (Debian package lua-luv; `cargo xtask deps`)",
                self.interpreter
            ))
        }
    }

    /// Runs a scenario; a peer's run that crashes (luv's `async:send`
    /// segfaults now and then under load, its own race) is retried up to
    /// `PEER_RETRIES` times and the crashes are reported as the figure
    /// `crashes`, so a flaky peer neither hides nor fails our own figures.
    fn run_peer_tolerant(&self, s: &Scenario) -> Result<Figures> {
        if !s.name.starts_with("luv_") {
            return self.run(s);
        }
        let mut crashes = 0.0;
        loop {
            match self.run(s) {
                Ok(mut f) => {
                    f.insert("crashes".into(), crashes);
                    return Ok(f);
                }
                Err(e) if crashes < PEER_RETRIES => {
                    eprintln!(
                        "bench: peer run crashed, retrying: {}",
                        e.lines().next().unwrap_or("")
                    );
                    crashes += 1.0;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn run(&self, s: &Scenario) -> Result<Figures> {
        let mut cmd = match s.program {
            Program::Lua => {
                let mut c = self.lua();
                c.arg(root().join("bench/lua/scenarios.lua"));
                c
            }
            Program::ManyStates => Command::new(root().join("target/release/examples/many_states")),
        };
        cmd.args(&s.args).current_dir(root());
        let out = cmd
            .output()
            .map_err(|e| format!("cannot run scenario {}: {e}", s.name))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(format!(
                "scenario {} failed ({}):\n{stdout}{}",
                s.name,
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix("RESULT "))
            .ok_or_else(|| format!("scenario {} printed no RESULT line:\n{stdout}", s.name))?;
        Ok(line
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .filter_map(|(k, v)| Some((k.to_string(), v.parse::<f64>().ok()?)))
            .collect())
    }
}

fn median(runs: &[Figures]) -> Figures {
    let mut out = Figures::new();
    for key in runs[0].keys() {
        let mut v: Vec<f64> = runs.iter().filter_map(|r| r.get(key).copied()).collect();
        v.sort_by(|a, b| a.total_cmp(b));
        out.insert(key.clone(), v[v.len() / 2]);
    }
    out
}

fn raw(runs: &BTreeMap<String, Vec<Figures>>) -> String {
    let mut s = String::new();
    for (name, list) in runs {
        for (i, f) in list.iter().enumerate() {
            let kv: Vec<String> = f.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let _ = writeln!(s, "{name} #{} {}", i + 1, kv.join(" "));
        }
    }
    s
}

fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get())
}

fn git_rev() -> String {
    Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(root())
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

struct Report<'a> {
    m: &'a BTreeMap<String, Figures>,
    quick: bool,
    repeat: usize,
    sizes: &'a Sizes,
    load_before: String,
    load_after: String,
}

/// One row of the table.
struct Row {
    what: String,
    value: String,
    peer: String,
    target: String,
    met: Option<bool>,
}

const MIB: f64 = 1024.0 * 1024.0;
const PAYLOAD_BYTES: f64 = 8.0;

impl Report<'_> {
    fn get(&self, scenario: &str, key: &str) -> f64 {
        self.m
            .get(scenario)
            .and_then(|f| f.get(key))
            .copied()
            .unwrap_or(f64::NAN)
    }

    fn rows(&self) -> Vec<Row> {
        let mut rows = Vec::new();
        let mut row =
            |what: String, value: String, peer: String, target: &str, met: Option<bool>| {
                rows.push(Row {
                    what,
                    value,
                    peer,
                    target: target.into(),
                    met,
                })
            };
        let work = self.get("luv_work", "items_per_s");
        for p in [1, 2, 4] {
            let v = self.get(&format!("dispatch_{p}"), "items_per_s");
            let (target, met) = if p == 1 {
                (
                    "≥ 8 M/s and ≥ 30× luv new_work",
                    Some(v >= 8e6 && v / work >= 30.0),
                )
            } else {
                ("", None)
            };
            row(
                format!("`dispatch()` throughput, {p} producer(s)"),
                mps(v),
                ratio(v, work, "luv new_work"),
                target,
                met,
            );
        }
        for p in [1, 2, 4] {
            let v = self.get(&format!("poll_{p}"), "items_per_s");
            let (target, met) = if p == 1 {
                ("≥ 2.5 M/s", Some(v >= 2.5e6))
            } else {
                ("", None)
            };
            row(
                format!("`poll()` throughput, {p} producer(s)"),
                mps(v),
                ratio(v, work, "luv new_work"),
                target,
                met,
            );
        }
        for (mode, label) in [
            ("wait", "blocked in `wait()`"),
            ("luv", "luv loop polling `fd()`"),
        ] {
            let p50 = self.get(&format!("roundtrip_{mode}"), "p50_us");
            let p99 = self.get(&format!("roundtrip_{mode}"), "p99_us");
            row(
                format!("blocking call round trip, Lua {label}"),
                format!("p50 {p50:.1} µs, p99 {p99:.1} µs"),
                String::new(),
                "p50 ≤ 10 µs, p99 ≤ 50 µs",
                Some(p50 <= 10.0 && p99 <= 50.0),
            );
        }
        for p in [1, 2, 4] {
            let w = self.get(&format!("dispatch_{p}"), "wakeups_per_1000");
            row(
                format!("wake-ups per 1000 items, saturated, {p} producer(s)"),
                format!("{w:.3}"),
                String::new(),
                "≤ 10",
                Some(w <= 10.0),
            );
        }
        let per_item = self.get("queued", "bytes_per_item");
        row(
            format!(
                "resident bytes per queued item ({} queued)",
                self.get("queued", "items")
            ),
            format!(
                "{per_item:.1} B ({:.1} B beyond the 8 B payload)",
                per_item - PAYLOAD_BYTES
            ),
            String::new(),
            "≤ 64 B beyond payload",
            Some(per_item - PAYLOAD_BYTES <= 64.0),
        );
        let over = self.get("stream", "peak_over_idle");
        row(
            format!(
                "peak RSS over idle, {} items through capacity {}",
                self.sizes.stream, self.sizes.stream_capacity
            ),
            format!(
                "{:.1} MiB (idle {:.1} MiB)",
                over / MIB,
                self.get("stream", "idle_rss") / MIB
            ),
            String::new(),
            "≤ 64 MiB",
            Some(over <= 64.0 * MIB),
        );
        let one = self.get("states_1", "items_per_s");
        let eight = self.get("states_8", "items_per_s");
        row(
            "8 states, one producer, aggregate".into(),
            mps(eight),
            ratio(eight, one, "1 state"),
            "≥ 0.70× 1 state",
            Some(eight / one >= 0.7),
        );
        row(
            "1 state, one producer (same binary)".into(),
            mps(one),
            String::new(),
            "",
            None,
        );
        row(
            "peer: luv `uv.new_work` (work in, result to a Lua callback)".into(),
            mps(work),
            String::new(),
            "",
            None,
        );
        let sends = self.get("luv_async", "items");
        let delivered = self.get("luv_async", "delivered");
        row(
            "peer: luv `async:send` from a uv thread".into(),
            format!(
                "{delivered} of {sends} delivered ({} lost to coalescing); {} crashed run(s) retried",
                sends - delivered,
                self.m.get("luv_async").and_then(|f| f.get("crashes_total")).copied().unwrap_or(0.0)
            ),
            String::new(),
            "",
            None,
        );
        rows
    }

    fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# darksidesync benchmark results\n");
        if self.quick {
            let _ = writeln!(
                s,
                "**Smoke run (`--quick`): sizes too small for the figures to mean anything.**\n"
            );
        }
        let _ = writeln!(
            s,
            "`cargo xtask bench` at `{}`; Lua 5.4 (Debian `lua5.4`), luv from Debian `lua-luv`; {} cores; \
             median of {} interleaved runs. Load average before: `{}`, after: `{}`.\n",
            git_rev(),
            cores(),
            self.repeat,
            self.load_before,
            self.load_after
        );
        let _ = writeln!(
            s,
            "| scenario | darksidesync | vs peer (same run) | target | met |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|");
        for r in self.rows() {
            let met = match r.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "",
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} |",
                r.what, r.value, r.peer, r.target, met
            );
        }
        let _ = writeln!(
            s,
            "\nRaw figures of every run: `raw.txt`. Chart: `results.svg`."
        );
        s
    }

    fn svg(&self) -> String {
        let bars: Vec<(String, f64, &str)> = vec![
            (
                "dispatch(), 1 producer".into(),
                self.get("dispatch_1", "items_per_s"),
                "#2b6cb0",
            ),
            (
                "dispatch(), 2 producers".into(),
                self.get("dispatch_2", "items_per_s"),
                "#2b6cb0",
            ),
            (
                "dispatch(), 4 producers".into(),
                self.get("dispatch_4", "items_per_s"),
                "#2b6cb0",
            ),
            (
                "poll(), 1 producer".into(),
                self.get("poll_1", "items_per_s"),
                "#4299e1",
            ),
            (
                "poll(), 2 producers".into(),
                self.get("poll_2", "items_per_s"),
                "#4299e1",
            ),
            (
                "poll(), 4 producers".into(),
                self.get("poll_4", "items_per_s"),
                "#4299e1",
            ),
            (
                "1 state (Rust host)".into(),
                self.get("states_1", "items_per_s"),
                "#38a169",
            ),
            (
                "8 states, aggregate".into(),
                self.get("states_8", "items_per_s"),
                "#38a169",
            ),
            (
                "peer: luv new_work".into(),
                self.get("luv_work", "items_per_s"),
                "#dd6b20",
            ),
            (
                "peer: luv async:send (delivered)".into(),
                self.get("luv_async", "delivered_per_s"),
                "#dd6b20",
            ),
        ];
        let lat: Vec<(String, f64, &str)> = vec![
            (
                "wait(): p50".into(),
                self.get("roundtrip_wait", "p50_us"),
                "#2b6cb0",
            ),
            (
                "wait(): p99".into(),
                self.get("roundtrip_wait", "p99_us"),
                "#4299e1",
            ),
            (
                "luv + fd(): p50".into(),
                self.get("roundtrip_luv", "p50_us"),
                "#2b6cb0",
            ),
            (
                "luv + fd(): p99".into(),
                self.get("roundtrip_luv", "p99_us"),
                "#4299e1",
            ),
        ];
        let (label_w, bar_w, row_h) = (250.0, 430.0, 24.0);
        let width = label_w + bar_w + 110.0;
        let top1 = 50.0;
        let top2 = top1 + bars.len() as f64 * row_h + 60.0;
        let height = top2 + lat.len() as f64 * row_h + 30.0;
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
        let title = if self.quick {
            " (smoke run, not a measurement)"
        } else {
            ""
        };
        let _ = writeln!(
            s,
            r#"<text x="10" y="20" font-size="15" font-weight="bold">darksidesync vs peers, same run{title}</text>"#
        );
        let _ = writeln!(
            s,
            r#"<text x="10" y="{}" font-weight="bold">Throughput, million items/s (log scale)</text>"#,
            top1 - 10.0
        );
        // Log scale from 1e3 to the next power of ten above the largest bar.
        let max = bars
            .iter()
            .map(|b| b.1)
            .filter(|v| v.is_finite())
            .fold(1e4, f64::max);
        let (lo, hi) = (3.0, max.log10().ceil());
        let x = |v: f64| label_w + bar_w * ((v.max(1e3).log10() - lo) / (hi - lo));
        for e in (lo as i32)..=(hi as i32) {
            let gx = x(10f64.powi(e));
            let _ = writeln!(
                s,
                r##"<line x1="{gx}" y1="{top1}" x2="{gx}" y2="{}" stroke="#ddd"/><text x="{gx}" y="{}" text-anchor="middle" fill="#666">{}</text>"##,
                top1 + bars.len() as f64 * row_h,
                top1 + bars.len() as f64 * row_h + 14.0,
                fmt_m(10f64.powi(e))
            );
        }
        for (i, (name, v, color)) in bars.iter().enumerate() {
            let y = top1 + i as f64 * row_h;
            bar(
                &mut s,
                name,
                *v,
                &fmt_m(*v),
                label_w,
                x(*v) - label_w,
                y,
                row_h,
                color,
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="10" y="{}" font-weight="bold">Blocking call round trip, µs (linear)</text>"#,
            top2 - 10.0
        );
        let lmax = lat
            .iter()
            .map(|b| b.1)
            .filter(|v| v.is_finite())
            .fold(60.0, f64::max);
        for (i, (name, v, color)) in lat.iter().enumerate() {
            let y = top2 + i as f64 * row_h;
            bar(
                &mut s,
                name,
                *v,
                &format!("{v:.1} µs"),
                label_w,
                bar_w * v / lmax,
                y,
                row_h,
                color,
            );
        }
        // The 10 µs and 50 µs targets.
        for t in [10.0, 50.0] {
            let gx = label_w + bar_w * t / lmax;
            let _ = writeln!(
                s,
                r##"<line x1="{gx}" y1="{top2}" x2="{gx}" y2="{}" stroke="#c53030" stroke-dasharray="4 3"/><text x="{gx}" y="{}" text-anchor="middle" fill="#c53030">{t} µs</text>"##,
                top2 + lat.len() as f64 * row_h,
                top2 + lat.len() as f64 * row_h + 14.0
            );
        }
        s.push_str("</svg>\n");
        s
    }
}

#[allow(clippy::too_many_arguments)]
fn bar(
    s: &mut String,
    name: &str,
    v: f64,
    text: &str,
    x0: f64,
    w: f64,
    y: f64,
    h: f64,
    color: &str,
) {
    let w = if w.is_finite() { w.max(1.0) } else { 0.0 };
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="end">{}</text><rect x="{x0}" y="{}" width="{w}" height="{}" fill="{color}"/><text x="{}" y="{}">{}</text>"#,
        x0 - 8.0,
        y + h * 0.65,
        esc(name),
        y + 3.0,
        h - 6.0,
        x0 + w + 6.0,
        y + h * 0.65,
        if v.is_finite() {
            esc(text)
        } else {
            "n/a".into()
        }
    );
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn fmt_m(v: f64) -> String {
    if v >= 1e5 {
        format!("{:.2} M", v / 1e6)
    } else {
        format!("{:.4} M", v / 1e6)
    }
}

fn mps(v: f64) -> String {
    format!("{:.2} M items/s", v / 1e6)
}

fn ratio(v: f64, peer: f64, name: &str) -> String {
    format!("{:.1}× {name}", v / peer)
}
