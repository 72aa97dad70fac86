-- wrk script: GET /healthz on the api (the ceiling for replays: the same server, no work per request).
dofile((os.getenv("BENCH_DIR") or "bench") .. "/wrk_report.lua")
wrk.method = "GET"
wrk.path = "/healthz"
