// `paypath prove` is a tool that drops and creates databases and starts processes: it must refuse names it
// could misuse, never build a shell command or SQL from its flags, and never put a secret on a command line.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "testing.h"

namespace paypath::testing {
namespace {

int ExitCode(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : -1; }

std::string Quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

bool DatabaseExists(const std::string& name) {
  return QueryScalar(PgUrl(), "SELECT count(*) FROM pg_database WHERE datname = '" + name + "'") == "1";
}

TEST(ProveSafety, RefusesADatabaseNameThatIsNotAPlainProveIdentifier) {
  ASSERT_TRUE(DatabaseExists("paypath"));
  for (const std::string& bad : {std::string("x; DROP DATABASE paypath"), std::string("paypath"),
                                 std::string("paypath_prove; DROP DATABASE paypath"), std::string("paypath_prove\"x"),
                                 std::string("Paypath_prove_upper"), std::string("")}) {
    std::string out;
    int st = RunShell(PaypathBinary() + " prove --operations 1 --database " + Quote(bad), &out);
    EXPECT_EQ(ExitCode(st), 2) << bad << ":\n" << out;
    EXPECT_NE(out.find("--database"), std::string::npos) << "the refusal does not name the flag: " << out;
    EXPECT_TRUE(DatabaseExists("paypath")) << "--database " << bad << " dropped the real database";
  }
}

// A database that is not the run's own is never dropped, whatever it is called.
TEST(ProveSafety, NeverDropsADatabaseOutsideItsPrefix) {
  const std::string sentinel = "pp_prove_sentinel";
  std::string url = FreshDatabase(sentinel);
  ASSERT_EQ(QueryScalar(url, "CREATE TABLE marker (x int)"), "");
  std::string out;
  int st = RunShell(PaypathBinary() + " prove --operations 1 --concurrency 1 --no-relay-crash --no-consumer-crash "
                    "--database " + sentinel + " --report /tmp/pp-prove-safety-sentinel", &out);
  EXPECT_EQ(ExitCode(st), 2) << out;
  EXPECT_EQ(QueryScalar(url, "SELECT count(*) FROM pg_tables WHERE tablename = 'marker'"), "1")
      << "prove dropped and re-created " << sentinel;
}

// The report folder is made with std::filesystem: shell syntax in its name is just a name.
TEST(ProveSafety, ReportFolderNameIsNotRunThroughAShell) {
  const std::string marker = "/tmp/pp-prove-safety-injected-" + std::to_string(::getpid());
  std::filesystem::remove(marker);
  const std::string report = "/tmp/pp-prove-safety-report-" + std::to_string(::getpid()) + "'; touch " + marker + "; '";
  std::string out;
  // An invalid database name stops the run right after the report folder is set up.
  (void)RunShell(PaypathBinary() + " prove --operations 1 --database 'not allowed' --report " + Quote(report), &out);
  EXPECT_FALSE(std::filesystem::exists(marker)) << "the report name ran as a shell command";
  std::filesystem::remove_all(report);
  std::filesystem::remove(marker);
}

// Every secret the run was given: API keys and the passwords inside the URLs of its environment.
std::set<std::string> Secrets() {
  std::set<std::string> out;
  for (char** e = environ; *e; ++e) {
    std::string kv = *e;
    if (kv.rfind("PAYPATH_", 0) != 0) continue;
    std::string v = kv.substr(kv.find('=') + 1);
    if (kv.rfind("PAYPATH_API_KEYS=", 0) == 0) {
      std::stringstream ss(v);
      std::string pair;
      while (std::getline(ss, pair, ',')) out.insert(pair.substr(0, pair.find(':')));
      continue;
    }
    for (size_t p = v.find("://"); p != std::string::npos; p = v.find("://", p + 3)) {
      size_t at = v.find('@', p), colon = v.find(':', p + 3);
      if (at != std::string::npos && colon != std::string::npos && colon < at) out.insert(v.substr(colon + 1, at - colon - 1));
    }
  }
  return out;
}

std::vector<int> ChildrenOf(int parent) {
  std::vector<int> kids;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(entry.path() / "stat");
    std::string line;
    std::getline(stat, line);
    size_t close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 2));
    std::string state;
    int ppid = 0;
    rest >> state >> ppid;
    if (ppid == parent) kids.push_back(std::stoi(name));
  }
  return kids;
}

std::string Cmdline(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline");
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (char& c : s)
    if (c == '\0') c = ' ';
  return s;
}

TEST(ProveSafety, ChildrenGetTheirSecretsThroughTheEnvironmentNotTheirArguments) {
  std::set<std::string> secrets = Secrets();
  ASSERT_FALSE(secrets.empty());
  std::filesystem::remove("/tmp/pp-prove-safety.log");
  Child prove({PaypathBinary(), "prove", "--operations", "400", "--concurrency", "2", "--no-relay-crash",
               "--no-consumer-crash", "--database", "paypath_prove_safety", "--report", "/tmp/pp-prove-safety-report"},
              {}, "/tmp/pp-prove-safety.log");
  // api, proxy, relay and consumer: wait until all four run.
  std::map<int, std::string> seen;
  bool four = WaitUntil(
      [&] {
        for (int pid : ChildrenOf(prove.pid())) {
          std::string cmd = Cmdline(pid);
          if (cmd.find(" api ") != std::string::npos || cmd.find(" proxy ") != std::string::npos ||
              cmd.find(" relay ") != std::string::npos || cmd.find(" consumer ") != std::string::npos)
            seen[pid] = cmd;
        }
        return seen.size() >= 4;
      },
      std::chrono::seconds(60), std::chrono::milliseconds(50));
  prove.Kill(SIGTERM);
  EXPECT_TRUE(prove.Wait(std::chrono::seconds(30)));
  // An interrupted run keeps its queues (for inspection); this one is of no interest.
  std::string log, queue;
  RunShell("grep -o '\"msg\":\"prove_queue_declared\",\"queue\":\"[^\"]*' /tmp/pp-prove-safety.log", &log);
  if (size_t q = log.rfind('"'); q != std::string::npos) queue = log.substr(q + 1);
  while (!queue.empty() && (queue.back() == '\n' || queue.back() == '\r')) queue.pop_back();
  if (!queue.empty()) {
    EXPECT_EQ(RunShell(PaypathBinary() + " broker delete --queue " + queue), 0) << queue;
  }
  ASSERT_TRUE(four) << "saw " << seen.size() << " of the run's 4 children; see /tmp/pp-prove-safety.log";
  for (const auto& [pid, cmd] : seen) {
    for (const auto& secret : secrets) EXPECT_EQ(cmd.find(secret), std::string::npos) << "a secret in: " << cmd;
    // No URL with user info (user@ or user:password@) and no connection string at all.
    EXPECT_EQ(cmd.find("postgresql://"), std::string::npos) << cmd;
    EXPECT_EQ(cmd.find("amqp://"), std::string::npos) << cmd;
    EXPECT_EQ(cmd.find("redis://"), std::string::npos) << cmd;
  }
}

}  // namespace
}  // namespace paypath::testing
