#include "api/router.h"

#include "api/problem.h"
#include "common/metrics.h"

namespace paypath::api {

namespace {

void ObserveDuration(const char* route, int status, double secs) {
  metrics::Registry::Default()
      .GetHistogram("paypath_http_request_duration_seconds", "HTTP request handling time by route and status code",
                    metrics::LatencyBuckets(), {{"route", route}, {"code", std::to_string(status)}})
      .Observe(secs);
}

// Times an asynchronous answer from the request's arrival to its Send.
class TimedResponder : public http::Responder {
 public:
  TimedResponder(http::ResponderPtr inner, Clock& clock, const char* route)
      : inner_(std::move(inner)), clock_(clock), route_(route), start_(clock.Now()) {}
  void Send(HttpResponse r) override {
    ObserveDuration(route_, r.status, std::chrono::duration<double>(clock_.Now() - start_).count());
    inner_->Send(std::move(r));
  }
  void Post(http::Task task) override { inner_->Post(std::move(task)); }

 private:
  http::ResponderPtr inner_;
  Clock& clock_;
  const char* route_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace

HttpResponse Router::Handle(const HttpRequest& req) {
  auto start = clock_.Now();
  const char* route = "other";
  HttpResponse r = Dispatch(req, &route);
  ObserveDuration(route, r.status, std::chrono::duration<double>(clock_.Now() - start).count());
  return r;
}

void Router::HandleAsync(const HttpRequest& req, http::ResponderPtr out) {
  if (routes_ != Routes::kOps && req.Path() == "/v1/charges" && req.method == "POST")
    return charges_.CreateAsync(req, std::make_shared<TimedResponder>(std::move(out), clock_, "/v1/charges"));
  out->Send(Handle(req));
}

HttpResponse Router::Dispatch(const HttpRequest& req, const char** route) {
  if (routes_ != Routes::kOps)
    if (auto r = DispatchApi(req, route)) return std::move(*r);
  if (routes_ != Routes::kApi)
    if (auto r = DispatchOps(req, route)) return std::move(*r);
  return RenderProblem({404, "not-found", "Not found", "no such route"});
}

std::optional<HttpResponse> Router::DispatchApi(const HttpRequest& req, const char** route) {
  std::string_view path = req.Path();
  auto method_not_allowed = [](const char* allow) {
    HttpResponse r = RenderProblem({405, "method-not-allowed", "Method not allowed", std::string("use ") + allow});
    r.SetHeader("Allow", allow);
    return r;
  };
  if (path == "/v1/charges") {
    *route = "/v1/charges";
    if (req.method != "POST") return method_not_allowed("POST");
    return charges_.Create(req);
  }
  constexpr std::string_view kPrefix = "/v1/charges/";
  if (path.starts_with(kPrefix) && path.size() > kPrefix.size() &&
      path.find('/', kPrefix.size()) == std::string_view::npos) {
    *route = "/v1/charges/{id}";
    if (req.method != "GET") return method_not_allowed("GET");
    return charges_.Get(req, std::string(path.substr(kPrefix.size())));
  }
  return std::nullopt;
}

std::optional<HttpResponse> Router::DispatchOps(const HttpRequest& req, const char** route) {
  std::string_view path = req.Path();
  if (path == "/metrics") {
    *route = "/metrics";
    HttpResponse r;
    r.body = metrics::Registry::Default().Render();
    r.SetHeader("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    return r;
  }
  if (path == "/healthz") {
    *route = "/healthz";
    HttpResponse r;
    r.body = "{\"status\":\"ok\"}";
    r.SetHeader("Content-Type", "application/json");
    return r;
  }
  if (path == "/readyz") {
    *route = "/readyz";
    Status s = store_.Ping();
    if (!s.ok()) {
      HttpResponse r = RenderProblem({503, "not-ready", "Not ready", "PostgreSQL is not reachable"});
      r.SetHeader("Retry-After", "1");
      return r;
    }
    HttpResponse r;
    r.body = "{\"status\":\"ready\"}";
    r.SetHeader("Content-Type", "application/json");
    return r;
  }
  return std::nullopt;
}

}  // namespace paypath::api
