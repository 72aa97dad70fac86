#!/usr/bin/env bash
# The alerting rules and the scrape config are valid, the rule unit tests pass (each alert fires on its
# situation and stays quiet on a nearby healthy one), every alert links to a runbook section that exists,
# and the Grafana dashboard is well-formed JSON whose runbook links resolve too. No servers needed.
OPS_SUITE=ops_promtool_rules
source "$(dirname "$0")/lib.sh"

PROM=$OPS_ROOT/ops/prometheus
RUNBOOK=$OPS_ROOT/docs/runbook.md
DASH=$OPS_ROOT/ops/grafana/paypath.json
command -v promtool >/dev/null || fail "promtool not found (Debian package prometheus; make deps installs it)"

promtool check rules "$PROM/alerts.yml" || fail "promtool check rules"
promtool check config "$PROM/prometheus.yml" || fail "promtool check config"
(cd "$PROM" && promtool test rules alerts_test.yml) || fail "promtool test rules"

# Every alert is exercised by at least one unit test.
for a in $(grep -oP '^\s*- alert:\s*\K\S+' "$PROM/alerts.yml"); do
    grep -qE "alertname:\s*$a\s*$" "$PROM/alerts_test.yml" || fail "alert $a has no unit test in alerts_test.yml"
done

# Every alert has a runbook_url, and every docs/runbook.md#anchor used under ops/ names a heading of the
# runbook (GitHub's anchor rule: lower case, punctuation dropped, spaces to hyphens).
n_alerts=$(grep -cP '^\s*- alert:' "$PROM/alerts.yml")
n_links=$(grep -cP '^\s*runbook_url:\s*docs/runbook\.md#' "$PROM/alerts.yml")
((n_alerts > 0 && n_alerts == n_links)) || fail "$n_alerts alerts but $n_links runbook_url annotations"
[[ -f "$RUNBOOK" ]] || fail "docs/runbook.md is missing"
anchors=$(grep -E '^#{1,6} ' "$RUNBOOK" | sed -E 's/^#+ //' | tr 'A-Z' 'a-z' \
    | sed -E 's/[^a-z0-9 _-]//g; s/ /-/g')
links=$(grep -rhoE 'docs/runbook\.md#[a-z0-9_-]+' "$PROM" "$OPS_ROOT/ops/grafana" | sort -u)
[[ -n "$links" ]] || fail "no runbook links found under ops/"
for l in $links; do
    grep -qxF "${l#*#}" <<<"$anchors" || fail "$l: no such heading in docs/runbook.md"
done

# The dashboard: valid JSON, a uid, panels with unique ids, and every graph panel has a non-empty query.
jq empty "$DASH" || fail "ops/grafana/paypath.json is not valid JSON"
jq -e '.uid and .title and (.panels | length > 0)' "$DASH" >/dev/null || fail "dashboard lacks uid/title/panels"
jq -e '[.panels[].id] | length == (unique | length)' "$DASH" >/dev/null || fail "dashboard panel ids are not unique"
jq -e '[.panels[] | select(.type != "row") | (.targets // []) | length > 0 and all(.expr | length > 0)] | all' \
    "$DASH" >/dev/null || fail "a dashboard panel has no query"

ops_log "ok: $(grep -c 'alertname:' "$PROM/alerts_test.yml") alert checks over $n_alerts alerts, $(wc -w <<<"$links") runbook links"
