-- Shared by the bench/*.lua wrk scripts (loaded with dofile): prints one machine-readable line that
-- bench/run.sh parses. wrk's own summary is printed too, for humans.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d rps=%.1f non2xx=%d connect_err=%d read_err=%d write_err=%d timeouts=%d " ..
    "p50_ms=%.3f p99_ms=%.3f max_ms=%.3f\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6), e.status, e.connect, e.read,
    e.write, e.timeout, latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
