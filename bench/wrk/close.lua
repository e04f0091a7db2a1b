-- count.lua in "close" mode, plus a check that the server really closes: every response must
-- carry "Connection: close" (a server that ignores the client's Connection: close keeps the
-- connection alive, and its numbers are then keep-alive numbers). Usage:
--   wrk -tN -cN -s close.lua URL -- close
-- done() adds "kept_alive": the responses without "Connection: close", to the BENCHJSON line.

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "count.lua")

kept_alive = 0

function response(status, headers, body)
  local value = headers["Connection"] or headers["connection"] or ""
  if not string.find(string.lower(value), "close", 1, true) then
    kept_alive = kept_alive + 1
  end
end

local count_done = done
local count_threads = {}
local count_setup = setup

function setup(thread)
  table.insert(count_threads, thread)
  count_setup(thread)
end

function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(count_threads) do
    total = total + (thread:get("kept_alive") or 0)
  end
  local write = io.write
  io.write = function(text)
    write((string.gsub(text, "^BENCHJSON {", string.format('BENCHJSON {"kept_alive": %d, ', total))))
  end
  count_done(summary, latency, requests)
  io.write = write
end
