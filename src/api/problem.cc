#include "api/problem.h"

#include "common/log.h"

namespace paypath::api {

HttpResponse RenderProblem(const Problem& p) {
  HttpResponse r;
  r.status = p.status;
  std::string& b = r.body;
  b += "{\"type\":";
  log::AppendJsonString(b, "/problems/" + p.slug);
  b += ",\"title\":";
  log::AppendJsonString(b, p.title);
  b += ",\"status\":" + std::to_string(p.status);
  b += ",\"detail\":";
  log::AppendJsonString(b, p.detail);
  b += "}";
  r.SetHeader("Content-Type", "application/problem+json");
  return r;
}

}  // namespace paypath::api
