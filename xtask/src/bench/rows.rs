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

/// The sections of a public source: its heading, and the text of its
/// round trip row.
fn public_source(src: &str) -> (&'static str, &'static str) {
    match src {
        "c1" => (
            "C utility through DSS API 1v0 (`deliver`, fire-and-forget)",
            "blocking `deliver` (reply)",
        ),
        "c2" => ("C utility through DSS API 2v0 (`post`, `call`)", "`call`"),
        "rust" => (
            "Rust library on `darksidesync-binding`, closures (`Dss::post`, `Dss::call`)",
            "`call`",
        ),
        "rustcb" => (
            "Rust library on `darksidesync-binding`, `Dss::post_callback` and `Dss::call_callback` (darksidesync calls the Lua callback)",
            "`call_callback`",
        ),
        _ => (
            "Rust library on `darksidesync-binding`, `LuaCallback::post` (plain values to a kept Lua function; darksidesync calls it)",
            "",
        ),
    }
}

/// The `dispatch()` target of a public source against the internal path.
fn dispatch_target(src: &str) -> f64 {
    if src.starts_with("rust") {
        0.5
    } else {
        0.7
    }
}

/// The `dispatch()` rows of public source `src` (scenario prefix `p`):
/// 1 producer against the internal path (target) and the `lua_pcall`
/// limit, then 2 producers against the internal path's 2.
fn dispatch_rows(p: &str, src: &str, what: &str) -> [Line; 2] {
    let one = format!("{p}{src}_dispatch_1");
    let r = dispatch_target(src);
    [
        Line::Row(
            Spec::new(what, items(&one), rate)
                .at_least(items(&format!("{p}dispatch_1")), r, "internal")
                .vs(items(&format!("{p}limit_pcall")), "lua_pcall limit"),
        ),
        Line::Row(
            Spec::new(
                "the same, 2 producers",
                items(&format!("{p}{src}_dispatch_2")),
                rate,
            )
            .vs(items(&format!("{p}dispatch_2")), "internal, 2 producers"),
        ),
    ]
}

/// A round trip row of public source `src` against the internal one.
fn roundtrip_row(p: &str, src: &str) -> Line {
    let (_, call) = public_source(src);
    Line::Row(
        Spec::new(
            format!("{call} round trip, Lua blocked in `wait()`"),
            key(&format!("{p}{src}_roundtrip_wait"), "p50_us"),
            latency,
        )
        .vs(key(&format!("{p}roundtrip_wait"), "p50_us"), "internal p50")
        .ratio_target(
            "p50 ",
            key(&format!("{p}roundtrip_wait"), "p50_us"),
            1.2,
            false,
            "internal",
        ),
    )
}

/// Every line of the table, in order.
pub(super) fn lines(z: &Sizes) -> Vec<Line> {
    let mut t = Vec::new();
    let section = |t: &mut Vec<Line>, s: &str| t.push(Line::Section(s.into()));
    let row = |t: &mut Vec<Line>, s: Spec| t.push(Line::Row(s));
    let poll_limit = || items("limit_poll");
    let internal = || items("dispatch_1");

    section(&mut t, "Limits (no darksidesync)");
    row(&mut t, Spec::new("pure Lua: the Lua side of `poll()` (count, function, fresh `args` with `n`, `unpack`, call)", items("limit_poll"), rate).readme());
    row(&mut t, Spec::new("C calls a Lua function per item through `lua_pcall` (callback from the registry, one integer)", items("limit_pcall"), rate).readme());

    section(&mut t, public_source("c1").0);
    for p in [1, 2] {
        row(
            &mut t,
            Spec::new(
                format!("`poll()` busy loop, {p} producer thread(s)"),
                items(&format!("c1_poll_{p}")),
                rate,
            )
            .at_least(poll_limit(), 0.7, "pure-Lua poll"),
        );
    }
    row(
        &mut t,
        Spec::new(
            format!("`poll()` draining a pre-filled queue ({} items)", z.drain),
            items("c1_drain"),
            rate,
        )
        .at_least(poll_limit(), 0.8, "pure-Lua poll"),
    );
    t.extend(dispatch_rows(
        "",
        "c1",
        "`wait()` + `dispatch()`, 1 producer",
    ));
    row(
        &mut t,
        Spec::new(
            "fd-woken: luv loop on `fd()` (darksidesync.luv), 1 producer",
            items("c1_luv_1"),
            rate,
        )
        .vs(internal(), "internal `dispatch()`"),
    );
    t.push(roundtrip_row("", "c1"));
    for src in ["c2", "rust", "rustcb"] {
        section(&mut t, public_source(src).0);
        t.extend(dispatch_rows(
            "",
            src,
            "post + `wait()` + `dispatch()`, 1 producer",
        ));
        t.push(roundtrip_row("", src));
    }
    section(&mut t, public_source("rustfn").0);
    t.extend(dispatch_rows(
        "",
        "rustfn",
        "post + `wait()` + `dispatch()`, 1 producer",
    ));

    section(&mut t, "No-wait posts under contention (1v0 fire-and-forget `deliver`, 2v0 `post(..., 0)`): `wait()` + `dispatch()`");
    for (src, p) in NOWAIT {
        let what = if src == "c1" {
            "1v0 `deliver`"
        } else {
            "2v0 `post(..., 0)`"
        };
        row(
            &mut t,
            Spec::new(
                format!("{what}, {p} producer(s)"),
                items(&format!("{src}_dispatch_{p}")),
                rate_depth,
            )
            .vs(
                items(&format!("dispatch_{p}")),
                format!("internal, {p} producer(s)"),
            ),
        );
    }

    for (lua, p) in OTHER_LUAS {
        let name = if lua == "jit" { "LuaJIT" } else { "Lua 5.1" };
        section(&mut t, &format!("{name} (scenarios `{p}*`): the public paths against {name}'s own limits and internal path, same run"));
        let pk = |s: &str| format!("{p}{s}");
        row(
            &mut t,
            Spec::new(
                format!("{name}: limit, pure-Lua `poll()` loop"),
                items(&pk("limit_poll")),
                rate,
            )
            .readme(),
        );
        row(
            &mut t,
            Spec::new(
                format!("{name}: limit, `lua_pcall` per item from C"),
                items(&pk("limit_pcall")),
                rate,
            )
            .readme(),
        );
        row(
            &mut t,
            Spec::new(
                format!("{name}: internal `dispatch()`, 1 producer"),
                items(&pk("dispatch_1")),
                rate,
            )
            .vs(items(&pk("limit_pcall")), "lua_pcall limit")
            .readme(),
        );
        row(
            &mut t,
            Spec::new(
                format!("{name}: 1v0 `poll()` busy loop, 1 producer"),
                items(&pk("c1_poll_1")),
                rate,
            )
            .at_least(items(&pk("limit_poll")), 0.7, "pure-Lua poll"),
        );
        row(
            &mut t,
            Spec::new(
                format!("{name}: 1v0 `poll()` busy loop, 2 producers"),
                items(&pk("c1_poll_2")),
                rate,
            )
            .vs(items(&pk("limit_poll")), "pure-Lua poll"),
        );
        row(
            &mut t,
            Spec::new(
                format!(
                    "{name}: 1v0 `poll()` draining a pre-filled queue ({} items)",
                    z.drain
                ),
                items(&pk("c1_drain")),
                rate,
            )
            .at_least(items(&pk("limit_poll")), 0.8, "pure-Lua poll"),
        );
        for (src, what) in [
            ("c1", "1v0 `deliver` + `dispatch()`"),
            ("c2", "2v0 `post` + `dispatch()`"),
            ("rust", "binding closures (`Dss::post`) + `dispatch()`"),
            ("rustfn", "binding `LuaCallback::post` + `dispatch()`"),
        ] {
            let [one, two] = dispatch_rows(p, src, &format!("{name}: {what}, 1 producer"));
            t.push(one);
            if let Line::Row(mut s) = two {
                s.what = format!("{name}: {what}, 2 producers");
                t.push(Line::Row(s));
            }
        }
        row(
            &mut t,
            Spec::new(
                format!("{name}: internal round trip, Lua blocked in `wait()`"),
                key(&pk("roundtrip_wait"), "p50_us"),
                latency,
            )
            .readme(),
        );
        for (src, what) in [
            ("c1", "1v0 blocking `deliver`"),
            ("c2", "2v0 `call`"),
            ("rust", "binding `call`"),
        ] {
            if let Line::Row(mut s) = roundtrip_row(p, src) {
                s.what = format!("{name}: {what} round trip, Lua blocked in `wait()`");
                t.push(Line::Row(s));
            }
        }
    }

    section(&mut t, public_source_many_states());
    row(
        &mut t,
        Spec::new(
            "8 states, 8 producers, aggregate",
            items("c2_states_8"),
            rate,
        )
        .at_least(items("c2_states_1"), 0.9, "1 state"),
    );
    row(
        &mut t,
        Spec::new(
            "1 state, 1 producer (same program)",
            items("c2_states_1"),
            rate,
        )
        .vs(internal(), "internal `dispatch()`"),
    );

    section(
        &mut t,
        "Internal path (`Item::call` through darksidesync.benchlib)",
    );
    for p in [1, 2, 4] {
        let mut s = Spec::new(
            format!("`dispatch()` throughput, {p} producer(s)"),
            items(&format!("dispatch_{p}")),
            rate,
        )
        .vs(items("luv_work"), "luv new_work");
        if p == 1 {
            s = s.vs(items("limit_pcall"), "lua_pcall limit").bounds(
                "≥ 8 M/s and ≥ 30× luv new_work",
                vec![
                    check(None, true, 8e6),
                    Check {
                        field: None,
                        per: Some(items("luv_work")),
                        at_least: true,
                        bound: 30.0,
                    },
                ],
            );
        }
        row(&mut t, s);
    }
    for p in [1, 2, 4] {
        let mut s = Spec::new(
            format!("`poll()` throughput, {p} producer(s)"),
            items(&format!("poll_{p}")),
            rate,
        )
        .vs(poll_limit(), "pure-Lua poll");
        if p == 1 {
            s = s.bounds("≥ 2.5 M/s", vec![check(None, true, 2.5e6)]);
        }
        row(&mut t, s);
    }
    row(
        &mut t,
        Spec::new(
            format!("`poll()` draining a pre-filled queue ({} items)", z.drain),
            items("drain_internal"),
            rate,
        )
        .vs(poll_limit(), "pure-Lua poll"),
    );
    let wait_p50 = || key("roundtrip_wait", "p50_us");
    row(
        &mut t,
        Spec::new(
            "blocking call round trip, Lua blocked in `wait()`",
            wait_p50(),
            latency,
        )
        .bounds(
            "p50 ≤ 10 µs, p99 ≤ 50 µs",
            vec![check(None, false, 10.0), check(Some("p99_us"), false, 50.0)],
        ),
    );
    for (mode, what) in [
        ("luv", "a luv loop on `fd()` (darksidesync.luv)"),
        ("cqueues", "a cqueues loop on `fd()` (darksidesync.cqueues)"),
    ] {
        row(
            &mut t,
            Spec::new(
                format!("blocking call round trip, Lua in {what}"),
                key(&format!("roundtrip_{mode}"), "p50_us"),
                latency,
            )
            .vs(wait_p50(), "`wait()` p50")
            .ratio_target("p50 ", wait_p50(), 1.2, false, "`wait()`"),
        );
    }
    for p in [1, 2, 4] {
        row(
            &mut t,
            Spec::new(
                format!("wake-ups per 1000 items, saturated, {p} producer(s)"),
                key(&format!("dispatch_{p}"), "wakeups_per_1000"),
                wakeups,
            )
            .bounds("≤ 10", vec![check(None, false, 10.0)]),
        );
    }
    row(
        &mut t,
        Spec::new(
            format!("resident bytes per queued item ({} queued)", z.queued),
            key("queued", "bytes_per_item"),
            bytes,
        )
        .bounds(
            "≤ 64 B beyond payload",
            vec![check(None, false, 64.0 + PAYLOAD_BYTES)],
        ),
    );
    row(
        &mut t,
        Spec::new(
            format!(
                "peak RSS over idle, {} items through capacity {}",
                z.stream, z.stream_capacity
            ),
            key("stream", "peak_over_idle"),
            rss,
        )
        .bounds("≤ 64 MiB", vec![check(None, false, 64.0 * MIB)]),
    );
    row(
        &mut t,
        Spec::new(
            "8 states, one producer, aggregate (Rust host)",
            items("states_8"),
            rate,
        )
        .vs(items("states_1"), "1 state")
        .ratio_target("", items("states_1"), 0.7, true, "1 state"),
    );
    row(
        &mut t,
        Spec::new(
            "1 state, one producer (same binary)",
            items("states_1"),
            rate,
        ),
    );

    section(
        &mut t,
        "Where the time goes: `dispatch()` with timing of queue waits (`timing(true)`), 1 producer",
    );
    for (src, what) in [("internal", "internal path"), ("c2", "2v0 `post`")] {
        let off = items(&format!("timing_{src}_off"));
        let on = format!("timing_{src}_on");
        row(
            &mut t,
            Spec::new(format!("{what}, timing off"), off.clone(), rate)
                .vs(items("luv_work"), "luv new_work"),
        );
        row(
            &mut t,
            Spec::new(
                format!("{what}, timing on (cost: the ratio to off)"),
                items(&on),
                rate,
            )
            .vs(off.clone(), "timing off")
            .vs(items("luv_work"), "luv new_work")
            .ratio_target("", off, 0.95, true, "off")
            .with_target_text("≥ 0.95× off to be on by default (else opt-in, as it is)"),
        );
        row(
            &mut t,
            Spec::new(
                format!("{what}, the waits timing saw (saturated queue)"),
                key(&on, "wait_p50_us"),
                waits,
            ),
        );
    }

    section(
        &mut t,
        "Lua states on their own threads (`darksidesync.states`)",
    );
    row(
        &mut t,
        Spec::new(
            format!(
                "a child state posts {} integers to the main state (all delivered, checked)",
                z.luv_async
            ),
            items("states_post"),
            rate,
        )
        .vs(
            key("luv_async", "delivered_per_s"),
            "luv async:send delivered",
        ),
    );
    row(
        &mut t,
        Spec::new(
            "call round trip, main state to a child in `run()`",
            key("states_call", "p50_us"),
            latency,
        ),
    );

    section(&mut t, "Peers");
    row(
        &mut t,
        Spec::new(
            "luv `uv.new_work` (work in, result to a Lua callback)",
            items("luv_work"),
            rate,
        ),
    );
    row(
        &mut t,
        Spec::new(
            "luv `async:send` from a uv thread",
            key("luv_async", "delivered"),
            luv_async,
        ),
    );
    t
}

fn public_source_many_states() -> &'static str {
    "8 states in one process, each fed by its own 2v0 producer (C host)"
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
