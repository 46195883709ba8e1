//! The results table (`results.md`): one row per figure, each with its
//! ratio to the row it should approach and, where there is one, its target
//! and whether this run met it. Targets are reported, never enforced:
//! speed is not asserted anywhere.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::Command;

use super::runner::Figures;
use super::scenarios::{Sizes, PUBLIC};
use crate::root;

pub(super) struct Report<'a> {
    pub(super) m: &'a BTreeMap<String, Figures>,
    pub(super) quick: bool,
    pub(super) repeat: usize,
    pub(super) sizes: &'a Sizes,
    pub(super) load_before: String,
    pub(super) load_after: String,
    /// The command line, as typed.
    pub(super) command: String,
}

/// One line of the table: a section heading or a figure.
pub(super) enum Line {
    Section(&'static str),
    Row(Row),
}

pub(super) struct Row {
    what: String,
    value: String,
    /// Ratios to the rows it should approach, e.g. `0.62× pure-Lua poll()`.
    vs: String,
    target: String,
    met: Option<bool>,
}

/// The table being built.
struct Table(Vec<Line>);

impl Table {
    fn section(&mut self, name: &'static str) {
        self.0.push(Line::Section(name));
    }

    /// A figure made from a missing value (a scenario that did not run,
    /// `--only`) reads `n/a`, as its verdict does.
    fn row(&mut self, what: String, value: String, vs: String, target: &str, met: Option<bool>) {
        let value = if value.contains("NaN") {
            "n/a".into()
        } else {
            value
        };
        let what = if what.contains("NaN") {
            what.replace("NaN", "n/a")
        } else {
            what
        };
        self.0.push(Line::Row(Row {
            what,
            value,
            vs,
            target: target.into(),
            met,
        }));
    }
}

/// The 1-producer `dispatch()` row of a path whose library posts.
const POST_DISPATCH: &str = "post + `wait()` + `dispatch()`, 1 producer";

const MIB: f64 = 1024.0 * 1024.0;
const PAYLOAD_BYTES: f64 = 8.0;

/// `value / base` with the base's name, or nothing when either is missing.
fn ratio(v: f64, base: f64, name: &str) -> String {
    if v.is_finite() && base.is_finite() && base > 0.0 {
        format!("{:.2}× {name}", v / base)
    } else {
        String::new()
    }
}

/// Whether `v / base` is at least (`at_least`) or at most `r`; `None` when
/// a figure is missing.
fn meets(v: f64, base: f64, r: f64, at_least: bool) -> Option<bool> {
    if !(v.is_finite() && base.is_finite() && base > 0.0) {
        return None;
    }
    Some(if at_least {
        v / base >= r
    } else {
        v / base <= r
    })
}

/// The non-empty ratios, joined.
fn ratios(list: &[String]) -> String {
    let known: Vec<&str> = list
        .iter()
        .map(String::as_str)
        .filter(|r| !r.is_empty())
        .collect();
    known.join("; ")
}

/// `verdict` when every figure it was computed from is known.
fn known(figures: &[f64], verdict: bool) -> Option<bool> {
    figures.iter().all(|v| v.is_finite()).then_some(verdict)
}

fn mps(v: f64) -> String {
    format!("{:.2} M items/s", v / 1e6)
}

fn latency(p50: f64, p99: f64) -> String {
    format!("p50 {p50:.1} µs, p99 {p99:.1} µs")
}

impl Report<'_> {
    pub(super) fn get(&self, scenario: &str, key: &str) -> f64 {
        self.m
            .get(scenario)
            .and_then(|f| f.get(key))
            .copied()
            .unwrap_or(f64::NAN)
    }

    fn rate(&self, scenario: &str) -> f64 {
        self.get(scenario, "items_per_s")
    }

    /// The `dispatch()` rows of a public path `src`: 1 producer (`what`),
    /// against the internal path and the `lua_pcall` limit, with the target
    /// `≥ r×` internal; then 2 producers against the internal path's
    /// (contention between producers shows here).
    fn dispatch_rows(&self, t: &mut Table, src: &str, what: &str, r: f64) {
        let internal = self.rate("dispatch_1");
        let v = self.rate(&format!("{src}_dispatch_1"));
        t.row(
            what.into(),
            mps(v),
            ratios(&[
                ratio(v, internal, "internal"),
                ratio(v, self.rate("limit_pcall"), "lua_pcall limit"),
            ]),
            &format!("≥ {r}× internal"),
            meets(v, internal, r, true),
        );
        let v = self.rate(&format!("{src}_dispatch_2"));
        let internal = self.rate("dispatch_2");
        t.row(
            "the same, 2 producers".into(),
            mps(v),
            ratio(v, internal, "internal, 2 producers"),
            "",
            None,
        );
    }

    pub(super) fn lines(&self) -> Vec<Line> {
        let mut t = Table(Vec::new());
        let limit_poll = self.rate("limit_poll");
        let limit_pcall = self.rate("limit_pcall");
        let internal = self.rate("dispatch_1");
        let internal_p50 = self.get("roundtrip_wait", "p50_us");
        let work = self.rate("luv_work");

        t.section("Limits (no darksidesync)");
        t.row(
            "pure Lua: the Lua side of `poll()` (count, function, fresh `args` with `n`, `unpack`, call)".into(),
            mps(limit_poll),
            String::new(),
            "",
            None,
        );
        t.row(
            "C calls a Lua function per item through `lua_pcall` (callback from the registry, one integer)".into(),
            mps(limit_pcall),
            String::new(),
            "",
            None,
        );

        t.section("C utility through DSS API 1v0 (`deliver`, fire-and-forget)");
        for p in [1, 2] {
            let v = self.rate(&format!("c1_poll_{p}"));
            t.row(
                format!("`poll()` busy loop, {p} producer thread(s)"),
                mps(v),
                ratio(v, limit_poll, "pure-Lua poll"),
                "≥ 0.7× pure-Lua poll",
                meets(v, limit_poll, 0.7, true),
            );
        }
        let v = self.rate("c1_drain");
        t.row(
            format!(
                "`poll()` draining a pre-filled queue ({} items)",
                self.sizes.drain
            ),
            mps(v),
            ratio(v, limit_poll, "pure-Lua poll"),
            "≥ 0.8× pure-Lua poll",
            meets(v, limit_poll, 0.8, true),
        );
        self.dispatch_rows(&mut t, "c1", "`wait()` + `dispatch()`, 1 producer", 0.7);
        let v = self.rate("c1_luv_1");
        t.row(
            "fd-woken: luv loop on `fd()` (darksidesync.luv), 1 producer".into(),
            mps(v),
            ratio(v, internal, "internal `dispatch()`"),
            "",
            None,
        );

        for src in PUBLIC {
            if src != "c1" {
                t.section(match src {
                    "c2" => "C utility through DSS API 2v0 (`post`, `call`)",
                    "rust" => "Rust library on `darksidesync-binding`, closures (`Dss::post`, `Dss::call`)",
                    _ => "Rust library on `darksidesync-binding`, `Dss::post_callback` and `Dss::call_callback` (darksidesync calls the Lua callback)",
                });
                let r = if src.starts_with("rust") { 0.5 } else { 0.7 };
                self.dispatch_rows(&mut t, src, POST_DISPATCH, r);
            }
            let sc = format!("{src}_roundtrip_wait");
            let p50 = self.get(&sc, "p50_us");
            t.row(
                format!(
                    "{} round trip, Lua blocked in `wait()`",
                    match src {
                        "c1" => "blocking `deliver` (reply)",
                        "rustcb" => "`call_callback`",
                        _ => "`call`",
                    }
                ),
                latency(p50, self.get(&sc, "p99_us")),
                ratio(p50, internal_p50, "internal p50"),
                "p50 ≤ 1.2× internal",
                meets(p50, internal_p50, 1.2, false),
            );
        }

        t.section("Rust library on `darksidesync-binding`, `LuaCallback::post` (plain values to a kept Lua function; darksidesync calls it)");
        self.dispatch_rows(&mut t, "rustfn", POST_DISPATCH, 0.5);
        t.section("The same, four scalars per post (`(k, k / 2, true, \"tick\")`)");
        self.dispatch_rows(&mut t, "rustfn4", POST_DISPATCH, 0.3);
        t.section("The same, a table per post (`ArgTable`: `k`, `name`, `path` fields; the callback reads `t.k`)");
        let table = self.rate("rustfnt_dispatch_1");
        let closure_table = self.rate("rustcbt_dispatch_1");
        t.row(
            POST_DISPATCH.into(),
            mps(table),
            ratio(table, closure_table, "`post_callback` making it"),
            "≥ 1× `post_callback` making it",
            meets(table, closure_table, 1.0, true),
        );
        t.row(
            "the same table made by a `post_callback` closure with mlua".into(),
            mps(closure_table),
            ratio(closure_table, internal, "internal"),
            "",
            None,
        );

        t.section("8 states in one process, each fed by its own 2v0 producer (C host)");
        let one = self.rate("c2_states_1");
        let eight = self.rate("c2_states_8");
        t.row(
            "8 states, 8 producers, aggregate".into(),
            mps(eight),
            ratio(eight, one, "1 state"),
            "≥ 0.9× 1 state",
            meets(eight, one, 0.9, true),
        );
        t.row(
            "1 state, 1 producer (same program)".into(),
            mps(one),
            ratio(one, internal, "internal `dispatch()`"),
            "",
            None,
        );

        t.section("Internal path (`Item::call` through darksidesync.benchlib)");
        for p in [1, 2, 4] {
            let v = self.rate(&format!("dispatch_{p}"));
            let (target, met) = if p == 1 {
                (
                    "≥ 8 M/s and ≥ 30× luv new_work",
                    known(&[v, work], v >= 8e6 && v / work >= 30.0),
                )
            } else {
                ("", None)
            };
            let mut vs = vec![ratio(v, work, "luv new_work")];
            if p == 1 {
                vs.push(ratio(v, limit_pcall, "lua_pcall limit"));
            }
            let vs = ratios(&vs);
            t.row(
                format!("`dispatch()` throughput, {p} producer(s)"),
                mps(v),
                vs,
                target,
                met,
            );
        }
        for p in [1, 2, 4] {
            let v = self.rate(&format!("poll_{p}"));
            let (target, met) = if p == 1 {
                ("≥ 2.5 M/s", known(&[v], v >= 2.5e6))
            } else {
                ("", None)
            };
            t.row(
                format!("`poll()` throughput, {p} producer(s)"),
                mps(v),
                ratio(v, limit_poll, "pure-Lua poll"),
                target,
                met,
            );
        }
        let v = self.rate("drain_internal");
        t.row(
            format!(
                "`poll()` draining a pre-filled queue ({} items)",
                self.sizes.drain
            ),
            mps(v),
            ratio(v, limit_poll, "pure-Lua poll"),
            "",
            None,
        );
        for (mode, what) in [
            ("wait", "blocked in `wait()`"),
            ("luv", "luv loop polling `fd()`"),
        ] {
            let p50 = self.get(&format!("roundtrip_{mode}"), "p50_us");
            let p99 = self.get(&format!("roundtrip_{mode}"), "p99_us");
            t.row(
                format!("blocking call round trip, Lua {what}"),
                latency(p50, p99),
                String::new(),
                "p50 ≤ 10 µs, p99 ≤ 50 µs",
                known(&[p50, p99], p50 <= 10.0 && p99 <= 50.0),
            );
        }
        for p in [1, 2, 4] {
            let w = self.get(&format!("dispatch_{p}"), "wakeups_per_1000");
            t.row(
                format!("wake-ups per 1000 items, saturated, {p} producer(s)"),
                format!("{w:.3}"),
                String::new(),
                "≤ 10",
                known(&[w], w <= 10.0),
            );
        }
        let per_item = self.get("queued", "bytes_per_item");
        t.row(
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
            known(&[per_item], per_item - PAYLOAD_BYTES <= 64.0),
        );
        let over = self.get("stream", "peak_over_idle");
        t.row(
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
            known(&[over], over <= 64.0 * MIB),
        );
        let one = self.rate("states_1");
        let eight = self.rate("states_8");
        t.row(
            "8 states, one producer, aggregate (Rust host)".into(),
            mps(eight),
            ratio(eight, one, "1 state"),
            "≥ 0.70× 1 state",
            meets(eight, one, 0.7, true),
        );
        t.row(
            "1 state, one producer (same binary)".into(),
            mps(one),
            String::new(),
            "",
            None,
        );

        t.section("Where the time goes: `dispatch()` with timing of queue waits (`timing(true)`), 1 producer");
        for (src, what) in [("internal", "internal path"), ("c2", "2v0 `post`")] {
            let off = self.rate(&format!("timing_{src}_off"));
            let sc = format!("timing_{src}_on");
            let on = self.rate(&sc);
            t.row(
                format!("{what}, timing off"),
                mps(off),
                ratio(off, work, "luv new_work"),
                "",
                None,
            );
            t.row(
                format!("{what}, timing on (cost: the ratio to off)"),
                mps(on),
                ratios(&[
                    ratio(on, off, "timing off"),
                    ratio(on, work, "luv new_work"),
                ]),
                "≥ 0.95× off to be on by default (else opt-in, as it is)",
                meets(on, off, 0.95, true),
            );
            t.row(
                format!("{what}, the waits timing saw (saturated queue)"),
                format!(
                    "{}, max {:.0} µs",
                    latency(self.get(&sc, "wait_p50_us"), self.get(&sc, "wait_p99_us")),
                    self.get(&sc, "wait_max_us")
                ),
                String::new(),
                "",
                None,
            );
        }

        t.section("Lua states on their own threads (`darksidesync.states`)");
        let posted = self.rate("states_post");
        t.row(
            format!(
                "a child state posts {} integers to the main state (all delivered, checked)",
                self.get("states_post", "items")
            ),
            mps(posted),
            ratio(
                posted,
                self.get("luv_async", "delivered_per_s"),
                "luv async:send delivered",
            ),
            "",
            None,
        );
        t.row(
            "call round trip, main state to a child in `run()`".into(),
            latency(
                self.get("states_call", "p50_us"),
                self.get("states_call", "p99_us"),
            ),
            String::new(),
            "",
            None,
        );

        t.section("Peers");
        t.row(
            "luv `uv.new_work` (work in, result to a Lua callback)".into(),
            mps(work),
            String::new(),
            "",
            None,
        );
        let sends = self.get("luv_async", "items");
        let delivered = self.get("luv_async", "delivered");
        t.row(
            "luv `async:send` from a uv thread".into(),
            format!(
                "{delivered} of {sends} delivered ({} lost to coalescing); {} crashed run(s) retried",
                sends - delivered,
                self.get("luv_async", "crashes_total").max(0.0)
            ),
            String::new(),
            "",
            None,
        );

        t.0
    }

    pub(super) fn markdown(&self) -> String {
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
            "`{}` at `{}`; Lua 5.4 (Debian `lua5.4`), luv from Debian `lua-luv`; {} cores; \
             median of {} interleaved runs. Load average before: `{}`, after: `{}`.\n",
            self.command,
            git_rev(),
            cores(),
            self.repeat,
            self.load_before,
            self.load_after
        );
        let _ = writeln!(
            s,
            "Every throughput scenario's callback counts its items and sums their integers; \
             a scenario fails the run unless each item arrived exactly once. Targets are \
             reported, not enforced.\n"
        );
        let _ = writeln!(s, "| scenario | figure | ratio (same run) | target | met |");
        let _ = writeln!(s, "|---|---|---|---|---|");
        let (mut met, mut targets) = (0, 0);
        for line in self.lines() {
            match line {
                Line::Section(name) => {
                    let _ = writeln!(s, "| **{name}** | | | | |");
                }
                Line::Row(r) => {
                    let verdict = match r.met {
                        Some(true) => "MET",
                        Some(false) => "**NOT MET**",
                        None if r.target.is_empty() => "",
                        None => "n/a",
                    };
                    if !r.target.is_empty() {
                        targets += 1;
                        met += usize::from(r.met == Some(true));
                    }
                    let _ = writeln!(
                        s,
                        "| {} | {} | {} | {} | {} |",
                        r.what, r.value, r.vs, r.target, verdict
                    );
                }
            }
        }
        let _ = writeln!(
            s,
            "\n{met} of {targets} targets met. Raw figures of every run: `raw.txt`. Chart: `results.svg`."
        );
        s
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::scenarios::QUICK;

    fn report(m: &BTreeMap<String, Figures>) -> Report<'_> {
        Report {
            m,
            quick: true,
            repeat: 1,
            sizes: &QUICK,
            load_before: String::new(),
            load_after: String::new(),
            command: "cargo xtask bench --quick".into(),
        }
    }

    fn figures(pairs: &[(&str, &str, f64)]) -> BTreeMap<String, Figures> {
        let mut m = BTreeMap::<String, Figures>::new();
        for (scenario, key, v) in pairs {
            m.entry(scenario.to_string())
                .or_default()
                .insert(key.to_string(), *v);
        }
        m
    }

    /// The markdown line whose first cell starts with `what` under the
    /// section heading `section`.
    fn line<'a>(md: &'a str, section: &str, what: &str) -> &'a str {
        md.lines()
            .skip_while(|l| !l.contains(section))
            .find(|l| l.starts_with(&format!("| {what}")))
            .unwrap_or_else(|| panic!("no row {what:?} under {section:?} in\n{md}"))
    }

    #[test]
    fn ratios_decide_met_and_not_met() {
        let m = figures(&[
            ("limit_poll", "items_per_s", 2.0e6),
            ("c1_poll_1", "items_per_s", 1.5e6), // 0.75x: met (>= 0.7)
            ("c1_poll_2", "items_per_s", 1.2e6), // 0.6x: not met
            ("dispatch_1", "items_per_s", 10.0e6),
            ("rust_dispatch_1", "items_per_s", 5.0e6), // 0.5x: met (>= 0.5)
            ("roundtrip_wait", "p50_us", 10.0),
            ("c2_roundtrip_wait", "p50_us", 12.5), // 1.25x: not met (<= 1.2)
        ]);
        let md = report(&m).markdown();
        let c1 = "DSS API 1v0";
        let l = line(&md, c1, "`poll()` busy loop, 1 producer");
        assert!(
            l.contains("0.75× pure-Lua poll") && l.ends_with("| MET |"),
            "{l}"
        );
        let l = line(&md, c1, "`poll()` busy loop, 2 producer");
        assert!(
            l.contains("0.60× pure-Lua poll") && l.ends_with("| **NOT MET** |"),
            "{l}"
        );
        let l = line(&md, "darksidesync-binding`, closures", "post + `wait()`");
        assert!(
            l.contains("0.50× internal") && l.ends_with("| MET |"),
            "{l}"
        );
        let l = line(&md, "DSS API 2v0", "`call` round trip");
        assert!(
            l.contains("1.25× internal p50") && l.ends_with("| **NOT MET** |"),
            "{l}"
        );
    }

    #[test]
    fn timing_on_is_measured_against_timing_off_of_the_same_run() {
        let m = figures(&[
            ("timing_internal_off", "items_per_s", 10.0e6),
            ("timing_internal_on", "items_per_s", 8.0e6), // 0.80x: not met
            ("timing_c2_off", "items_per_s", 4.0e6),
            ("timing_c2_on", "items_per_s", 3.88e6), // 0.97x: met
        ]);
        let md = report(&m).markdown();
        let l = line(&md, "Where the time goes", "internal path, timing on");
        assert!(
            l.contains("0.80× timing off") && l.ends_with("| **NOT MET** |"),
            "{l}"
        );
        let l = line(&md, "Where the time goes", "2v0 `post`, timing on");
        assert!(
            l.contains("0.97× timing off") && l.ends_with("| MET |"),
            "{l}"
        );
    }

    #[test]
    fn a_missing_figure_is_not_a_verdict() {
        let md = report(&BTreeMap::new()).markdown();
        let l = line(&md, "DSS API 1v0", "`poll()` draining");
        assert!(l.ends_with("| n/a |"), "{l}");
        assert!(!md.contains("NaN"), "a missing figure reads n/a: {md}");
        assert_eq!(meets(1.0, f64::NAN, 0.5, true), None);
        assert_eq!(meets(1.0, 0.0, 0.5, true), None);
        assert_eq!(ratio(f64::NAN, 1.0, "x"), "");
        // Absolute targets too: the internal dispatch row without its luv peer.
        let l = line(&md, "Internal path", "`dispatch()` throughput, 1 producer");
        assert!(l.ends_with("| n/a |"), "{l}");
    }

    #[test]
    fn every_row_reads_a_scenario_of_the_list() {
        // Every figure of every listed scenario present: no row may be
        // left without its value (a row reading a misspelt scenario would).
        let keys = [
            "items_per_s",
            "p50_us",
            "p99_us",
            "wakeups_per_1000",
            "bytes_per_item",
            "items",
            "peak_over_idle",
            "idle_rss",
            "delivered",
            "delivered_per_s",
            "crashes_total",
            "wait_p50_us",
            "wait_p99_us",
            "wait_max_us",
        ];
        let mut m = BTreeMap::<String, Figures>::new();
        let list = crate::bench::scenarios::list(&QUICK);
        for s in &list {
            let f = keys.iter().map(|k| (k.to_string(), 1.0)).collect();
            assert!(
                m.insert(s.name.clone(), f).is_none(),
                "two scenarios named {}",
                s.name
            );
        }
        let md = report(&m).markdown();
        assert!(!md.contains("n/a") && !md.contains("NaN"), "{md}");
    }
}
