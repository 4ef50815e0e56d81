#!/usr/bin/env bash
# Checks the deployment files on a machine without a Docker engine:
#
#   a. docker-compose.yml validates with docker-compose (Debian's 1.29), with and
#      without the loadtest profile, and holds what the stack promises (services and
#      profiles, only ports 9094, 9090 and 3000 published, health conditions, Redis
#      append-only on a named volume); what the Dockerfile copies exists and is not
#      excluded by .dockerignore;
#   b. deploy/prometheus.yml passes promtool;
#   c. a tokencache ($TOKENCACHE_BIN) on a fresh MariaDB database and a Redis of its
#      own, scraped every second by a Prometheus of its own (a copy of
#      deploy/prometheus.yml pointed at it), gets traffic that makes every series the
#      dashboards query: logins that succeed and fail (each refusal reason), valid and
#      invalid check_tokens, refreshes ok and invalid, and Redis store errors (its Redis
#      is stopped for a moment, then started again). deploy/loadtest-setup.sh creates
#      the client and users, and deploy/healthcheck.sh probes the server, as in the
#      containers;
#   d. every PromQL expression of dashboards/json/*.json returns data from that
#      Prometheus (deploy/check_dashboards.py: one line per query with its series count).
#
#   TOKENCACHE_BIN=target/debug/tokencache bash deploy/check.sh
#
# Needs MySQL/MariaDB on 127.0.0.1:3306, root without a password (MYSQL_HOST,
# MYSQL_PORT, MYSQL_USER to change; bash .ci/run starts one). Installs docker-compose,
# prometheus, redis-server and the mariadb client with apt-get when they are missing
# (without starting their system services). Everything listens on 127.0.0.1, on free
# ports, every wait is bounded, and everything it starts is stopped on exit, the
# database dropped. Exit status 0 when every check holds, 1 otherwise.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
TOKENCACHE_BIN=${TOKENCACHE_BIN:-target/debug/tokencache}
[[ $TOKENCACHE_BIN == */* && $TOKENCACHE_BIN != /* ]] && TOKENCACHE_BIN="$ROOT/$TOKENCACHE_BIN"
MYSQL_HOST=${MYSQL_HOST:-127.0.0.1}
MYSQL_PORT=${MYSQL_PORT:-3306}
MYSQL_USER=${MYSQL_USER:-root}

# shellcheck source=deploy/lib.sh
source deploy/lib.sh

log() { printf '[check] %s\n' "$*" >&2; }
fail() {
  log "FAIL: $*"
  exit 1
}

WORK=$(mktemp -d /tmp/tokencache-deploy-check.XXXXXX)
REDIS_PID="" TC_PID="" PROM_PID="" TRAFFIC_PID="" DB="" POLICY_RC_CREATED=0


cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n $TRAFFIC_PID ]]; then
    touch "$WORK/stop-traffic"
    for _ in $(seq 100); do
      kill -0 "$TRAFFIC_PID" 2>/dev/null || break
      sleep 0.1
    done
    stop_pid "$TRAFFIC_PID"
  fi
  stop_pid "$PROM_PID"
  stop_pid "$TC_PID"
  stop_pid "$REDIS_PID"
  if [[ -n $DB ]]; then
    mysql_root -e "DROP DATABASE IF EXISTS \`$DB\`" 2>/dev/null || log "could not drop database $DB"
  fi
  [[ $POLICY_RC_CREATED == 1 ]] && rm -f /usr/sbin/policy-rc.d
  if [[ $rc != 0 ]]; then
    for f in tokencache redis prometheus traffic; do
      [[ -s $WORK/$f.log ]] || continue
      log "last lines of $f.log:"
      tail -n 15 "$WORK/$f.log" >&2
    done
  fi
  rm -rf "$WORK"
  if [[ $rc == 0 ]]; then log "PASS"; else log "FAILED (exit $rc)"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------
# Tools

APT_UPDATED=0
apt_install() {
  [[ $(id -u) == 0 ]] || fail "$* missing, and installing needs root"
  # No package may start its system service (Prometheus would take port 9090).
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 0755 /usr/sbin/policy-rc.d
    POLICY_RC_CREATED=1
  fi
  log "apt-get install $*"
  local apt=(env DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq --no-install-recommends "$@")
  if ! "${apt[@]}" >"$WORK/apt.log" 2>&1; then
    if [[ $APT_UPDATED == 0 ]]; then
      APT_UPDATED=1
      log "apt-get update"
      timeout 600 apt-get update -qq >"$WORK/apt.log" 2>&1 || {
        cat "$WORK/apt.log" >&2
        fail "apt-get update failed"
      }
    fi
    "${apt[@]}" >"$WORK/apt.log" 2>&1 || {
      tail -n 20 "$WORK/apt.log" >&2
      fail "apt-get install $* failed"
    }
  fi
}
need() { # need COMMAND PACKAGE
  command -v "$1" >/dev/null 2>&1 || apt_install "$2"
  command -v "$1" >/dev/null 2>&1 || fail "$1 not found after installing $2"
}


need python3 python3
need curl curl
need md5sum coreutils

# ---------------------------------------------------------------------------
# The checks, one file a section.
for section in deploy/check/a-compose.sh deploy/check/b-prometheus.sh \
  deploy/check/c-server.sh deploy/check/d-dashboards.sh; do
  # shellcheck source=/dev/null
  source "$section"
done
