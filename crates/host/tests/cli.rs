//! The host binary as a user runs it: exit status, messages and `run()`
//! semantics (states: `states.rs`; lua5.4 conventions: `lua_compat.rs`).

mod common;

use common::{host, run, script};

#[test]
fn help_describes_the_command_line() {
    let out = host(&["--help".as_ref()]);
    assert_eq!(out.code, Some(0));
    assert!(
        out.stdout
            .starts_with("usage: darksidesync-host [OPTIONS] SCRIPT [ARGS...]"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("darksidesync.process"));
}

#[test]
fn version_names_lua() {
    let out = host(&["--version".as_ref()]);
    assert_eq!(out.code, Some(0));
    assert!(out.stdout.contains("Lua 5.4"), "{}", out.stdout);
}

#[test]
fn no_script_is_a_usage_error() {
    let out = host(&[]);
    assert_eq!(out.code, Some(1), "lua5.4 exits 1 on a usage error");
    assert!(
        out.stderr.starts_with("darksidesync-host: no script given"),
        "{}",
        out.stderr
    );
}

#[test]
fn unknown_option_is_a_usage_error() {
    let out = host(&["--frobnicate".as_ref()]);
    assert_eq!(out.code, Some(1), "lua5.4 exits 1 on a usage error");
    assert!(
        out.stderr.contains("unknown option --frobnicate"),
        "{}",
        out.stderr
    );
}

#[test]
fn missing_script_is_a_usage_error() {
    let out = host(&["/nonexistent/script.lua".as_ref()]);
    assert_eq!(out.code, Some(1), "lua5.4 exits 1 on a usage error");
    assert!(
        out.stderr
            .contains("cannot read /nonexistent/script.lua: No such file"),
        "{}",
        out.stderr
    );
}

#[test]
fn syntax_error_fails_with_the_position() {
    let out = run("syntax.lua", "print(1\n");
    assert_eq!(out.code, Some(1));
    // As lua5.4 prints it: the message alone, no traceback.
    let path = script("syntax.lua", "print(1\n");
    assert_eq!(
        out.stderr,
        format!(
            "darksidesync-host: {}:2: ')' expected (to close '(' at line 1) near <eof>\n",
            path.display()
        )
    );
}

#[test]
fn runtime_error_fails_with_a_traceback() {
    let out = run(
        "boom.lua",
        "local function inner() error('boom') end\ninner()\n",
    );
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("boom.lua:1: boom"), "{}", out.stderr);
    assert!(out.stderr.contains("stack traceback:"), "{}", out.stderr);
    assert!(out.stderr.contains("in local 'inner'"), "{}", out.stderr);
}

#[test]
fn callback_error_ends_the_program_with_a_traceback() {
    let out = run(
        "cb.lua",
        "local timer = require 'darksidesync.timer'\n\
         timer.after(0, function() local t = nil; return t.x end)\n\
         timer.after(3600, function() print('never') end)\n",
    );
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("error in callback: "), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("cb.lua:2: attempt to index a nil value"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("stack traceback:"), "{}", out.stderr);
    assert!(!out.stdout.contains("never"));
}

#[test]
fn arguments_reach_arg_and_the_chunk() {
    let path = script(
        "args.lua",
        "print(arg[0] ~= nil, arg[1], arg[2], select('#', ...), ...)\n",
    );
    let out = host(&[path.as_os_str(), "one".as_ref(), "two".as_ref()]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "true\tone\ttwo\t2\tone\ttwo\n");
}

#[test]
fn dispatches_until_nothing_can_arrive() {
    let out = run(
        "run.lua",
        "local timer = require 'darksidesync.timer'\n\
         local n = 0\n\
         timer.every(0.01, function(t) n = n + 1; if n == 3 then t:cancel(); print('done', n) end end)\n\
         print('script ends')\n",
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "script ends\ndone\t3\n");
}

#[test]
fn stop_ends_the_program() {
    let out = run(
        "stop.lua",
        "local dss = require 'darksidesync'\n\
         local timer = require 'darksidesync.timer'\n\
         timer.every(0.01, function() print('tick'); dss.stop() end)\n",
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "tick\n");
}
