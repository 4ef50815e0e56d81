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

log() { printf '[check] %s\n' "$*" >&2; }
fail() {
  log "FAIL: $*"
  exit 1
}

WORK=$(mktemp -d /tmp/tokencache-deploy-check.XXXXXX)
REDIS_PID="" TC_PID="" PROM_PID="" TRAFFIC_PID="" DB="" POLICY_RC_CREATED=0

# Stops a process of ours: TERM, up to 10 s, then KILL.
stop_pid() {
  local pid=$1
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

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

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Polls a command every 0.2 s for at most $1 seconds.
wait_for() {
  local secs=$1
  shift
  local end=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < end)) || return 1
    sleep 0.2
  done
}

need python3 python3
need curl curl
need md5sum coreutils

# ---------------------------------------------------------------------------
# a. docker-compose.yml, Dockerfile, .dockerignore

need docker-compose docker-compose
log "a. compose file: $(docker-compose version --short 2>/dev/null || docker-compose --version)"
export COMPOSE_PROJECT_NAME=tokencache-check
docker-compose -f docker-compose.yml config -q || fail "docker-compose config rejects docker-compose.yml"
# (The help text in a variable: grep -q closing the pipe early would fail it under pipefail.)
dc_help=$(docker-compose --help 2>&1 || true)
if [[ $dc_help == *--profile* ]]; then
  docker-compose -f docker-compose.yml --profile loadtest config -q ||
    fail "docker-compose --profile loadtest config rejects docker-compose.yml"
  log "   valid, with and without --profile loadtest"
else
  log "   valid (this docker-compose has no --profile option)"
fi
docker-compose -f docker-compose.yml config >"$WORK/compose.yml"

# What the stack promises, on the normalised file (docker-compose 1.29 keeps every
# service there, profiles included; Debian's python3-yaml comes with docker-compose).
/usr/bin/python3 - "$WORK/compose.yml" <<'EOF' || fail "docker-compose.yml does not hold what the stack promises (above)"
import sys, yaml
spec = yaml.safe_load(open(sys.argv[1]))
svc = spec["services"]
bad = []
def want(cond, msg):
    if not cond:
        bad.append(msg)
want(sorted(svc) == ["grafana", "k6", "loadtest-setup", "mysql", "prometheus", "redis", "tokencache"],
     f"services: {sorted(svc)}")
for name, s in svc.items():
    prof = s.get("profiles")
    if name in ("k6", "loadtest-setup"):
        want(prof == ["loadtest"], f"{name}: profiles {prof}, expected [loadtest]")
    else:
        want(not prof, f"{name}: profiles {prof}: started by a plain `up`?")
published = {}
for name, s in svc.items():
    for p in s.get("ports", []):
        published[str(p["published"]) if isinstance(p, dict) else str(p).split(":")[-2]] = name
want(published == {"9094": "tokencache", "9090": "prometheus", "3000": "grafana"}, f"published ports: {published}")
deps = lambda n: {k: v.get("condition") for k, v in svc[n].get("depends_on", {}).items()}
want(deps("tokencache") == {"mysql": "service_healthy", "redis": "service_healthy"}, f"tokencache depends_on {deps('tokencache')}")
want(deps("loadtest-setup").get("tokencache") == "service_healthy", "loadtest-setup must wait for a healthy tokencache")
want(deps("k6").get("loadtest-setup") == "service_completed_successfully", "k6 must wait for loadtest-setup")
for n in ("mysql", "redis"):
    hc = svc[n].get("healthcheck", {})
    want(hc.get("test") and hc.get("start_period"), f"{n}: healthcheck with a start_period")
want("127.0.0.1" in " ".join(svc["mysql"]["healthcheck"]["test"]) and "TCP" in " ".join(svc["mysql"]["healthcheck"]["test"]),
     "mysql: healthcheck over TCP")
cmd = " ".join(svc["redis"].get("command") or [])
want("--appendonly yes" in cmd, f"redis: not append-only: {cmd!r}")
want(any("redis-data" in str(v) and "/data" in str(v) for v in svc["redis"].get("volumes", [])),
     "redis: /data on the named volume redis-data")
want("build" in svc["tokencache"] and svc["tokencache"]["build"].get("dockerfile") == "Dockerfile", "tokencache: built from Dockerfile")
env = svc["tokencache"].get("environment", {})
want(env.get("TOKENCACHE_LISTEN") == "0.0.0.0:9094", "tokencache: TOKENCACHE_LISTEN=0.0.0.0:9094")
want(svc["k6"].get("image", "").startswith("grafana/k6") and svc["k6"]["environment"].get("BASE_URL") == "http://tokencache:9094",
     "k6: grafana/k6 image with BASE_URL=http://tokencache:9094")
want(any("/work/loadtest" in str(v) for v in svc["k6"].get("volumes", [])), "k6: ./loadtest mounted at /work/loadtest")
gf = svc["grafana"]
want(any("/etc/grafana/provisioning" in str(v) for v in gf.get("volumes", [])), "grafana: provisioning mounted")
want("GF_SECURITY_ADMIN_PASSWORD" in gf.get("environment", {}), "grafana: admin password from the environment")
for b in bad:
    print(f"[check]    {b}", file=sys.stderr)
if not bad:
    print(f"[check]    services {sorted(svc)}; published {dict(sorted(published.items()))}; "
          "k6 and loadtest-setup only in profile loadtest", file=sys.stderr)
sys.exit(1 if bad else 0)
EOF

# Dockerfile: multi-stage, non-root, HEALTHCHECK; its COPY sources exist and reach the
# build context.
grep -qE '^FROM .* AS builder' Dockerfile || fail "Dockerfile: no builder stage"
grep -qE '^USER [1-9]' Dockerfile || fail "Dockerfile: no USER with a non-root numeric uid"
grep -qE '^HEALTHCHECK ' Dockerfile || fail "Dockerfile: no HEALTHCHECK"
python3 - <<'EOF' || fail "Dockerfile COPY sources"
import fnmatch, os, shlex, sys
ignored = [l.strip().rstrip("/") for l in open(".dockerignore") if l.strip() and not l.startswith("#")]
bad = []
for line in open("Dockerfile"):
    if not line.startswith("COPY "):
        continue
    args = [a for a in shlex.split(line[5:]) if not a.startswith("--")]
    if any(a.startswith("--from") for a in shlex.split(line[5:])):
        continue
    for src in args[:-1]:
        if not os.path.exists(src):
            bad.append(f"{src}: missing")
        elif any(fnmatch.fnmatch(src, pat) or src.split("/")[0] == pat for pat in ignored):
            bad.append(f"{src}: excluded by .dockerignore")
for b in bad:
    print(f"[check]    Dockerfile COPY {b}", file=sys.stderr)
sys.exit(1 if bad else 0)
EOF
for f in deploy/*.sh; do bash -n "$f" || fail "$f: syntax"; done
log "   Dockerfile, .dockerignore, deploy/*.sh: ok"

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

# ---------------------------------------------------------------------------
# c. tokencache on MariaDB and its own Redis, scraped by its own Prometheus

[[ -x $TOKENCACHE_BIN ]] || fail "TOKENCACHE_BIN=$TOKENCACHE_BIN is not an executable (build it, or set TOKENCACHE_BIN)"
need mysql mariadb-client
need redis-server redis-server
need redis-cli redis-tools
mysql_root() { mysql --protocol=TCP -h "$MYSQL_HOST" -P "$MYSQL_PORT" -u "$MYSQL_USER" --connect-timeout=5 "$@"; }
mysql_root -e 'SELECT 1' >/dev/null ||
  fail "no MySQL/MariaDB at $MYSQL_HOST:$MYSQL_PORT for $MYSQL_USER without a password (bash .ci/run starts one)"
DB="tc_deploy_check_$$_$RANDOM"
mysql_root -e "CREATE DATABASE \`$DB\`"
log "c. database $DB on $MYSQL_HOST:$MYSQL_PORT"

REDIS_PORT=$(free_port)
start_redis() {
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize no \
    --dir "$WORK" >>"$WORK/redis.log" 2>&1 &
  REDIS_PID=$!
  wait_for 10 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping || fail "redis-server did not start on port $REDIS_PORT"
}
start_redis
log "   redis-server on 127.0.0.1:$REDIS_PORT (pid $REDIS_PID)"

export DATABASE_URL="mysql://$MYSQL_USER@$MYSQL_HOST:$MYSQL_PORT/$DB"
export REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
export TOKENCACHE_REDIS_PREFIX="tc-deploy-check-$$:"
export TOKENCACHE_REDIS_TIMEOUT_MS=500
export TOKENCACHE_LOG_FORMAT=json
# Cheap password hashes: a debug binary keeps up with the logins.
export TOKENCACHE_ARGON2_MEMORY_KIB=4096 TOKENCACHE_ARGON2_ITERATIONS=1
export RUST_LOG=warn

# The client and users, as the loadtest-setup service makes them; twice (idempotent),
# then once with another secret (refused).
APP_KEY=deploy-check APP_SECRET=deploy-check-secret USERS=2 USER_PREFIX=check USER_PASSWORD=check-password
export APP_KEY APP_SECRET USERS USER_PREFIX USER_PASSWORD
TOKENCACHE_BIN=$TOKENCACHE_BIN bash deploy/loadtest-setup.sh 2>"$WORK/setup.log" || {
  cat "$WORK/setup.log" >&2
  fail "deploy/loadtest-setup.sh"
}
TOKENCACHE_BIN=$TOKENCACHE_BIN bash deploy/loadtest-setup.sh 2>"$WORK/setup.log" || {
  cat "$WORK/setup.log" >&2
  fail "deploy/loadtest-setup.sh, second run"
}
if ! grep -q "client $APP_KEY: already exists" "$WORK/setup.log" ||
  ! grep -q "0 created, 2 already there" "$WORK/setup.log"; then
  fail "deploy/loadtest-setup.sh, second run: $(cat "$WORK/setup.log")"
fi
if TOKENCACHE_BIN=$TOKENCACHE_BIN APP_SECRET=another bash deploy/loadtest-setup.sh 2>"$WORK/setup.log"; then
  fail "deploy/loadtest-setup.sh accepted a client stored with another secret"
fi
log "   deploy/loadtest-setup.sh: client $APP_KEY, users ${USER_PREFIX}0..${USER_PREFIX}1 (second run: kept; other secret: refused)"
NOPWD_SECRET=deploy-check-nopwd
TOKENCACHE_CLIENT_SECRET=$NOPWD_SECRET "$TOKENCACHE_BIN" client create --app-key deploy-check-nopwd \
  --token-ttl 600 --allow-nopwd >/dev/null 2>>"$WORK/setup.log" || fail "client create --allow-nopwd"

TC_PORT=$(free_port)
BASE="http://127.0.0.1:$TC_PORT"
"$TOKENCACHE_BIN" serve --listen "127.0.0.1:$TC_PORT" >"$WORK/tokencache.log" 2>&1 &
TC_PID=$!
ready() { [[ $(curl -s --max-time 2 -o /dev/null -w '%{http_code}' "$BASE/readyz") == 200 ]]; }
wait_for 60 ready || fail "tokencache did not become ready on $BASE"
log "   tokencache on $BASE (pid $TC_PID)"
TOKENCACHE_LISTEN=127.0.0.1:$TC_PORT bash deploy/healthcheck.sh || fail "deploy/healthcheck.sh against a healthy server"
if TOKENCACHE_LISTEN=127.0.0.1:$(free_port) bash deploy/healthcheck.sh 2>/dev/null; then
  fail "deploy/healthcheck.sh passes with no server"
fi
log "   deploy/healthcheck.sh: 0 against the server, non-zero against a closed port"

PROM_PORT=$(free_port)
PROM="http://127.0.0.1:$PROM_PORT"
sed -e "s/tokencache:9094/127.0.0.1:$TC_PORT/" \
  -e 's/scrape_interval: 15s/scrape_interval: 1s/' \
  -e 's/scrape_timeout: 10s/scrape_timeout: 1s/' \
  -e 's/evaluation_interval: 15s/evaluation_interval: 1s/' \
  deploy/prometheus.yml >"$WORK/prometheus.yml"
if ! grep -q "127.0.0.1:$TC_PORT" "$WORK/prometheus.yml" || ! grep -q 'scrape_interval: 1s' "$WORK/prometheus.yml"; then
  fail "deploy/prometheus.yml: no 'tokencache:9094' target or 'scrape_interval: 15s' to rewrite for the test"
fi
promtool check config "$WORK/prometheus.yml" >"$WORK/promtool.log" 2>&1 || {
  cat "$WORK/promtool.log" >&2
  fail "promtool check config (test copy)"
}
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" \
  --web.listen-address="127.0.0.1:$PROM_PORT" --log.level=warn >"$WORK/prometheus.log" 2>&1 &
PROM_PID=$!
wait_for 30 curl -sf --max-time 2 "$PROM/-/ready" || fail "prometheus did not become ready on $PROM"
log "   prometheus on $PROM (pid $PROM_PID), scraping 127.0.0.1:$TC_PORT every second"

# --- traffic ---

# post ROUTE JSON: sets CODE; the body is in $BODY.
BODY="$WORK/body"
post() {
  CODE=$(curl -s --max-time 5 -o "$BODY" -w '%{http_code}' -H 'Content-Type: application/json' \
    -d "$2" "$BASE/api/v1/$1") || CODE=000
}
expect() { # expect ROUTE JSON HTTP_STATUS
  post "$1" "$2"
  [[ $CODE == "$3" ]] || fail "POST /api/v1/$1: HTTP $CODE, expected $3: $(head -c 300 "$BODY")"
}
field() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["data"][sys.argv[2]])' "$BODY" "$1"; }
md5() { printf '%s' "$@" | md5sum | cut -d' ' -f1; }
# Strictly increasing milliseconds: a signature is accepted once. The last one is kept
# in a file: login_body runs in $(...) subshells, where a variable would not persist.
printf 0 >"$WORK/last_time"
next_time() {
  local t last
  t=$(date +%s%3N)
  last=$(<"$WORK/last_time")
  ((t > last)) || t=$((last + 1))
  printf '%s' "$t" >"$WORK/last_time"
  LAST_T=$t
}
# login_body USER PASSWORD [TIME [SECRET [APPID]]]: prints an authorize body.
login_body() {
  local appid=${5:-$APP_KEY} secret=${4:-$APP_SECRET} t=${3:-}
  if [[ -z $t ]]; then
    next_time
    t=$LAST_T
  fi
  printf '{"appid":"%s","username":"%s","password":"%s","time":"%s","token":"%s","token_type":"check"}' \
    "$appid" "$1" "$2" "$t" "$(md5 "$appid" "$1" "$2" "$t" "$secret")"
}
tok() { printf '{"token":"%s"}' "$1"; }
rtok() { printf '{"refresh_token":"%s"}' "$1"; }
U0=${USER_PREFIX}0 U1=${USER_PREFIX}1

log "   traffic: logins, check_token, refresh_token, refused logins"
expect authorize "$(login_body "$U0" "$USER_PASSWORD")" 200
ACCESS=$(field access_token) REFRESH=$(field refresh_token)
for _ in 1 2 3 4 5; do expect check_token "$(tok "$ACCESS")" 200; done
for _ in 1 2 3; do expect check_token "$(tok "no-such-token-$RANDOM")" 401; done
expect refresh_token "$(rtok "$REFRESH")" 200
ACCESS2=$(field access_token)
expect check_token "$(tok "$ACCESS2")" 200
# Spent: a replay, which also revokes the pair it was rotated into.
expect refresh_token "$(rtok "$REFRESH")" 401
expect check_token "$(tok "$ACCESS2")" 401
expect refresh_token "$(rtok "no-such-refresh-token")" 401
# A fresh login for what follows.
expect authorize "$(login_body "$U0" "$USER_PASSWORD")" 200
ACCESS2=$(field access_token) REFRESH2=$(field refresh_token)
expect check_token "$(tok "$ACCESS2")" 200
# Each refusal reason of a login.
expect authorize "$(login_body "$U0" wrong-password)" 401                       # bad_credentials
expect authorize "$(login_body no-such-user "$USER_PASSWORD")" 401              # bad_credentials
expect authorize "$(login_body "$U0" "$USER_PASSWORD" "" wrong-secret)" 401     # bad_signature
body=$(login_body "$U0" "$USER_PASSWORD")
expect authorize "$body" 200
expect authorize "$body" 401                                                    # replay
expect authorize "$(login_body "$U0" "$USER_PASSWORD" $(($(date +%s) - 3600)))" 401 # stale_time
expect authorize "$(login_body "$U0" "$USER_PASSWORD" "" "" no-such-app)" 401  # unknown_client
next_time
expect authorize_nopwd "$(printf '{"appid":"deploy-check-nopwd","username":"%s","time":"%s","token":"%s"}' \
  "$U0" "$LAST_T" "$(md5 deploy-check-nopwd "$U0" "$LAST_T" "$NOPWD_SECRET")")" 200
post no-such-route '{}'
[[ $CODE == 404 ]] || fail "unknown route: HTTP $CODE, expected 404"

log "   Redis down: check_token and refresh_token answer 503 (store errors)"
stop_pid "$REDIS_PID"
REDIS_PID=""
for _ in 1 2 3; do expect check_token "$(tok "$ACCESS2")" 503; done
expect refresh_token "$(rtok "$REFRESH2")" 503
[[ $(curl -s --max-time 5 -o /dev/null -w '%{http_code}' "$BASE/readyz") == 503 ]] || fail "/readyz answers 200 with Redis down"
start_redis
recovered() {
  post check_token "$(tok recovery-probe)"
  [[ $CODE == 401 ]]
}
wait_for 20 recovered || fail "check_token did not recover after Redis came back (HTTP $CODE)"
log "   Redis back (pid $REDIS_PID): check_token recovered"

# Steady traffic while Prometheus scrapes (user 1: its signatures never meet user 0's).
traffic_loop() {
  local access refresh
  for _ in $(seq 600); do
    [[ -e $WORK/stop-traffic ]] && return 0
    post authorize "$(login_body "$U1" "$USER_PASSWORD")"
    [[ $CODE == 200 ]] || { echo "authorize: HTTP $CODE $(head -c 200 "$BODY")"; continue; }
    access=$(field access_token) refresh=$(field refresh_token)
    for _ in 1 2 3 4; do post check_token "$(tok "$access")"; done
    post check_token "$(tok "no-such-token")"
    post refresh_token "$(rtok "$refresh")"
    post refresh_token "$(rtok "$refresh")"
    post authorize "$(login_body "$U1" wrong-password)"
    sleep 0.3
  done
}
traffic_loop >"$WORK/traffic.log" 2>&1 &
TRAFFIC_PID=$!

# Until Prometheus has scraped the store errors, and at least 10 scrapes in all.
has_data() {
  curl -sf --max-time 5 "$PROM/api/v1/query" --data-urlencode "query=$1" |
    python3 -c 'import json, sys; sys.exit(0 if json.load(sys.stdin)["data"]["result"] else 1)'
}
wait_for 60 has_data 'tokencache_store_errors_total{job="tokencache"}' ||
  fail "Prometheus has no tokencache_store_errors_total after 60 s"
wait_for 60 has_data 'count_over_time(up{job="tokencache"}[1m]) >= 10' ||
  fail "Prometheus did not scrape tokencache 10 times in 60 s"
has_data 'up{job="tokencache"} == 1' || fail "Prometheus's target tokencache is down"
sleep 5
[[ ! -s $WORK/traffic.log ]] || fail "steady traffic: $(head -n 3 "$WORK/traffic.log")"

# ---------------------------------------------------------------------------
# d. Every dashboard query returns data

log "d. dashboard queries against $PROM (\$__rate_interval = 1m)"
python3 deploy/check_dashboards.py --prometheus "$PROM" --interval 1m \
  --datasources dashboards/provisioning/datasources dashboards/json/*.json ||
  fail "dashboard queries without data (above)"
