#!/usr/bin/env bash
# HEALTHCHECK of the tokencache image: GET /healthz on the port of TOKENCACHE_LISTEN,
# over bash's /dev/tcp, so that the runtime image needs no curl. Exit 0 on HTTP 200.
set -uo pipefail
listen=${TOKENCACHE_LISTEN:-127.0.0.1:9094}
port=${listen##*:}
[[ $port =~ ^[0-9]+$ ]] || exit 1
exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
printf 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3
IFS= read -r -t 2 status <&3 || exit 1
[[ $status == "HTTP/1."[01]" 200 "* ]]
