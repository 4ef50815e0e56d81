#!/usr/bin/env bash
# check_token against the one-GET ceiling: ../shared/bench/ratio.sh on a live token.
#
#   cargo build --release --bin tokencache
#   bash loadtest/ratio_check_token.sh                         # the default settings
#   EXTRA='--worker-threads 2' bash loadtest/ratio_check_token.sh
#
# Starts a release tokencache on a free port with an SQLite file of its own and the Redis
# at $REDIS_URL (default the local one) under a key prefix of its own, creates one client
# and one user, logs in, runs ratio.sh (three rounds of 10 s, wrk -t1 -c50) on
# check_token with the access token, then removes its keys and files. Run it with nothing
# else busy.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/tokencache}
RATIO=${RATIO:-../shared/bench/ratio.sh}
[[ -x $BIN ]] || { echo "no $BIN: cargo build --release --bin tokencache" >&2; exit 2; }
[[ -f $RATIO ]] || { echo "no $RATIO (set RATIO=path/to/ratio.sh)" >&2; exit 2; }
W=$(mktemp -d)
export DATABASE_URL="sqlite://$W/ratio.db?mode=rwc"
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0}
export TOKENCACHE_REDIS_PREFIX="ratio-$$-$RANDOM:"
export RUST_LOG=warn
SP=""
cleanup() {
  [[ -n $SP ]] && kill "$SP" 2>/dev/null
  redis-cli -u "$REDIS_URL" --scan --pattern "${TOKENCACHE_REDIS_PREFIX}*" \
    | xargs -r redis-cli -u "$REDIS_URL" del >/dev/null
  rm -rf "$W"
}
trap cleanup EXIT
SECRET=$(head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
PASSWORD=ratio-password-1
echo "$SECRET" | "$BIN" client create --app-key bench --token-ttl 3600 --secret-stdin >/dev/null
echo "$PASSWORD" | "$BIN" user create --username alice --app-key bench >/dev/null
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# shellcheck disable=SC2086 # EXTRA is a list of flags
"$BIN" serve --listen "127.0.0.1:$PORT" ${EXTRA:-} >"$W/server.log" 2>&1 &
SP=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
TOKEN=$(SECRET=$SECRET PASSWORD=$PASSWORD python3 - "$PORT" <<'PY'
import hashlib, json, os, sys, time, urllib.request
port, secret, password = sys.argv[1], os.environ["SECRET"], os.environ["PASSWORD"]
t = str(int(time.time()))
sig = hashlib.md5(("bench" + "alice" + password + t + secret).encode()).hexdigest()
body = json.dumps({"appid": "bench", "username": "alice", "password": password, "time": t, "token": sig})
req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/authorize", body.encode(),
                             {"Content-Type": "application/json"})
print(json.load(urllib.request.urlopen(req))["data"]["access_token"])
PY
)
bash "$RATIO" --url "http://127.0.0.1:$PORT/api/v1/check_token" --body "{\"token\":\"$TOKEN\"}"
