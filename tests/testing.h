// Helpers shared by the integration suites. The servers are the real ones started by scripts/stack
// (make test exports their settings); a suite that cannot reach them fails, it does not skip.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace paypath::testing {

// Settings from the environment (scripts/stack env); abort with a clear message when unset.
std::string PgUrl();      // PAYPATH_PG_URL
std::string RedisUrl();   // PAYPATH_REDIS_URL
// One AMQP URL per broker role (docs/design.md "Who may do what"). Tests create and delete their private
// queues with the admin's; a worker under test gets its own role's.
std::string RelayAmqpUrl();     // PAYPATH_RELAY_AMQP_URL: publish to paypath.events only
std::string ConsumerAmqpUrl();  // PAYPATH_CONSUMER_AMQP_URL: read the ledger queues
std::string OperatorAmqpUrl();  // PAYPATH_OPERATOR_AMQP_URL: read the DLQs
std::string AdminAmqpUrl();     // PAYPATH_ADMIN_AMQP_URL: declare and delete (set-up and tests only)
std::string RedisAdminUrl();    // PAYPATH_REDIS_ADMIN_URL: Redis' default user (FLUSHALL and friends)
std::string StackScript();  // PAYPATH_STACK: path of scripts/stack, for stopping/starting one server
std::string PaypathBinary();  // the built paypath executable

// Drops and re-creates database `name` on the stack's server, applies the schema, and returns its URL.
// Each suite uses its own database so suites can run in parallel.
std::string FreshDatabase(const std::string& name);

// The same for a ledger database: drops and re-creates `name`, applies sql/ledger_schema.sql, returns its URL.
std::string FreshLedgerDatabase(const std::string& name);

// Polls cond every `poll` until it returns true or `deadline` passes; returns the last result.
bool WaitUntil(const std::function<bool()>& cond, std::chrono::milliseconds deadline,
               std::chrono::milliseconds poll = std::chrono::milliseconds(20));

// Runs a shell command; returns its exit status (as from system()) and fills *output with stdout+stderr.
int RunShell(const std::string& cmd, std::string* output = nullptr);

// A child process started with extra environment variables; killed (SIGKILL) on destruction if running.
class Child {
 public:
  Child(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
        const std::string& log_path = "/dev/null");
  ~Child();
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  int pid() const { return pid_; }
  // Waits up to `deadline` for the child to exit. Returns true if it exited; *status gets the wait status.
  bool Wait(std::chrono::milliseconds deadline, int* status = nullptr);
  void Kill(int sig);
  bool running();

 private:
  int pid_ = -1;
  bool reaped_ = false;
  int status_ = 0;
};

// One scalar from a psql-free query run through libpq: first column of first row, "" if no rows.
std::string QueryScalar(const std::string& url, const std::string& sql);

// Ends every session of `application_name` on the database of `url` (pg_terminate_backend) and waits until
// each backend process has exited (or is a zombie, its descriptors closed): leaving pg_stat_activity is not
// enough, a backend leaves it before its socket closes, and a statement sent in between meets a live socket
// that dies under it. The server runs on this host. Returns how many sessions ended, -1 if they did not
// exit within `deadline`.
int TerminateSessions(const std::string& url, const std::string& application_name,
                      std::chrono::milliseconds deadline = std::chrono::seconds(5));

}  // namespace paypath::testing

namespace paypath::testing {

// A raw HTTP/1.1 exchange over a fresh loopback connection, for tests that need byte-level control.
struct RawResponse {
  int status = 0;                             // 0: no (complete) response before close or timeout
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  bool timed_out = false;
};

// Sends `raw` to 127.0.0.1:port and reads one response (Content-Length framed) or until close/timeout.
RawResponse RawHttp(uint16_t port, const std::string& raw, std::chrono::milliseconds timeout = std::chrono::seconds(10));

// Builds "METHOD target HTTP/1.1" with Host, Content-Length (when body or POST), Connection: close and the
// given headers.
std::string BuildRequest(const std::string& method, const std::string& target,
                         const std::vector<std::pair<std::string, std::string>>& headers, const std::string& body = "");

}  // namespace paypath::testing
