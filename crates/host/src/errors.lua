-- darksidesync-host's error handling (loaded by runtime.rs as
-- "=darksidesync-host"): error messages and tracebacks as lua5.4 prints
-- them, and callback errors that end the program.
-- Arguments: the module, record(text) (keeps the first callback error for
-- the exit status), the value the Ctrl-C subscription raises, and
-- errtext(e) (the text of an mlua error object, or nil).
-- Returns protect(f, ...): nil, or the error text with its traceback.
local dss, record, interrupted, errtext = ...
local traceback, tostring, type, getmetatable = debug.traceback, tostring, type, getmetatable
local find, sub, match, format, gsub = string.find, string.sub, string.match, string.format, string.gsub
local INTERRUPTED = "interrupted!"

-- The host's own frames sit below the first xpcall; lua5.4 shows its C
-- entry there as "[C]: in ?".
-- Frames of the host's and the module's own Lua chunks are dropped too.
local INTERNAL = { ["darksidesync-host"] = true, ["darksidesync.host"] = true,
                   ["darksidesync.prelude"] = true }
local function trim(tb)
  local at = find(tb, "\n\t[C]: in function 'xpcall'", 1, true)
  if at then tb = sub(tb, 1, at - 1) .. "\n\t[C]: in ?" end
  return (gsub(tb, "\n\t([%w%.%-]+):%d+:[^\n]*", function(chunk)
    if INTERNAL[chunk] then return "" end
  end))
end

-- lua5.4's message handler: strings and numbers get a traceback, an
-- object with __tostring is printed as it says, other values are named by
-- type. mlua's error objects (errors from Rust) read as their message.
-- `level` is the traceback level of the erroring function, as seen by the
-- caller of describe.
local function describe(e, level)
  local t = type(e)
  if t == "number" then e, t = tostring(e), "string" end
  if t ~= "string" then
    local mt, text = getmetatable(e), errtext(e)
    if text then
      e = match(text, "^runtime error: (.*)$") or text
    elseif mt and mt.__tostring then
      local s = tostring(e)
      local m = match(s, "^runtime error: (.*)$")
      if not m then return s end
      e = m
    else
      e = format("(error object is a %s value)", t)
    end
  end
  -- A message that carries its traceback (a failed child state's) is whole.
  if find(e, "\nstack traceback:", 1, true) then return e end
  return trim(traceback(e, level + 1))
end

-- Callback errors are fatal, as in most event-loop hosts: record the first
-- one with its traceback and stop run(), so no later callback runs. A
-- script may install its own handler with darksidesync.seterrorhandler
-- (nil restores the module's default, which only prints).
dss.seterrorhandler(function(err)
  local text = describe(err, 2)
  if err == interrupted then
    text = INTERRUPTED
  elseif type(err) ~= "userdata" or sub(text, 1, #INTERRUPTED) ~= INTERRUPTED then
    text = "error in callback: " .. text
  end
  record(text)
  dss.stop()
  return err
end)
-- Runs f(...) and returns nil, or the error text with its traceback.
return function(f, ...)
  -- Not a tail call: the handler's frame counts in describe's level.
  local ok, err = xpcall(f, function(e) local text = describe(e, 2); return text end, ...)
  if not ok then return err end
end
