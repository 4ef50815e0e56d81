# Sourced by deploy/check.sh, in order; its helpers and variables are in scope.
# shellcheck shell=bash
# ---------------------------------------------------------------------------
# d. Every dashboard query returns data

log "d. dashboard queries against $PROM (\$__rate_interval = 1m)"
python3 deploy/check_dashboards.py --prometheus "$PROM" --interval 1m \
  --datasources dashboards/provisioning/datasources dashboards/json/*.json ||
  fail "dashboard queries without data (above)"
