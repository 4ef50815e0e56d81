#!/usr/bin/env bash
# Fuzzes a live tokencache from openapi.yaml with schemathesis (PyPI) and every check it
# has: schema-valid requests must be accepted (no 4xx but the authentication ones),
# schema-violating ones refused, answers must match their documented schemas, no 5xx.
#
#   MAX_EXAMPLES=100 bash deploy/fuzz.sh   # CI's bounded pass (under a minute)
#   MAX_EXAMPLES=600 bash deploy/fuzz.sh   # the long run (over 10,000 cases)
#
# The server runs on the embedded stores (a SQLite file of its own, the in-process token
# store) on a free port, with the per-IP limits off (every request comes from
# 127.0.0.1). Installs schemathesis with pip when missing. Exit status: schemathesis's.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=deploy/lib.sh
source deploy/lib.sh

MAX_EXAMPLES=${MAX_EXAMPLES:-100}
BIN=${TOKENCACHE_BIN:-target/debug/tokencache}
log() { printf '[fuzz] %s\n' "$*" >&2; }

# The `st` script of the python3 that pip installs into (not a shim that may lag).
ST="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/st"
if [[ ! -x $ST ]]; then
  python3 -m pip install -q schemathesis >/dev/null 2>&1 || {
    log "pip install schemathesis failed"
    exit 2
  }
fi
[[ -x $ST ]] || { log "no $ST after installing schemathesis"; exit 2; }
[[ -x $BIN ]] || { log "no $BIN: cargo build first"; exit 2; }

WORK=$(mktemp -d /tmp/tokencache-fuzz.XXXXXX)
SERVER_PID=""
cleanup() {
  local rc=$?
  stop_pid "$SERVER_PID" || true
  [[ $rc == 0 ]] || tail -n 20 "$WORK/server.log" >&2 || true
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT

PORT=$(free_port)
env -u REDIS_URL \
  DATABASE_URL="sqlite://$WORK/fuzz.db?mode=rwc" \
  TOKENCACHE_ARGON2_MEMORY_KIB=256 TOKENCACHE_ARGON2_ITERATIONS=1 \
  TOKENCACHE_IP_LIMIT_AUTHORIZE=0 TOKENCACHE_IP_LIMIT_GET_VERIFY=0 \
  TOKENCACHE_IP_LIMIT_CHECK_USER=0 TOKENCACHE_IP_LIMIT_DOACTION=0 \
  TOKENCACHE_IP_LIMIT_UNKNOWN_CLIENTS=0 \
  RUST_LOG=warn "$BIN" serve --listen "127.0.0.1:$PORT" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
wait_for 30 curl -sf "http://127.0.0.1:$PORT/healthz" || { log "the server did not start"; exit 2; }

log "schemathesis: every check, $MAX_EXAMPLES examples per operation, on 127.0.0.1:$PORT"
cd "$WORK"
# One worker: with two, CPython 3.11 compiling in both threads at once has been seen to
# fail inside schemathesis itself ("AST constructor recursion depth mismatch").
"$ST" run "$OLDPWD/openapi.yaml" --url "http://127.0.0.1:$PORT" --checks all \
  --max-examples "$MAX_EXAMPLES" --workers 1 --seed 20261130
