//! The chart (`results.svg`), drawn here so no plotting tool is needed:
//! throughput bars on a log scale, round trips on a linear one.

use std::fmt::Write as _;

use super::report::Report;

impl Report<'_> {
    pub(super) fn svg(&self) -> String {
        let rate = |sc: &str| self.get(sc, "items_per_s");
        let (limit, internal, public, states, peer) =
            ("#718096", "#2b6cb0", "#805ad5", "#38a169", "#dd6b20");
        let bars: Vec<(String, f64, &str)> = vec![
            (
                "limit: pure-Lua poll side".into(),
                rate("limit_poll"),
                limit,
            ),
            (
                "limit: lua_pcall per item".into(),
                rate("limit_pcall"),
                limit,
            ),
            (
                "internal dispatch(), 1 producer".into(),
                rate("dispatch_1"),
                internal,
            ),
            (
                "internal dispatch(), 2 producers".into(),
                rate("dispatch_2"),
                internal,
            ),
            (
                "internal dispatch(), 4 producers".into(),
                rate("dispatch_4"),
                internal,
            ),
            (
                "internal poll(), 1 producer".into(),
                rate("poll_1"),
                internal,
            ),
            (
                "internal poll(), pre-filled".into(),
                rate("drain_internal"),
                internal,
            ),
            (
                "1v0 dispatch(), 1 producer".into(),
                rate("c1_dispatch_1"),
                public,
            ),
            ("1v0 poll(), 1 producer".into(), rate("c1_poll_1"), public),
            ("1v0 poll(), 2 producers".into(), rate("c1_poll_2"), public),
            ("1v0 poll(), pre-filled".into(), rate("c1_drain"), public),
            (
                "1v0 luv on fd(), 1 producer".into(),
                rate("c1_luv_1"),
                public,
            ),
            (
                "2v0 post + dispatch()".into(),
                rate("c2_dispatch_1"),
                public,
            ),
            (
                "binding post + dispatch()".into(),
                rate("rust_dispatch_1"),
                public,
            ),
            (
                "binding post_callback + dispatch()".into(),
                rate("rustcb_dispatch_1"),
                public,
            ),
            (
                "binding LuaCallback::post + dispatch()".into(),
                rate("rustfn_dispatch_1"),
                public,
            ),
            ("2v0: 1 state (C host)".into(), rate("c2_states_1"), states),
            (
                "2v0: 8 states, aggregate".into(),
                rate("c2_states_8"),
                states,
            ),
            (
                "internal: 1 state (Rust host)".into(),
                rate("states_1"),
                states,
            ),
            (
                "internal: 8 states, aggregate".into(),
                rate("states_8"),
                states,
            ),
            ("peer: luv new_work".into(), rate("luv_work"), peer),
            (
                "peer: luv async:send (delivered)".into(),
                self.get("luv_async", "delivered_per_s"),
                peer,
            ),
        ];
        let mut lat: Vec<(String, f64, &str)> = Vec::new();
        for (sc, name) in [
            ("roundtrip_wait", "internal, wait()"),
            ("roundtrip_luv", "internal, luv + fd()"),
            ("c1_roundtrip_wait", "1v0 deliver+reply, wait()"),
            ("c2_roundtrip_wait", "2v0 call, wait()"),
            ("rust_roundtrip_wait", "binding call, wait()"),
            ("rustcb_roundtrip_wait", "binding call_callback, wait()"),
        ] {
            lat.push((format!("{name}: p50"), self.get(sc, "p50_us"), internal));
            lat.push((format!("{name}: p99"), self.get(sc, "p99_us"), "#4299e1"));
        }
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
