#!/usr/bin/env python3
"""Per-operation costs for docs/scaling.md: server CPU and Redis work per operation.

    python3 loadtest/scaling.py [--mode standalone|cluster] [--bin target/release/tokencache]

Starts a release tokencache on MariaDB (127.0.0.1:3306, root) and either the Redis on
127.0.0.1:6379 (standalone, under a key prefix of its own) or a local Redis Cluster of
3 masters + 3 replicas made of redis-server processes (cluster). Then, one operation at
a time:

  authorize      LOGINS signed logins, one after another (argon2id at the default cost);
  check_token    wrk -t1 -c50 for DURATION seconds on one live token;
  refresh_token  wrk -t1 -c50 for DURATION seconds on LOGINS refresh chains;

and for each prints the server's CPU time per operation (utime + stime from
/proc/PID/stat), the Redis commands per operation (INFO commandstats, summed over the
masters) and the bytes Redis received and sent per operation (INFO stats). Then the
`MEMORY USAGE` of one access key, one refresh key and one user index. Everything it
starts it stops; the database and keys it made it removes.
"""
import argparse
import hashlib
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
APP_KEY, SECRET, PASSWORD = "bench", "tokencache-bench-secret", "bench-password"


def free_port(lo=20000, hi=50000, bus=False):
    while True:
        p = random.randint(lo, hi)
        ok = True
        for q in ([p, p + 10000] if bus else [p]):
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", q))
            except OSError:
                ok = False
            finally:
                s.close()
        if ok:
            return p


def wait_port(port, timeout=15):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listens on {port}")


def cli(port, *args):
    return subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True).stdout


class Redis:
    """The Redis under test: its masters (for stats) and the URL(s) tokencache gets."""

    def __init__(self, mode):
        self.mode, self.procs, self.dir = mode, [], tempfile.mkdtemp(prefix="tc-scaling-")
        if mode == "standalone":
            self.masters, self.replicas, self.url = [6379], [], "redis://127.0.0.1:6379/0"
            return
        ports = [free_port(bus=True) for _ in range(6)]
        for p in ports:
            self.procs.append(subprocess.Popen(
                ["redis-server", "--port", str(p), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                 "--cluster-config-file", f"{self.dir}/nodes-{p}.conf", "--dir", self.dir,
                 "--save", "", "--appendonly", "no", "--repl-diskless-sync-delay", "0"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for p in ports:
            wait_port(p)
        subprocess.run(["redis-cli", "--cluster", "create", *[f"127.0.0.1:{p}" for p in ports],
                        "--cluster-replicas", "1", "--cluster-yes"], check=True, capture_output=True)
        end = time.time() + 30
        while not all("cluster_state:ok" in cli(p, "cluster", "info") for p in ports):
            if time.time() > end:
                sys.exit("the cluster did not become ok")
            time.sleep(0.2)
        time.sleep(1)
        self.masters = [p for p in ports if cli(p, "role").startswith("master")]
        self.replicas = [p for p in ports if p not in self.masters]
        # A revocation waits for a replica (WAIT): every replica in sync before the runs.
        while not all("master_link_status:up" in cli(p, "info", "replication") for p in self.replicas):
            if time.time() > end:
                sys.exit("the replicas did not sync")
            time.sleep(0.2)
        self.url = ",".join(f"redis://127.0.0.1:{p}" for p in ports)

    def stats(self):
        """Commands by name, bytes in and out, summed over the masters."""
        calls, net_in, net_out = {}, 0, 0
        for p in self.masters:
            for m in re.finditer(r"cmdstat_(\S+?):calls=(\d+)", cli(p, "info", "commandstats")):
                calls[m.group(1)] = calls.get(m.group(1), 0) + int(m.group(2))
            s = cli(p, "info", "stats")
            net_in += int(re.search(r"total_net_input_bytes:(\d+)", s).group(1))
            net_out += int(re.search(r"total_net_output_bytes:(\d+)", s).group(1))
        return calls, net_in, net_out

    def cpu(self, ports):
        """CPU seconds of the redis-server processes on these ports."""
        total = 0.0
        for p in ports:
            pid = int(re.search(r"process_id:(\d+)", cli(p, "info", "server")).group(1))
            total += cpu_seconds(pid)
        return total

    def memory(self, key):
        out = subprocess.run(["redis-cli", "-c", "-p", str(self.masters[0]), "memory", "usage", key],
                             capture_output=True, text=True).stdout.strip()
        return out

    def stop(self, prefix):
        if self.mode == "standalone":
            keys = cli(6379, "--scan", "--pattern", prefix + "*").split()
            for i in range(0, len(keys), 500):
                cli(6379, "del", *keys[i:i + 500])
        for p in self.procs:
            p.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def post(base, path, body):
    req = urllib.request.Request(base + path, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        return json.load(e)


def login(base, user, t):
    sign = hashlib.md5((APP_KEY + user + PASSWORD + t + SECRET).encode()).hexdigest()
    v = post(base, "/api/v1/authorize", {"appid": APP_KEY, "token_type": "web", "username": user,
                                          "password": PASSWORD, "time": t, "token": sign})
    if v.get("code") != 0:
        sys.exit(f"login refused: {v}")
    return v["data"]["access_token"], v["data"]["refresh_token"]


def wrk(url, seconds, body=None, script=None, env=None):
    args = ["wrk", "-t1", "-c50", f"-d{seconds}s", "--latency"]
    if script:
        args += ["-s", script]
    else:
        lua = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
        lua.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                  f"wrk.body = '{body}'\n")
        lua.close()
        args += ["-s", lua.name]
    out = subprocess.run(args + [url], capture_output=True, text=True, env={**os.environ, **(env or {})}).stdout
    n = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return n, int(non2xx.group(1)) if non2xx else 0, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", default="standalone", choices=["standalone", "cluster"])
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/release/tokencache"))
    ap.add_argument("--logins", type=int, default=200)
    ap.add_argument("--duration", type=int, default=10)
    a = ap.parse_args()

    redis = Redis(a.mode)
    db = f"tc_scaling_{os.getpid()}"
    prefix = f"tcs{os.getpid()}:"
    subprocess.run(["mysql", "-h", "127.0.0.1", "-uroot", "-e", f"CREATE DATABASE {db}"], check=True)
    env = {**os.environ, "DATABASE_URL": f"mysql://root@127.0.0.1:3306/{db}", "REDIS_URL": redis.url,
           "TOKENCACHE_REDIS_MODE": a.mode, "TOKENCACHE_REDIS_PREFIX": prefix, "RUST_LOG": "warn"}
    server = None
    try:
        subprocess.run([a.bin, "migrate"], env=env, check=True, capture_output=True)
        subprocess.run([a.bin, "client", "create", "--app-key", APP_KEY, "--token-ttl", "3600",
                        "--secret-stdin"], input=SECRET + "\n", text=True, env=env, check=True,
                       capture_output=True)
        users = [f"bench{i}" for i in range(a.logins)]
        for u in users:
            subprocess.run([a.bin, "user", "create", "--username", u, "--app-key", APP_KEY], env=env,
                           check=True, capture_output=True,
                           input=PASSWORD + "\n", text=True)
        port = free_port()
        server = subprocess.Popen([a.bin, "serve", "--listen", f"127.0.0.1:{port}",
                                   "--ip-limit-authorize", "0"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(port)
        base = f"http://127.0.0.1:{port}"
        rows = []

        def measure(name, run):
            c0, s0 = cpu_seconds(server.pid), redis.stats()
            m0, r0 = redis.cpu(redis.masters), redis.cpu(redis.replicas)
            n, failed = run()
            c1, s1 = cpu_seconds(server.pid), redis.stats()
            m1, r1 = redis.cpu(redis.masters), redis.cpu(redis.replicas)
            cmds = {k: v - s0[0].get(k, 0) for k, v in s1[0].items() if v - s0[0].get(k, 0) > 0}
            # The stats commands themselves (info) are not the server's.
            cmds.pop("info", None)
            total = sum(cmds.values())
            per = ", ".join(f"{k} {v / n:.2f}" for k, v in sorted(cmds.items(), key=lambda kv: -kv[1]))
            rows.append((name, n, failed, (c1 - c0) / n * 1e6, (m1 - m0) / n * 1e6, (r1 - r0) / n * 1e6,
                         total / n, (s1[1] - s0[1]) / n, (s1[2] - s0[2]) / n, per))

        pairs = []

        def logins():
            t = int(time.time() * 1000)
            for i, u in enumerate(users):
                pairs.append(login(base, u, str(t + i)))
            return len(users), 0

        measure("authorize", logins)
        access = pairs[0][0]
        measure("check_token", lambda: wrk(base + "/api/v1/check_token", a.duration,
                                           body=json.dumps({"token": access}))[:2])
        tokens = tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False)
        tokens.write("\n".join(r for _, r in pairs) + "\n")
        tokens.close()
        measure("refresh_token", lambda: wrk(base + "/api/v1/refresh_token", a.duration,
                                             script=os.path.join(HERE, "wrk/refresh_chain.lua"),
                                             env={"REFRESH_TOKENS": tokens.name})[:2])

        print(f"mode {a.mode}, {len(redis.masters)} master(s), build {a.bin}")
        print("| operation | n | failed | server CPU µs/op | Redis masters' CPU µs/op | replicas' CPU µs/op | "
              "Redis commands/op | Redis bytes in/op | Redis bytes out/op | commands |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for name, n, failed, cpu, mcpu, rcpu, cmds, bin_, bout, per in rows:
            print(f"| {name} | {n} | {failed} | {cpu:.1f} | {mcpu:.1f} | {rcpu:.1f} | {cmds:.2f} | {bin_:.0f} | "
                  f"{bout:.0f} | {per} |")
        # Memory of one pair's keys (a fresh login of bench1, whose index holds few pairs).
        a2, r2 = login(base, "bench1", str(int(time.time() * 1000) + 10_000))
        sha = lambda t: __import__("base64").urlsafe_b64encode(hashlib.sha256(t.encode()).digest()[:16]).decode().rstrip("=")
        print(f"MEMORY USAGE: access key {redis.memory(prefix + 'a:' + sha(a2))} B, refresh key "
              f"{redis.memory(prefix + 'r:' + sha(r2))} B, index of bench1 "
              f"{redis.memory(prefix + 'u:bench1')} B (members: "
              f"{subprocess.run(['redis-cli', '-c', '-p', str(redis.masters[0]), 'zcard', prefix + 'u:bench1'], capture_output=True, text=True).stdout.strip()})")
    finally:
        if server:
            server.kill()
        subprocess.run(["mysql", "-h", "127.0.0.1", "-uroot", "-e", f"DROP DATABASE IF EXISTS {db}"])
        redis.stop(prefix)


if __name__ == "__main__":
    main()
