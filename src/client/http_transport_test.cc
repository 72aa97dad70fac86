// HttpTransport and http1 framing against a real loopback socket: one scripted server connection per test.
#include "client/http_transport.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <functional>
#include <thread>

#include "client/http1.h"
#include "client/socket_io.h"

namespace paypath::client {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// Accepts one connection and hands it to `handler` on its own thread.
class OneShotServer {
 public:
  explicit OneShotServer(std::function<void(net::Fd&)> handler) {
    auto l = net::ListenTcp("127.0.0.1", 0);
    EXPECT_TRUE(l.ok());
    listener_ = std::move(l.value());
    port_ = net::LocalPort(listener_.get());
    thread_ = std::thread([this, handler] {
      net::Fd conn(::accept(listener_.get(), nullptr, nullptr));
      if (conn.valid()) handler(conn);
    });
  }
  ~OneShotServer() { thread_.join(); }
  uint16_t port() const { return port_; }

 private:
  net::Fd listener_;
  uint16_t port_ = 0;
  std::thread thread_;
};

// Reads one request; returns it (empty start line on failure).
http1::Parsed ReadRequest(net::Fd& fd) {
  std::string buf;
  http1::Parsed p;
  (void)http1::ReadMessage(fd.get(), &buf, false, "", SystemClock::Instance(),
                           SystemClock::Instance().Now() + seconds(10), &p);
  return p;
}

void Send(net::Fd& fd, const std::string& s) {
  (void)net::WriteAll(fd.get(), s, SystemClock::Instance(), SystemClock::Instance().Now() + seconds(10));
}

// Waits for the client to close (or 10 s): keeps a connection open without answering.
void DrainUntilClose(net::Fd& fd) {
  std::string sink;
  while (net::ReadSome(fd.get(), &sink, 4096, SystemClock::Instance(), SystemClock::Instance().Now() + seconds(10)) ==
         net::IoStatus::kOk) {
  }
}

HttpRequest ChargeRequest() {
  HttpRequest r;
  r.method = "POST";
  r.target = "/v1/charges";
  r.headers = {{"Idempotency-Key", "k-1"}, {"Content-Type", "application/json"}};
  r.body = "{\"amount\":1}";
  return r;
}

Exchange Call(uint16_t port, milliseconds timeout = milliseconds(5000)) {
  HttpTransport t(HttpUrl{"127.0.0.1", port, ""}, SystemClock::Instance());
  return t.RoundTrip(ChargeRequest(), timeout);
}

TEST(HttpTransport, ReadsAContentLengthResponseAndSendsTheRequestIntact) {
  http1::Parsed seen;
  OneShotServer server([&](net::Fd& fd) {
    seen = ReadRequest(fd);
    Send(fd, "HTTP/1.1 201 Created\r\nContent-Length: 13\r\nIdempotent-Replayed: true\r\n\r\n{\"id\":\"ch_1\"}");
  });
  Exchange ex = Call(server.port());
  ASSERT_EQ(ex.kind, Exchange::Kind::kResponse) << ex.detail;
  EXPECT_EQ(ex.response.status, 201);
  EXPECT_EQ(ex.response.body, "{\"id\":\"ch_1\"}");
  EXPECT_EQ(ex.response.Header("idempotent-replayed"), "true");
  EXPECT_EQ(seen.head.method, "POST");
  EXPECT_EQ(seen.head.target, "/v1/charges");
  EXPECT_EQ(seen.head.Get("idempotency-key"), "k-1");
  EXPECT_EQ(seen.body, "{\"amount\":1}");
}

TEST(HttpTransport, DecodesAChunkedResponse) {
  OneShotServer server([&](net::Fd& fd) {
    (void)ReadRequest(fd);
    Send(fd, "HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\nRetry-After: 2\r\n\r\n"
             "4\r\n{\"a\"\r\n3;ext=1\r\n:1}\r\n0\r\n\r\n");
  });
  Exchange ex = Call(server.port());
  ASSERT_EQ(ex.kind, Exchange::Kind::kResponse) << ex.detail;
  EXPECT_EQ(ex.response.status, 503);
  EXPECT_EQ(ex.response.body, "{\"a\":1}");
  EXPECT_EQ(ex.response.Header("Retry-After"), "2");
}

TEST(HttpTransport, ReadsABodyFramedByConnectionClose) {
  OneShotServer server([&](net::Fd& fd) {
    (void)ReadRequest(fd);
    Send(fd, "HTTP/1.1 400 Bad Request\r\nContent-Type: application/problem+json\r\n\r\n{\"title\":\"bad\"}");
  });
  Exchange ex = Call(server.port());
  ASSERT_EQ(ex.kind, Exchange::Kind::kResponse) << ex.detail;
  EXPECT_EQ(ex.response.status, 400);
  EXPECT_EQ(ex.response.body, "{\"title\":\"bad\"}");
}

TEST(HttpTransport, ARefusedConnectionIsConnectFailed) {
  uint16_t port;
  {
    auto l = net::ListenTcp("127.0.0.1", 0);
    ASSERT_TRUE(l.ok());
    port = net::LocalPort(l->get());
  }  // closed: nothing listens there now
  Exchange ex = Call(port);
  EXPECT_EQ(ex.kind, Exchange::Kind::kConnectFailed);
  EXPECT_NE(ex.detail.find("refused"), std::string::npos) << ex.detail;
}

TEST(HttpTransport, AServerThatNeverAnswersIsATimeout) {
  OneShotServer server([&](net::Fd& fd) {
    (void)ReadRequest(fd);
    DrainUntilClose(fd);
  });
  auto start = std::chrono::steady_clock::now();
  Exchange ex = Call(server.port(), milliseconds(200));
  EXPECT_EQ(ex.kind, Exchange::Kind::kTimeout);
  EXPECT_GE(std::chrono::steady_clock::now() - start, milliseconds(200));
  EXPECT_LT(std::chrono::steady_clock::now() - start, seconds(3));
}

TEST(HttpTransport, AConnectionClosedBeforeAnyResponseIsNoResponse) {
  OneShotServer server([&](net::Fd& fd) { (void)ReadRequest(fd); });  // returns: fd closes (FIN)
  Exchange ex = Call(server.port());
  EXPECT_EQ(ex.kind, Exchange::Kind::kNoResponse);
  EXPECT_EQ(ex.detail, "connection closed before any response");
}

TEST(HttpTransport, AConnectionResetBeforeAnyResponseIsNoResponse) {
  OneShotServer server([&](net::Fd& fd) {
    (void)ReadRequest(fd);
    fd.Reset();
  });
  Exchange ex = Call(server.port());
  EXPECT_EQ(ex.kind, Exchange::Kind::kNoResponse);
}

TEST(HttpTransport, AResponseCutShortIsNoResponseNotAShortBody) {
  OneShotServer server([&](net::Fd& fd) {
    (void)ReadRequest(fd);
    Send(fd, "HTTP/1.1 201 Created\r\nContent-Length: 100\r\n\r\n{\"id\":");
  });
  Exchange ex = Call(server.port());
  EXPECT_EQ(ex.kind, Exchange::Kind::kNoResponse);
  EXPECT_EQ(ex.detail, "connection closed mid-response");
}

TEST(HttpUrl, ParsesHostPortAndPrefix) {
  auto u = ParseHttpUrl("http://api.local:8081/base/");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->host, "api.local");
  EXPECT_EQ(u->port, 8081);
  EXPECT_EQ(u->base_path, "/base");
  auto d = ParseHttpUrl("http://127.0.0.1");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->port, 80);
  EXPECT_FALSE(ParseHttpUrl("https://x").ok());
  EXPECT_FALSE(ParseHttpUrl("http://u:p@x:1").ok());
  EXPECT_FALSE(ParseHttpUrl("http://x:99999").ok());
}

TEST(Http1, FindsEachRequestOnAKeepAliveStream) {
  std::string stream =
      "POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /b HTTP/1.1\r\nHost: x\r\n\r\nPOST /c HTTP/1.1\r\nContent-Length: 9\r\n\r\npart";
  http1::Parsed a = http1::Parse(stream, false, "", false);
  ASSERT_EQ(a.state, http1::ParseState::kComplete);
  EXPECT_EQ(a.body, "abc");
  http1::Parsed b = http1::Parse(std::string_view(stream).substr(a.size), false, "", false);
  ASSERT_EQ(b.state, http1::ParseState::kComplete);
  EXPECT_EQ(b.head.target, "/b");
  http1::Parsed c = http1::Parse(std::string_view(stream).substr(a.size + b.size), false, "", false);
  EXPECT_EQ(c.state, http1::ParseState::kIncomplete);
  EXPECT_TRUE(c.head_complete);
}

TEST(Http1, ResponsesToHeadAnd204And304HaveNoBody) {
  std::string r = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";
  EXPECT_EQ(http1::Parse(r, true, "HEAD", false).state, http1::ParseState::kComplete);
  EXPECT_EQ(http1::Parse(r, true, "GET", false).state, http1::ParseState::kIncomplete);
  EXPECT_EQ(http1::Parse("HTTP/1.1 204 No Content\r\n\r\n", true, "POST", false).state, http1::ParseState::kComplete);
}

TEST(Http1, RejectsGarbageAndOversizedBodies) {
  EXPECT_EQ(http1::Parse("hello\r\n\r\n", true, "", false).state, http1::ParseState::kInvalid);
  EXPECT_EQ(http1::Parse("POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n", false, "", false).state,
            http1::ParseState::kInvalid);
  EXPECT_EQ(http1::Parse("POST / HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n", false, "", false).state,
            http1::ParseState::kInvalid);
}

TEST(Http1, ConnectionCloseAndHttp10AskToClose) {
  EXPECT_TRUE(http1::Parse("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", true, "", false)
                  .head.WantsClose());
  EXPECT_TRUE(http1::Parse("GET / HTTP/1.0\r\n\r\n", false, "", false).head.WantsClose());
  EXPECT_FALSE(http1::Parse("GET / HTTP/1.1\r\n\r\n", false, "", false).head.WantsClose());
}

}  // namespace
}  // namespace paypath::client
