//! Project tasks that cargo alone cannot express. Run as `cargo xtask <task>`.
//! Each task lives in its own file.
//!
//! * `test`      — the whole test suite, installing what it needs (CI runs this).
//! * `hygiene`   — its first stage: fmt, clippy, rustdoc, drift (`hygiene.rs`).
//! * `drift`     — the Lua reference, versions and the C header against the built module.
//! * `lua-doc`   — the Lua reference as HTML (`lua_doc.rs`).
//! * `deps`      — only the install step of `test`.
//! * `loom`      — the loom model checks (the core's hand-offs, the glue's counted and ordered types).
//! * `bench`     — every benchmark scenario, this project and its peers in one run.
//! * `module`    — build the Lua module for one Lua version into a folder.
//! * `package`   — `cargo package` for every published crate.
//! * `rocks`     — `luarocks make` into fresh trees for 5.1 and 5.4, then a spec.
//! * `lua-specs` — build the module for every Lua and run the busted specs.
//! * `capi`      — the C-ABI tests (`xtask/src/capi/`).
//! * `capi-sanitize` — the same under valgrind and AddressSanitizer.
//! * `binding`   — the Rust binding API end to end: a separate cdylib in stock Lua.
//! * `examples`  — run every `examples/*.lua` in the embedded host and in lua5.4, checked, under a watchdog.

mod bench;
mod binding;
mod capi;
mod cmd;
mod deps;
mod drift;
mod examples;
mod hygiene;
mod lua_doc;
mod lua_specs;
mod module;
mod package;
mod rocks;
mod test;

pub(crate) use cmd::root;

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (task, rest) = match args.split_first() {
        Some((t, rest)) => (t.as_str(), rest),
        None => ("help", &[][..]),
    };
    let result = match task {
        // Help is not an error: usage on stdout, exit 0.
        "help" | "--help" | "-h" => {
            // A closed pipe (`| head`) is not worth a panic.
            let _ = writeln!(std::io::stdout(), "{}", usage());
            return ExitCode::SUCCESS;
        }
        "test" => test::all(),
        "deps" => deps::ensure(),
        "hygiene" => hygiene::main(),
        "drift" => drift::main(),
        "lua-doc" => lua_doc::main(rest),
        "loom" => test::loom(),
        "bench" => bench::main(rest),
        "module" => module::main(rest),
        "rocks" => rocks::main(),
        "package" => package::main(),
        "capi" => capi::main(false),
        "capi-sanitize" => capi::main(true),
        "lua-specs" => lua_specs::main(rest),
        "examples" => examples::main(),
        "binding" => binding::main(),
        _ => {
            eprintln!("xtask: unknown task {task:?}; try cargo xtask --help");
            return ExitCode::from(2);
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

fn usage() -> &'static str {
    "usage: cargo xtask <task>   (help, --help, -h: this text)\n\
     \x20 test                                           the whole suite (installs what it needs)\n\
     \x20 deps                                           install the Debian packages the suite needs\n\
     \x20 hygiene                                        fmt --check, clippy -D warnings, rustdoc -D warnings, drift\n\
     \x20 drift                                          the module's exports against doc/lua-api.md and the header; README's figures against bench/results\n\
     \x20 lua-doc [--out DIR]                            the Lua reference as HTML (default target/doc/lua)\n\
     \x20 loom                                           loom model checks (core hand-offs, glue counts)\n\
     \x20 bench [--quick] [--repeat N] [--out DIR]       all scenarios, this project and its peers; tables in bench/results\n\
     \x20 bench --criterion [criterion args]             the core's criterion benchmarks\n\
     \x20 bench --readme                                 README.md's performance table from bench/results/results.md\n\
     \x20 module --lua <5.1|5.2|5.3|5.4|jit> [--out DIR]  build the release Lua module (size printed, < 3 MB) and install it with its Lua files into DIR\n\
     \x20   [--lua-interpreter PATH] [--lua-dir DIR]     (the Lua version asked from PATH; the Lua files into another DIR)\n\
     \x20 package                                        cargo package (no verify) for every published crate\n\
     \x20 rocks                                          luarocks make (5.1, 5.4) into target/rocks and a spec with `luarocks path`\n\
     \x20 lua-specs [--lua 5.1,jit,...]                  build the module for every Lua (or those) and run the busted specs;\n\
     \x20                                                with 5.1 and jit, each must refuse the other's build\n\
     \x20 capi                                           the C-ABI tests (header, C utility, two-state C host; Lua 5.4, 5.1, LuaJIT)\n\
     \x20 capi-sanitize                                  the C-ABI tests under valgrind and AddressSanitizer\n\
     \x20 binding                                        the Rust binding API: an example cdylib in stock Lua 5.4 and 5.1, and in the host\n\
     \x20 examples                                       run every example in the embedded host and in lua5.4 and check its output"
}
