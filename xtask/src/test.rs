//! The whole test suite, in the order that fails fastest.

use crate::cmd::{cargo, run, Result};
use crate::deps;

pub fn all() -> Result {
    deps::ensure()?;
    // Formatting, lints, rustdoc and the drift check first: they are
    // cheap and catch what every later stage would trip over.
    crate::hygiene::main()?;
    crate::lua_doc::main(&[])?;
    // Rust: unit, integration and doc tests of every crate.
    run(cargo().args(["test", "--workspace", "--release"]))?;
    loom()?;
    // The Lua module on every interpreter, adapters in their real loops.
    crate::lua_specs::main(&[])?;
    // The C ABI: header, C utility and two-state C host (Lua 5.4, 5.1,
    // LuaJIT), also under valgrind and AddressSanitizer (about 2 minutes).
    crate::capi::main(true)?;
    // The Rust binding API from a separately built cdylib.
    crate::binding::main()?;
    // The embedded host's example programs, run and checked.
    crate::examples::main()?;
    // Packaging: the rockspec through luarocks (5.1, 5.4) with a spec on
    // the installed tree, and `cargo package` for the published crates.
    crate::rocks::main()?;
    crate::package::main()?;
    // A smoke run of the benchmark harness (a few thousand items per
    // scenario) so it cannot rot; speed is not checked here.
    crate::bench::main(&["--quick".to_string()])?;
    eprintln!("xtask test: all stages passed");
    Ok(())
}

/// loom model checks: the core's hand-offs, then the glue's hand-counted
/// and hand-ordered types (`crates/lua/src/loom_models.rs`), each in its
/// own target dir so the model builds evict neither the normal build nor
/// each other (their `RUSTFLAGS` differ: tokio, under the bundled
/// libraries, does not build with `--cfg loom`, so the glue's switch is
/// `--cfg darksidesync_loom`).
pub fn loom() -> Result {
    // Every interleaving with up to 4 preemptions per model (as tokio
    // runs its models): the no-wait models explore for hours unbounded,
    // about 16 s at this bound.
    let preemptions = std::env::var("LOOM_MAX_PREEMPTIONS").unwrap_or_else(|_| "4".into());
    run(cargo()
        .args([
            "test",
            "-p",
            "darksidesync-core",
            "--test",
            "loom",
            "--release",
            "--target-dir",
            "target/loom",
        ])
        .env("RUSTFLAGS", "--cfg loom")
        .env("LOOM_MAX_PREEMPTIONS", &preemptions))?;
    run(cargo()
        .args([
            "test",
            "-p",
            "darksidesync-lua",
            "--lib",
            "--release",
            "--target-dir",
            "target/loom-glue",
            "loom_models::",
        ])
        .env("RUSTFLAGS", "--cfg darksidesync_loom")
        .env("LOOM_MAX_PREEMPTIONS", &preemptions))
}
