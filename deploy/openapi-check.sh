#!/usr/bin/env bash
# Checks openapi.yaml: a valid OpenAPI 3.1 document (openapi-spec-validator, installed with
# pip when missing), whose paths are exactly the routes of the router: every route string
# of the *_ROUTE / *_ROUTES constants in src/http/routes.rs is a path of openapi.yaml (or is
# listed in its `x-pending-routes`, routes knowingly not described yet, printed on every
# run), and every path of openapi.yaml is such a route. Prints what is missing; exits
# non-zero on any failure.
#
#   bash deploy/openapi-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."

spec=openapi.yaml
router=src/http/routes.rs
python=${PYTHON:-python3}

if ! "$python" -c 'import openapi_spec_validator, yaml' 2>/dev/null; then
  echo "openapi-check: installing openapi-spec-validator with pip"
  "$python" -m pip install -q 'openapi-spec-validator>=0.7,<0.10' \
    || "$python" -m pip install -q --break-system-packages 'openapi-spec-validator>=0.7,<0.10'
fi

"$python" -m openapi_spec_validator --schema 3.1 "$spec"

"$python" - "$spec" "$router" <<'EOF'
import re
import sys

import yaml

spec_path, router_path = sys.argv[1], sys.argv[2]
with open(spec_path, encoding="utf-8") as f:
    spec = yaml.safe_load(f)
with open(router_path, encoding="utf-8") as f:
    router = f.read()

if spec.get("openapi") != "3.1.0":
    sys.exit(f"openapi-check: {spec_path} says openapi {spec.get('openapi')!r}, expected 3.1.0")

# `const POST_ROUTES: [&str; 8] = [ "...", ... ];`, `const AUTH_ROUTE: &str = "...";`
constants = re.findall(
    r'const\s+([A-Z_]*ROUTES?)\s*:[^=]*=\s*(\[.*?\]|"[^"]*")\s*;', router, re.DOTALL
)
names = sorted(name for name, _ in constants)
routes = {r for _, value in constants for r in re.findall(r'"(/[^"]*)"', value)}
for required in ("POST_ROUTES", "GET_ROUTES", "AUTH_ROUTE"):
    if required not in names:
        sys.exit(f"openapi-check: no `const {required}` in {router_path}; update this check")
if not routes:
    sys.exit(f"openapi-check: no route strings found in {router_path}")

paths = set(spec.get("paths") or {})
pending = set(spec.get("x-pending-routes") or [])
missing = sorted(routes - paths - pending)
extra = sorted(paths - routes)
both = sorted(paths & pending)
for route in missing:
    print(f"openapi-check: route {route} (in {router_path}) is not a path of {spec_path}")
for path in extra:
    print(f"openapi-check: path {path} of {spec_path} is not a route of {router_path}")
for path in both:
    print(f"openapi-check: {path} is described now: remove it from x-pending-routes")
for route in sorted(pending):
    routed = "routed" if route in routes else "not routed yet"
    print(f"openapi-check: pending, not described yet: {route} ({routed})")
if missing or extra or both:
    sys.exit(1)
described = routes & paths
print(
    f"openapi-check: {spec_path} describes {len(described)} of the {len(routes)} routes of "
    f"{router_path} ({', '.join(names)}); {len(routes - paths)} pending"
)
EOF
