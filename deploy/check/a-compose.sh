# Sourced by deploy/check.sh, in order; its helpers and variables are in scope.
# shellcheck shell=bash
# ---------------------------------------------------------------------------
# a. docker-compose.yml, Dockerfile, .dockerignore

need docker-compose docker-compose
log "a. compose file: $(docker-compose version --short 2>/dev/null || docker-compose --version)"
export COMPOSE_PROJECT_NAME=tokencache-check
docker-compose -f docker-compose.yml config -q || fail "docker-compose config rejects docker-compose.yml"
# (The help text in a variable: grep -q closing the pipe early would fail it under pipefail.)
dc_help=$(docker-compose --help 2>&1 || true)
if [[ $dc_help == *--profile* ]]; then
  for profile in loadtest cluster; do
    docker-compose -f docker-compose.yml --profile "$profile" config -q ||
      fail "docker-compose --profile $profile config rejects docker-compose.yml"
  done
  log "   valid, with and without --profile loadtest, --profile cluster"
else
  log "   valid (this docker-compose has no --profile option)"
fi
docker-compose -f docker-compose.yml config >"$WORK/compose.yml"

# What the stack promises, on the normalised file (docker-compose 1.29 keeps every
# service there, profiles included; Debian's python3-yaml comes with docker-compose).
/usr/bin/python3 - "$WORK/compose.yml" <<'EOF' || fail "docker-compose.yml does not hold what the stack promises (above)"
import sys, yaml
spec = yaml.safe_load(open(sys.argv[1]))
svc = spec["services"]
bad = []
def want(cond, msg):
    if not cond:
        bad.append(msg)
cluster_nodes = [f"redis-node-{i}" for i in range(1, 7)]
cluster = cluster_nodes + ["redis-cluster-init", "tokencache-cluster"]
want(sorted(svc) == sorted(["grafana", "k6", "loadtest-setup", "mysql", "prometheus", "redis", "tokencache"] + cluster),
     f"services: {sorted(svc)}")
for name, s in svc.items():
    prof = s.get("profiles")
    if name in ("k6", "loadtest-setup"):
        want(prof == ["loadtest"], f"{name}: profiles {prof}, expected [loadtest]")
    elif name in cluster:
        want(prof == ["cluster"], f"{name}: profiles {prof}, expected [cluster]")
    else:
        want(not prof, f"{name}: profiles {prof}: started by a plain `up`?")
tcc = svc["tokencache-cluster"]
want(tcc["environment"].get("TOKENCACHE_REDIS_MODE") == "cluster", "tokencache-cluster: TOKENCACHE_REDIS_MODE=cluster")
want(all(f"redis-node-{i}:6379" in tcc["environment"].get("REDIS_URL", "") for i in (1, 2, 3)),
     "tokencache-cluster: REDIS_URL names seed nodes")
want({k: v.get("condition") for k, v in tcc.get("depends_on", {}).items()}.get("redis-cluster-init") == "service_completed_successfully",
     "tokencache-cluster must wait for redis-cluster-init")
for n in cluster_nodes:
    c = " ".join(svc[n].get("command") or [])
    want("--cluster-enabled yes" in c and "--appendonly yes" in c and f"--cluster-announce-hostname {n}" in c, f"{n}: command {c!r}")
published = {}
for name, s in svc.items():
    for p in s.get("ports", []):
        published[str(p["published"]) if isinstance(p, dict) else str(p).split(":")[-2]] = name
want(published == {"9094": "tokencache", "9090": "prometheus", "3000": "grafana", "9095": "tokencache-cluster"},
     f"published ports: {published}")
deps = lambda n: {k: v.get("condition") for k, v in svc[n].get("depends_on", {}).items()}
want(deps("tokencache") == {"mysql": "service_healthy", "redis": "service_healthy"}, f"tokencache depends_on {deps('tokencache')}")
want(deps("loadtest-setup").get("tokencache") == "service_healthy", "loadtest-setup must wait for a healthy tokencache")
want(deps("k6").get("loadtest-setup") == "service_completed_successfully", "k6 must wait for loadtest-setup")
for n in ("mysql", "redis"):
    hc = svc[n].get("healthcheck", {})
    want(hc.get("test") and hc.get("start_period"), f"{n}: healthcheck with a start_period")
want("127.0.0.1" in " ".join(svc["mysql"]["healthcheck"]["test"]) and "TCP" in " ".join(svc["mysql"]["healthcheck"]["test"]),
     "mysql: healthcheck over TCP")
cmd = " ".join(svc["redis"].get("command") or [])
want("--appendonly yes" in cmd, f"redis: not append-only: {cmd!r}")
want(any("redis-data" in str(v) and "/data" in str(v) for v in svc["redis"].get("volumes", [])),
     "redis: /data on the named volume redis-data")
want("build" in svc["tokencache"] and svc["tokencache"]["build"].get("dockerfile") == "Dockerfile", "tokencache: built from Dockerfile")
env = svc["tokencache"].get("environment", {})
want(env.get("TOKENCACHE_LISTEN") == "0.0.0.0:9094", "tokencache: TOKENCACHE_LISTEN=0.0.0.0:9094")
want(svc["k6"].get("image", "").startswith("grafana/k6") and svc["k6"]["environment"].get("BASE_URL") == "http://tokencache:9094",
     "k6: grafana/k6 image with BASE_URL=http://tokencache:9094")
want(any("/work/loadtest" in str(v) for v in svc["k6"].get("volumes", [])), "k6: ./loadtest mounted at /work/loadtest")
gf = svc["grafana"]
want(any("/etc/grafana/provisioning" in str(v) for v in gf.get("volumes", [])), "grafana: provisioning mounted")
want("GF_SECURITY_ADMIN_PASSWORD" in gf.get("environment", {}), "grafana: admin password from the environment")
for b in bad:
    print(f"[check]    {b}", file=sys.stderr)
if not bad:
    print(f"[check]    services {sorted(svc)}; published {dict(sorted(published.items()))}; "
          "k6 and loadtest-setup only in profile loadtest, the cluster only in profile cluster", file=sys.stderr)
sys.exit(1 if bad else 0)
EOF

# Dockerfile: multi-stage, non-root, HEALTHCHECK; its COPY sources exist and reach the
# build context.
grep -qE '^FROM .* AS builder' Dockerfile || fail "Dockerfile: no builder stage"
grep -qE '^USER [1-9]' Dockerfile || fail "Dockerfile: no USER with a non-root numeric uid"
grep -qE '^HEALTHCHECK ' Dockerfile || fail "Dockerfile: no HEALTHCHECK"
python3 - <<'EOF' || fail "Dockerfile COPY sources"
import fnmatch, os, shlex, sys
ignored = [l.strip().rstrip("/") for l in open(".dockerignore") if l.strip() and not l.startswith("#")]
bad = []
for line in open("Dockerfile"):
    if not line.startswith("COPY "):
        continue
    args = [a for a in shlex.split(line[5:]) if not a.startswith("--")]
    if any(a.startswith("--from") for a in shlex.split(line[5:])):
        continue
    for src in args[:-1]:
        if not os.path.exists(src):
            bad.append(f"{src}: missing")
        elif any(fnmatch.fnmatch(src, pat) or src.split("/")[0] == pat for pat in ignored):
            bad.append(f"{src}: excluded by .dockerignore")
for b in bad:
    print(f"[check]    Dockerfile COPY {b}", file=sys.stderr)
sys.exit(1 if bad else 0)
EOF
for f in deploy/*.sh deploy/check/*.sh; do bash -n "$f" || fail "$f: syntax"; done
log "   Dockerfile, .dockerignore, deploy/*.sh, deploy/check/*.sh: ok"
