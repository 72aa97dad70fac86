-- wrk script: POST /v1/charges with a fresh Idempotency-Key on every request (the "new charges" figure).
-- Keys are "<BENCH_NONCE>-<thread>-<n>": unique within a run, and the nonce makes them unique across runs.
-- The body is the same for every request (bench/charge_tx.sql assumes so for its fingerprint).
-- Env: BENCH_NONCE, BENCH_API_KEY (default sk_test_tenant_a), BENCH_DIR (this directory, for wrk_report.lua).
dofile((os.getenv("BENCH_DIR") or "bench") .. "/wrk_report.lua")

local nonce = os.getenv("BENCH_NONCE") or tostring(os.time())
local auth = "Bearer " .. (os.getenv("BENCH_API_KEY") or "sk_test_tenant_a")
local body = '{"account_id":"acct_42","amount":2500,"currency":"EUR","description":"bench charge"}'

local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

local n = 0
function request()
  n = n + 1
  return wrk.format("POST", "/v1/charges", {
    ["Authorization"] = auth,
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = string.format("%s-%d-%d", nonce, tid, n),
  }, body)
end
