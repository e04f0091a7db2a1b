-- Load script for every workload but the partitioned site. Usage (run.py passes one connection per
-- wrk thread, so a thread's counters are a connection's):
--   wrk -tN -cN -s count.lua URL -- MODE [BODY_BYTES]
-- MODE: get (keep-alive GET), close (GET with "Connection: close"), post (keep-alive POST of
-- BODY_BYTES bytes). done() prints one line "BENCHJSON {...}" with the totals, the latency
-- percentiles and the number of requests each connection sent.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

local req
sent = 0

function init(args)
  local mode = args[1] or "get"
  if mode == "close" then
    req = wrk.format("GET", nil, { ["Connection"] = "close" })
  elseif mode == "post" then
    local size = tonumber(args[2] or "65536")
    req = wrk.format("POST", nil, { ["Content-Type"] = "application/octet-stream" },
      string.rep("p", size))
  else
    req = wrk.format("GET")
  end
end

function request()
  sent = sent + 1
  return req
end

function done(summary, latency, requests)
  local counts = {}
  for i, thread in ipairs(threads) do
    counts[i] = tostring(thread:get("sent") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests": %d, "duration_us": %d, "bytes": %d, "connect": %d, "read": %d, ' ..
    '"write": %d, "status": %d, "timeout": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, ' ..
    '"max_us": %d, "mean_us": %.1f, "per_conn": [%s]}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean, table.concat(counts, ", ")))
end
