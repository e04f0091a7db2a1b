-- Load script for the partitioned site: a hot "/" with a slow "/admin" as every EVERY-th request
-- of each connection. Usage (one connection per wrk thread, as run.py runs it):
--   wrk -tN -cN --timeout 30s -s mixed.lua URL -- EVERY ADMIN_PATH
-- wrk's own latency figures mix both paths, so this script times each request itself (one request
-- in flight per thread: request() starts the clock, response() stops it) and done() prints one
-- line "BENCHJSON {...}" with the percentiles of "/" and of the admin path separately.

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clock_id, bench_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local ts = ffi.new("bench_timespec")

local function now_us()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
  return tonumber(ts.tv_sec) * 1000000 + math.floor(tonumber(ts.tv_nsec) / 1000)
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

local hot_req, admin_req, every
local started, is_admin = 0, false
sent = 0
hot, admin = {}, {}
hot_bad, admin_bad = 0, 0

function init(args)
  every = tonumber(args[1] or "100")
  hot_req = wrk.format("GET", "/")
  admin_req = wrk.format("GET", args[2] or "/admin")
end

function request()
  sent = sent + 1
  is_admin = (sent % every) == 0
  started = now_us()
  if is_admin then
    return admin_req
  end
  return hot_req
end

function response(status, headers, body)
  local elapsed = now_us() - started
  local ok = status >= 200 and status < 300
  if is_admin then
    admin[#admin + 1] = elapsed
    if not ok then admin_bad = admin_bad + 1 end
  else
    hot[#hot + 1] = elapsed
    if not ok then hot_bad = hot_bad + 1 end
  end
end

local function percentile(sorted, p)
  if #sorted == 0 then return 0 end
  local i = math.ceil(#sorted * p / 100)
  if i < 1 then i = 1 end
  return sorted[i]
end

function done(summary, latency, requests)
  local all_hot, all_admin, counts = {}, {}, {}
  local bad_hot, bad_admin = 0, 0
  for i, thread in ipairs(threads) do
    for _, v in ipairs(thread:get("hot") or {}) do all_hot[#all_hot + 1] = v end
    for _, v in ipairs(thread:get("admin") or {}) do all_admin[#all_admin + 1] = v end
    bad_hot = bad_hot + (thread:get("hot_bad") or 0)
    bad_admin = bad_admin + (thread:get("admin_bad") or 0)
    counts[i] = tostring(thread:get("sent") or 0)
  end
  table.sort(all_hot)
  table.sort(all_admin)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests": %d, "duration_us": %d, "bytes": %d, "connect": %d, "read": %d, ' ..
    '"write": %d, "status": %d, "timeout": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, ' ..
    '"max_us": %d, "mean_us": %.1f, "hot_n": %d, "hot_p50_us": %d, "hot_p99_us": %d, ' ..
    '"hot_max_us": %d, "hot_bad": %d, "admin_n": %d, "admin_p50_us": %d, "admin_p99_us": %d, ' ..
    '"admin_bad": %d, "per_conn": [%s]}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean, #all_hot, percentile(all_hot, 50), percentile(all_hot, 99),
    percentile(all_hot, 100), bad_hot, #all_admin, percentile(all_admin, 50),
    percentile(all_admin, 99), bad_admin, table.concat(counts, ", ")))
end
