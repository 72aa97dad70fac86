// Micro-benchmarks of the pure functions on the POST /v1/charges hot path (src/api/validation.h): every
// request runs key validation, body parsing (which computes the canonical body) and the fingerprint
// before it touches Redis or PostgreSQL. These numbers say how much of a request's CPU budget that is:
// at the ~2,000 charges/s the 2-core bench machine sustains, a request has ~1 ms of CPU in total.
//
// Run: build-dir/bench/pp_micro_bench [--benchmark_min_time=0.05]   (bench/run.sh runs it for results.md)
#include <benchmark/benchmark.h>

#include <string>
#include <variant>

#include "api/validation.h"

namespace paypath::api {
namespace {

// The body the bench load generators post (bench/charge_new.lua, bench/load.cc): the common case.
constexpr const char* kTypicalBody =
    R"({"account_id":"acct_42","amount":2500,"currency":"EUR","description":"bench charge"})";

// Same fields, keys out of order and whitespace: canonicalisation has work to do.
constexpr const char* kUnorderedBody =
    R"({ "description" : "bench charge", "currency" : "EUR", "amount" : 2500, "account_id" : "acct_42" })";

// The largest body a client may send: a 500-character description with escapes and multi-byte UTF-8.
std::string LargeBody() {
  std::string d;
  while (d.size() < 480) d += "caf\xc3\xa9 \\\"q\\\" ";
  return R"({"account_id":"acct_42","amount":2500,"currency":"EUR","description":")" + d + R"("})";
}

void BM_ParseIdempotencyKey_Uuid(benchmark::State& state) {
  const std::string key = "3f2a9c1e-8b4d-4e6f-a1b2-c3d4e5f60718";
  for (auto _ : state) benchmark::DoNotOptimize(ParseIdempotencyKey(key));
}
BENCHMARK(BM_ParseIdempotencyKey_Uuid);

void BM_ParseIdempotencyKey_Max255(benchmark::State& state) {
  const std::string key(255, 'k');
  for (auto _ : state) benchmark::DoNotOptimize(ParseIdempotencyKey(key));
}
BENCHMARK(BM_ParseIdempotencyKey_Max255);

void BM_ParseIdempotencyKey_QuotedSfString(benchmark::State& state) {
  const std::string key = R"("order-42-\"retry\"-\\x")";
  for (auto _ : state) benchmark::DoNotOptimize(ParseIdempotencyKey(key));
}
BENCHMARK(BM_ParseIdempotencyKey_QuotedSfString);

void BM_ParseIdempotencyKey_Invalid(benchmark::State& state) {
  const std::string key = "has a space";
  for (auto _ : state) benchmark::DoNotOptimize(ParseIdempotencyKey(key));
}
BENCHMARK(BM_ParseIdempotencyKey_Invalid);

void BM_CanonicalJson_Typical(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(CanonicalJson(kTypicalBody));
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(std::string_view(kTypicalBody).size()));
}
BENCHMARK(BM_CanonicalJson_Typical);

void BM_CanonicalJson_Unordered(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(CanonicalJson(kUnorderedBody));
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(std::string_view(kUnorderedBody).size()));
}
BENCHMARK(BM_CanonicalJson_Unordered);

void BM_CanonicalJson_Large(benchmark::State& state) {
  const std::string body = LargeBody();
  for (auto _ : state) benchmark::DoNotOptimize(CanonicalJson(body));
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(body.size()));
}
BENCHMARK(BM_CanonicalJson_Large);

void BM_Fingerprint_Typical(benchmark::State& state) {
  const std::string canonical = CanonicalJson(kTypicalBody).value();
  for (auto _ : state) benchmark::DoNotOptimize(Fingerprint("POST", "/v1/charges", canonical));
}
BENCHMARK(BM_Fingerprint_Typical);

void BM_Fingerprint_Large(benchmark::State& state) {
  const std::string canonical = CanonicalJson(LargeBody()).value();
  for (auto _ : state) benchmark::DoNotOptimize(Fingerprint("POST", "/v1/charges", canonical));
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(canonical.size()));
}
BENCHMARK(BM_Fingerprint_Large);

void BM_ParseChargeRequest_Typical(benchmark::State& state) {
  for (auto _ : state) {
    auto r = ParseChargeRequest(kTypicalBody);
    if (!std::holds_alternative<ChargeRequest>(r)) state.SkipWithError("typical body rejected");
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_ParseChargeRequest_Typical);

void BM_ParseChargeRequest_Large(benchmark::State& state) {
  const std::string body = LargeBody();
  for (auto _ : state) {
    auto r = ParseChargeRequest(body);
    if (!std::holds_alternative<ChargeRequest>(r)) state.SkipWithError("large body rejected");
    benchmark::DoNotOptimize(r);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(body.size()));
}
BENCHMARK(BM_ParseChargeRequest_Large);

void BM_ParseChargeRequest_UnknownField(benchmark::State& state) {
  const std::string body = R"({"account_id":"acct_42","amount":2500,"currency":"EUR","colour":"red"})";
  for (auto _ : state) benchmark::DoNotOptimize(ParseChargeRequest(body));
}
BENCHMARK(BM_ParseChargeRequest_UnknownField);

// Everything the handler computes before its first I/O: key, body, canonical form, fingerprint.
void BM_ValidateAndFingerprint_Typical(benchmark::State& state) {
  const std::string key = "3f2a9c1e-8b4d-4e6f-a1b2-c3d4e5f60718";
  for (auto _ : state) {
    auto k = ParseIdempotencyKey(key);
    auto r = ParseChargeRequest(kTypicalBody);
    benchmark::DoNotOptimize(k);
    benchmark::DoNotOptimize(Fingerprint("POST", "/v1/charges", std::get<ChargeRequest>(r).canonical_body));
  }
}
BENCHMARK(BM_ValidateAndFingerprint_Typical);

}  // namespace
}  // namespace paypath::api

BENCHMARK_MAIN();
