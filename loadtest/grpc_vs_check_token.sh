#!/usr/bin/env bash
# gRPC ext_authz (Envoy's Authorization/Check, --grpc-listen) side by side with check_token
# and with the gRPC ceiling: one release tokencache on MariaDB (127.0.0.1:3306, root) +
# Redis (127.0.0.1:6379), one live token, then three rounds of `wrk -t1 -c50` on
# check_token, examples/grpc_bench (one thread, 50 concurrent Checks over CONNS HTTP/2
# connections, default 1) on tokencache's Check, and the same on the gRPC ceiling
# (loadtest/ceiling_grpc: a bare hyper HTTP/2 server that decodes nothing and answers a
# fixed CheckResponse after one Redis GET), 8 s each, with the server's CPU ticks (1/100
# s, /proc/PID/stat) of each run and the ratios of the round. EXTRA adds flags to serve
# (EXTRA=--near-cache).
#
#   cargo build --release --bin tokencache --example grpc_bench
#   bash loadtest/grpc_vs_check_token.sh; CONNS=4 bash loadtest/grpc_vs_check_token.sh
set -euo pipefail
BIN=${BIN:-target/release/tokencache}
DB=tc_grpcbench_$$
mysql -h127.0.0.1 -uroot -e "CREATE DATABASE $DB"
export DATABASE_URL=mysql://root@127.0.0.1:3306/$DB REDIS_URL=redis://127.0.0.1:6379/0 TOKENCACHE_REDIS_PREFIX=tcg$$: RUST_LOG=warn
$BIN migrate >/dev/null 2>&1
echo bench-secret-0123 | $BIN client create --app-key bench --token-ttl 3600 --secret-stdin >/dev/null
echo bench-password | $BIN user create --username bench0 --app-key bench >/dev/null
HP=$((30000 + RANDOM % 10000)); GP=$((HP + 1))
(cd loadtest/ceiling_grpc && CARGO_TARGET_DIR=/tmp/tokencache-ceiling-grpc cargo build --release -q)
redis-cli set ceiling:bench '{"username":"alice","app_key":"bench","expires":4102444800}' >/dev/null
CP=$((GP + 1))
/tmp/tokencache-ceiling-grpc/release/ceiling-grpc 127.0.0.1:$CP 2>/dev/null &
CPID=$!
# shellcheck disable=SC2086 # EXTRA is a list of flags
$BIN serve --listen 127.0.0.1:$HP --grpc-listen 127.0.0.1:$GP ${EXTRA:-} >/tmp/grpcbench-server.log 2>&1 &
SPID=$!
trap 'kill $SPID $CPID; mysql -h127.0.0.1 -uroot -e "DROP DATABASE $DB"; redis-cli --scan --pattern "tcg$$:*" | xargs -r redis-cli del >/dev/null' EXIT
sleep 1
T=$(date +%s%3N); SIG=$(printf '%s' "benchbench0bench-password${T}bench-secret-0123" | md5sum | cut -d' ' -f1)
TOKEN=$(curl -s -XPOST http://127.0.0.1:$HP/api/v1/authorize -H 'Content-Type: application/json' \
  -d "{\"appid\":\"bench\",\"token_type\":\"web\",\"username\":\"bench0\",\"password\":\"bench-password\",\"time\":\"$T\",\"token\":\"$SIG\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["access_token"])')
command -v h2load >/dev/null || apt-get install -y -qq nghttp2-client >/dev/null
MSG=$(mktemp)
python3 - "$TOKEN" "$MSG" <<'PY'
import struct, sys
from envoy.service.auth.v3 import attribute_context_pb2, external_auth_pb2
http = attribute_context_pb2.AttributeContext.HttpRequest(
    method="GET", path="/orders/1", host="app.example.com",
    headers={"authorization": "Bearer " + sys.argv[1], "user-agent": "curl/8.0", "accept": "*/*",
             "x-request-id": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"})
body = external_auth_pb2.CheckRequest(attributes=attribute_context_pb2.AttributeContext(
    request=attribute_context_pb2.AttributeContext.Request(http=http))).SerializeToString()
open(sys.argv[2], "wb").write(b"\0" + struct.pack(">I", len(body)) + body)
PY
target/release/examples/grpc_bench http://127.0.0.1:$GP "$TOKEN" 10 1 1 >/dev/null
h2() { # h2 PORT -> req/s
  local conns=${CONNS:-1}
  h2load -D 8 -t 1 -c "$conns" -m $(((50 + conns - 1) / conns)) --data="$MSG" -H 'content-type: application/grpc' \
    -H 'te: trailers' "http://127.0.0.1:$1/envoy.service.auth.v3.Authorization/Check" |
    awk '/^finished in/ {gsub(",", "", $4); print $4}'
}
LUA=$(mktemp --suffix=.lua)
printf 'wrk.method="POST"\nwrk.headers["Content-Type"]="application/json"\nwrk.body=%s\n' "'{\"token\":\"$TOKEN\"}'" > $LUA
cpu() { awk '{print $14 + $15}' /proc/${1:-$SPID}/stat; }
echo "Check over ${CONNS:-1} HTTP/2 connection(s), 50 concurrent; check_token wrk -c50; ${EXTRA:-default settings}"
for round in 1 2 3; do
  c0=$(cpu)
  H=$(wrk -t1 -c50 -d8s --latency -s $LUA http://127.0.0.1:$HP/api/v1/check_token | awk '/Requests\/sec/ {print $2}')
  c1=$(cpu)
  G=$(h2 $GP)
  c2=$(cpu)
  k0=$(cpu $CPID)
  C=$(h2 $CP)
  k1=$(cpu $CPID)
  python3 - "$H" "$G" "$C" "$round" $((c1 - c0)) $((c2 - c1)) $((k1 - k0)) <<'PY'
import sys
h, g, c = (float(a) for a in sys.argv[1:4])
th, tg, tc = (int(t) * 10_000 for t in sys.argv[5:8])  # ticks of 10 ms, in µs
us = lambda ticks, rps: ticks / (rps * 8)
print(f"round {sys.argv[4]}: check_token {h:.0f}/s, Check {g:.0f}/s, gRPC ceiling {c:.0f}/s; "
      f"Check / ceiling {g / c:.3f}, Check / check_token {g / h:.3f}; server CPU per request: "
      f"check_token {us(th, h):.1f} µs, Check {us(tg, g):.1f} µs, ceiling {us(tc, c):.1f} µs")
PY
done
