# Operations suites (issue 6), included from tests/CMakeLists.txt. Each is a bash script under tests/ops/;
# the ones that start processes get the paypath binary. They need the stack's PAYPATH_* settings in the
# environment (make test exports them), promtool (Debian's prometheus package) and ops/node_modules
# (scripts/npm-deps.sh, which the npm-based suites also call themselves; it is a no-op when up to date).
set(PP_OPS ${CMAKE_SOURCE_DIR}/tests/ops)

# Alert rules, rule unit tests, scrape config, runbook links, dashboard structure. No servers.
add_test(NAME ops_promtool_rules COMMAND bash ${PP_OPS}/promtool_rules.sh)
# docs/openapi.yaml through Redocly's recommended rules, warnings as errors.
add_test(NAME ops_openapi_lint COMMAND bash ${PP_OPS}/openapi_lint.sh)
# promtool check metrics + contract names on the real /metrics of api, relay, consumer and proxy.
add_test(NAME ops_metrics COMMAND bash ${PP_OPS}/metrics_check.sh $<TARGET_FILE:paypath>)
# The same for the client library inside `paypath prove` (skipped, exit 77, while prove is not built in).
add_test(NAME ops_metrics_client COMMAND bash ${PP_OPS}/metrics_client.sh $<TARGET_FILE:paypath>)
# Real api responses against docs/openapi.yaml.
add_test(NAME ops_openapi_conformance COMMAND bash ${PP_OPS}/openapi_conformance.sh $<TARGET_FILE:paypath>)

set_tests_properties(ops_promtool_rules ops_openapi_lint PROPERTIES TIMEOUT 60 LABELS ops)
set_tests_properties(ops_metrics ops_openapi_conformance PROPERTIES TIMEOUT 90 LABELS ops)
set_tests_properties(ops_metrics_client PROPERTIES TIMEOUT 240 LABELS ops SKIP_RETURN_CODE 77)
# Two suites install ops/node_modules on first use; never let them run npm ci at the same time.
set_tests_properties(ops_openapi_lint ops_openapi_conformance PROPERTIES RESOURCE_LOCK pp_npm)
