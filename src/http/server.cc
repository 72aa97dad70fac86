// The only translation unit that includes Boost.Beast (it costs ~20 s to compile on 2 cores).
#include "http/server.h"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

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

std::string ProblemBody(int status, const char* slug, const char* title, const char* detail) {
  std::string b = "{\"type\":\"/problems/";
  b += slug;
  b += "\",\"title\":\"";
  b += title;
  b += "\",\"status\":" + std::to_string(status) + ",\"detail\":\"";
  b += detail;
  b += "\"}";
  return b;
}

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket&& socket, const ServerOptions& opts, const Handler& handler)
      : stream_(std::move(socket)), opts_(opts), handler_(handler) {}

  void Start() {
    net::dispatch(stream_.get_executor(), beast::bind_front_handler(&Session::DoRead, shared_from_this()));
  }

 private:
  void DoRead() {
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
      return SendError(413, "body-too-large", "Body too large", "the body must be at most 16384 bytes");
    }
    if (ec == bhttp::error::header_limit) {
      return SendError(431, "headers-too-large", "Request header fields too large",
                       "the request headers must be at most 8192 bytes");
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

    HttpResponse out;
    try {
      out = handler_(in);
    } catch (const std::exception& e) {
      // Handlers return errors as values; an exception here is a bug. Answer 500 and keep serving.
      log::Error("handler_exception", {{"error", e.what()}});
      out.status = 500;
      out.body = ProblemBody(500, "internal", "Internal error", "an unexpected error occurred");
      out.SetHeader("Content-Type", "application/problem+json");
    }
    Send(std::move(out), keep_alive_);
  }

  void SendError(int status, const char* slug, const char* title, const char* detail) {
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
    DoRead();
  }

  void Close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.socket().close(ec);
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  const ServerOptions& opts_;
  const Handler& handler_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::shared_ptr<void> response_;
  bool keep_alive_ = false;
  unsigned version_ = 11;
};

class ServerImpl : public Server {
 public:
  ServerImpl(const ServerOptions& opts, Handler handler)
      : opts_(opts), handler_(std::move(handler)), ioc_(opts.threads), acceptor_(net::make_strand(ioc_)) {}

  ~ServerImpl() override {
    ioc_.stop();
    for (auto& t : threads_) t.join();
  }

  Status Listen() {
    beast::error_code ec;
    auto addr = net::ip::make_address(opts_.host, ec);
    if (ec) return Error::InvalidArgument("bad listen address '" + opts_.host + "'");
    tcp::endpoint ep(addr, opts_.port);
    acceptor_.open(ep.protocol(), ec);
    if (!ec) acceptor_.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(ep, ec);
    if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
    if (ec) return Error::Unavailable("cannot listen on " + opts_.host + ":" + std::to_string(opts_.port) + ": " + ec.message());
    port_ = acceptor_.local_endpoint().port();
    DoAccept();
    for (int i = 0; i < opts_.threads; ++i) threads_.emplace_back([this] { ioc_.run(); });
    return OkStatus();
  }

  uint16_t port() const override { return port_; }

 private:
  void DoAccept() {
    acceptor_.async_accept(net::make_strand(ioc_), [this](beast::error_code ec, tcp::socket socket) {
      if (!ec) {
        socket.set_option(tcp::no_delay(true), ec);
        std::make_shared<Session>(std::move(socket), opts_, handler_)->Start();
      } else if (ec == net::error::operation_aborted) {
        return;
      }
      DoAccept();
    });
  }

  const ServerOptions opts_;
  const Handler handler_;
  net::io_context ioc_;
  tcp::acceptor acceptor_;
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
