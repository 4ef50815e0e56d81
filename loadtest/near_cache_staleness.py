#!/usr/bin/env python3
"""How long a revoked token stays accepted by another instance's near cache.

    python3 loadtest/near_cache_staleness.py [--bin target/release/tokencache] [--trials 1000]
        [--redis-url URLS --redis-mode cluster|sentinel [--sentinel-master NAME]]

Starts two tokencache servers on one MariaDB database (127.0.0.1:3306, root) and the
Redis on 127.0.0.1:6379, or the Redis Cluster or Sentinel setup named (a key prefix of
their own; `loadtest/ratio_topology.sh` runs it on a topology of its own with
WITH_STALENESS=1): A without the near cache, B with
it. Each trial logs in on A, checks the token on B until B answers it from its cache
(two checks), logs the token out on A, and from the moment A answered the logout polls B
(one keep-alive connection, back to back) until B refuses the token. The staleness of a
trial is the time from A's logout answer to B's first refusal (0 when the first poll
after the logout is already refused). Prints p50, p90, p99 and the maximum, and how many
trials were over 10 ms and over 100 ms.
"""
import argparse
import hashlib
import http.client
import json
import os
import random
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APP_KEY, SECRET, PASSWORD = "stale", "tokencache-stale-secret", "stale-password"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Client:
    def __init__(self, port):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def post(self, path, body):
        self.conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        r = self.conn.getresponse()
        return r.status, json.loads(r.read())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/release/tokencache"))
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--redis-mode", default="standalone")
    ap.add_argument("--sentinel-master", default="")
    a = ap.parse_args()
    db = f"tc_stale_{os.getpid()}"
    prefix = f"tcstale{os.getpid()}:"
    subprocess.run(["mysql", "-h", "127.0.0.1", "-uroot", "-e", f"CREATE DATABASE {db}"], check=True)
    env = {**os.environ, "DATABASE_URL": f"mysql://root@127.0.0.1:3306/{db}",
           "REDIS_URL": a.redis_url, "TOKENCACHE_REDIS_MODE": a.redis_mode,
           "TOKENCACHE_REDIS_SENTINEL_MASTER": a.sentinel_master,
           "TOKENCACHE_REDIS_PREFIX": prefix, "RUST_LOG": "warn",
           # Cheap hashes: the logins are set-up here, not what is measured.
           "TOKENCACHE_ARGON2_MEMORY_KIB": "256", "TOKENCACHE_ARGON2_ITERATIONS": "1",
           "TOKENCACHE_IP_LIMIT_AUTHORIZE": "0", "TOKENCACHE_MAX_SESSIONS_PER_USER": "0"}
    servers = []
    try:
        subprocess.run([a.bin, "migrate"], env=env, check=True, capture_output=True)
        subprocess.run([a.bin, "client", "create", "--app-key", APP_KEY, "--token-ttl", "3600", "--secret-stdin"],
                       input=SECRET + "\n", text=True, env=env, check=True, capture_output=True)
        subprocess.run([a.bin, "user", "create", "--username", "stale", "--app-key", APP_KEY],
                       input=PASSWORD + "\n", text=True, env=env, check=True, capture_output=True)
        ports = []
        for near in (False, True):
            port = free_port()
            args = [a.bin, "serve", "--listen", f"127.0.0.1:{port}"] + (["--near-cache"] if near else [])
            servers.append(subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            ports.append(port)
        time.sleep(1.5)
        a_client, b_client = Client(ports[0]), Client(ports[1])
        staleness, t0 = [], int(time.time() * 1000)
        for i in range(a.trials):
            t = str(t0 + i)
            sign = hashlib.md5((APP_KEY + "stale" + PASSWORD + t + SECRET).encode()).hexdigest()
            status, v = a_client.post("/api/v1/authorize", {"appid": APP_KEY, "token_type": "web", "username": "stale",
                                                            "password": PASSWORD, "time": t, "token": sign})
            assert status == 200, v
            token = v["data"]["access_token"]
            for _ in range(2):
                status, v = b_client.post("/api/v1/check_token", {"token": token})
                assert status == 200, v
            status, v = a_client.post("/api/v1/logout", {"token": token})
            assert status == 200, v
            revoked = time.perf_counter()
            accepted = 0
            while True:
                status, v = b_client.post("/api/v1/check_token", {"token": token})
                if status == 401:
                    staleness.append(time.perf_counter() - revoked if accepted else 0.0)
                    break
                assert status == 200, v
                accepted += 1
                if time.perf_counter() - revoked > 5:
                    sys.exit(f"trial {i}: B still accepts the token 5 s after the logout")
        staleness.sort()
        pct = lambda p: staleness[min(len(staleness) - 1, int(len(staleness) * p))] * 1000
        over10 = sum(1 for s in staleness if s > 0.010)
        over100 = sum(1 for s in staleness if s > 0.100)
        zero = sum(1 for s in staleness if s == 0)
        print(f"near cache staleness over {len(staleness)} trials (A logs out, B polls): "
              f"p50 {pct(0.5):.3f} ms, p90 {pct(0.9):.3f} ms, p99 {pct(0.99):.3f} ms, max {staleness[-1] * 1000:.3f} ms; "
              f"{zero} refused at the first poll, {over10} over 10 ms, {over100} over 100 ms")
    finally:
        for s in servers:
            s.kill()
        subprocess.run(["mysql", "-h", "127.0.0.1", "-uroot", "-e", f"DROP DATABASE IF EXISTS {db}"])
        keys = subprocess.run(["redis-cli", "--scan", "--pattern", prefix + "*"], capture_output=True,
                              text=True).stdout.split()
        for i in range(0, len(keys), 500):
            subprocess.run(["redis-cli", "del", *keys[i:i + 500]], capture_output=True)


if __name__ == "__main__":
    main()
