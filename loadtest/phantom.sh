#!/usr/bin/env bash
# Forward-auth with --upstream-jwt against forward-auth without it, side by side in one run
# (issue 22's goal: >= 0.85x), and the worst case: every request a token whose JWT is not
# cached (the JWT cache bounded to one entry, 200 tokens in turn), against the same
# rotation of tokens without JWTs.
#
#   cargo build --release --bin tokencache
#   bash loadtest/phantom.sh            # ROUNDS=3 DUR=10 CONC=50
#
# Starts three release servers on free ports (no JWT; JWT; JWT with a one-entry cache) on
# one SQLite file and the Redis at $REDIS_URL under a key prefix of their own, logs alice
# in 200 times, then alternates wrk -t1 -cCONC rounds between them. Prints each round, the
# medians and the ratios. Run it with nothing else busy.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/tokencache}
ROUNDS=${ROUNDS:-3} DUR=${DUR:-10} CONC=${CONC:-50}
[[ -x $BIN ]] || { echo "no $BIN: cargo build --release --bin tokencache" >&2; exit 2; }
command -v wrk >/dev/null || { echo "no wrk (apt install wrk)" >&2; exit 2; }
W=$(mktemp -d)
export DATABASE_URL="sqlite://$W/phantom.db?mode=rwc"
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0}
export TOKENCACHE_REDIS_PREFIX="phantom-$$-$RANDOM:"
export RUST_LOG=warn
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  redis-cli -u "$REDIS_URL" --scan --pattern "${TOKENCACHE_REDIS_PREFIX}*" \
    | xargs -r redis-cli -u "$REDIS_URL" del >/dev/null
  rm -rf "$W"
}
trap cleanup EXIT
SECRET=$(head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
PASSWORD=phantom-password-1
echo "$SECRET" | "$BIN" client create --app-key bench --token-ttl 3600 --secret-stdin >/dev/null
echo "$PASSWORD" | "$BIN" user create --username alice --app-key bench >/dev/null
"$BIN" keys rotate --lead-secs 0 >/dev/null
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
start() { # name, flags…
  local port; port=$(free_port)
  "$BIN" serve --listen "127.0.0.1:$port" --max-sessions-per-user 1000 "${@:2}" >"$W/$1.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
  echo "$port"
}
PLAIN=$(start plain)
JWT=$(start jwt --upstream-jwt)
COLD=$(start cold --upstream-jwt --near-cache-max-entries 1)
SECRET=$SECRET PASSWORD=$PASSWORD python3 - "$PLAIN" >"$W/tokens" <<'PY'
import hashlib, json, os, sys, time, urllib.request
port, secret, password = sys.argv[1], os.environ["SECRET"], os.environ["PASSWORD"]
for _ in range(200):
    t = str(int(time.time() * 1000))
    sig = hashlib.md5(("bench" + "alice" + password + t + secret).encode()).hexdigest()
    body = json.dumps({"appid": "bench", "username": "alice", "password": password,
                       "time": t, "token": sig})
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/authorize", body.encode(),
                                 {"Content-Type": "application/json"})
    print(json.load(urllib.request.urlopen(req))["data"]["access_token"])
PY
ONE=$(head -1 "$W/tokens")
# Every JWT server must answer with a JWT, or the figures are of something else.
curl -sf -D - -o /dev/null -H "Authorization: Bearer $ONE" "http://127.0.0.1:$JWT/api/v1/auth" \
  | grep -qi '^authorization: Bearer ey' || { echo "no JWT from the --upstream-jwt server" >&2; exit 1; }
cat >"$W/one.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $ONE"
LUA
{
  echo 'local tokens = {}'
  while read -r t; do echo "tokens[#tokens+1] = \"$t\""; done <"$W/tokens"
  cat <<'LUA'
local i = 0
request = function()
  i = i % #tokens + 1
  return wrk.format("GET", nil, { ["Authorization"] = "Bearer " .. tokens[i] })
end
LUA
} >"$W/many.lua"
rps() { # port, script
  wrk -t1 -c"$CONC" -d"${DUR}s" --latency -s "$2" "http://127.0.0.1:$1/api/v1/auth" \
    | awk '/Requests\/sec/ {print $2} /Non-2xx/ {print "NON2XX " $0 > "/dev/stderr"}'
}
declare -A R
for r in $(seq "$ROUNDS"); do
  R[plain,$r]=$(rps "$PLAIN" "$W/one.lua")
  R[jwt,$r]=$(rps "$JWT" "$W/one.lua")
  R[plainmany,$r]=$(rps "$PLAIN" "$W/many.lua")
  R[cold,$r]=$(rps "$COLD" "$W/many.lua")
  echo "round $r: one token: without ${R[plain,$r]} rps, with JWT ${R[jwt,$r]} rps ($(python3 -c "print(f'{${R[jwt,$r]}/${R[plain,$r]}:.3f}')")x); every JWT minted: without ${R[plainmany,$r]}, with ${R[cold,$r]} ($(python3 -c "print(f'{${R[cold,$r]}/${R[plainmany,$r]}:.3f}')")x)"
done
med() { python3 -c 'import statistics,sys; print(f"{statistics.median(map(float, sys.argv[1:])):.3f}")' "$@"; }
one=() cold=()
for r in $(seq "$ROUNDS"); do
  one+=("$(python3 -c "print(${R[jwt,$r]}/${R[plain,$r]})")")
  cold+=("$(python3 -c "print(${R[cold,$r]}/${R[plainmany,$r]})")")
done
echo "median ratio over $ROUNDS rounds: one token $(med "${one[@]}")x; every JWT minted $(med "${cold[@]}")x"
minted=$(curl -s "http://127.0.0.1:$COLD/metrics" | awk '/^tokencache_upstream_jwts_minted_total/ {s+=$2} END {print s+0}')
echo "JWTs minted by the one-entry-cache server: $minted"
