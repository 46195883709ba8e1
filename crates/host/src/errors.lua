-- darksidesync-host's error handling (loaded by runtime.rs as
-- "=darksidesync-host"): error messages and tracebacks as lua5.4 prints
-- them, and callback errors that end the program.
-- Arguments: the module, record(text) (keeps the first callback error for
-- the exit status) and errtext(e) (the text of an mlua error object, or
-- nil).
-- Returns protect(f, ...): nil and f's first result, or the error text
-- with its traceback.
local dss, record, errtext = ...
local traceback, tostring, type, getmetatable = debug.traceback, tostring, type, getmetatable
local find, sub, match, format, gmatch = string.find, string.sub, string.match, string.format, string.gmatch
local concat = table.concat
local INTERRUPTED = "interrupted!"

-- Below the script's own frames sit the host's and the module's: the C
-- call into them ("[C]: in ?", "[C]: in upvalue 'f'", xpcall) ends the
-- traceback, shown as lua5.4 shows its C entry, "[C]: in ?". Frames of the
-- host's and the module's own Lua chunks are dropped wherever they are.
local INTERNAL = { ["darksidesync-host"] = true, ["darksidesync.host"] = true,
                   ["darksidesync.prelude"] = true }
local ENTRY = { ["\n\t[C]: in ?"] = true, ["\n\t[C]: in upvalue 'f'"] = true,
                ["\n\t[C]: in function 'xpcall'"] = true }
local function trim(tb)
  local head, frames = match(tb, "^(.-\nstack traceback:)(.*)$")
  if not head then return tb end
  local out, seen_lua = { head }, false
  for line in gmatch(frames, "\n[^\n]*") do
    local is_c = find(line, "^\n\t%[C%]:") ~= nil
    -- Below the first Lua frame, the entry ends the traceback; above it
    -- (an error in a C function the host called directly: `-l`'s
    -- require) the entry is the host's and left out.
    if ENTRY[line] then
      if seen_lua then break end
    elseif not INTERNAL[match(line, "^\n\t([%w%.%-]+):%d+:")] then
      out[#out + 1] = line
      seen_lua = seen_lua or not is_c
    end
  end
  out[#out + 1] = "\n\t[C]: in ?"
  return concat(out)
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
  -- A message that carries its traceback (a failed child state's, an
  -- error from a library's Rust closure) keeps it, trimmed.
  if find(e, "\nstack traceback:", 1, true) then return trim(e) end
  return trim(traceback(e, level + 1))
end

-- Callback errors are fatal, as in most event-loop hosts: record the first
-- one with its traceback and stop run(), so no later callback runs. A
-- script may install its own handler with darksidesync.seterrorhandler
-- (nil restores the module's default, which only prints).
dss.seterrorhandler(function(err)
  local text = describe(err, 2)
  -- Ctrl-C in busy callback code (interrupt.rs's hook) reads as lua5.4's.
  if type(err) ~= "userdata" or sub(text, 1, #INTERRUPTED) ~= INTERRUPTED then
    text = "error in callback: " .. text
  end
  record(text)
  dss.stop()
  return err
end)
-- Runs f(...) and returns nil and f's first result, or the error text
-- with its traceback.
return function(f, ...)
  -- Not a tail call: the handler's frame counts in describe's level.
  local ok, r = xpcall(f, function(e) local text = describe(e, 2); return text end, ...)
  if not ok then return r end
  return nil, r
end
