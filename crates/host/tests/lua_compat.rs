//! The host follows the stock `lua5.4`'s conventions, so that scripts and
//! command lines move between the two unchanged: `arg`, `-e`, `-l`, `-v`,
//! `-`, messages, tracebacks, Ctrl-C and exit statuses.

mod common;

use std::path::PathBuf;

use common::{host, host_with, interrupted, run, script};

/// Internal frames a traceback must not show.
fn assert_no_internal_frames(stderr: &str) {
    for internal in [
        "\tdarksidesync-host:",
        "\tdarksidesync.prelude",
        "\tdarksidesync.host:",
        "in upvalue 'f'",
        "xpcall",
    ] {
        assert!(!stderr.contains(internal), "{internal:?} in {stderr}");
    }
    assert!(stderr.ends_with("\n\t[C]: in ?\n"), "{stderr}");
}

#[test]
fn a_usage_error_is_one_line_pointing_to_help() {
    for (args, message) in [
        (&["-x"][..], "unknown option -x"),
        (&["--frobnicate", "s.lua"], "unknown option --frobnicate"),
        (&[], "no script given"),
        (&["-e"], "'-e' needs an argument"),
    ] {
        let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
        let out = host(&args);
        assert_eq!(out.code, Some(1), "{args:?}: lua5.4 exits 1");
        assert_eq!(
            out.stderr,
            format!("darksidesync-host: {message}; try darksidesync-host --help\n")
        );
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn arg_holds_the_whole_command_line_as_in_lua() {
    let path = script(
        "argall.lua",
        "print(#arg, arg[0]:match('argall.lua$'), arg[1], arg[2], arg[-1], arg[-2], \
         arg[-3]:match('darksidesync%-host$'), arg[-4])\n",
    );
    let out = host(&[
        "-e".as_ref(),
        "x=1".as_ref(),
        path.as_os_str(),
        "a".as_ref(),
        "-e".as_ref(),
    ]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "2\targall.lua\ta\t-e\tx=1\t-e\tdarksidesync-host\tnil\n"
    );
    // Without options, arg[-1] is the interpreter.
    let path = script(
        "argm1.lua",
        "print(arg[-1]:match('darksidesync%-host$'), arg[-2])\n",
    );
    let out = host(&[path.as_os_str()]);
    assert_eq!(out.stdout, "darksidesync-host\tnil\n", "{}", out.stderr);
}

#[test]
fn e_and_l_run_in_order_before_the_script() {
    let path = script(
        "after.lua",
        "print('script', x, t ~= nil, tm.after ~= nil)\n",
    );
    let out = host(&[
        "-e".as_ref(),
        "x = 1; print('e1')".as_ref(),
        "-lstring".as_ref(),
        "-l".as_ref(),
        "tm=darksidesync.timer".as_ref(),
        "-et = string; print('e2', x)".as_ref(),
        path.as_os_str(),
    ]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "e1\ne2\t1\nscript\t1\ttrue\ttrue\n");
}

#[test]
fn e_alone_is_a_program_and_its_callbacks_run() {
    let out = host(&[
        "-e".as_ref(),
        "require('darksidesync.timer').after(0, function() print('cb') end)".as_ref(),
    ]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "cb\n");
}

#[test]
fn an_error_in_e_is_reported_like_a_script_error() {
    let out = host(&["-e".as_ref(), "error('bad')".as_ref()]);
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr
            .starts_with("darksidesync-host: (command line):1: bad\nstack traceback:\n"),
        "{}",
        out.stderr
    );
    assert_no_internal_frames(&out.stderr);
}

#[test]
fn v_prints_the_versions_and_still_runs_e() {
    let out = host(&["-v".as_ref(), "-e".as_ref(), "print('ran')".as_ref()]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout.starts_with("darksidesync-host "),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("Lua 5.4"), "{}", out.stdout);
    assert!(out.stdout.ends_with("\nran\n"), "{}", out.stdout);
}

#[test]
fn dash_runs_standard_input_with_its_arguments() {
    let out = host_with(
        &["-".as_ref(), "x".as_ref()],
        Some(b"print(arg[0], arg[1], ...)\n"),
        |_| {},
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "-\tx\tx\n");
}

#[test]
fn os_exit_sets_the_exit_status() {
    let out = host(&["-e".as_ref(), "os.exit(3)".as_ref()]);
    assert_eq!(out.code, Some(3));
    let out = host(&["-e".as_ref(), "os.exit(false)".as_ref()]);
    assert_eq!(out.code, Some(1));
}

#[test]
fn a_script_error_traceback_has_no_internal_frames() {
    let out = run("frames.lua", "local function f() error('boom') end\nf()\n");
    assert_eq!(out.code, Some(1));
    let p = common::script("frames.lua", "local function f() error('boom') end\nf()\n");
    let p = p.display();
    assert_eq!(
        out.stderr,
        format!(
            "darksidesync-host: {p}:1: boom\nstack traceback:\n\
             \t[C]: in function 'error'\n\
             \t{p}:1: in local 'f'\n\
             \t{p}:2: in main chunk\n\
             \t[C]: in ?\n"
        )
    );
}

#[test]
fn a_callback_error_traceback_has_no_internal_frames() {
    let out = run(
        "cbframes.lua",
        "require('darksidesync.timer').after(0, function() error('late') end)\n",
    );
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr
            .starts_with("darksidesync-host: error in callback: "),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("cbframes.lua:1: late\n"),
        "{}",
        out.stderr
    );
    assert_no_internal_frames(&out.stderr);
}

#[test]
fn a_callback_error_ends_the_program_before_the_next_queued_callback() {
    let out = run(
        "next.lua",
        "local timer = require 'darksidesync.timer'\n\
         local dss = require 'darksidesync'\n\
         timer.after(0, function() error('first') end)\n\
         timer.after(0, function() print('second ran') end)\n\
         while dss.queuesize() < 2 do dss.wait(1) end\n",
    );
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("next.lua:3: first"), "{}", out.stderr);
    assert_eq!(out.stdout, "");
}

#[test]
fn a_failing_child_state_prints_one_traceback() {
    let out = run(
        "child1.lua",
        "require('darksidesync.host').spawn({ source = \"local function g() error('child boom') end g()\", name = 'w' })\n",
    );
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("w:1: child boom"), "{}", out.stderr);
    assert_eq!(
        out.stderr.matches("stack traceback:").count(),
        1,
        "{}",
        out.stderr
    );
    assert_no_internal_frames(&out.stderr);
}

#[test]
fn error_objects_are_described_as_lua_does() {
    let out = host(&["-e".as_ref(), "error({})".as_ref()]);
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr
            .starts_with("darksidesync-host: (error object is a table value)\nstack traceback:\n"),
        "{}",
        out.stderr
    );
    let out = host(&[
        "-e".as_ref(),
        "error(setmetatable({}, {__tostring = function() return 'custom' end}))".as_ref(),
    ]);
    assert_eq!(out.code, Some(1));
    assert_eq!(out.stderr, "darksidesync-host: custom\n");
    let out = host(&["-e".as_ref(), "error(42)".as_ref()]);
    assert!(out
        .stderr
        .starts_with("darksidesync-host: 42\nstack traceback:\n"));
}

#[test]
fn ctrl_c_interrupts_busy_lua_code() {
    let out = interrupted(
        "busy.lua",
        "io.stdout:write('ready\\n'); io.stdout:flush()\n\
         local function spin() while true do end end\nspin()\n",
    );
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr
            .starts_with("darksidesync-host: interrupted!\nstack traceback:\n"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("busy.lua:2: in local 'spin'"),
        "{}",
        out.stderr
    );
}

#[test]
fn ctrl_c_interrupts_a_waiting_run() {
    let out = interrupted(
        "waiting.lua",
        "require('darksidesync.timer').after(3600, function() print('never') end)\n\
         io.stdout:write('ready\\n'); io.stdout:flush()\n",
    );
    assert_eq!(out.code, Some(1));
    assert_eq!(out.stderr, "darksidesync-host: interrupted!\n");
    assert_eq!(out.stdout, "");
}

#[test]
fn a_script_that_handles_sigint_takes_ctrl_c_over() {
    let out = interrupted(
        "ownint.lua",
        "local signal = require 'darksidesync.signal'\n\
         signal.on('INT', function(name) print('handled', name); require('darksidesync').stop() end, \
         { keepalive = true })\n\
         io.stdout:write('ready\\n'); io.stdout:flush()\n",
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "handled\tSIGINT\n");
}

/// What `lua5.4` prints and returns for a command line, its program name
/// (`lua5.4: `) at the start of a line read as the host's.
fn as_lua54_does(args: &[&str], env: &[(&str, &str)], input: Option<&[u8]>) -> common::Out {
    let mut out = common::program_env("lua5.4", args, env, input);
    out.stderr = out
        .stderr
        .split_inclusive('\n')
        .map(|line| match line.strip_prefix("lua5.4: ") {
            Some(rest) => format!("darksidesync-host: {rest}"),
            None => line.to_string(),
        })
        .collect();
    out
}

/// One command line compared with `lua5.4`: arguments, `LUA_*`
/// variables, standard input.
struct Case {
    args: Vec<String>,
    env: Vec<(&'static str, String)>,
    input: Option<&'static [u8]>,
}

fn case(args: &[&str], env: &[(&'static str, &str)]) -> Case {
    Case {
        args: args.iter().map(|a| a.to_string()).collect(),
        env: env.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        input: None,
    }
}

fn stdin_case(args: &[&str], input: &'static [u8]) -> Case {
    Case {
        input: Some(input),
        ..case(args, &[])
    }
}

#[test]
fn command_lines_read_as_in_lua5_4() {
    let path = |name: &str, source: &str| script(name, source).display().to_string();
    let syntax = path("cmp_syntax.lua", "x = = 1\n");
    let boom = path(
        "cmp_boom.lua",
        "local function f() error('boom') end\nf()\n",
    );
    let shebang = path(
        "cmp_shebang.lua",
        "#!/usr/bin/env lua5.4\nprint(select('#', ...), ...)\nerror('line 3')\n",
    );
    let init = format!("@{}", path("cmp_init.lua", "print('init file', ...)\n"));
    path(
        "cmp_badmod.lua",
        "local function g() error('in module') end\ng()\n",
    );
    path("cmp_goodmod.lua", "return { answer = 42 }\n");
    let modpath = format!(
        "{}/?.lua",
        PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join("host-cli")
            .display()
    );
    let mods = [("LUA_PATH", modpath.as_str())];
    let nowhere = [
        ("LUA_PATH", "/nonexistent/?.lua"),
        ("LUA_CPATH", "/nonexistent/?.so"),
    ];
    let e = |code: &str| case(&["-e", code], &[]);
    let init_then = |env: &[(&'static str, &str)]| case(&["-e", "print(2)"], env);
    let cases = [
        // The four that differed (issue 19): syntax errors, -W, warn, -l.
        case(&[&syntax], &[]),
        e("x = = 1"),
        case(&["-W", "-e", "warn('a', 'b', 'c') warn('d')"], &[]),
        e("warn('hidden') warn('@on') warn('shown') warn('@off') warn('hidden')"),
        case(&["-lnosuchmodule", "-e", "print(1)"], &nowhere),
        // Warnings in pieces, and control messages that are not one.
        case(&["-W", "-e", "warn('@x') warn('@on', 'x') warn('y')"], &[]),
        // Scripts, errors and tracebacks, exit statuses, `arg`.
        case(&[&boom], &[]),
        case(&[&shebang, "a", "b"], &[]),
        e("error({})"),
        e("error(setmetatable({}, {__tostring = function() return 'obj' end}))"),
        e("error(42)"),
        e("error('no position', 0)"),
        e("os.exit(7)"),
        e("os.exit(false)"),
        e("print(#arg, arg[1], arg[2], arg[-1])"),
        stdin_case(&["-", "x"], b"print(arg[0], arg[1], ...)\n"),
        stdin_case(
            &["-"],
            b"#!shebang\nprint(debug.getinfo(1, 'l').currentline)\n",
        ),
        // -l: a module, into a global of another name, a module that fails.
        case(&["-lcmp_goodmod", "-e", "print(cmp_goodmod.answer)"], &mods),
        case(&["-l", "m=cmp_goodmod", "-e", "print(m.answer)"], &mods),
        case(&["-lcmp_badmod"], &mods),
        // LUA_INIT: its versioned name first, a file, errors, -E.
        init_then(&[("LUA_INIT", "print('init', ...)")]),
        init_then(&[
            ("LUA_INIT", "print('plain')"),
            ("LUA_INIT_5_4", "print('versioned')"),
        ]),
        init_then(&[("LUA_INIT", &init)]),
        init_then(&[("LUA_INIT", "@/nonexistent/init.lua")]),
        init_then(&[("LUA_INIT", "error('in init')")]),
        init_then(&[("LUA_INIT", "x ==")]),
        case(
            &[
                "-E",
                "-e",
                "print(2, package.path:find('nowhere', 1, true))",
            ],
            &[
                ("LUA_INIT", "print('init')"),
                ("LUA_PATH", "/nowhere/?.lua"),
            ],
        ),
        // LUA_PATH / LUA_CPATH: the versioned name first, ";;" the default.
        case(
            &["-e", "print(package.path)"],
            &[("LUA_PATH", "/a/?.lua;;/b/?.lua")],
        ),
        case(
            &["-e", "print(package.path)"],
            &[("LUA_PATH", "/a/?.lua"), ("LUA_PATH_5_4", "/v/?.lua")],
        ),
        case(
            &["-e", "print(package.cpath)"],
            &[("LUA_CPATH_5_4", "/c/?.so")],
        ),
        e("print(package.path)"),
        // C modules from Debian's folders.
        case(&["-llfs", "-e", "print(type(lfs.attributes))"], &[]),
        e("print(require('luv').version() > 0)"),
        e("print(type(require('cqueues').new))"),
    ];
    let mut differ = Vec::new();
    for c in &cases {
        let args: Vec<&str> = c.args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = c.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let lua = as_lua54_does(&args, &env, c.input);
        let host = env!("CARGO_BIN_EXE_darksidesync-host");
        let ours = common::program_env(host, &args, &env, c.input);
        if (lua.code, &lua.stdout, &lua.stderr) != (ours.code, &ours.stdout, &ours.stderr) {
            differ.push(format!(
                "{args:?} {env:?}\n  lua5.4: {:?} {:?} {:?}\n  host:   {:?} {:?} {:?}",
                lua.code, lua.stdout, lua.stderr, ours.code, ours.stdout, ours.stderr
            ));
        }
    }
    assert!(
        differ.is_empty(),
        "{} of {} command lines differ:\n{}",
        differ.len(),
        cases.len(),
        differ.join("\n")
    );
}

#[test]
fn the_default_search_paths_hold_lua5_4_s_in_its_order() {
    let code = "print(package.path) print(package.cpath)";
    let lua = common::program_env("lua5.4", &["-e", code], &[], None);
    let ours = common::host_env(&["-e", code], &[]);
    assert_eq!(lua.code, Some(0), "{}", lua.stderr);
    assert_eq!(ours.code, Some(0), "{}", ours.stderr);
    for (theirs, mine) in lua.stdout.lines().zip(ours.stdout.lines()) {
        let mine: Vec<&str> = mine.split(';').collect();
        let mut at = 0;
        for entry in theirs.split(';') {
            let found = mine[at..].iter().position(|m| *m == entry);
            assert!(
                found.is_some(),
                "{entry} missing or out of order in {mine:?}"
            );
            at += found.unwrap() + 1;
        }
    }
}
