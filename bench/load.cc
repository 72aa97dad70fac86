// pp_bench_load: the HTTP load generators wrk cannot be (bench/run.sh uses wrk for closed-loop figures).
//
//   pp_bench_load open --url U --api-key K --prefix P --rate R --duration S [--workers 64]
//       Open loop: request i is due at start + i/R whatever happened to earlier ones (wrk2-style), each
//       with a fresh Idempotency-Key "P-i". Latency is measured from the due time, not the send time, so
//       a stalled server shows up as latency instead of silently lowering the offered load (coordinated
//       omission). Workers take the next due request; with all workers busy, requests start late and that
//       lateness counts. Prints one line: sent, ok (201), non201, failed (no response), offered and
//       achieved rates, p50/p99/max latency in ms.
//
//   pp_bench_load seed --url U --api-key K --prefix P --count N [--workers 16]
//       Closed loop: creates keys "P-0" .. "P-(N-1)" once each (used to make completed keys to replay).
//       Exit 1 unless every request got a 201.
//
//   pp_bench_load storm --url U --api-key K --prefix KEY --count N
//       A duplicate storm: N concurrent requests with ONE Idempotency-Key (KEY itself) and the same body.
//       Every request's connection is opened first; then all N are released at once (a barrier) and each
//       writes its whole request and reads its answer. Prints one line: sent, created (201 without
//       Idempotent-Replayed), replayed (201 with it), status_409, other (any other status), failed (no
//       answer: connect, write or read error). Exit 1 if any request failed or got an unexpected status
//       (anything but 201 and 409).
//
// open and seed keep one connection per worker alive (HTTP/1.1 keep-alive, reopened after an error or a
// Connection: close), as a service calling a payment API does and as wrk does for the closed-loop figures;
// `--fresh-connections 1` opens a new connection per request instead (client::HttpTransport, as paypath's
// own retrying client does), which on a 2-core machine costs the api and the load tool a TCP handshake
// and a teardown per charge. storm uses raw sockets, to hold the connections open until the release.
#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "client/http1.h"
#include "client/http_transport.h"
#include "client/socket_io.h"
#include "common/clock.h"

namespace {

using namespace paypath;
using Steady = std::chrono::steady_clock;

// Same body as bench/charge_new.lua and the micro-benchmarks' typical case.
constexpr const char* kBody = R"({"account_id":"acct_42","amount":2500,"currency":"EUR","description":"bench charge"})";

struct Args {
  std::string mode, url, api_key, prefix;
  double rate = 1000, duration_s = 10;
  int workers = 64, count = 1000;
  bool fresh_connections = false;
};

int Usage() {
  std::fprintf(stderr,
               "usage: pp_bench_load open --url U --api-key K --prefix P --rate R --duration S [--workers W]\n"
               "                          [--fresh-connections 1]\n"
               "       pp_bench_load seed --url U --api-key K --prefix P --count N [--workers W]\n"
               "       pp_bench_load storm --url U --api-key K --prefix KEY --count N\n");
  return 2;
}

bool ParseArgs(int argc, char** argv, Args& a) {
  if (argc < 2) return false;
  a.mode = argv[1];
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--url") a.url = v;
    else if (k == "--api-key") a.api_key = v;
    else if (k == "--prefix") a.prefix = v;
    else if (k == "--rate") a.rate = std::atof(v.c_str());
    else if (k == "--duration") a.duration_s = std::atof(v.c_str());
    else if (k == "--workers") a.workers = std::atoi(v.c_str());
    else if (k == "--count") a.count = std::atoi(v.c_str());
    else if (k == "--fresh-connections") a.fresh_connections = v == "1";
    else return false;
  }
  return !a.url.empty() && !a.api_key.empty() && !a.prefix.empty() && a.rate > 0 && a.duration_s > 0 &&
         a.workers > 0 && a.count > 0;
}

client::HttpRequest ChargeRequest(const Args& a, long i) {
  client::HttpRequest r;
  r.method = "POST";
  r.target = "/v1/charges";
  r.headers = {{"Authorization", "Bearer " + a.api_key},
               {"Idempotency-Key", a.prefix + "-" + std::to_string(i)},
               {"Content-Type", "application/json"}};
  r.body = kBody;
  return r;
}

// The bytes of a POST /v1/charges of kBody with Idempotency-Key `key`, for the raw-socket senders (the
// keep-alive workers and the storm); `close` adds Connection: close.
std::string RawChargePost(const client::HttpUrl& url, const Args& a, const std::string& key, bool close) {
  return "POST " + url.base_path + "/v1/charges HTTP/1.1\r\nHost: " + url.host + "\r\nAuthorization: Bearer " +
         a.api_key + "\r\nIdempotency-Key: " + key + "\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(std::strlen(kBody)) + (close ? "\r\nConnection: close" : "") + "\r\n\r\n" + kBody;
}

// One worker's keep-alive connection: reopened when it is closed, fails, or the server asks to close.
class KeepAlive {
 public:
  KeepAlive(const client::HttpUrl& url, Clock& clock) : url_(url), clock_(clock) {}

  // The status of the answer to a POST of the charge with key `key`, or 0 if none came (connect, write or
  // read failure, timeout). A request written on a reused connection that the server had closed meanwhile
  // (no byte of an answer) is sent once more on a fresh connection; the same Idempotency-Key makes that
  // safe (at worst the second answer is a replay, counted as ok: it is a 201).
  int Post(const Args& a, const std::string& key, std::chrono::milliseconds timeout) {
    const auto deadline = Steady::now() + timeout;
    const std::string raw = RawChargePost(url_, a, key, /*close=*/false);
    for (int attempt = 0; attempt < 2; ++attempt) {
      const bool reused = fd_.has_value();
      if (!fd_) {
        auto fd = net::ConnectTcp(url_.host, url_.port, clock_, deadline);
        if (!fd.ok()) return 0;
        fd_.emplace(std::move(fd.value()));
        buf_.clear();
      }
      http1::Parsed msg;
      http1::ReadStatus rs = http1::ReadStatus::kNoData;
      if (net::WriteAll(fd_->get(), raw, clock_, deadline) == net::IoStatus::kOk) {
        rs = http1::ReadMessage(fd_->get(), &buf_, true, "POST", clock_, deadline, &msg);
      }
      if (rs == http1::ReadStatus::kComplete) {
        if (msg.head.WantsClose()) fd_.reset();
        return msg.head.status;
      }
      fd_.reset();
      if (!(reused && rs == http1::ReadStatus::kNoData)) return 0;
    }
    return 0;
  }

 private:
  const client::HttpUrl& url_;
  Clock& clock_;
  std::optional<net::Fd> fd_;
  std::string buf_;
};

struct Tally {
  long ok = 0, non201 = 0, failed = 0;
  std::vector<double> latency_ms;
};

double Percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  size_t k = static_cast<size_t>(p * (v.size() - 1) + 0.5);
  std::nth_element(v.begin(), v.begin() + k, v.end());
  return v[k];
}

int Run(const Args& a, bool open_loop) {
  auto url = client::ParseHttpUrl(a.url);
  if (!url.ok()) {
    std::fprintf(stderr, "pp_bench_load: %s\n", url.error().ToString().c_str());
    return 2;
  }
  client::HttpTransport transport(url.value(), SystemClock::Instance());
  const long total = open_loop ? static_cast<long>(a.rate * a.duration_s) : a.count;
  const auto period = std::chrono::duration<double>(1.0 / a.rate);
  std::atomic<long> next{0};
  std::vector<Tally> tallies(a.workers);
  // Start slightly in the future so every worker is waiting when the first request falls due.
  const auto start = Steady::now() + std::chrono::milliseconds(50);

  std::vector<std::thread> threads;
  for (int w = 0; w < a.workers; ++w) {
    threads.emplace_back([&, w] {
      Tally& t = tallies[w];
      KeepAlive conn(url.value(), SystemClock::Instance());
      for (;;) {
        long i = next.fetch_add(1);
        if (i >= total) return;
        auto due = Steady::now();
        if (open_loop) {
          due = start + std::chrono::duration_cast<Steady::duration>(period * static_cast<double>(i));
          std::this_thread::sleep_until(due);
        }
        int status;
        if (a.fresh_connections) {
          client::Exchange ex = transport.RoundTrip(ChargeRequest(a, i), std::chrono::milliseconds(10000));
          status = ex.kind == client::Exchange::Kind::kResponse ? ex.response.status : 0;
        } else {
          status = conn.Post(a, a.prefix + "-" + std::to_string(i), std::chrono::milliseconds(10000));
        }
        double ms = std::chrono::duration<double, std::milli>(Steady::now() - due).count();
        if (status == 0) {
          t.failed++;
        } else if (status == 201) {
          t.ok++;
          t.latency_ms.push_back(ms);
        } else {
          t.non201++;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  double secs = std::chrono::duration<double>(Steady::now() - start).count();

  Tally all;
  for (auto& t : tallies) {
    all.ok += t.ok;
    all.non201 += t.non201;
    all.failed += t.failed;
    all.latency_ms.insert(all.latency_ms.end(), t.latency_ms.begin(), t.latency_ms.end());
  }
  double p50 = Percentile(all.latency_ms, 0.50), p99 = Percentile(all.latency_ms, 0.99);
  double mx = all.latency_ms.empty() ? 0 : *std::max_element(all.latency_ms.begin(), all.latency_ms.end());
  std::printf("sent=%ld ok=%ld non201=%ld failed=%ld seconds=%.3f offered_rate=%.1f achieved_rate=%.1f "
              "p50_ms=%.3f p99_ms=%.3f max_ms=%.3f\n",
              total, all.ok, all.non201, all.failed, secs, open_loop ? a.rate : 0.0, all.ok / secs, p50, p99, mx);
  return (all.non201 == 0 && all.failed == 0) ? 0 : 1;
}

// The storm: one thread and one open connection per request, all released together.
int Storm(const Args& a) {
  auto url = client::ParseHttpUrl(a.url);
  if (!url.ok()) {
    std::fprintf(stderr, "pp_bench_load: %s\n", url.error().ToString().c_str());
    return 2;
  }
  Clock& clock = SystemClock::Instance();
  const std::string raw = RawChargePost(url.value(), a, a.prefix, /*close=*/true);
  std::atomic<int> created{0}, replayed{0}, conflict{0}, other{0}, failed{0};
  std::barrier release(a.count);
  std::vector<std::thread> threads;
  for (int i = 0; i < a.count; ++i) {
    threads.emplace_back([&] {
      auto fd = net::ConnectTcp(url->host, url->port, clock, Steady::now() + std::chrono::seconds(10));
      release.arrive_and_wait();  // every connection is open (or failed) before any request is sent
      if (!fd.ok()) {
        failed++;
        return;
      }
      const auto deadline = Steady::now() + std::chrono::seconds(10);
      if (net::WriteAll(fd->get(), raw, clock, deadline) != net::IoStatus::kOk) {
        failed++;
        return;
      }
      std::string buf;
      http1::Parsed msg;
      if (http1::ReadMessage(fd->get(), &buf, true, "POST", clock, deadline, &msg) != http1::ReadStatus::kComplete) {
        failed++;
        return;
      }
      if (msg.head.status == 201 && !msg.head.Get("Idempotent-Replayed")) created++;
      else if (msg.head.status == 201) replayed++;
      else if (msg.head.status == 409) conflict++;
      else other++;
    });
  }
  for (auto& th : threads) th.join();
  std::printf("sent=%d created=%d replayed=%d status_409=%d other=%d failed=%d\n", a.count, created.load(),
              replayed.load(), conflict.load(), other.load(), failed.load());
  return (other == 0 && failed == 0) ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  if (!ParseArgs(argc, argv, a)) return Usage();
  if (a.mode == "open") return Run(a, true);
  if (a.mode == "seed") return Run(a, false);
  if (a.mode == "storm") return Storm(a);
  return Usage();
}
