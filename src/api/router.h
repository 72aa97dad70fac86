// Routes a request to its handler and records paypath_http_request_duration_seconds{route,code}.
// Pure apart from the handlers' stores: no sockets.
//   POST /v1/charges          ChargeApi::Create
//   GET  /v1/charges/{id}     ChargeApi::Get
//   GET  /metrics             Prometheus text format
//   GET  /healthz             200 while the process serves requests
//   GET  /readyz              200 when PostgreSQL answers, else 503
#pragma once

#include "api/charges.h"
#include "http/message.h"
#include "common/clock.h"
#include "store/idempotency_store.h"

namespace paypath::api {

using http::HttpRequest;
using http::HttpResponse;
using http::HeaderNameEquals;

class Router {
 public:
  Router(ChargeApi& charges, store::IdempotencyStore& store, Clock& clock)
      : charges_(charges), store_(store), clock_(clock) {}
  HttpResponse Handle(const HttpRequest& req);

 private:
  HttpResponse Dispatch(const HttpRequest& req, const char** route);
  ChargeApi& charges_;
  store::IdempotencyStore& store_;
  Clock& clock_;
};

}  // namespace paypath::api
