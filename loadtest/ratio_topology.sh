#!/usr/bin/env bash
# check_token on a Redis Cluster (3 masters, 3 replicas) or a Sentinel setup (master,
# replica, 3 sentinels) of its own, against the one-GET ceiling on the same Redis, with
# and without the near cache, side by side in one run.
#
#   cargo build --release --bin tokencache
#   bash loadtest/ratio_topology.sh cluster|sentinel [ROUNDS] [DURATION_S]
#
# Each round runs, with `wrk -t1 -c50` for DURATION_S seconds each (default 3 rounds of
# 8 s): the ceiling, tokencache without the near cache, tokencache with it. The ceiling is
# a bare hyper server doing one GET per request: on a cluster through the redis crate's
# cluster client (loadtest/ceiling_cluster), with Sentinel the shared bench ceiling on
# the master (../shared/bench/ceiling). Prints every round, the ratios to the ceiling of
# the same round, and the GET commands Redis served per check during the near-cache runs.
# Everything it starts is on free loopback ports and stopped at the end. Run it with
# nothing else busy.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:?cluster or sentinel}
ROUNDS=${2:-3}
DUR=${3:-8}
BIN=${BIN:-target/release/tokencache}
[[ -x $BIN ]] || { echo "no $BIN: cargo build --release --bin tokencache" >&2; exit 2; }
command -v wrk >/dev/null || apt-get install -y -qq wrk >/dev/null
W=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$W"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); p=s.getsockname()[1]; print(p if p < 55000 else 0)'; }
port() { local p=0; while [[ $p == 0 ]]; do p=$(free_port); done; echo "$p"; }
server() { # server PORT ARGS...: a redis-server in the background
  local p=$1; shift
  redis-server --port "$p" --bind 127.0.0.1 --save "" --appendonly no --dir "$W" \
    --repl-diskless-sync-delay 0 "$@" >"$W/redis-$p.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do redis-cli -p "$p" ping >/dev/null 2>&1 && return; sleep 0.05; done
  echo "redis-server on $p did not start" >&2; exit 2
}

export RUST_LOG=warn
export DATABASE_URL="sqlite://$W/ratio.db?mode=rwc"
export TOKENCACHE_REDIS_PREFIX="ratio:"
case $MODE in
cluster)
  NODES=()
  for _ in 1 2 3 4 5 6; do
    p=$(port)
    server "$p" --cluster-enabled yes --cluster-config-file "$W/nodes-$p.conf" --cluster-node-timeout 2000
    NODES+=("$p")
  done
  redis-cli --cluster create $(printf '127.0.0.1:%s ' "${NODES[@]}") --cluster-replicas 1 --cluster-yes >/dev/null
  for _ in $(seq 100); do
    redis-cli -p "${NODES[0]}" cluster info | grep -q cluster_state:ok && break; sleep 0.1
  done
  export TOKENCACHE_REDIS_MODE=cluster
  REDIS_URL=$(printf 'redis://127.0.0.1:%s,' "${NODES[@]}"); export REDIS_URL=${REDIS_URL%,}
  DATA=("${NODES[@]}")
  redis-cli -c -p "${NODES[0]}" set ceiling:bench '{"username":"alice","app_key":"bench","expires":4102444800}' >/dev/null
  (cd loadtest/ceiling_cluster && CARGO_TARGET_DIR=/tmp/tokencache-ceiling-cluster cargo build --release -q)
  CEILING_CMD=(env REDIS_URLS="$REDIS_URL" /tmp/tokencache-ceiling-cluster/release/ceiling-cluster)
  ;;
sentinel)
  M=$(port); R=$(port)
  server "$M"
  server "$R" --replicaof 127.0.0.1 "$M"
  SURLS=""
  for _ in 1 2 3; do
    s=$(port)
    printf 'port %s\nbind 127.0.0.1\ndir %s\nsentinel monitor mymaster 127.0.0.1 %s 2\nsentinel down-after-milliseconds mymaster 2000\n' \
      "$s" "$W" "$M" >"$W/sentinel-$s.conf"
    redis-server "$W/sentinel-$s.conf" --sentinel >"$W/sentinel-$s.log" 2>&1 &
    PIDS+=($!)
    SURLS+="redis://127.0.0.1:$s,"
  done
  sleep 1
  export TOKENCACHE_REDIS_MODE=sentinel TOKENCACHE_REDIS_SENTINEL_MASTER=mymaster
  export REDIS_URL=${SURLS%,}
  DATA=("$M" "$R")
  redis-cli -p "$M" set ceiling:bench '{"username":"alice","app_key":"bench","expires":4102444800}' >/dev/null
  (cd ../shared/bench/ceiling && CARGO_TARGET_DIR=/tmp/tokencache-ceiling-target cargo build --release -q)
  CEILING_CMD=(env REDIS_URL="redis://127.0.0.1:$M/0" /tmp/tokencache-ceiling-target/release/ceiling redis)
  ;;
*) echo "cluster or sentinel, not $MODE" >&2; exit 2 ;;
esac

SECRET=$(head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
PASSWORD=ratio-password-1
echo "$SECRET" | "$BIN" client create --app-key bench --token-ttl 3600 --secret-stdin >/dev/null
echo "$PASSWORD" | "$BIN" user create --username alice --app-key bench >/dev/null
start_tc() { # start_tc PORT [--near-cache]
  "$BIN" serve --listen "127.0.0.1:$1" ${2:-} >"$W/server-$1.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$1/readyz" >/dev/null && return; sleep 0.1; done
  echo "tokencache on $1 not ready" >&2; cat "$W/server-$1.log" >&2; exit 2
}
PLAIN=$(port); NEAR=$(port); CEIL=$(port)
start_tc "$PLAIN"
start_tc "$NEAR" --near-cache
"${CEILING_CMD[@]}" "127.0.0.1:$CEIL" 2>"$W/ceiling.log" &
PIDS+=($!)
for _ in $(seq 100); do curl -s -o /dev/null -X POST "http://127.0.0.1:$CEIL/" && break; sleep 0.1; done
TOKEN=$(SECRET=$SECRET PASSWORD=$PASSWORD python3 - "$PLAIN" <<'PY'
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
cat >"$W/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"token":"$TOKEN"}'
wrk.headers["Content-Type"] = "application/json"
LUA
gets() { local n=0 g; for p in "${DATA[@]}"; do
  g=$(redis-cli -p "$p" info commandstats | sed -n 's/^cmdstat_get:calls=\([0-9]*\),.*/\1/p'); n=$((n + ${g:-0})); done; echo $n; }
run() { # run URL -> "rps non2xx"
  wrk -t1 -c50 -d"${DUR}s" -s "$W/post.lua" "$1" >"$W/wrk.txt" 2>&1
  python3 - "$W/wrk.txt" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", t)
reqs = int(re.search(r"(\d+) requests in", t).group(1))
print(f"{rps:.0f} {bad.group(1) if bad else 0} {reqs}")
PY
}
# warm all three
for u in "http://127.0.0.1:$CEIL/" "http://127.0.0.1:$PLAIN/api/v1/check_token" "http://127.0.0.1:$NEAR/api/v1/check_token"; do
  wrk -t1 -c50 -d2s -s "$W/post.lua" "$u" >/dev/null 2>&1 || true
done
echo "mode $MODE: $ROUNDS rounds of ${DUR}s, wrk -t1 -c50"
for r in $(seq "$ROUNDS"); do
  read -r c cbad _ < <(run "http://127.0.0.1:$CEIL/")
  read -r p pbad _ < <(run "http://127.0.0.1:$PLAIN/api/v1/check_token")
  g0=$(gets)
  read -r n nbad nreq < <(run "http://127.0.0.1:$NEAR/api/v1/check_token")
  g1=$(gets)
  python3 -c "
c,p,n,g,req=$c,$p,$n,$((g1 - g0)),$nreq
print(f'round $r: ceiling {c} rps | check_token {p} rps ({p/c:.3f}) | near cache {n} rps ({n/c:.3f}), {g/req:.4f} GET per check | non-2xx {$cbad}/{$pbad}/{$nbad}')"
done

# With WITH_K6=1: a k6 `mixed` run (loadtest/run.sh, DURATION default 30s) on the near-cache
# server's settings, and the Redis commands per check_token it cost.
if [[ ${WITH_K6:-0} == 1 ]]; then
  cmds() { local n=0 g; for p in "${DATA[@]}"; do
    g=$(redis-cli -p "$p" info stats | sed -n 's/^total_commands_processed:\([0-9]*\).*/\1/p'); n=$((n + ${g:-0})); done; echo $n; }
  S=$W/mixed-summary.json
  c0=$(cmds); g0=$(gets)
  TOKENCACHE_NEAR_CACHE=true TOKENCACHE_BIN=$BIN DATABASE_URL="sqlite://$W/mixed.db?mode=rwc" \
    DURATION=${DURATION:-30s} SUMMARY_JSON=$S REPORT_HTML= KEEP_REDIS=1 \
    bash loadtest/run.sh mixed >"$W/k6.log" 2>&1 || { tail -20 "$W/k6.log"; }
  c1=$(cmds); g1=$(gets)
  python3 - "$S" $((g1 - g0)) $((c1 - c0)) <<'PY'
import json, sys
ops = json.load(open(sys.argv[1]))["ops"]
checks = ops["check_token"]["count"]
g, c = int(sys.argv[2]), int(sys.argv[3])
mix = ", ".join(f"{k} {v['count']}" for k, v in ops.items())
print(f"k6 mixed with the near cache ({mix}): {g} GET ({g / checks:.3f} per check_token), "
      f"{c} Redis commands in all ({c / checks:.3f} per check_token, the setup's logins and the mix's writes included)")
PY
fi

# With WITH_STALENESS=1: loadtest/near_cache_staleness.py (TRIALS, default 1000) on this
# topology: a logout on one instance, the other's near cache polled until it refuses.
if [[ ${WITH_STALENESS:-0} == 1 ]]; then
  python3 loadtest/near_cache_staleness.py --bin "$BIN" --trials "${TRIALS:-1000}" \
    --redis-url "$REDIS_URL" --redis-mode "$MODE" --sentinel-master "${TOKENCACHE_REDIS_SENTINEL_MASTER:-}"
fi
