-- wrk script for bench/api_bench.py: POSTs a JSON body with the session cookie and the
-- X-CSRF-Token header, round-robin over BENCH_PATHS, and counts responses whose status is
-- not BENCH_EXPECT. Configured through the environment (api_bench.py sets it):
--   BENCH_PATHS   space-separated request paths (e.g. one per tutoring session)
--   BENCH_BODY    request body (JSON)
--   BENCH_COOKIE  Cookie header value ("" for none)
--   BENCH_CSRF    X-CSRF-Token header value ("" for none)
--   BENCH_UA      User-Agent (the one the login used, so Flask-Login's session check passes)
--   BENCH_EXPECT  the status every response should have (202 for message posts)
-- done() prints one line "BENCH_JSON {...}" that api_bench.py parses.

local paths = {}
for p in string.gmatch(os.getenv("BENCH_PATHS") or "/", "%S+") do
  table.insert(paths, p)
end
local body = os.getenv("BENCH_BODY") or "{}"
local cookie = os.getenv("BENCH_COOKIE") or ""
local csrf = os.getenv("BENCH_CSRF") or ""
local expect = tonumber(os.getenv("BENCH_EXPECT") or "200")

local headers = {
  ["Content-Type"] = "application/json",
  ["User-Agent"] = os.getenv("BENCH_UA") or "api-bench",
}
if cookie ~= "" then headers["Cookie"] = cookie end
if csrf ~= "" then headers["X-CSRF-Token"] = csrf end

-- Pre-format one request per path; request() only picks the next one.
local requests = {}
for i, p in ipairs(paths) do
  requests[i] = wrk.format("POST", p, headers, body)
end

local threads = {}

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  counter = id or 0   -- threads start at different paths
  bad = 0
  codes = {}
end

function request()
  counter = counter + 1
  return requests[(counter % #requests) + 1]
end

function response(status, headers, body)
  if status ~= expect then
    bad = bad + 1
  end
  local k = tostring(status)
  codes[k] = (codes[k] or 0) + 1
end

function done(summary, latency, requests)
  local bad_total = 0
  local merged = {}
  for _, t in ipairs(threads) do
    bad_total = bad_total + (t:get("bad") or 0)
    local c = t:get("codes") or {}
    for k, v in pairs(c) do
      merged[k] = (merged[k] or 0) + v
    end
  end
  local parts = {}
  for k, v in pairs(merged) do
    table.insert(parts, string.format('"%s": %d', k, v))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "unexpected_status": %d, ' ..
    '"codes": {%s}, "socket_errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d, "status": %d}, ' ..
    '"latency_us": {"p50": %d, "p90": %d, "p99": %d, "max": %d, "mean": %.1f}}\n',
    summary.requests, summary.duration, summary.bytes, bad_total, table.concat(parts, ", "),
    e.connect, e.read, e.write, e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
