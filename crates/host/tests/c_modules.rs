//! C modules load in the host as in `lua5.4`: the binary exports the Lua C
//! API and searches Debian's folders. Debian's `lua-luv`, `lua-filesystem`
//! and `lua-cqueues` (installed by `cargo xtask deps`), our event-loop
//! adapters in their real loops, and a C utility written from the header
//! (its whole C-ABI suite, `tests/c/capi.lua`). A library built on
//! `darksidesync-binding` is run in the host by `cargo xtask binding`.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{host_env, root, script};

/// `LUA_PATH` with the repository's adapters (`lua/`) before the default.
fn adapters_path() -> String {
    format!("{}/lua/?.lua;;", root().display())
}

fn assert_ran(out: &common::Out, stdout: &str) {
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (Some(0), ""),
        "stdout: {}",
        out.stdout
    );
    assert_eq!(out.stdout, stdout);
}

#[test]
fn the_host_exports_the_lua_c_api() {
    let out = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(env!("CARGO_BIN_EXE_darksidesync-host"))
        .output()
        .expect("nm (binutils) runs");
    assert!(out.status.success());
    let symbols = String::from_utf8_lossy(&out.stdout);
    // Only the Lua C API: none of the host's own (Rust) symbols.
    let names: Vec<&str> = symbols
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    assert!(names.len() > 150, "{names:?}");
    for name in &names {
        assert!(
            name.starts_with("lua_") || name.starts_with("luaL_") || name.starts_with("luaopen_"),
            "{name} is exported"
        );
    }
    for name in [
        "lua_gettop",
        "lua_checkstack",
        "lua_pcallk",
        "lua_newuserdatauv",
        "luaL_checklstring",
        "luaL_setfuncs",
        "luaL_openlibs",
        "luaopen_base",
    ] {
        assert!(
            symbols.lines().any(|l| l.ends_with(&format!(" {name}"))),
            "{name} is not exported"
        );
    }
}

#[test]
fn debian_s_lfs_loads_from_the_default_cpath() {
    let out = host_env(
        &[
            "-e",
            "local lfs = require 'lfs'\n\
             print(package.searchpath('lfs', package.cpath))\n\
             print(lfs.attributes('.', 'mode'), lfs.currentdir() ~= nil)",
        ],
        &[],
    );
    let (found, rest) = out.stdout.split_once('\n').unwrap_or_default();
    assert!(
        found.starts_with("/usr/lib/") && found.ends_with("/lua/5.4/lfs.so"),
        "{found}"
    );
    assert_ran(&out, &format!("{found}\ndirectory\ttrue\n"));
    assert_eq!(rest, "directory\ttrue\n");
}

#[test]
fn debian_s_luv_runs_its_loop_in_the_host() {
    let out = host_env(
        &[
            "-e",
            "local uv = require 'luv'\n\
             local t = uv.new_timer()\n\
             t:start(5, 0, function() print('luv timer fired'); t:close() end)\n\
             uv.run()\n\
             print(uv.version_string() ~= nil)",
        ],
        &[],
    );
    assert_ran(&out, "luv timer fired\ntrue\n");
}

#[test]
fn debian_s_cqueues_runs_its_loop_in_the_host() {
    let out = host_env(
        &[
            "-e",
            "local cqueues = require 'cqueues'\n\
             local cq = cqueues.new()\n\
             cq:wrap(function() cqueues.sleep(0.01); print('cqueues slept') end)\n\
             assert(cq:loop())",
        ],
        &[],
    );
    assert_ran(&out, "cqueues slept\n");
}

/// The script each adapter test runs: `attach` (which sets `stop`), then
/// three ticks of a `darksidesync.timer` delivered through the adapter's
/// loop `run_loop`, the loop ended by the third. The adapter is attached
/// before the timer starts, as a program sets up its loop before its
/// producers (a descriptor first asked for after no-wait posts misses
/// them: issue 21).
fn run_adapter(name: &str, attach: &str, run_loop: &str, lua_path: &str) {
    let path = script(
        name,
        &format!(
            "local timer = require 'darksidesync.timer'\n\
             local ticks, stop = 0, nil\n\
             {attach}\n\
             timer.every(0.005, function(t)\n\
               ticks = ticks + 1\n\
               print('tick', ticks)\n\
               if ticks == 3 then t:cancel(); stop() end\n\
             end)\n\
             {run_loop}\n\
             print('loop ended after', ticks)\n"
        ),
    );
    let out = host_env(&[path.to_str().unwrap()], &[("LUA_PATH", lua_path)]);
    assert_ran(&out, "tick\t1\ntick\t2\ntick\t3\nloop ended after\t3\n");
}

#[test]
fn the_luv_adapter_delivers_in_the_host() {
    run_adapter(
        "adapter_luv.lua",
        "local uv, dssluv = require 'luv', require 'darksidesync.luv'\n\
         stop = dssluv.detach\n\
         dssluv.attach()",
        "uv.run()",
        &adapters_path(),
    );
}

#[test]
fn the_cqueues_adapter_delivers_in_the_host() {
    run_adapter(
        "adapter_cqueues.lua",
        "local cqueues, dsscq = require 'cqueues', require 'darksidesync.cqueues'\n\
         local cq = cqueues.new()\n\
         local w = dsscq.attach(cq)\n\
         stop = w.detach",
        "assert(cq:loop())",
        &adapters_path(),
    );
}

#[test]
fn the_luasocket_adapter_delivers_in_the_host() {
    run_adapter(
        "adapter_socket.lua",
        "local dsssock = require 'darksidesync.socket'\n\
         dsssock.pollable()\n\
         local running = true\n\
         stop = function() running = false end",
        "local deadline = os.time() + 60\n\
         while running and os.time() < deadline do dsssock.select({}, nil, 0.05) end",
        &adapters_path(),
    );
}

#[test]
fn the_copas_adapter_delivers_in_the_host() {
    // Debian's lua-copas and lua-coxpcall ship pure-Lua files for 5.1 and
    // 5.2 only (as `cargo xtask lua-specs` notes); they run on 5.4.
    run_adapter(
        "adapter_copas.lua",
        "local copas, dsscopas = require 'copas', require 'darksidesync.copas'\n\
         local w = dsscopas.attach()\n\
         stop = w.detach",
        "local deadline = os.time() + 60\n\
         while w.active and os.time() < deadline do copas.step(0.05) end",
        &format!(
            "{}/usr/share/lua/5.2/?.lua;/usr/share/lua/5.1/?.lua",
            adapters_path()
        ),
    );
}

/// `examples/c/dssutil.c`, a utility written from `include/darksidesync.h`
/// alone, compiled as a C module against Debian's Lua 5.4 headers and
/// linked against no Lua library, as a third party builds it.
fn dssutil() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("host-dssutil");
    std::fs::create_dir_all(&dir).unwrap();
    let so = dir.join("dssutil.so");
    let status = Command::new("cc")
        .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-pthread"])
        .args(["-shared", "-fPIC"])
        .arg(format!("-I{}", root().join("include").display()))
        .arg("-I/usr/include/lua5.4")
        .arg(root().join("examples/c/dssutil.c"))
        .arg("-o")
        .arg(&so)
        .status()
        .expect("cc runs");
    assert!(status.success(), "compiling dssutil.c failed");
    dir
}

#[test]
fn a_c_utility_from_the_header_passes_its_c_abi_suite_in_the_host() {
    let dir = dssutil();
    let capi = root().join("tests/c/capi.lua");
    let out = host_env(&[capi.to_str().unwrap(), dir.to_str().unwrap()], &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stderr.contains("capi.lua (Lua 5.4): ") && out.stderr.contains(" passed, 0 failed\n"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("\nFAIL "), "{}", out.stderr);
}

#[test]
fn a_spawned_state_has_its_parent_s_search_paths() {
    let out = host_env(
        &[
            "-e",
            "package.path = '/mine/?.lua;' .. package.path\n\
             local states = require 'darksidesync.states'\n\
             local h = states.spawn('return package.path, package.cpath')\n\
             local path, cpath = h:join(60)\n\
             print(path == package.path, cpath == package.cpath)",
        ],
        &[],
    );
    assert_ran(&out, "true\ttrue\n");
}
