# Sourced by deploy/check.sh, in order; its helpers and variables are in scope.
# shellcheck shell=bash
# ---------------------------------------------------------------------------
# b. Prometheus

need prometheus prometheus
need promtool prometheus
log "b. prometheus: $(prometheus --version 2>&1 | head -n 1)"
promtool check config deploy/prometheus.yml >"$WORK/promtool.log" 2>&1 || {
  cat "$WORK/promtool.log" >&2
  fail "promtool check config deploy/prometheus.yml"
}
python3 deploy/check_dashboards.py --datasources dashboards/provisioning/datasources dashboards/json/*.json ||
  fail "dashboard files"
