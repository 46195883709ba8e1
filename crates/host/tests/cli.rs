//! The host binary as a user runs it: exit status, messages, `run()`
//! semantics and states on their own threads.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A safety net against hangs, not a timing assertion.
const PATIENCE: Duration = Duration::from_secs(60);

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn script(name: &str, source: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("host-cli");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, source).unwrap();
    path
}

fn host(args: &[&std::ffi::OsStr]) -> Out {
    let mut child = Command::new(env!("CARGO_BIN_EXE_darksidesync-host"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let o = std::thread::spawn(move || {
        let mut s = String::new();
        out.read_to_string(&mut s).unwrap();
        s
    });
    let e = std::thread::spawn(move || {
        let mut s = String::new();
        err.read_to_string(&mut s).unwrap();
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > PATIENCE {
            child.kill().unwrap();
            panic!("darksidesync-host {args:?} hung");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Out {
        code: status.code(),
        stdout: o.join().unwrap(),
        stderr: e.join().unwrap(),
    }
}

fn run(name: &str, source: &str) -> Out {
    let path = script(name, source);
    host(&[path.as_os_str()])
}

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
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr.starts_with("darksidesync-host: no script given"),
        "{}",
        out.stderr
    );
}

#[test]
fn unknown_option_is_a_usage_error() {
    let out = host(&["--frobnicate".as_ref()]);
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr.contains("unknown option --frobnicate"),
        "{}",
        out.stderr
    );
}

#[test]
fn missing_script_is_a_usage_error() {
    let out = host(&["/nonexistent/script.lua".as_ref()]);
    assert_eq!(out.code, Some(2));
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
    assert!(
        out.stderr.starts_with("darksidesync-host: syntax error: "),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("syntax.lua:2:"), "{}", out.stderr);
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

#[test]
fn states_exchange_messages_and_calls() {
    let out = run(
        "states.lua",
        r#"local host = require "darksidesync.host"
assert(host.id == 0 and host.parent == nil)
local child = host.spawn({ source = [[
  local host = require "darksidesync.host"
  local base = ...
  host.onmessage(function(n, t)
    local sq = host.parent:call("square", n)
    host.parent:send("result", base + sq, t.tag, host.id > 0)
  end)
]], name = "worker" }, 100)
child:onmessage(function(kind, a, b, c)
  if kind == "square" then return a * a end
  print(kind, a, b, c)
  child:close()
end)
child:onexit(function(ok, err) print("exit", ok, err) end)
assert(child:send(7, { tag = "t" }))
"#,
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "result\t149\tt\ttrue\nexit\ttrue\tnil\n");
}

#[test]
fn a_failing_child_is_reported_to_onexit() {
    let out = run(
        "childfail.lua",
        r#"local host = require "darksidesync.host"
local c = host.spawn({ source = "error('child broke')", name = "bad" })
c:onexit(function(ok, err) print(ok, err:match("child broke") ~= nil) end)
"#,
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "false\ttrue\n");
}

#[test]
fn a_failing_child_without_onexit_fails_the_program() {
    let out = run(
        "childfail2.lua",
        "require('darksidesync.host').spawn({ source = 'error(\"child broke\")', name = 'bad' })\n",
    );
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("failed: "), "{}", out.stderr);
    assert!(out.stderr.contains("child broke"), "{}", out.stderr);
}

#[test]
fn spawn_rejects_bad_scripts_and_values() {
    let out = run(
        "badspawn.lua",
        r#"local host = require "darksidesync.host"
print(pcall(host.spawn, { source = "x = (" }))
print(pcall(host.spawn, "/nonexistent.lua"))
print(pcall(host.spawn, { source = "" }, print))
print(pcall(host.spawn, 42))
"#,
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", out.stdout);
    assert!(
        lines[0].starts_with("false\thost.spawn: syntax error: "),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].starts_with("false\thost.spawn: cannot read /nonexistent.lua"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].contains("host.spawn: cannot copy a function to another Lua state"),
        "{}",
        lines[2]
    );
    assert!(
        lines[3].contains("expected a script path or {source = ...}, got number"),
        "{}",
        lines[3]
    );
    assert!(!out.stdout.contains("runtime error"), "{}", out.stdout);
}

#[test]
fn a_child_without_onmessage_ends_by_itself() {
    let out = run(
        "fire.lua",
        r#"local host = require "darksidesync.host"
local c = host.spawn({ source = "require('darksidesync.host').parent:send('hi from', require('darksidesync.host').id)" })
c:onmessage(function(a, b) print(a, b == c:id()) end)
c:onexit(function(ok) print("exit", ok) print(c:send("late")) end)
"#,
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "hi from\ttrue\nexit\ttrue\nfalse\tclosed\n");
}

#[test]
fn a_state_that_stops_with_live_timers_signals_and_processes_closes_cleanly() {
    let out = run(
        "stopped.lua",
        r#"local host = require "darksidesync.host"
local c = host.spawn({ source = [[
  local dss = require "darksidesync"
  local timer = require "darksidesync.timer"
  local signal = require "darksidesync.signal"
  local process = require "darksidesync.process"
  signal.on("USR2", function() end, { keepalive = true })
  local p = process.spawn({ "sleep", "30" }, { exit = function() end })
  timer.every(0.01, function() require("darksidesync.host").parent:send(p:pid()); dss.stop() end)
]] })
local pid
c:onmessage(function(p) pid = p end)
c:onexit(function(ok, err) print("exit", ok, err, pid ~= nil) end)
"#,
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "exit\ttrue\tnil\ttrue\n");
}

#[test]
fn a_collected_child_handle_lets_a_listening_child_end() {
    let out = run(
        "dropped.lua",
        r#"local host = require "darksidesync.host"
local c = host.spawn({ source = "require('darksidesync.host').onmessage(function() end)" })
c = nil
collectgarbage()
collectgarbage()
print("dropped")
"#,
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "dropped\n");
}

#[test]
fn states_module_is_preloaded_with_the_host_libraries() {
    let out = run(
        "statesmod.lua",
        r#"local states = require "darksidesync.states"
print(states.id, states.spawn([[
  local timer = require "darksidesync.timer"
  local states = require "darksidesync.states"
  return 6 * ..., states.parent:id(), type(timer.after)
]], 7):join())
"#,
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "0\t42\t0\tfunction\n");
}
