-- wrk script: replays of completed keys (the "replays" figure). Keys "<BENCH_REPLAY_PREFIX>-<i>" for
-- i in [0, BENCH_REPLAY_KEYS) were created beforehand (pp_bench_load seed), with this exact body, so every
-- request is answered from the hot tier with the stored 201 and Idempotent-Replayed: true.
-- The requests are formatted once per wrk thread (init) and picked at random per request: /healthz, the
-- ceiling, is wrk's one static request, and formatting a request per call in Lua would spend the shared
-- cores on the load generator instead of the api.
-- Env: BENCH_REPLAY_PREFIX, BENCH_REPLAY_KEYS, BENCH_API_KEY, BENCH_DIR.
dofile((os.getenv("BENCH_DIR") or "bench") .. "/wrk_report.lua")

local prefix = os.getenv("BENCH_REPLAY_PREFIX")
local keys = tonumber(os.getenv("BENCH_REPLAY_KEYS") or "1000")
local auth = "Bearer " .. (os.getenv("BENCH_API_KEY") or "sk_test_tenant_a")
local body = '{"account_id":"acct_42","amount":2500,"currency":"EUR","description":"bench charge"}'

local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

local requests = {}
function init(args)
  math.randomseed(tid * 7919)
  for i = 0, keys - 1 do
    requests[i] = wrk.format("POST", "/v1/charges", {
      ["Authorization"] = auth,
      ["Content-Type"] = "application/json",
      ["Idempotency-Key"] = string.format("%s-%d", prefix, i),
    }, body)
  end
end

function request()
  return requests[math.random(0, keys - 1)]
end
