// RFC 9457 problem details: every error the api returns is one of these, as application/problem+json.
// `type` is a relative URI reference "/problems/<slug>"; docs/api.md lists every slug and its meaning.
#pragma once

#include <string>

#include "http/message.h"

namespace paypath::api {

using http::HttpRequest;
using http::HttpResponse;
using http::HeaderNameEquals;

struct Problem {
  int status;
  std::string slug;    // "invalid-request", "idempotency-key-in-use", ...
  std::string title;   // short, the same for every occurrence of the slug
  std::string detail;  // this occurrence; never echoes secrets or whole bodies
};

// {"type":"/problems/<slug>","title":...,"status":...,"detail":...} with Content-Type
// application/problem+json.
HttpResponse RenderProblem(const Problem& p);

}  // namespace paypath::api
