// The only translation unit that includes Boost.Beast (it costs ~20 s to compile on 2 cores).
#include "http/server.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "common/log.h"
#include "common/metrics.h"
#include "http/metrics_server.h"

namespace paypath::http {
namespace {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

// A refused connection gets its 503 and its lingering close within this long, then is cut: a client that
// does not read cannot hold the descriptor.
constexpr std::chrono::milliseconds kRefusalDeadline{1000};
// At most this many refusals in flight; beyond it a connection over the limit is closed without a word.
// 256 keeps the descriptors refusals can hold small against fd_reserve (512) even in a connection storm.
constexpr int kMaxRefusals = 256;
// Accept backoff after a resource error: 10 ms is ~1000 times an accept() (so a failing loop stops
// burning CPU at once); doubling to 1 s means a freed descriptor is used within a second.
constexpr std::chrono::milliseconds kAcceptBackoffFirst{10};
constexpr std::chrono::milliseconds kAcceptBackoffMax{1000};

std::string ProblemBody(int status, const char* slug, const char* title, const std::string& detail) {
  std::string b = "{\"type\":\"/problems/";
  b += slug;
  b += "\",\"title\":\"";
  b += title;
  b += "\",\"status\":" + std::to_string(status) + ",\"detail\":\"";
  b += detail;
  b += "\"}";
  return b;
}

// The whole response to a connection over the limit. One second: connections free up as requests finish
// (milliseconds) and idle ones time out, so a client retrying after 1 s usually finds room.
const std::string& RefusalResponse() {
  static const std::string r = [] {
    std::string body = ProblemBody(503, "too-many-connections", "Too many connections",
                                   "the server is at its connection limit; retry later");
    return "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/problem+json\r\nRetry-After: 1\r\n"
           "Connection: close\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\n\r\n" + body;
  }();
  return r;
}

const char* AcceptErrorName(int e) {
  switch (e) {
    case EMFILE: return "EMFILE";
    case ENFILE: return "ENFILE";
    case ENOBUFS: return "ENOBUFS";
    case ENOMEM: return "ENOMEM";
    default: return "other";
  }
}

struct ListenerMetrics {
  explicit ListenerMetrics(const std::string& name)
      : open(R().GetGauge("paypath_http_connections_open", "Open HTTP connections being served, by listener",
                          {{"listener", name}})),
        max(R().GetGauge("paypath_http_max_connections", "Configured maximum of open HTTP connections, by listener",
                         {{"listener", name}})),
        rejected_max(Rejected(name, "max_connections")),
        rejected_fd(Rejected(name, "fd_limit")) {
    for (int e : {EMFILE, ENFILE, ENOBUFS, ENOMEM, 0}) AcceptErrors(name, e);  // every series from the start
  }
  static metrics::Registry& R() { return metrics::Registry::Default(); }
  static metrics::Counter& Rejected(const std::string& name, const char* reason) {
    return R().GetCounter("paypath_http_connections_rejected_total",
                          "New HTTP connections refused with 503 and closed: over max_connections, or out of "
                          "file descriptors (fd_limit)",
                          {{"listener", name}, {"reason", reason}});
  }
  static metrics::Counter& AcceptErrors(const std::string& name, int e) {
    return R().GetCounter("paypath_http_accept_errors_total", "accept() failures by errno, by listener",
                          {{"listener", name}, {"error", AcceptErrorName(e)}});
  }
  metrics::Gauge& open;
  metrics::Gauge& max;
  metrics::Counter& rejected_max;
  metrics::Counter& rejected_fd;
};

// Holds one unit of a counter for its lifetime (an open connection, a refusal in flight).
class Slot {
 public:
  Slot(std::atomic<int>& n, metrics::Gauge* gauge) : n_(&n), gauge_(gauge) {
    if (gauge_) gauge_->Add(1);
  }
  Slot(Slot&& o) noexcept : n_(std::exchange(o.n_, nullptr)), gauge_(std::exchange(o.gauge_, nullptr)) {}
  Slot(const Slot&) = delete;
  Slot& operator=(const Slot&) = delete;
  Slot& operator=(Slot&&) = delete;
  ~Slot() {
    if (n_) n_->fetch_sub(1);
    if (gauge_) gauge_->Add(-1);
  }

 private:
  std::atomic<int>* n_;
  metrics::Gauge* gauge_;
};

// Tries to take one unit of n below `limit`; a Slot owns it on success.
std::optional<Slot> TakeSlot(std::atomic<int>& n, int limit, metrics::Gauge* gauge) {
  int cur = n.load();
  while (cur < limit)
    if (n.compare_exchange_weak(cur, cur + 1)) return Slot(n, gauge);
  return std::nullopt;
}

// A connection refused for being over the limit: write the 503, half-close, discard what the client still
// sends until it closes (so our close does not turn into a reset that destroys the 503 before the client
// reads it), all within kRefusalDeadline.
class Refusal : public std::enable_shared_from_this<Refusal> {
 public:
  Refusal(tcp::socket&& socket, Slot slot) : stream_(std::move(socket)), slot_(std::move(slot)) {}

  void Start() {
    stream_.expires_after(kRefusalDeadline);
    net::async_write(stream_, net::buffer(RefusalResponse()),
                     beast::bind_front_handler(&Refusal::OnWrite, shared_from_this()));
  }

 private:
  void OnWrite(beast::error_code ec, std::size_t) {
    if (ec) return Close();
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    Drain();
  }
  void Drain() {
    stream_.async_read_some(net::buffer(sink_), [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->Close();
      self->Drain();
    });
  }
  void Close() {
    beast::error_code ec;
    stream_.socket().close(ec);
  }

  beast::tcp_stream stream_;
  Slot slot_;
  char sink_[1024];
};

HttpResponse InternalError() {
  HttpResponse out;
  out.status = 500;
  out.body = ProblemBody(500, "internal", "Internal error", "an unexpected error occurred");
  out.SetHeader("Content-Type", "application/problem+json");
  return out;
}

class Session;

// Responders alive: requests not yet answered, or answers on their way to the session.
class Outstanding {
 public:
  void Add() {
    std::lock_guard<std::mutex> lk(mu_);
    ++n_;
  }
  void Done() {
    std::lock_guard<std::mutex> lk(mu_);
    if (--n_ == 0) cv_.notify_all();
  }
  // The count left after waiting up to `timeout` for it to reach 0.
  int WaitForNone(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait_for(lk, timeout, [this] { return n_ == 0; });
    return n_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int n_ = 0;  // protected by mu_
};

// The Responder of one request: Send hands the response to the session's strand; it holds the session (and
// one unit of the server's outstanding count) until it is destroyed.
class SessionResponder : public Responder {
 public:
  SessionResponder(std::shared_ptr<Session> session, Outstanding& outstanding)
      : session_(std::move(session)), outstanding_(outstanding) {
    outstanding_.Add();
  }
  ~SessionResponder() override {
    if (!sent_.load()) {
      log::Error("handler_dropped_request", {});
      Send(InternalError());
    }
    outstanding_.Done();
  }
  void Send(HttpResponse response) override;
  void Post(Task task) override;

 private:
  std::shared_ptr<Session> session_;
  Outstanding& outstanding_;
  std::atomic<bool> sent_{false};
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket&& socket, const ServerOptions& opts, const AsyncHandler& handler, Slot slot,
          Outstanding& outstanding)
      : stream_(std::move(socket)), opts_(opts), handler_(handler), slot_(std::move(slot)), outstanding_(outstanding) {}

  void Start() {
    net::dispatch(stream_.get_executor(), beast::bind_front_handler(&Session::ReadRequest, shared_from_this()));
  }

 private:
  friend class SessionResponder;  // Answer, Run
  // Between requests: wait up to idle_timeout for the first byte of the next one.
  void WaitForNextRequest() {
    if (buffer_.size() > 0) return ReadRequest();  // a pipelined request is already here
    stream_.expires_after(opts_.idle_timeout);
    stream_.async_read_some(buffer_.prepare(4096), [self = shared_from_this()](beast::error_code ec, std::size_t n) {
      if (ec) return self->Close();  // idle timeout, or the client closed its keep-alive connection
      self->buffer_.commit(n);
      self->ReadRequest();
    });
  }

  void ReadRequest() {
    parser_.emplace();
    parser_->body_limit(opts_.body_limit);
    parser_->header_limit(static_cast<uint32_t>(opts_.header_limit));
    // One deadline for the whole request: a client trickling bytes cannot hold the connection past it.
    stream_.expires_after(opts_.read_timeout);
    bhttp::async_read(stream_, buffer_, *parser_, beast::bind_front_handler(&Session::OnRead, shared_from_this()));
  }

  void OnRead(beast::error_code ec, std::size_t) {
    if (ec == bhttp::error::end_of_stream || ec == net::error::eof || ec == beast::error::timeout ||
        ec == net::error::connection_reset || ec == net::error::operation_aborted) {
      return Close();
    }
    if (ec == bhttp::error::body_limit) {
      return SendError(413, "body-too-large", "Body too large",
                       "the body must be at most " + std::to_string(opts_.body_limit) + " bytes");
    }
    if (ec == bhttp::error::header_limit) {
      return SendError(431, "headers-too-large", "Request header fields too large",
                       "the request headers must be at most " + std::to_string(opts_.header_limit) + " bytes");
    }
    if (ec) return SendError(400, "bad-request", "Bad request", "the request is not valid HTTP/1.1");

    bhttp::request<bhttp::string_body> req = parser_->release();
    HttpRequest in;
    in.method = std::string(req.method_string());
    in.target = std::string(req.target());
    for (const auto& f : req) in.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
    in.body = std::move(req.body());
    keep_alive_ = req.keep_alive();
    version_ = req.version();

    // Nothing is read or written on this connection until the responder answers (HTTP/1.1 answers in order).
    auto responder = std::make_shared<SessionResponder>(shared_from_this(), outstanding_);
    try {
      handler_(in, responder);
    } catch (const std::exception& e) {
      // Handlers return errors as values; an exception here is a bug. Answer 500 and keep serving.
      log::Error("handler_exception", {{"error", e.what()}});
      responder->Send(InternalError());
    }
  }

  // Called by the responder, once per request, on any thread.
  void Answer(HttpResponse out) {
    net::dispatch(stream_.get_executor(), [self = shared_from_this(), out = std::move(out)]() mutable {
      self->Send(std::move(out), self->keep_alive_);
    });
  }
  void Run(Task task) { net::post(stream_.get_executor(), std::move(task)); }

  void SendError(int status, const char* slug, const char* title, const std::string& detail) {
    HttpResponse out;
    out.status = status;
    out.body = ProblemBody(status, slug, title, detail);
    out.SetHeader("Content-Type", "application/problem+json");
    version_ = 11;
    Send(std::move(out), false);
  }

  void Send(HttpResponse out, bool keep_alive) {
    auto res = std::make_shared<bhttp::response<bhttp::string_body>>();
    res->version(version_);
    res->result(static_cast<unsigned>(out.status));
    for (auto& [k, v] : out.headers) res->set(k, v);
    res->body() = std::move(out.body);
    res->keep_alive(keep_alive);
    res->prepare_payload();
    response_ = res;
    stream_.expires_after(opts_.read_timeout);
    bhttp::async_write(stream_, *res,
                       beast::bind_front_handler(&Session::OnWrite, shared_from_this(), keep_alive));
  }

  void OnWrite(bool keep_alive, beast::error_code ec, std::size_t) {
    response_.reset();
    if (ec || !keep_alive) return Close();
    WaitForNextRequest();
  }

  void Close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.socket().close(ec);
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  const ServerOptions& opts_;
  const AsyncHandler& handler_;
  Slot slot_;  // this connection's place under max_connections, given back when the session ends
  Outstanding& outstanding_;  // the server's count of responders not yet destroyed
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::shared_ptr<void> response_;
  bool keep_alive_ = false;
  unsigned version_ = 11;
};

void SessionResponder::Send(HttpResponse response) {
  if (sent_.exchange(true)) return;
  session_->Answer(std::move(response));
}

void SessionResponder::Post(Task task) { session_->Run(std::move(task)); }

// Makes room for `needed` descriptors by raising the soft RLIMIT_NOFILE toward the hard limit.
void FitDescriptorLimit(const ServerOptions& o) {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  const rlim_t needed = static_cast<rlim_t>(o.max_connections) + static_cast<rlim_t>(o.fd_reserve);
  if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= needed) return;
  rlimit want = rl;
  want.rlim_cur = (rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= needed) ? needed : rl.rlim_max;
  if (want.rlim_cur > rl.rlim_cur && setrlimit(RLIMIT_NOFILE, &want) == 0) rl = want;
  if (rl.rlim_cur >= needed) {
    log::Info("fd_limit_raised", {{"listener", o.name}, {"rlimit_nofile", static_cast<int64_t>(rl.rlim_cur)}});
    return;
  }
  log::Warn("fd_limit_below_max_connections",
            {{"listener", o.name},
             {"max_connections", o.max_connections},
             {"fd_reserve", o.fd_reserve},
             {"rlimit_nofile", static_cast<int64_t>(rl.rlim_cur)},
             {"hint", "raise the hard RLIMIT_NOFILE (systemd LimitNOFILE=) or lower --max-connections; until "
                      "then connections beyond the descriptor limit are refused at accept"}});
}

class ServerImpl : public Server {
 public:
  ServerImpl(const ServerOptions& opts, AsyncHandler handler)
      : opts_(opts),
        handler_(std::move(handler)),
        metrics_(opts.name),
        ioc_(opts.threads),
        acceptor_(net::make_strand(ioc_)),
        backoff_timer_(acceptor_.get_executor()) {}

  ~ServerImpl() override {
    // Let requests waiting for their answers (held by a store's queue, say) finish while the I/O threads
    // still run; then nothing can post to a stopped io_context.
    if (int left = outstanding_.WaitForNone(opts_.drain_timeout); left > 0)
      log::Warn("server_stopped_with_requests_waiting", {{"listener", opts_.name}, {"requests", left}});
    ioc_.stop();
    for (auto& t : threads_) t.join();
    if (spare_fd_ >= 0) ::close(spare_fd_);
  }

  Status Listen() {
    if (opts_.max_connections < 1) return Error::InvalidArgument("max_connections must be at least 1");
    beast::error_code ec;
    auto addr = net::ip::make_address(opts_.host, ec);
    if (ec) return Error::InvalidArgument("bad listen address '" + opts_.host + "'");
    FitDescriptorLimit(opts_);
    metrics_.max.Set(opts_.max_connections);
    tcp::endpoint ep(addr, opts_.port);
    acceptor_.open(ep.protocol(), ec);
    if (!ec) acceptor_.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(ep, ec);
    if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
    if (ec) return Error::Unavailable("cannot listen on " + opts_.host + ":" + std::to_string(opts_.port) + ": " + ec.message());
    port_ = acceptor_.local_endpoint().port();
    spare_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    DoAccept();
    for (int i = 0; i < opts_.threads; ++i) threads_.emplace_back([this] { ioc_.run(); });
    return OkStatus();
  }

  uint16_t port() const override { return port_; }
  int Drain(std::chrono::milliseconds timeout) override { return outstanding_.WaitForNone(timeout); }

 private:
  // Everything below runs on the acceptor's strand.
  void DoAccept() {
    acceptor_.async_accept(net::make_strand(ioc_), [this](beast::error_code ec, tcp::socket socket) {
      if (ec == net::error::operation_aborted) return;
      if (!ec) {
        backoff_ = std::chrono::milliseconds(0);
        Admit(std::move(socket));
        return DoAccept();
      }
      OnAcceptError(ec);
    });
  }

  void Admit(tcp::socket socket) {
    beast::error_code ec;
    socket.set_option(tcp::no_delay(true), ec);
    if (auto slot = TakeSlot(open_, opts_.max_connections, &metrics_.open)) {
      std::make_shared<Session>(std::move(socket), opts_, handler_, std::move(*slot), outstanding_)->Start();
      return;
    }
    metrics_.rejected_max.Inc();
    if (auto refusal = TakeSlot(refusing_, kMaxRefusals, nullptr)) {
      std::make_shared<Refusal>(std::move(socket), std::move(*refusal))->Start();
    }  // else: the socket closes here, without a word, when it goes out of scope
  }

  void OnAcceptError(const beast::error_code& ec) {
    const int e = ec.category() == net::error::get_system_category() ? ec.value() : 0;
    ListenerMetrics::AcceptErrors(opts_.name, e).Inc();
    if ((e == EMFILE || e == ENFILE) && RefuseOneWithSpareDescriptor()) {
      metrics_.rejected_fd.Inc();
      return DoAccept();  // that pending connection is gone; the next accept is not the same failure
    }
    backoff_ = backoff_.count() == 0 ? kAcceptBackoffFirst : std::min(backoff_ * 2, kAcceptBackoffMax);
    if (backoff_ == kAcceptBackoffFirst)  // once per episode, not once per retry
      log::Warn("accept_failed", {{"listener", opts_.name}, {"error", ec.message()}, {"retry_in_ms", backoff_.count()}});
    backoff_timer_.expires_after(backoff_);
    backoff_timer_.async_wait([this](beast::error_code wec) {
      if (!wec) DoAccept();
    });
  }

  // Out of descriptors: give back the spare one, take the pending connection with it, answer the 503
  // (best effort, without blocking) and close it, then take the spare again. The client learns at once
  // instead of waiting in the backlog for a descriptor that may not come.
  bool RefuseOneWithSpareDescriptor() {
    if (spare_fd_ < 0) return false;
    ::close(spare_fd_);
    int fd = ::accept4(acceptor_.native_handle(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd >= 0) {
      const std::string& r = RefusalResponse();
      (void)!::send(fd, r.data(), r.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      ::shutdown(fd, SHUT_WR);
      ::close(fd);
    }
    spare_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    return fd >= 0;
  }

  const ServerOptions opts_;
  const AsyncHandler handler_;
  ListenerMetrics metrics_;
  // Declared before ioc_: sessions destroyed with the io_context still give their slots back here.
  std::atomic<int> open_{0};
  Outstanding outstanding_;
  std::atomic<int> refusing_{0};
  net::io_context ioc_;
  tcp::acceptor acceptor_;
  net::steady_timer backoff_timer_;         // acceptor strand only
  std::chrono::milliseconds backoff_{0};    // acceptor strand only; 0 = not backing off
  int spare_fd_ = -1;                       // acceptor strand only (after Listen)
  std::vector<std::thread> threads_;
  uint16_t port_ = 0;
};

class MetricsServerImpl : public MetricsServer {
 public:
  explicit MetricsServerImpl(std::unique_ptr<Server> s) : server_(std::move(s)) {}
  uint16_t port() const override { return server_->port(); }

 private:
  std::unique_ptr<Server> server_;
};

}  // namespace

Result<std::unique_ptr<Server>> Server::Start(const ServerOptions& options, Handler handler) {
  return Start(options, AsyncHandler([h = std::move(handler)](const HttpRequest& req, ResponderPtr out) {
    out->Send(h(req));
  }));
}

Result<std::unique_ptr<Server>> Server::Start(const ServerOptions& options, AsyncHandler handler) {
  auto s = std::make_unique<ServerImpl>(options, std::move(handler));
  Status st = s->Listen();
  if (!st.ok()) return st.error();
  return std::unique_ptr<Server>(std::move(s));
}

Result<std::unique_ptr<MetricsServer>> MetricsServer::Start(const std::string& host, uint16_t port) {
  ServerOptions o;
  o.host = host;
  o.port = port;
  o.threads = 1;
  o.name = "metrics";
  // A scraper and a few probes; each request is answered from memory in microseconds.
  o.max_connections = 64;
  o.fd_reserve = 0;
  auto s = Server::Start(o, [](const HttpRequest& req) {
    HttpResponse r;
    if (req.Path() == "/metrics") {
      r.body = metrics::Registry::Default().Render();
      r.SetHeader("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    } else if (req.Path() == "/healthz") {
      r.body = "{\"status\":\"ok\"}";
      r.SetHeader("Content-Type", "application/json");
    } else {
      r.status = 404;
      r.body = "{\"type\":\"/problems/not-found\",\"title\":\"Not found\",\"status\":404,\"detail\":\"no such route\"}";
      r.SetHeader("Content-Type", "application/problem+json");
    }
    return r;
  });
  if (!s.ok()) return s.error();
  return std::unique_ptr<MetricsServer>(new MetricsServerImpl(std::move(s.value())));
}

}  // namespace paypath::http
