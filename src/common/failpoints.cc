#include "common/failpoints.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>

#include "common/log.h"

namespace paypath::failpoints {
namespace {

enum class Action { kCrash, kError, kDelay };

struct Point {
  Action action = Action::kError;
  int delay_ms = 0;
  int nth = 0;             // 0: every hit
  double probability = 1;  // 1: always
  uint64_t seed = 1;
  std::mt19937_64 rng;
  int hits = 0;
  int fired = 0;
};

std::atomic<bool> g_any{false};
std::mutex g_mu;
std::map<std::string, Point, std::less<>> g_points;  // protected by g_mu

std::string_view Trim(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return s;
}

Result<Point> ParseAction(std::string_view a) {
  Point p;
  size_t mod = a.find_first_of("@%#");
  std::string_view head = a.substr(0, mod);
  std::string_view mods = mod == std::string_view::npos ? std::string_view() : a.substr(mod);
  if (head == "crash") {
    p.action = Action::kCrash;
  } else if (head == "error") {
    p.action = Action::kError;
  } else if (head.starts_with("delay(") && head.ends_with(")")) {
    p.action = Action::kDelay;
    std::string_view ms = head.substr(6, head.size() - 7);
    auto r = std::from_chars(ms.data(), ms.data() + ms.size(), p.delay_ms);
    if (r.ec != std::errc() || r.ptr != ms.data() + ms.size() || p.delay_ms < 0)
      return Error::InvalidArgument("bad delay in '" + std::string(a) + "'");
  } else {
    return Error::InvalidArgument("unknown action '" + std::string(head) + "' (crash, error, delay(ms))");
  }
  while (!mods.empty()) {
    char kind = mods[0];
    mods.remove_prefix(1);
    size_t end = mods.find_first_of("@%#");
    std::string arg(mods.substr(0, end));
    mods = end == std::string_view::npos ? std::string_view() : mods.substr(end);
    char* endp = nullptr;
    if (kind == '@') {
      long n = std::strtol(arg.c_str(), &endp, 10);
      if (*endp || n < 1) return Error::InvalidArgument("bad @N in '" + std::string(a) + "'");
      p.nth = static_cast<int>(n);
    } else if (kind == '%') {
      double prob = std::strtod(arg.c_str(), &endp);
      if (*endp || prob < 0 || prob > 1) return Error::InvalidArgument("bad %P in '" + std::string(a) + "'");
      p.probability = prob;
    } else {
      unsigned long long s = std::strtoull(arg.c_str(), &endp, 10);
      if (*endp || arg.empty()) return Error::InvalidArgument("bad #SEED in '" + std::string(a) + "'");
      p.seed = s;
    }
  }
  p.rng.seed(p.seed);
  return p;
}

}  // namespace

Status Configure(std::string_view spec) {
  std::map<std::string, Point, std::less<>> points;
  while (!spec.empty()) {
    size_t comma = spec.find(',');
    std::string_view item = Trim(spec.substr(0, comma));
    spec = comma == std::string_view::npos ? std::string_view() : spec.substr(comma + 1);
    if (item.empty()) continue;
    size_t eq = item.find('=');
    if (eq == std::string_view::npos || eq == 0)
      return Error::InvalidArgument("failpoint '" + std::string(item) + "' is not name=action");
    auto p = ParseAction(Trim(item.substr(eq + 1)));
    if (!p.ok()) return p.error();
    points[std::string(Trim(item.substr(0, eq)))] = std::move(p.value());
  }
  std::lock_guard lock(g_mu);
  g_points = std::move(points);
  g_any.store(!g_points.empty());
  return OkStatus();
}

Status ConfigureFromEnv() {
  const char* env = std::getenv("PAYPATH_FAILPOINTS");
  if (env == nullptr) return OkStatus();
  return Configure(env);
}

bool Hit(std::string_view name) {
  if (!g_any.load(std::memory_order_relaxed)) return false;
  Action action;
  int delay_ms = 0;
  {
    std::lock_guard lock(g_mu);
    auto it = g_points.find(name);
    if (it == g_points.end()) return false;
    Point& p = it->second;
    p.hits++;
    if (p.nth != 0 && p.hits != p.nth) return false;
    if (p.probability < 1) {
      double u = std::uniform_real_distribution<double>(0, 1)(p.rng);
      if (u >= p.probability) return false;
    }
    p.fired++;
    action = p.action;
    delay_ms = p.delay_ms;
    log::Warn("failpoint_fired", {{"failpoint", name},
                                  {"action", action == Action::kCrash ? "crash" : action == Action::kError ? "error" : "delay"},
                                  {"hit", p.hits},
                                  {"seed", static_cast<int64_t>(p.seed)}});
  }
  switch (action) {
    case Action::kCrash:
      ::kill(::getpid(), SIGKILL);
      std::_Exit(137);  // unreachable unless SIGKILL is somehow blocked
    case Action::kDelay:
      // A failpoint delay simulates slowness; it is not synchronization and has no clock to inject.
      std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
      return false;
    case Action::kError:
      return true;
  }
  return false;
}

int FiredCount(std::string_view name) {
  std::lock_guard lock(g_mu);
  auto it = g_points.find(name);
  return it == g_points.end() ? 0 : it->second.fired;
}

}  // namespace paypath::failpoints
