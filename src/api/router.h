// Routes a request to its handler and records paypath_http_request_duration_seconds{route,code}.
// Pure apart from the handlers' stores: no sockets.
//   POST /v1/charges          ChargeApi::Create                          (api routes)
//   GET  /v1/charges/{id}     ChargeApi::Get                             (api routes)
//   GET  /metrics             Prometheus text format                     (ops routes)
//   GET  /healthz             200 while the process serves requests      (ops routes)
//   GET  /readyz              200 when PostgreSQL answers, else 503      (ops routes)
// Anything else, and a route of the other group, is 404 /problems/not-found.
#pragma once

#include <optional>

#include "api/charges.h"
#include "http/message.h"
#include "common/clock.h"
#include "store/idempotency_store.h"

namespace paypath::api {

using http::HttpRequest;
using http::HttpResponse;
using http::HeaderNameEquals;

// Which routes a Router serves. kAll: one port for everything (no ops listener). With an ops listener
// (--ops-listen) the public port gets kApi and the ops port kOps, so /metrics never faces the public.
enum class Routes { kAll, kApi, kOps };

class Router {
 public:
  Router(ChargeApi& charges, store::IdempotencyStore& store, Clock& clock, Routes routes = Routes::kAll)
      : charges_(charges), store_(store), clock_(clock), routes_(routes) {}
  HttpResponse Handle(const HttpRequest& req);
  // The asynchronous form (http::AsyncHandler): POST /v1/charges answers through ChargeApi::CreateAsync,
  // every other route as Handle does, on the calling thread.
  void HandleAsync(const HttpRequest& req, http::ResponderPtr out);

 private:
  HttpResponse Dispatch(const HttpRequest& req, const char** route);
  // The response if the path is one of the group's routes, else nullopt.
  std::optional<HttpResponse> DispatchApi(const HttpRequest& req, const char** route);
  std::optional<HttpResponse> DispatchOps(const HttpRequest& req, const char** route);
  ChargeApi& charges_;
  store::IdempotencyStore& store_;
  Clock& clock_;
  const Routes routes_;
};

}  // namespace paypath::api
