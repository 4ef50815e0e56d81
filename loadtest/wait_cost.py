#!/usr/bin/env python3
"""What waiting for a replica costs (docs/scaling.md): logout and login latency, p50 and p99,
side by side with and without `WAIT`.

    python3 loadtest/wait_cost.py [--bin target/release/tokencache] [--n 400]

Starts a local Redis Cluster of 3 masters + 3 replicas (as loadtest/scaling.py does) and a
release tokencache on MariaDB (127.0.0.1:3306, root) three times:

  no wait        --redis-wait-replicas 0
  wait           --redis-wait-replicas 1 (the cluster default): revocations and a new
                 pair's index entry wait
  wait on issue  --redis-wait-replicas 1 --redis-wait-on-issue: the pair's tokens too

and for each makes N logins then N logouts, one after another from one client, timing
each answer. argon2id is set cheap (4 MiB, 1 iteration) so that the login's own cost does
not hide what the wait adds; the figures are latencies on this machine, client included.
"""
import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from scaling import APP_KEY, PASSWORD, ROOT, SECRET, Redis, free_port, login, post, wait_port  # noqa: E402


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))] * 1000


def run(binary, redis, extra, n):
    db = f"tc_wait_{os.getpid()}_{int(time.time() * 1000) % 100000}"
    prefix = f"tcw{os.getpid()}{int(time.time()) % 1000}:"
    subprocess.run(["mysql", "-h", "127.0.0.1", "-uroot", "-e", f"CREATE DATABASE {db}"], check=True)
    env = {**os.environ, "DATABASE_URL": f"mysql://root@127.0.0.1:3306/{db}", "REDIS_URL": redis.url,
           "TOKENCACHE_REDIS_MODE": "cluster", "TOKENCACHE_REDIS_PREFIX": prefix, "RUST_LOG": "warn",
           "TOKENCACHE_ARGON2_MEMORY_KIB": "4096", "TOKENCACHE_ARGON2_ITERATIONS": "1"}
    server = None
    try:
        subprocess.run([binary, "migrate"], env=env, check=True, capture_output=True)
        subprocess.run([binary, "client", "create", "--app-key", APP_KEY, "--token-ttl", "3600",
                        "--secret-stdin"], input=SECRET + "\n", text=True, env=env, check=True,
                       capture_output=True)
        users = [f"bench{i}" for i in range(20)]
        for u in users:
            subprocess.run([binary, "user", "create", "--username", u, "--app-key", APP_KEY], env=env,
                           check=True, capture_output=True, input=PASSWORD + "\n", text=True)
        port = free_port()
        server = subprocess.Popen([binary, "serve", "--listen", f"127.0.0.1:{port}", "--ip-limit-authorize",
                                   "0", "--login-failures", "0", *extra], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(port)
        base = f"http://127.0.0.1:{port}"
        logins, logouts, tokens, refused = [], [], [], 0
        t = int(time.time() * 1000)
        for i in range(n):
            started = time.perf_counter()
            tokens.append(login(base, users[i % len(users)], str(t + i))[0])
            logins.append(time.perf_counter() - started)
        for token in tokens:
            started = time.perf_counter()
            v = post(base, "/api/v1/logout", {"token": token})
            logouts.append(time.perf_counter() - started)
            if v.get("code") == 1:
                refused += 1  # not confirmed by a replica within the wait timeout: 503
            elif v.get("code") != 0:
                sys.exit(f"logout refused: {v}")
        return logins, logouts, refused
    finally:
        if server:
            server.kill()
        subprocess.run(["mysql", "-h", "127.0.0.1", "-uroot", "-e", f"DROP DATABASE IF EXISTS {db}"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/release/tokencache"))
    ap.add_argument("--n", type=int, default=400)
    a = ap.parse_args()
    redis = Redis("cluster")
    try:
        print(f"Redis Cluster 3+3 on this machine; {a.n} logins then {a.n} logouts, one at a time; "
              f"build {a.bin}")
        print("| setting | login p50 ms | login p99 ms | logout p50 ms | logout p99 ms | logouts 503 |")
        print("|---|---|---|---|---|---|")
        for name, extra in [("no wait (--redis-wait-replicas 0)", ["--redis-wait-replicas", "0"]),
                            ("wait (default: 1 replica)", []),
                            ("wait on issue too (--redis-wait-on-issue)", ["--redis-wait-on-issue"])]:
            logins, logouts, refused = run(a.bin, redis, extra, a.n)
            print(f"| {name} | {pct(logins, 0.5):.2f} | {pct(logins, 0.99):.2f} | "
                  f"{pct(logouts, 0.5):.2f} | {pct(logouts, 0.99):.2f} | {refused} |")
    finally:
        redis.stop("tcw")


if __name__ == "__main__":
    main()
