#!/usr/bin/env bash
# Creates the k6 bench client and users for the loadtest/ scripts, with the names and
# environment variables they read (loadtest/lib/common.js): client APP_KEY with secret
# APP_SECRET, users <USER_PREFIX>0..<USER_PREFIX><USERS-1> with password USER_PASSWORD.
# Idempotent: what already exists is kept ("already exists" is not an error), but a
# client stored with another secret than APP_SECRET is (k6's signatures would fail).
#
# The docker-compose service `loadtest-setup` runs it in the tokencache image;
# deploy/check.sh runs it against a local binary (TOKENCACHE_BIN). The tokencache CLI
# reads DATABASE_URL (and the TOKENCACHE_ARGON2_* settings) from the environment.
set -euo pipefail

TC=${TOKENCACHE_BIN:-tokencache}
APP_KEY=${APP_KEY:-bench}
APP_SECRET=${APP_SECRET:-tokencache-bench-secret}
USERS=${USERS:-100}
USER_PREFIX=${USER_PREFIX:-bench}
USER_PASSWORD=${USER_PASSWORD:-bench-password}
TOKEN_TTL=${TOKEN_TTL:-3600}
export RUST_LOG=${RUST_LOG:-warn}

log() { printf '[loadtest-setup] %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}
[[ $USERS =~ ^[1-9][0-9]*$ ]] || die "USERS=$USERS: expected a positive integer"
[[ $TOKEN_TTL =~ ^[1-9][0-9]*$ ]] || die "TOKEN_TTL=$TOKEN_TTL: expected a positive integer"

# The client. Secrets go through the environment, not argv (visible in ps).
if out=$("$TC" client show "$APP_KEY" --reveal-secret 2>&1); then
  stored=$(sed -n 's/^app_secret: //p' <<<"$out")
  [[ $stored == "$APP_SECRET" ]] ||
    die "client $APP_KEY exists with another secret than APP_SECRET (set APP_SECRET to it, or use another APP_KEY)"
  [[ $(sed -n 's/^disabled: //p' <<<"$out") == false ]] || die "client $APP_KEY is disabled"
  log "client $APP_KEY: already exists"
elif [[ $out == *"not found"* ]]; then
  if out=$(TOKENCACHE_CLIENT_SECRET=$APP_SECRET "$TC" client create --app-key "$APP_KEY" \
    --token-ttl "$TOKEN_TTL" --json 2>&1 >/dev/null); then
    log "client $APP_KEY: created (token_ttl $TOKEN_TTL s)"
  elif [[ $out == *"already exists"* ]]; then
    log "client $APP_KEY: already exists (created concurrently)"
  else
    die "tokencache client create: $out"
  fi
else
  die "tokencache client show: $out"
fi

# The users, four CLI processes at a time (each hashes one password).
create_user() {
  local out
  if out=$(TOKENCACHE_USER_PASSWORD=$USER_PASSWORD "$TC" user create --username "$1" --app-key "$APP_KEY" 2>&1); then
    echo created
  elif [[ $out == *"already exists"* ]]; then
    echo exists
  else
    printf '[loadtest-setup] user %s: %s\n' "$1" "$(tail -n 1 <<<"$out")" >&2
    return 1
  fi
}
export -f create_user
export TC APP_KEY USER_PASSWORD

# shellcheck disable=SC2016 # "$1" is create_user's argument, expanded by the inner bash
results=$(seq 0 $((USERS - 1)) | sed "s/^/$USER_PREFIX/" | xargs -P 4 -n 1 bash -c 'create_user "$1"' _) ||
  die "could not create every user"
log "users ${USER_PREFIX}0..${USER_PREFIX}$((USERS - 1)): $(grep -c created <<<"$results" || true) created, $(grep -c exists <<<"$results" || true) already there"
