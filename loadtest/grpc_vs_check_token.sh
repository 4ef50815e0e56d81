#!/usr/bin/env bash
# gRPC ext_authz (Envoy's Authorization/Check, --grpc-listen) side by side with check_token:
# one release tokencache on MariaDB (127.0.0.1:3306, root) + Redis (127.0.0.1:6379), one
# live token, then three rounds of `wrk -t1 -c50` on check_token and examples/grpc_bench
# (one thread, 50 concurrent Checks over CONNS HTTP/2 connections, default 1), 8 s each,
# with the server's CPU ticks (1/100 s, /proc/PID/stat) of each run.
#
#   cargo build --release --bin tokencache --example grpc_bench
#   bash loadtest/grpc_vs_check_token.sh
set -euo pipefail
BIN=${BIN:-target/release/tokencache}
DB=tc_grpcbench_$$
mysql -h127.0.0.1 -uroot -e "CREATE DATABASE $DB"
export DATABASE_URL=mysql://root@127.0.0.1:3306/$DB REDIS_URL=redis://127.0.0.1:6379/0 TOKENCACHE_REDIS_PREFIX=tcg$$: RUST_LOG=warn
$BIN migrate >/dev/null 2>&1
echo bench-secret-0123 | $BIN client create --app-key bench --token-ttl 3600 --secret-stdin >/dev/null
echo bench-password | $BIN user create --username bench0 --app-key bench >/dev/null
HP=$((30000 + RANDOM % 10000)); GP=$((HP + 1))
$BIN serve --listen 127.0.0.1:$HP --grpc-listen 127.0.0.1:$GP >/tmp/grpcbench-server.log 2>&1 &
SPID=$!
trap 'kill $SPID; mysql -h127.0.0.1 -uroot -e "DROP DATABASE $DB"; redis-cli --scan --pattern "tcg$$:*" | xargs -r redis-cli del >/dev/null' EXIT
sleep 1
T=$(date +%s%3N); SIG=$(printf '%s' "benchbench0bench-password${T}bench-secret-0123" | md5sum | cut -d' ' -f1)
TOKEN=$(curl -s -XPOST http://127.0.0.1:$HP/api/v1/authorize -H 'Content-Type: application/json' \
  -d "{\"appid\":\"bench\",\"token_type\":\"web\",\"username\":\"bench0\",\"password\":\"bench-password\",\"time\":\"$T\",\"token\":\"$SIG\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["access_token"])')
LUA=$(mktemp --suffix=.lua)
printf 'wrk.method="POST"\nwrk.headers["Content-Type"]="application/json"\nwrk.body=%s\n' "'{\"token\":\"$TOKEN\"}'" > $LUA
cpu() { awk '{print $14 + $15}' /proc/$SPID/stat; }
for round in 1 2 3; do
  c0=$(cpu)
  wrk -t1 -c50 -d8s --latency -s $LUA http://127.0.0.1:$HP/api/v1/check_token | awk -v r=$round '/Requests\/sec/ {print "round " r " check_token (wrk): " $2 " req/s"} / 99%/ {print "round " r " check_token p99: " $2}'
  c1=$(cpu); echo "round $round check_token server CPU ticks: $((c1 - c0))"
  target/release/examples/grpc_bench http://127.0.0.1:$GP "$TOKEN" 50 8 ${CONNS:-1} | sed "s/^/round $round /"
  c2=$(cpu); echo "round $round grpc server CPU ticks: $((c2 - c1))"
done
