#!/usr/bin/env python3
"""Checks the Grafana dashboards against a running Prometheus (deploy/check.sh runs it).

    check_dashboards.py --prometheus http://127.0.0.1:PORT [--interval 1m] \
        --datasources dashboards/provisioning/datasources dashboards/json/*.json

1. Static: each file is JSON with a fixed, unique dashboard uid; no `${DS_...}`
   placeholder or `__inputs` section (they need an import step); every panel and every
   target names the provisioned data source by its uid; every panel that is not a row
   has at least one query; panel ids are unique within a dashboard.
2. Live: every PromQL expression (panels[].targets[].expr, rows' nested panels
   included), with Grafana's interval variables replaced by `--interval`, is sent to
   Prometheus's /api/v1/query. Each must return at least one series with a value that
   is not NaN. An expression that still holds a `$variable` after the replacement fails:
   a new template variable must be taught to this script, not skipped.

Prints one line per expression with its series count; exits 1 listing the failures.
Standard library only.
"""
import argparse
import glob
import json
import math
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request

# Grafana's built-in interval variables, in both spellings.
INTERVAL_VARS = ("__rate_interval", "__interval", "__range")


def provisioned_uids(folder):
    """uids of the data sources in Grafana provisioning files (no YAML parser needed)."""
    uids = set()
    for path in sorted(glob.glob(os.path.join(folder, "*.yml")) + glob.glob(os.path.join(folder, "*.yaml"))):
        with open(path, encoding="utf-8") as f:
            for line in f:
                m = re.match(r"^\s*uid:\s*[\"']?([A-Za-z0-9_.-]+)[\"']?\s*(#.*)?$", line)
                if m:
                    uids.add(m.group(1))
    return uids


def walk_panels(panels):
    """Every panel, rows' nested panels (collapsed rows keep them there) included."""
    for p in panels or []:
        yield p
        yield from walk_panels(p.get("panels"))


def substitute(expr, interval):
    for var in INTERVAL_VARS:
        expr = expr.replace("${%s}" % var, interval).replace("$" + var, interval)
    return expr


def static_checks(files, uids):
    """Returns (problems, [(file, panel title, expr)])."""
    problems, exprs, seen_uids = [], [], {}
    for path in files:
        name = os.path.basename(path)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            problems.append(f"{name}: not JSON: {e}")
            continue
        if "${DS_" in text or "__inputs" in d:
            problems.append(f"{name}: has ${{DS_...}} placeholders or __inputs (an export for sharing, not provisioning)")
        uid = d.get("uid")
        if not isinstance(uid, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", uid):
            problems.append(f"{name}: dashboard uid {uid!r} is not a fixed uid")
        elif uid in seen_uids:
            problems.append(f"{name}: dashboard uid {uid} also used by {seen_uids[uid]}")
        else:
            seen_uids[uid] = name
        if d.get("templating", {}).get("list"):
            problems.append(f"{name}: defines template variables: teach check_dashboards.py their test values")
        ids = set()
        for p in walk_panels(d.get("panels")):
            title = p.get("title", "?")
            if p.get("id") in ids:
                problems.append(f"{name}: panel id {p.get('id')} used twice")
            ids.add(p.get("id"))
            if p.get("type") == "row":
                continue
            ds = (p.get("datasource") or {}).get("uid")
            if ds not in uids:
                problems.append(f"{name} / {title}: panel data source uid {ds!r} is not provisioned ({sorted(uids)})")
            targets = p.get("targets") or []
            if not any(t.get("expr") for t in targets):
                problems.append(f"{name} / {title}: no query")
            for t in targets:
                tds = (t.get("datasource") or {}).get("uid", ds)
                if tds not in uids:
                    problems.append(f"{name} / {title} / {t.get('refId')}: data source uid {tds!r} is not provisioned")
                if t.get("expr"):
                    exprs.append((name, title, t["expr"]))
    return problems, exprs


def query(base, expr, timeout):
    url = base.rstrip("/") + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            body = json.load(r)
    except urllib.error.HTTPError as e:
        try:
            body = json.load(e)
        except ValueError:
            return None, f"HTTP {e.code}"
    except (urllib.error.URLError, OSError, ValueError) as e:
        return None, str(e)
    if body.get("status") != "success":
        return None, f"{body.get('errorType')}: {body.get('error')}"
    data = body["data"]
    if data["resultType"] == "scalar":
        return [data["result"][1]], None
    if data["resultType"] == "vector":
        return [s["value"][1] for s in data["result"]], None
    if data["resultType"] == "matrix":
        return [s["values"][-1][1] for s in data["result"] if s["values"]], None
    return None, f"unexpected result type {data['resultType']}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prometheus", help="Prometheus base URL; without it only the static checks run")
    ap.add_argument("--interval", default="1m", help="value of $__rate_interval and friends (default 1m)")
    ap.add_argument("--datasources", required=True, help="Grafana datasource provisioning folder")
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds per query")
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()

    uids = provisioned_uids(args.datasources)
    if not uids:
        print(f"no data source uid in {args.datasources}", file=sys.stderr)
        return 1
    problems, exprs = static_checks(args.files, uids)
    for p in problems:
        print(f"STATIC  {p}")
    print(f"{len(args.files)} dashboards, {len(exprs)} queries, data source uid(s) {', '.join(sorted(uids))}")
    if not args.prometheus:
        return 1 if problems else 0

    failed = []
    for name, title, raw in exprs:
        expr = substitute(raw, args.interval)
        left = re.findall(r"\$\{?\w+", expr)
        if left:
            values, err = None, f"unknown variable(s) {', '.join(sorted(set(left)))}"
        else:
            values, err = query(args.prometheus, expr, args.timeout)
        if err is not None:
            print(f"  ERROR   {name} / {title}: {expr}\n          {err}")
            failed.append((name, title, expr, err))
            continue
        finite = [v for v in values if not math.isnan(float(v))]
        mark = "ok" if finite else "EMPTY"
        print(f"  {mark:<5} {len(values):>3} series  {name} / {title}: {expr}")
        if not finite:
            why = "no series" if not values else f"{len(values)} series, all NaN"
            failed.append((name, title, expr, why))

    print(f"{len(exprs) - len(failed)} of {len(exprs)} queries returned data")
    if failed:
        print("queries without data:")
        for name, title, expr, why in failed:
            print(f"  {name} / {title}: {expr}  ({why})")
    return 1 if failed or problems else 0


if __name__ == "__main__":
    sys.exit(main())
