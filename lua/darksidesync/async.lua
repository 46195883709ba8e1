--- darksidesync.async: how an async function of a Rust library
-- (darksidesync-binding's `Dss::create_async_function`) parks the calling
-- coroutine under an event loop that schedules coroutines itself.
--
-- `parkers` is a list of `{ name = ..., park = function(settled, on_settle) }`.
-- When a pending async function is called from a coroutine, each `park`
-- is asked in turn: one that recognises its loop's coroutine registers a
-- wake-up with `on_settle(f)` (f runs on the Lua thread when the future
-- finished), waits its loop's way until `settled()` is true, and returns
-- true; one that does not returns false at once. With none, darksidesync
-- resumes the coroutine itself (a plain coroutine, a luv-driven one).
--
-- The cqueues and Copas adapters register theirs when required; `add`
-- replaces a parker of the same name.
-- (Lua 5.1's require keeps a userdata in package.loaded while it loads.)
local M = package.loaded["darksidesync.async"]
if type(M) ~= "table" then M = {} end
M.parkers = M.parkers or {}

function M.add(name, park)
  for i = 1, #M.parkers do
    if M.parkers[i].name == name then
      M.parkers[i].park = park
      return
    end
  end
  M.parkers[#M.parkers + 1] = { name = name, park = park }
end

package.loaded["darksidesync.async"] = M
return M
