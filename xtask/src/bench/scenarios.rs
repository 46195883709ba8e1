//! The scenarios of one bench run and their sizes.

use crate::module::LuaVersion;

/// One scenario run: a name, the program and its arguments.
pub(super) struct Scenario {
    pub(super) name: String,
    pub(super) program: Program,
    pub(super) args: Vec<String>,
}

pub(super) enum Program {
    /// `<interpreter> bench/lua/scenarios.lua <args>`, with that Lua's
    /// fixtures.
    Lua(LuaVersion),
    /// The Rust example `many_states` (internal path, one producer).
    ManyStatesInternal,
    /// The C host `bench/c/manystates.c` (2v0, one producer per state).
    ManyStatesC,
}

/// Sizes of one run.
pub(super) struct Sizes {
    pub(super) items: u64,
    pub(super) poll_items: u64,
    /// Items of the public paths' throughput scenarios.
    pub(super) public_items: u64,
    pub(super) drain: u64,
    pub(super) limit: u64,
    pub(super) calls: u64,
    pub(super) queued: u64,
    pub(super) stream: u64,
    pub(super) stream_capacity: u64,
    pub(super) states_items: u64,
    pub(super) luv_work: u64,
    pub(super) luv_async: u64,
}

pub(super) const FULL: Sizes = Sizes {
    items: 4_000_000,
    poll_items: 2_000_000,
    public_items: 2_000_000,
    drain: 1_000_000,
    limit: 4_000_000,
    calls: 5_000,
    queued: 1_000_000,
    stream: 10_000_000,
    stream_capacity: 65_536,
    states_items: 4_000_000,
    luv_work: 200_000,
    luv_async: 100_000,
};

pub(super) const QUICK: Sizes = Sizes {
    items: 4_000,
    poll_items: 4_000,
    public_items: 4_000,
    drain: 4_000,
    limit: 4_000,
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

/// The sources of `bench/lua/scenarios.lua` that reach the public paths:
/// the C utility through 1v0 and 2v0, the Rust library on the binding
/// (closures that call the callback; `post_callback`, where darksidesync
/// calls it).
pub(super) const PUBLIC: [&str; 4] = ["c1", "c2", "rust", "rustcb"];

/// Public sources that only post (`LuaCallback::post` of the binding: one
/// integer, four scalars, a table of three fields) and, to compare the
/// last with, `post_callback` making the same table with mlua.
pub(super) const POST_ONLY: [&str; 4] = ["rustfn", "rustfn4", "rustfnt", "rustcbt"];

/// The no-wait posts (1v0 fire-and-forget `deliver`, 2v0 `post(..., 0)`)
/// under contention: their producer counts (peak depth reported against
/// the capacity).
pub(super) const NOWAIT: [(&str, u64); 4] = [("c1", 1), ("c1", 4), ("c2nw", 1), ("c2nw", 4)];

/// The interpreters besides Lua 5.4 that run the public paths against
/// their own limits and internal path; their scenarios' names start with
/// the prefix (Lua 5.4's have none).
pub(super) const OTHER_LUAS: [(&str, &str); 2] = [("jit", "jit_"), ("5.1", "lua51_")];

/// The states of the "many states" scenarios.
pub(super) const STATES: [u64; 2] = [1, 8];

fn lua_scenario(lua: LuaVersion, name: String, args: &[&str]) -> Scenario {
    Scenario {
        name,
        program: Program::Lua(lua),
        args: args.iter().map(|a| a.to_string()).collect(),
    }
}

fn s(v: u64) -> String {
    v.to_string()
}

/// Every scenario of a run, in the order of a round: Lua 5.4's (`lua54`),
/// then the public paths on each of `others` (with their prefix).
pub(super) fn list(z: &Sizes, lua54: LuaVersion, others: &[(LuaVersion, &str)]) -> Vec<Scenario> {
    let mut list = list_54(z, lua54);
    for (lua, prefix) in others {
        list.extend(public_paths(z, *lua, prefix));
    }
    list
}

/// The public paths on `lua`, each beside that interpreter's limits and
/// internal path: `poll()` busy and draining (1v0), `dispatch()` (1v0,
/// 2v0, the binding's closures and `LuaCallback::post`), round trips.
fn public_paths(z: &Sizes, lua: LuaVersion, prefix: &str) -> Vec<Scenario> {
    let sc = |name: &str, args: &[&str]| lua_scenario(lua, format!("{prefix}{name}"), args);
    let mut list = vec![
        sc("limit_poll", &["limit_poll", &s(z.limit)]),
        sc("limit_pcall", &["limit_pcall", &s(z.limit)]),
        sc(
            "roundtrip_wait",
            &[
                "roundtrip",
                "internal",
                "wait",
                &s(z.calls),
                &s(CALL_GAP_US),
            ],
        ),
        sc("c1_drain", &["drain", "c1", &s(z.drain)]),
    ];
    for p in [1u64, 2] {
        list.push(sc(
            &format!("dispatch_{p}"),
            &["throughput", "internal", "dispatch", &s(p), &s(z.items / p)],
        ));
        list.push(sc(
            &format!("c1_poll_{p}"),
            &["throughput", "c1", "poll", &s(p), &s(z.public_items / p)],
        ));
        for src in ["c1", "c2", "rust", "rustfn"] {
            list.push(sc(
                &format!("{src}_dispatch_{p}"),
                &["throughput", src, "dispatch", &s(p), &s(z.public_items / p)],
            ));
        }
    }
    for src in ["c1", "c2", "rust"] {
        list.push(sc(
            &format!("{src}_roundtrip_wait"),
            &["roundtrip", src, "wait", &s(z.calls), &s(CALL_GAP_US)],
        ));
    }
    list
}

fn list_54(z: &Sizes, lua54: LuaVersion) -> Vec<Scenario> {
    let lua = |name: String, args: &[&str]| lua_scenario(lua54, name, args);
    let mut list = vec![
        lua("limit_poll".into(), &["limit_poll", &s(z.limit)]),
        lua("limit_pcall".into(), &["limit_pcall", &s(z.limit)]),
    ];
    // The internal path.
    for p in [1u64, 2, 4] {
        list.push(lua(
            format!("dispatch_{p}"),
            &["throughput", "internal", "dispatch", &s(p), &s(z.items / p)],
        ));
        list.push(lua(
            format!("poll_{p}"),
            &[
                "throughput",
                "internal",
                "poll",
                &s(p),
                &s(z.poll_items / p),
            ],
        ));
    }
    list.push(lua(
        "drain_internal".into(),
        &["drain", "internal", &s(z.drain)],
    ));
    for mode in ["wait", "luv", "cqueues", "cqueues_inline"] {
        list.push(lua(
            format!("roundtrip_{mode}"),
            &["roundtrip", "internal", mode, &s(z.calls), &s(CALL_GAP_US)],
        ));
    }
    // The public paths.
    for src in PUBLIC {
        for p in [1u64, 2] {
            list.push(lua(
                format!("{src}_dispatch_{p}"),
                &["throughput", src, "dispatch", &s(p), &s(z.public_items / p)],
            ));
        }
        list.push(lua(
            format!("{src}_roundtrip_wait"),
            &["roundtrip", src, "wait", &s(z.calls), &s(CALL_GAP_US)],
        ));
    }
    for src in POST_ONLY {
        for p in [1u64, 2] {
            list.push(lua(
                format!("{src}_dispatch_{p}"),
                &["throughput", src, "dispatch", &s(p), &s(z.public_items / p)],
            ));
        }
    }
    // The no-wait posts under contention (c1_dispatch_1 is above).
    for (src, p) in NOWAIT {
        let name = format!("{src}_dispatch_{p}");
        if !list.iter().any(|sc| sc.name == name) {
            list.push(lua(
                name,
                &["throughput", src, "dispatch", &s(p), &s(z.public_items / p)],
            ));
        }
    }
    for p in [1u64, 2] {
        list.push(lua(
            format!("c1_poll_{p}"),
            &["throughput", "c1", "poll", &s(p), &s(z.public_items / p)],
        ));
    }
    list.push(lua("c1_drain".into(), &["drain", "c1", &s(z.drain)]));
    list.push(lua(
        "c1_luv_1".into(),
        &["throughput", "c1", "luv", "1", &s(z.public_items)],
    ));
    // Where the time goes: `dispatch()` with timing of queue waits off and
    // on, interleaved in one run (internal path and 2v0).
    for (src, items) in [("internal", z.items), ("c2", z.public_items)] {
        for on in [false, true] {
            let mut args = vec!["throughput", src, "dispatch", "1"];
            let per = s(items);
            args.push(&per);
            if on {
                args.push("timed");
            }
            list.push(lua(
                format!("timing_{src}_{}", if on { "on" } else { "off" }),
                &args,
            ));
        }
    }
    // Memory.
    list.push(lua("queued".into(), &["queued", &s(z.queued)]));
    list.push(lua(
        "stream".into(),
        &["stream", &s(z.stream), &s(z.stream_capacity)],
    ));
    // Many states in one process.
    for states in STATES {
        list.push(Scenario {
            name: format!("states_{states}"),
            program: Program::ManyStatesInternal,
            args: vec![s(states), s(z.states_items)],
        });
        list.push(Scenario {
            name: format!("c2_states_{states}"),
            program: Program::ManyStatesC,
            args: vec![s(states), s(z.states_items / states)],
        });
    }
    // Lua states on their own threads (darksidesync.states).
    list.push(lua("states_post".into(), &["states_post", &s(z.luv_async)]));
    list.push(lua("states_call".into(), &["states_call", &s(z.calls)]));
    // Peers.
    list.push(lua("luv_work".into(), &["luv_work", &s(z.luv_work)]));
    list.push(lua("luv_async".into(), &["luv_async", &s(z.luv_async)]));
    list
}
