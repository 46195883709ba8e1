//! The rows of the results table, as data: each names the scenario and
//! figure it shows, how it is written, the rows of the same run it is
//! compared with and its target. `report.rs` turns them into text; nothing
//! here computes a figure.

use super::runner::Figures;
use super::scenarios::{Sizes, NOWAIT, OTHER_LUAS};

/// A figure of the run: `field` of scenario `scenario`'s median.
#[derive(Clone)]
pub(super) struct Key {
    pub(super) scenario: String,
    pub(super) field: &'static str,
}

pub(super) fn key(scenario: &str, field: &'static str) -> Key {
    Key {
        scenario: scenario.into(),
        field,
    }
}

/// Throughput, the figure of most rows.
pub(super) fn items(scenario: &str) -> Key {
    key(scenario, "items_per_s")
}

/// How a row's figure is written, from its scenario's figures (a missing
/// one is NaN, written `n/a`).
pub(super) type Show = fn(&dyn Fn(&str) -> f64) -> String;

/// One bound of a target: the row's figure (or `field` of the row's
/// scenario), divided by `per` when there is one, against `bound`.
pub(super) struct Check {
    pub(super) field: Option<&'static str>,
    pub(super) per: Option<Key>,
    pub(super) at_least: bool,
    pub(super) bound: f64,
}

pub(super) struct Target {
    /// As the table writes it, e.g. `≥ 0.7× internal`.
    pub(super) text: String,
    /// All must hold.
    pub(super) checks: Vec<Check>,
}

/// One row of the table.
pub(super) struct Spec {
    pub(super) what: String,
    pub(super) value: Key,
    pub(super) show: Show,
    /// `value / base` written as `0.62× name`.
    pub(super) vs: Vec<(Key, String)>,
    pub(super) target: Option<Target>,
    /// In the README's table (every row with a target is).
    pub(super) readme: bool,
}

impl Spec {
    fn new(what: impl Into<String>, value: Key, show: Show) -> Self {
        Spec {
            what: what.into(),
            value,
            show,
            vs: Vec::new(),
            target: None,
            readme: false,
        }
    }

    fn vs(mut self, base: Key, name: impl Into<String>) -> Self {
        self.vs.push((base, name.into()));
        self
    }

    /// Target: `value / base ≥ r` (`at_least`) or `≤ r`, written
    /// `≥ r× name` (with `prefix`, e.g. `p50 `).
    fn ratio_target(mut self, prefix: &str, base: Key, r: f64, at_least: bool, name: &str) -> Self {
        let op = if at_least { "≥" } else { "≤" };
        self.target = Some(Target {
            text: format!("{prefix}{op} {r}× {name}"),
            checks: vec![Check {
                field: None,
                per: Some(base),
                at_least,
                bound: r,
            }],
        });
        self
    }

    /// `≥ r×` the row `base` (also shown as a ratio).
    fn at_least(self, base: Key, r: f64, name: &str) -> Self {
        self.vs(base.clone(), name)
            .ratio_target("", base, r, true, name)
    }

    /// A target of absolute bounds, written `text`.
    fn bounds(mut self, text: &str, checks: Vec<Check>) -> Self {
        self.target = Some(Target {
            text: text.into(),
            checks,
        });
        self
    }

    fn readme(mut self) -> Self {
        self.readme = true;
        self
    }
}

fn check(field: Option<&'static str>, at_least: bool, bound: f64) -> Check {
    Check {
        field,
        per: None,
        at_least,
        bound,
    }
}

/// A line of the table: a section heading or a row.
pub(super) enum Line {
    Section(String),
    Row(Spec),
}

const MIB: f64 = 1024.0 * 1024.0;
const PAYLOAD_BYTES: f64 = 8.0;

fn rate(f: &dyn Fn(&str) -> f64) -> String {
    format!("{:.2} M items/s", f("items_per_s") / 1e6)
}

fn rate_depth(f: &dyn Fn(&str) -> f64) -> String {
    format!(
        "{}; peak depth {} of capacity {}; {} refused as full, retried",
        rate(f),
        f("peak_depth"),
        f("capacity"),
        f("full_retries")
    )
}

fn latency(f: &dyn Fn(&str) -> f64) -> String {
    format!("p50 {:.1} µs, p99 {:.1} µs", f("p50_us"), f("p99_us"))
}

fn waits(f: &dyn Fn(&str) -> f64) -> String {
    format!(
        "p50 {:.1} µs, p99 {:.1} µs, max {:.0} µs",
        f("wait_p50_us"),
        f("wait_p99_us"),
        f("wait_max_us")
    )
}

fn wakeups(f: &dyn Fn(&str) -> f64) -> String {
    format!("{:.3}", f("wakeups_per_1000"))
}

fn bytes(f: &dyn Fn(&str) -> f64) -> String {
    let b = f("bytes_per_item");
    format!(
        "{b:.1} B ({:.1} B beyond the 8 B payload)",
        b - PAYLOAD_BYTES
    )
}

fn rss(f: &dyn Fn(&str) -> f64) -> String {
    format!(
        "{:.1} MiB (idle {:.1} MiB)",
        f("peak_over_idle") / MIB,
        f("idle_rss") / MIB
    )
}

fn luv_async(f: &dyn Fn(&str) -> f64) -> String {
    let (sends, delivered) = (f("items"), f("delivered"));
    format!(
        "{delivered} of {sends} delivered ({} lost to coalescing); {} crashed run(s) retried",
        sends - delivered,
        f("crashes_total").max(0.0)
    )
}

/// A throughput row: `what`, from scenario `sc`.
fn rate_of(what: impl Into<String>, sc: &str) -> Spec {
    Spec::new(what, items(sc), rate)
}

/// A round trip row (p50, p99), compared by p50.
fn latency_of(what: impl Into<String>, sc: &str) -> Spec {
    Spec::new(what, key(sc, "p50_us"), latency)
}

/// The p50 of a round trip scenario.
fn p50(sc: &str) -> Key {
    key(sc, "p50_us")
}

/// The `dispatch()` rows of public source `src` (scenario prefix `p`):
/// 1 producer against the internal path (target `≥ r×`) and the
/// `lua_pcall` limit, then 2 producers against the internal path's 2.
fn dispatch_rows(t: &mut Vec<Line>, p: &str, src: &str, one: &str, two: &str) {
    let r = if src.starts_with("rust") { 0.5 } else { 0.7 };
    t.push(Line::Row(
        rate_of(one, &format!("{p}{src}_dispatch_1"))
            .at_least(items(&format!("{p}dispatch_1")), r, "internal")
            .vs(items(&format!("{p}limit_pcall")), "lua_pcall limit"),
    ));
    t.push(Line::Row(
        rate_of(two, &format!("{p}{src}_dispatch_2"))
            .vs(items(&format!("{p}dispatch_2")), "internal, 2 producers"),
    ));
}

/// The round trip row of public source `src` (prefix `p`), against the
/// internal round trip of the same interpreter.
fn roundtrip_row(t: &mut Vec<Line>, p: &str, src: &str, what: &str) {
    let internal = p50(&format!("{p}roundtrip_wait"));
    t.push(Line::Row(
        latency_of(
            format!("{what} round trip, Lua blocked in `wait()`"),
            &format!("{p}{src}_roundtrip_wait"),
        )
        .vs(internal.clone(), "internal p50")
        .ratio_target("p50 ", internal, 1.2, false, "internal"),
    ));
}

const POST_DISPATCH: &str = "post + `wait()` + `dispatch()`, 1 producer";
const THE_SAME_2: &str = "the same, 2 producers";

/// Every line of the table, in order (one row per line: a table).
#[rustfmt::skip]
pub(super) fn lines(z: &Sizes) -> Vec<Line> {
    let mut t = Vec::new();
    let sec = |t: &mut Vec<Line>, s: &str| t.push(Line::Section(s.into()));
    let row = |t: &mut Vec<Line>, s: Spec| t.push(Line::Row(s));
    let (limit_poll, limit_pcall, internal, work) = (items("limit_poll"), items("limit_pcall"), items("dispatch_1"), items("luv_work"));

    sec(&mut t, "Limits (no darksidesync)");
    row(&mut t, rate_of("pure Lua: the Lua side of `poll()` (count, function, fresh `args` with `n`, `unpack`, call)", "limit_poll").readme());
    row(&mut t, rate_of("C calls a Lua function per item through `lua_pcall` (callback from the registry, one integer)", "limit_pcall").readme());

    sec(&mut t, "C utility through DSS API 1v0 (`deliver`, fire-and-forget)");
    row(&mut t, rate_of("`poll()` busy loop, 1 producer thread(s)", "c1_poll_1").at_least(limit_poll.clone(), 0.7, "pure-Lua poll"));
    row(&mut t, rate_of("`poll()` busy loop, 2 producer thread(s)", "c1_poll_2").at_least(limit_poll.clone(), 0.7, "pure-Lua poll"));
    row(&mut t, rate_of(format!("`poll()` draining a pre-filled queue ({} items)", z.drain), "c1_drain").at_least(limit_poll.clone(), 0.8, "pure-Lua poll"));
    dispatch_rows(&mut t, "", "c1", "`wait()` + `dispatch()`, 1 producer", THE_SAME_2);
    row(&mut t, rate_of("fd-woken: luv loop on `fd()` (darksidesync.luv), 1 producer", "c1_luv_1").vs(internal.clone(), "internal `dispatch()`"));
    roundtrip_row(&mut t, "", "c1", "blocking `deliver` (reply)");

    sec(&mut t, "C utility through DSS API 2v0 (`post`, `call`)");
    dispatch_rows(&mut t, "", "c2", POST_DISPATCH, THE_SAME_2);
    roundtrip_row(&mut t, "", "c2", "`call`");
    sec(&mut t, "Rust library on `darksidesync-binding`, closures (`Dss::post`, `Dss::call`)");
    dispatch_rows(&mut t, "", "rust", POST_DISPATCH, THE_SAME_2);
    roundtrip_row(&mut t, "", "rust", "`call`");
    sec(&mut t, "Rust library on `darksidesync-binding`, `Dss::post_callback` and `Dss::call_callback` (darksidesync calls the Lua callback)");
    dispatch_rows(&mut t, "", "rustcb", POST_DISPATCH, THE_SAME_2);
    roundtrip_row(&mut t, "", "rustcb", "`call_callback`");
    sec(&mut t, "Rust library on `darksidesync-binding`, `LuaCallback::post` (plain values to a kept Lua function; darksidesync calls it)");
    dispatch_rows(&mut t, "", "rustfn", POST_DISPATCH, THE_SAME_2);
    sec(&mut t, "The same, four scalars per post (`(k, k / 2, true, \"tick\")`), and a table per post (`ArgTable`: `k`, `name`, `path`; the callback reads `t.k`)");
    row(&mut t, rate_of("four scalars, 1 producer", "rustfn4_dispatch_1").vs(internal.clone(), "internal").vs(items("rustfn_dispatch_1"), "one integer"));
    row(&mut t, rate_of("a table, 1 producer", "rustfnt_dispatch_1").at_least(items("rustcbt_dispatch_1"), 1.0, "`post_callback` making it"));
    row(&mut t, rate_of("the same table made by a `post_callback` closure with mlua", "rustcbt_dispatch_1").vs(internal.clone(), "internal"));

    sec(&mut t, "No-wait posts under contention (1v0 fire-and-forget `deliver`, 2v0 `post(..., 0)`): `wait()` + `dispatch()`");
    for (src, p) in NOWAIT {
        let what = if src == "c1" { "1v0 `deliver`" } else { "2v0 `post(..., 0)`" };
        row(&mut t, Spec::new(format!("{what}, {p} producer(s)"), items(&format!("{src}_dispatch_{p}")), rate_depth).vs(items(&format!("dispatch_{p}")), format!("internal, {p} producer(s)")));
    }

    for (lua, p) in OTHER_LUAS {
        let name = if lua == "jit" { "LuaJIT" } else { "Lua 5.1" };
        let sc = |s: &str| format!("{p}{s}");
        sec(&mut t, &format!("{name} (scenarios `{p}*`): the public paths against {name}'s own limits and internal path, same run"));
        row(&mut t, rate_of(format!("{name}: limit, pure-Lua `poll()` loop"), &sc("limit_poll")).readme());
        row(&mut t, rate_of(format!("{name}: limit, `lua_pcall` per item from C"), &sc("limit_pcall")).readme());
        row(&mut t, rate_of(format!("{name}: internal `dispatch()`, 1 producer"), &sc("dispatch_1")).vs(items(&sc("limit_pcall")), "lua_pcall limit").readme());
        row(&mut t, rate_of(format!("{name}: 1v0 `poll()` busy loop, 1 producer"), &sc("c1_poll_1")).at_least(items(&sc("limit_poll")), 0.7, "pure-Lua poll"));
        row(&mut t, rate_of(format!("{name}: 1v0 `poll()` busy loop, 2 producers"), &sc("c1_poll_2")).vs(items(&sc("limit_poll")), "pure-Lua poll"));
        row(&mut t, rate_of(format!("{name}: 1v0 `poll()` draining a pre-filled queue ({} items)", z.drain), &sc("c1_drain")).at_least(items(&sc("limit_poll")), 0.8, "pure-Lua poll"));
        for (src, what) in [("c1", "1v0 `deliver`"), ("c2", "2v0 `post`"), ("rust", "binding closures (`Dss::post`)"), ("rustfn", "binding `LuaCallback::post`")] {
            dispatch_rows(&mut t, p, src, &format!("{name}: {what} + `dispatch()`, 1 producer"), &format!("{name}: {what} + `dispatch()`, 2 producers"));
        }
        row(&mut t, latency_of(format!("{name}: internal round trip, Lua blocked in `wait()`"), &sc("roundtrip_wait")).readme());
        for (src, what) in [("c1", "1v0 blocking `deliver`"), ("c2", "2v0 `call`"), ("rust", "binding `call`")] {
            roundtrip_row(&mut t, p, src, &format!("{name}: {what}"));
        }
    }

    sec(&mut t, "8 states in one process, each fed by its own 2v0 producer (C host)");
    row(&mut t, rate_of("8 states, 8 producers, aggregate", "c2_states_8").at_least(items("c2_states_1"), 0.9, "1 state"));
    row(&mut t, rate_of("1 state, 1 producer (same program)", "c2_states_1").vs(internal.clone(), "internal `dispatch()`"));

    sec(&mut t, "Internal path (`Item::call` through darksidesync.benchlib)");
    row(&mut t, rate_of("`dispatch()` throughput, 1 producer(s)", "dispatch_1").vs(work.clone(), "luv new_work").vs(limit_pcall.clone(), "lua_pcall limit")
        .bounds("≥ 8 M/s and ≥ 30× luv new_work", vec![check(None, true, 8e6), Check { field: None, per: Some(work.clone()), at_least: true, bound: 30.0 }]));
    row(&mut t, rate_of("`dispatch()` throughput, 2 producer(s)", "dispatch_2").vs(work.clone(), "luv new_work"));
    row(&mut t, rate_of("`dispatch()` throughput, 4 producer(s)", "dispatch_4").vs(work.clone(), "luv new_work"));
    row(&mut t, rate_of("`poll()` throughput, 1 producer(s)", "poll_1").vs(limit_poll.clone(), "pure-Lua poll").bounds("≥ 2.5 M/s", vec![check(None, true, 2.5e6)]));
    row(&mut t, rate_of("`poll()` throughput, 2 producer(s)", "poll_2").vs(limit_poll.clone(), "pure-Lua poll"));
    row(&mut t, rate_of("`poll()` throughput, 4 producer(s)", "poll_4").vs(limit_poll.clone(), "pure-Lua poll"));
    row(&mut t, rate_of(format!("`poll()` draining a pre-filled queue ({} items)", z.drain), "drain_internal").vs(limit_poll.clone(), "pure-Lua poll"));
    row(&mut t, latency_of("blocking call round trip, Lua blocked in `wait()`", "roundtrip_wait")
        .bounds("p50 ≤ 10 µs, p99 ≤ 50 µs", vec![check(None, false, 10.0), check(Some("p99_us"), false, 50.0)]));
    for (mode, what) in [("luv", "a luv loop on `fd()` (darksidesync.luv)"), ("cqueues", "a cqueues loop on `fd()` (darksidesync.cqueues)")] {
        row(&mut t, latency_of(format!("blocking call round trip, Lua in {what}"), &format!("roundtrip_{mode}"))
            .vs(p50("roundtrip_wait"), "`wait()` p50").ratio_target("p50 ", p50("roundtrip_wait"), 1.2, false, "`wait()`"));
    }
    row(&mut t, latency_of("the same in a cqueues loop calling `dispatch()` itself (no coroutine per item: the loop's own cost)", "roundtrip_cqueues_inline").vs(p50("roundtrip_wait"), "`wait()` p50"));
    for p in [1, 2, 4] {
        row(&mut t, Spec::new(format!("wake-ups per 1000 items, saturated, {p} producer(s)"), key(&format!("dispatch_{p}"), "wakeups_per_1000"), wakeups).bounds("≤ 10", vec![check(None, false, 10.0)]));
    }
    row(&mut t, Spec::new(format!("resident bytes per queued item ({} queued)", z.queued), key("queued", "bytes_per_item"), bytes)
        .bounds("≤ 64 B beyond payload", vec![check(None, false, 64.0 + PAYLOAD_BYTES)]));
    row(&mut t, Spec::new(format!("peak RSS over idle, {} items through capacity {}", z.stream, z.stream_capacity), key("stream", "peak_over_idle"), rss)
        .bounds("≤ 64 MiB", vec![check(None, false, 64.0 * MIB)]));
    row(&mut t, rate_of("8 states, one producer, aggregate (Rust host)", "states_8").vs(items("states_1"), "1 state").ratio_target("", items("states_1"), 0.7, true, "1 state"));
    row(&mut t, rate_of("1 state, one producer (same binary)", "states_1"));

    sec(&mut t, "Where the time goes: `dispatch()` with timing of queue waits (`timing(true)`), 1 producer");
    for (src, what) in [("internal", "internal path"), ("c2", "2v0 `post`")] {
        let (off, on) = (format!("timing_{src}_off"), format!("timing_{src}_on"));
        row(&mut t, rate_of(format!("{what}, timing off"), &off).vs(work.clone(), "luv new_work"));
        row(&mut t, rate_of(format!("{what}, timing on (cost: the ratio to off)"), &on).vs(items(&off), "timing off").vs(work.clone(), "luv new_work")
            .ratio_target("", items(&off), 0.95, true, "off").with_target_text("≥ 0.95× off to be on by default (else opt-in, as it is)"));
        row(&mut t, Spec::new(format!("{what}, the waits timing saw (saturated queue)"), key(&on, "wait_p50_us"), waits));
    }

    sec(&mut t, "Lua states on their own threads (`darksidesync.states`)");
    row(&mut t, rate_of(format!("a child state posts {} integers to the main state (all delivered, checked)", z.luv_async), "states_post").vs(key("luv_async", "delivered_per_s"), "luv async:send delivered"));
    row(&mut t, latency_of("call round trip, main state to a child in `run()`", "states_call"));

    sec(&mut t, "Peers");
    row(&mut t, rate_of("luv `uv.new_work` (work in, result to a Lua callback)", "luv_work"));
    row(&mut t, Spec::new("luv `async:send` from a uv thread", key("luv_async", "delivered"), luv_async));
    t
}

impl Spec {
    fn with_target_text(mut self, text: &str) -> Self {
        if let Some(t) = &mut self.target {
            t.text = text.into();
        }
        self
    }
}

/// `f`'s figure of `key`, NaN when missing.
pub(super) fn figure(m: &std::collections::BTreeMap<String, Figures>, key: &Key) -> f64 {
    m.get(&key.scenario)
        .and_then(|f| f.get(key.field))
        .copied()
        .unwrap_or(f64::NAN)
}
