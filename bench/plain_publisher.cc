// pp_bench_mq: the broker-side ceiling for the relay benchmark, and queue housekeeping for bench/run.sh.
//
//   pp_bench_mq publish --queue Q [--count 20000] [--window 100]
//       A plain publisher-confirms loop: publish `window` messages, wait for all their confirms, repeat,
//       until `count` are confirmed. Same broker, same topology (a quorum queue declared beforehand by
//       `paypath broker declare`), same user (the relay's, PAYPATH_RELAY_AMQP_URL), same client code
//       (amqp::Connection), same exchange and routing key, same message shape as the relay (persistent,
//       mandatory, message_id, type, timestamp, four string headers, a ChargePayload-sized body) and the
//       same window (the relay's --batch, 100 by default). What it leaves out is exactly the relay's own
//       work: the PostgreSQL claim (SELECT ... FOR UPDATE SKIP LOCKED) and mark (UPDATE) around each
//       window. Prints one line: "published=N seconds=S rate=R".
//
//   pp_bench_mq depth --queue Q      prints the ready-message count of Q (a passive declare, as the relay)
//
// URLs come from the environment, never the command line (they hold passwords). Clean-up is
// `paypath broker delete`. Exit status: 0 on success, 1 on a broker error (message on stderr), 2 on bad
// arguments.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "common/random.h"
#include "broker/amqp.h"
#include "broker/topology.h"

namespace {

using namespace paypath;

struct Args {
  std::string mode;
  std::string url;
  std::string queue;
  int count = 20000;
  int window = 100;
};

int Usage() {
  std::fprintf(stderr,
               "usage: pp_bench_mq publish|depth --queue Q [--count N] [--window W] (PAYPATH_RELAY_AMQP_URL set)\n");
  return 2;
}

bool ParseArgs(int argc, char** argv, Args& a) {
  if (argc < 2) return false;
  a.mode = argv[1];
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--queue") a.queue = v;
    else if (k == "--count") a.count = std::atoi(v.c_str());
    else if (k == "--window") a.window = std::atoi(v.c_str());
    else return false;
  }
  const char* url = std::getenv("PAYPATH_RELAY_AMQP_URL");
  if (url != nullptr) a.url = url;
  return !a.url.empty() && !a.queue.empty() && a.count > 0 && a.window > 0;
}

int Fail(const std::string& what, const Error& e) {
  std::fprintf(stderr, "pp_bench_mq: %s: %s\n", what.c_str(), e.ToString().c_str());
  return 1;
}

// A body shaped like api::ChargePayload (src/api/charges.cc): the relay publishes outbox.payload::text,
// i.e. the jsonb rendering of that object, about 190 bytes.
std::string Payload(const std::string& charge_id) {
  return "{\"tenant\": \"tenant_a\", \"amount\": 2500, \"currency\": \"EUR\", \"charge_id\": \"" + charge_id +
         "\", \"account_id\": \"acct_42\", \"created_at\": \"2025-01-01T00:00:00.000000Z\"}";
}

int Publish(const Args& a) {
  amqp::Settings s;
  s.url = a.url;
  auto conn = amqp::Connection::Open(s);
  if (!conn.ok()) return Fail("connect", conn.error());
  amqp::Connection& c = *conn.value();
  amqp::Topology t;
  t.queue = a.queue;
  Status st = amqp::VerifyTopology(c, t);
  if (!st.ok()) return Fail("verify", st.error());
  conn = amqp::Connection::Open(s);  // a fresh channel, as the relay has after its verification
  if (!conn.ok()) return Fail("connect", conn.error());
  amqp::Connection& p = *conn.value();
  st = p.EnableConfirms();
  if (!st.ok()) return Fail("confirm.select", st.error());

  // Messages are built before the clock starts: the relay gets its rows from PostgreSQL, which is part of
  // what it is measured on; building strings here is not part of the broker's ceiling.
  Random& rnd = SystemRandom::Instance();
  std::vector<amqp::Message> msgs(a.count);
  for (int i = 0; i < a.count; ++i) {
    std::string charge_id = "ch_" + rnd.Hex128();
    amqp::Message& m = msgs[i];
    m.message_id = rnd.Uuid4();
    m.type = "charge.succeeded";
    m.body = Payload(charge_id);
    m.timestamp = 1735689600;
    m.headers = {{"outbox_id", std::to_string(i + 1)},
                 {"tenant", "tenant_a"},
                 {"charge_id", charge_id},
                 {"event_type", m.type}};
  }

  int confirmed = 0, failed = 0;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < a.count;) {
    int n = std::min(a.window, a.count - i);
    for (int j = 0; j < n; ++j) {
      auto tag = p.Publish(t.exchange(), a.queue, msgs[i + j]);
      if (!tag.ok()) return Fail("publish", tag.error());
    }
    auto conf = p.WaitForConfirms(std::chrono::milliseconds(5000));
    if (!conf.ok()) return Fail("confirms", conf.error());
    failed += static_cast<int>(conf->failed.size());
    confirmed += n - static_cast<int>(conf->failed.size());
    i += n;
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("published=%d failed=%d seconds=%.4f rate=%.1f\n", confirmed, failed, secs, confirmed / secs);
  return failed == 0 ? 0 : 1;
}

int Depth(const Args& a) {
  amqp::Settings s;
  s.url = a.url;
  auto conn = amqp::Connection::Open(s);
  if (!conn.ok()) return Fail("connect", conn.error());
  auto d = conn.value()->QueueDepth(a.queue);
  if (!d.ok()) return Fail("depth", d.error());
  std::printf("%u\n", *d);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  if (!ParseArgs(argc, argv, a)) return Usage();
  if (a.mode == "publish") return Publish(a);
  if (a.mode == "depth") return Depth(a);
  return Usage();
}
