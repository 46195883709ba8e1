//! More Lua states on their own threads (`darksidesync.host`), as a user of
//! the host runs them.

mod common;

use common::run;

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
