#!/usr/bin/env python3
"""Draws latency over time from k6's HTML report (the web dashboard export that
loadtest/run.sh writes to loadtest/results/<scenario>-report.html).

    python3 loadtest/report_plot.py loadtest/results/mixed-report.html docs/img/mixed-latency.png

One panel per operation (`op` tag: check_token, refresh_token, authorize): the
median, p95 and p99 of http_req_duration in each of the report's periods (one
second with run.sh), as k6 computed them; a last panel shows the requests per
second of each operation and k6's dropped iterations. The figures are the
report's own: nothing is recomputed or smoothed. Periods in which setup() sent
requests (op:setup, op:probe) are shaded.

Needs matplotlib (`pip install matplotlib`). The report must come from a run
with the dashboard's `op` tag (run.sh sets K6_WEB_DASHBOARD_TAGS=op).
"""
import argparse
import base64
import datetime
import gzip
import json
import re
import sys

OPS = ("check_token", "refresh_token", "authorize")
DATA_TAG = re.compile(
    r'<script id="data" type="application/json; charset=utf-8; gzip; base64">(.*?)</script>',
    re.S,
)


def read_report(path):
    """The report's events: the dashboard's JSON lines, gzipped and base64 in the page."""
    with open(path, encoding="utf-8") as f:
        html = f.read()
    m = DATA_TAG.search(html)
    if not m:
        sys.exit(f"{path}: no k6 dashboard data in it (not a k6 web dashboard report?)")
    raw = gzip.decompress(base64.b64decode(m.group(1))).decode("utf-8")
    return [json.loads(line) for line in raw.splitlines() if line.strip()]


def decode(events):
    """Periods as {metric name: {aggregate: value}}, as the report's own page decodes
    them: a snapshot is a list indexed by the names of every metric announced so far,
    sorted; each entry lists the aggregates of the metric's type in the order of the
    `param` event (an empty entry: no sample in that period)."""
    param, metrics, periods, start = {}, {}, [], None
    for ev in events:
        kind, data = ev.get("event"), ev.get("data")
        if kind == "param":
            param = data
        elif kind == "metric":
            metrics.update(data)
        elif kind in ("start", "snapshot"):
            names = sorted(metrics)
            aggregates = param.get("aggregates", {})
            row = {}
            for name, values in zip(names, data):
                keys = aggregates.get(metrics[name].get("type"), [])
                if values:
                    row[name] = dict(zip(keys, values))
            if kind == "start":
                start = row.get("time", {}).get("value")
            else:
                periods.append(row)
    return param, periods, start


def series(periods, start, metric, aggregate):
    xs, ys = [], []
    for row in periods:
        t = row.get("time", {}).get("value")
        v = row.get(metric, {}).get(aggregate)
        if t is None or v is None:
            continue
        xs.append((t - start) / 1000.0)
        ys.append(v)
    return xs, ys


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("report", help="k6 HTML report (loadtest/results/<scenario>-report.html)")
    ap.add_argument("png", help="the picture to write")
    ap.add_argument("--title", help="title (default: the scenario and the run's start time)")
    ap.add_argument("--note", default="", help="a line under the title (command, build, machine)")
    args = ap.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    param, periods, start = decode(read_report(args.report))
    if not periods or start is None:
        sys.exit(f"{args.report}: no periods in the report")
    ops = [op for op in OPS if any(f"http_req_duration{{op:{op}}}" in r for r in periods)]
    if not ops:
        sys.exit(f"{args.report}: no http_req_duration{{op:…}} series (K6_WEB_DASHBOARD_TAGS=op not set?)")
    period_s = param.get("period", 1000) / 1000.0
    script = param.get("scriptPath", "").rsplit("/", 1)[-1]
    started = datetime.datetime.fromtimestamp(start / 1000.0, datetime.timezone.utc)

    setup_periods = [
        (row["time"]["value"] - start) / 1000.0
        for row in periods
        if "time" in row
        and any(f"http_reqs{{op:{o}}}" in row for o in ("setup", "probe"))
    ]

    fig, axes = plt.subplots(len(ops) + 1, 1, figsize=(10, 2.3 * (len(ops) + 1) + 0.9), sharex=True)
    styles = (("med", "p50", "#1f77b4"), ("p(95)", "p95", "#ff7f0e"), ("p(99)", "p99", "#d62728"))
    for ax, op in zip(axes, ops):
        metric = f"http_req_duration{{op:{op}}}"
        for key, label, color in styles:
            xs, ys = series(periods, start, metric, key)
            ax.plot(xs, ys, label=label, color=color, linewidth=1.3, marker=".", markersize=3)
        ax.set_ylabel(f"{op}\nms (log scale)", fontsize=9)
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)

    ax = axes[-1]
    for op, color in zip(ops, ("#2ca02c", "#9467bd", "#8c564b")):
        xs, ys = series(periods, start, f"http_reqs{{op:{op}}}", "rate")
        ax.plot(xs, ys, label=f"{op} req/s", color=color, linewidth=1.3)
    xs, ys = series(periods, start, "dropped_iterations", "count")
    if any(ys):
        ax.bar(xs, ys, width=period_s * 0.8, color="black", label="dropped iterations (count)")
    else:
        ax.plot([], [], " ", label="dropped iterations: none")
    ax.set_yscale("symlog", linthresh=10)
    ax.set_ylabel("per period", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.set_ylim(0, None)
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
    ax.set_xlabel(f"seconds since k6 started (each point: one {period_s:g} s period; shaded: setup())")

    if setup_periods:
        lo, hi = min(setup_periods) - period_s, max(setup_periods)
        for a in axes:
            a.axvspan(lo, hi, color="grey", alpha=0.15, linewidth=0)

    title = args.title or f"k6 {script}: http_req_duration per operation, run started {started:%Y-%m-%d %H:%M} UTC"
    fig.suptitle(title + ("\n" + args.note if args.note else ""), fontsize=10)
    fig.tight_layout()
    fig.savefig(args.png, dpi=90)
    print(f"wrote {args.png} ({len(periods)} periods of {period_s:g} s, operations: {', '.join(ops)})")


if __name__ == "__main__":
    main()
