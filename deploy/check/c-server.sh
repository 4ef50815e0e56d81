# Sourced by deploy/check.sh, in order; its helpers and variables are in scope.
# shellcheck shell=bash
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

# Envoy's protos for the gRPC ext_authz traffic (tests/grpc/check.py).
python3 -c 'import grpc; from envoy.service.auth.v3 import external_auth_pb2_grpc' 2>/dev/null ||
  python3 -m pip install -q grpcio xds-protos >/dev/null 2>&1 ||
  fail "python3 with grpcio and xds-protos (pip install grpcio xds-protos)"
TC_PORT=$(free_port)
GRPC_PORT=$(free_port)
BASE="http://127.0.0.1:$TC_PORT"
# With the near cache and the gRPC listener, so that their metrics (and panels) have data.
"$TOKENCACHE_BIN" serve --listen "127.0.0.1:$TC_PORT" --near-cache \
  --grpc-listen "127.0.0.1:$GRPC_PORT" >"$WORK/tokencache.log" 2>&1 &
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
# The near cache empties itself when its tracking connection drops (a push the server
# handles within milliseconds); until then a cached live token may still answer 200.
sleep 0.5
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
    printf '[{"authorization": "Bearer %s"}, {}]' "$access" |
      python3 tests/grpc/check.py "127.0.0.1:$GRPC_PORT" >/dev/null || echo "gRPC check failed"
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
