#!/usr/bin/env python3
"""Behaviour unchanged: one fixed set of requests replayed against a build, its answers
written as a transcript and compared byte for byte with another build's or a recorded one.

    python3 deploy/replay.py --bin A --bin B            # both builds, diff of the transcripts
    python3 deploy/replay.py --bin A --record FILE      # write A's transcript
    python3 deploy/replay.py --bin B --against FILE     # B's against a recorded one (CI)

Each build gets a fresh MariaDB database (127.0.0.1:3306, root) and its own key prefix on
the Redis at 127.0.0.1:6379, the same client and users (made with the build's own `client
create` and `user create`), and then the same ~70 requests, one after another: every
endpoint, its successes and its refusals (missing fields, bad JSON, wrong signature,
replayed signature, stale time, wrong password, unknown client, a replayed refresh token,
forward-auth with a live, dead and spoofed token, OAuth grants, introspection, revocation,
unknown routes and methods). The transcript holds each request and the whole answer: the
status line, every header but `date`, and the body. What differs between two correct runs
is replaced, by the same rule on both sides: each token (32 characters from a CSPRNG) by
`<token-N>` in order of first appearance, the request times and signatures by `<time>` and
`<sign>`, seconds left within 5 s of the lifetime by `<ttl>`, registration times by
`<reg-time>`, and `content-length` where a placeholder replaced a value in the body.
"""
import argparse
import base64
import difflib
import hashlib
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

APP, SECRET, TTL = "replay", "replay-secret-0123456789abcdef", 3600
OTHER = "replay-nopwd"
PASSWORD = "replay-password-1"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def md5(*parts):
    return hashlib.md5("".join(str(p) for p in parts).encode()).hexdigest()


class Run:
    """One build on fresh stores, and the transcript of its answers."""

    def __init__(self, binary, tag):
        self.binary, self.lines, self.tokens = binary, [], {}
        stamp = f"{os.getpid()}_{tag}_{int(time.time() * 1000) % 10**8}"
        self.db = f"tc_replay_{stamp}"
        self.env = {**os.environ, "DATABASE_URL": f"mysql://root@127.0.0.1:3306/{self.db}",
                    "REDIS_URL": "redis://127.0.0.1:6379/0", "TOKENCACHE_REDIS_PREFIX": f"tcr{stamp}:",
                    "RUST_LOG": "warn", "TOKENCACHE_ARGON2_MEMORY_KIB": "4096",
                    "TOKENCACHE_ARGON2_ITERATIONS": "1"}
        self.prefix = self.env["TOKENCACHE_REDIS_PREFIX"]
        self.server = None

    def cli(self, *args, stdin=""):
        subprocess.run([self.binary, *args], input=stdin, text=True, env=self.env, check=True,
                       capture_output=True)

    def start(self):
        subprocess.run(["mysql", "-h", "127.0.0.1", "-uroot", "-e", f"CREATE DATABASE {self.db}"], check=True)
        self.cli("migrate")
        self.cli("client", "create", "--app-key", APP, "--token-ttl", str(TTL), "--secret-stdin",
                 stdin=SECRET + "\n")
        self.cli("client", "create", "--app-key", OTHER, "--token-ttl", "60", "--allow-nopwd",
                 "--secret-stdin", stdin=SECRET + "\n")
        for user in ["alice", "bob", "carol@example.com"]:
            self.cli("user", "create", "--username", user, "--app-key", APP, stdin=PASSWORD + "\n")
        self.port = free_port()
        self.log = tempfile.TemporaryFile()
        self.server = subprocess.Popen([self.binary, "serve", "--listen", f"127.0.0.1:{self.port}"],
                                       env=self.env, stdout=self.log, stderr=self.log)
        deadline = time.time() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                if time.time() > deadline or self.server.poll() is not None:
                    self.log.seek(0)
                    sys.exit(f"{self.binary} did not start: {self.log.read().decode()[-2000:]}")
                time.sleep(0.05)

    def stop(self):
        if self.server:
            self.server.kill()
            self.server.wait()
        subprocess.run(["mysql", "-h", "127.0.0.1", "-uroot", "-e", f"DROP DATABASE IF EXISTS {self.db}"])
        keys = subprocess.run(["redis-cli", "--scan", "--pattern", self.prefix + "*"], capture_output=True,
                              text=True).stdout.split()
        for i in range(0, len(keys), 500):
            subprocess.run(["redis-cli", "del", *keys[i:i + 500]], capture_output=True)

    # ---- normalising -------------------------------------------------------------------

    def name(self, token):
        if token not in self.tokens:
            self.tokens[token] = f"<token-{len(self.tokens) + 1}>"
        return self.tokens[token]

    def normal(self, text, volatile=()):
        """Placeholders for the values that differ between two correct runs."""
        for value, placeholder in volatile:
            text = text.replace(value, placeholder)
        text = re.sub(r"(?<![A-Za-z0-9])[A-Za-z0-9]{32}(?![A-Za-z0-9])",
                      lambda m: self.name(m.group(0)) if not re.fullmatch(r"[0-9a-f]{32}", m.group(0))
                      else m.group(0), text)
        for token, placeholder in self.tokens.items():
            text = text.replace(token, placeholder)
        text = re.sub(r'"expire_time":"(\d+)"',
                      lambda m: '"expire_time":"<ttl>"' if TTL - 5 <= int(m.group(1)) <= TTL else m.group(0), text)
        text = re.sub(r'"expires_in":(\d+)',
                      lambda m: '"expires_in":<ttl>' if TTL - 5 <= int(m.group(1)) <= TTL else m.group(0), text)
        text = re.sub(r"Basic [A-Za-z0-9+/=]{8,}", "Basic <client-credentials>", text)
        text = re.sub(r'"exp":(\d+)', '"exp":<time>', text)
        text = re.sub(r'"iat":(\d+)', '"iat":<time>', text)
        text = re.sub(r'"regTime":"[^"]*"', '"regTime":"<reg-time>"', text)
        return text

    # ---- one exchange ------------------------------------------------------------------

    def send(self, method, path, body=b"", headers=None, volatile=(), note=""):
        headers = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body, separators=(",", ":")).encode()
            headers.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            body = body.encode()
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        c.request(method, path, body=body or None, headers=headers)
        r = c.getresponse()
        raw = r.read()
        c.close()
        text = raw.decode("utf-8", "replace")
        shown = self.normal(text, volatile)
        self.lines.append(f">>> {note}".rstrip())
        self.lines.append(self.normal(f"{method} {path}", volatile))
        for k, v in headers.items():
            self.lines.append(self.normal(f"{k}: {v}", volatile))
        if body:
            self.lines.append(self.normal(body.decode("utf-8", "replace"), volatile))
        self.lines.append(f"<<< {r.status} {r.reason}")
        for k, v in sorted((k.lower(), v) for k, v in r.getheaders()):
            if k == "date":
                continue
            if k == "x-request-id":
                v = "<request-id>"  # random per request
            if k == "content-length" and shown != text:
                v = "<length>"
            self.lines.append(f"{k}: {self.normal(v, volatile)}")
        self.lines.append(shown)
        self.lines.append("")
        try:
            return r.status, json.loads(text)
        except ValueError:
            return r.status, None

    def login(self, user, password=PASSWORD, app=APP, t=None, note="", sign=None):
        t = str(t if t is not None else self.next_time())
        sign = sign or md5(app, user, password, t, SECRET)
        return self.send("POST", "/api/v1/authorize",
                         {"appid": app, "token_type": "web", "username": user, "password": password,
                          "time": t, "token": sign},
                         volatile=[(sign, "<sign>"), (t, "<time>")], note=note)

    def next_time(self):
        """A request time no earlier request used (each signs a different text, so none is
        refused as a replay), within the freshness window."""
        self.clock = getattr(self, "clock", int(time.time()) - 100) + 1
        return self.clock

    # ---- the set of requests -------------------------------------------------------------

    def scenario(self):
        s = self.send
        s("GET", "/healthz", note="health")
        s("GET", "/readyz", note="readiness")
        s("GET", "/nowhere", note="unknown route")
        s("GET", "/api/v1/check_token", note="a POST route with GET")
        s("POST", "/api/v1/check_token", "{not json", {"Content-Type": "application/json"}, note="bad JSON")
        s("POST", "/api/v1/check_token", {}, note="no token")
        s("POST", "/api/v1/check_token", {"token": "A" * 32}, note="unknown token")
        s("POST", "/api/v1/check_token", {"token": 12}, note="token of the wrong type")

        _, v = self.login("alice", note="login")
        access, refresh = v["data"]["access_token"], v["data"]["refresh_token"]
        self.login("alice", note="a second login")
        t = str(self.next_time())
        sign = md5(APP, "bob", PASSWORD, t, SECRET)
        self.login("bob", t=t, sign=sign, note="login bob")
        self.login("bob", t=t, sign=sign, note="the same signature again: replay")
        self.login("alice", "wrong-password", note="wrong password")
        self.login("nobody", note="unknown user")
        self.login("Alice", note="another spelling of alice")
        self.login("alice", t=int(time.time()) - 3600, note="stale time")
        self.login("alice", sign="0" * 32, note="wrong signature")
        self.login("alice", app="no-such-app", note="unknown client")
        s("POST", "/api/v1/authorize", {"appid": APP, "username": "alice"}, note="missing fields")
        ms = str(self.next_time() * 1000)
        self.login("carol@example.com", t=ms, note="time in milliseconds")

        s("POST", "/api/v1/check_token", {"token": access}, note="check a live token")
        s("POST", "/oauth2/api/v1/check_token", {"token": access}, note="the legacy prefix")
        s("GET", "/api/v1/auth", headers={"Authorization": f"Bearer {access}"}, note="forward-auth, live")
        s("HEAD", "/api/v1/auth", headers={"Authorization": f"Bearer {access}"}, note="forward-auth, HEAD")
        s("GET", "/api/v1/auth", note="forward-auth, no token")
        s("GET", "/api/v1/auth", headers={"Authorization": "Bearer " + "B" * 32}, note="forward-auth, unknown")
        s("GET", "/api/v1/auth", headers={"Authorization": f"Basic {access}"}, note="forward-auth, other scheme")
        s("GET", "/api/v1/auth", headers={"Authorization": f"Bearer {access}", "X-Auth-Username": "root"},
          note="forward-auth, a spoofed identity header")

        _, v = s("POST", "/api/v1/refresh_token", {"refresh_token": refresh}, note="refresh")
        new_access = v["data"]["access_token"]
        s("POST", "/api/v1/refresh_token", {"refresh_token": refresh}, note="the same refresh token again")
        s("POST", "/api/v1/check_token", {"token": new_access}, note="the refreshed token after the replay")
        s("POST", "/api/v1/refresh_token", {}, note="refresh without a token")

        _, v = self.login("alice", note="a fresh login")
        access = v["data"]["access_token"]
        s("POST", "/api/v1/logout", {"token": access}, note="logout")
        s("POST", "/api/v1/check_token", {"token": access}, note="check after logout")
        s("POST", "/api/v1/logout", {"token": access}, note="logout again")

        t = str(self.next_time())
        sign = md5(OTHER, "bob", t, SECRET)
        s("POST", "/api/v1/authorize_nopwd", {"appid": OTHER, "username": "bob", "time": t, "token": sign},
          volatile=[(sign, "<sign>"), (t, "<time>")], note="login without a password, trusted client")
        sign = md5(APP, "bob", t, SECRET)
        s("POST", "/api/v1/authorize_nopwd", {"appid": APP, "username": "bob", "time": t, "token": sign},
          volatile=[(sign, "<sign>"), (t, "<time>")], note="login without a password, untrusted client")

        s("POST", "/api/v1/check_user", {"username": "alice"}, note="check_user, exists")
        s("POST", "/api/v1/check_user", {"username": "zed"}, note="check_user, missing")
        for flag, user in [(1, "alice"), (2, "zed"), (1, "dave@example.com")]:
            sign = md5("en", user, flag, 0, APP, SECRET)
            s("POST", "/api/v1/get_verify", {"lg": "en", "username": user, "flag": flag, "appid": APP,
                                              "smsflag": 0, "token": sign},
              volatile=[(sign, "<sign>")], note=f"get_verify flag {flag} {user}")
        sign = md5("dave@example.com", "pw-dave-1", "", 1, "b", APP, SECRET)
        s("POST", "/api/v1/doaction", {"username": "dave@example.com", "password": "pw-dave-1", "verify": "",
                                        "flag": 1, "bundleid": "b", "appid": APP, "signature": sign},
          volatile=[(sign, "<sign>")], note="register without the code")
        sign = md5("alice", APP, SECRET)
        s("POST", "/api/v1/get_userinfo", {"account": "alice", "appid": APP, "signature": sign},
          volatile=[(sign, "<sign>")], note="get_userinfo")
        sign = md5("alice", "Al", "https://example.com/a.png", APP, SECRET)
        s("POST", "/api/v1/update_userinfo", {"account": "alice", "nickname": "Al",
                                               "headurl": "https://example.com/a.png", "appid": APP,
                                               "signature": sign},
          volatile=[(sign, "<sign>")], note="update_userinfo")
        sign = md5("alice", APP, SECRET)
        s("POST", "/api/v1/get_userinfo", {"account": "alice", "appid": APP, "signature": sign},
          volatile=[(sign, "<sign>")], note="get_userinfo after the update")
        s("POST", "/api/v1/get_userinfo", {"account": "alice", "appid": APP, "signature": "0" * 32},
          note="get_userinfo, wrong signature")

        basic = "Basic " + base64.b64encode(f"{APP}:{SECRET}".encode()).decode()
        wrong = "Basic " + base64.b64encode(f"{APP}:nope".encode()).decode()
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        _, v = s("POST", "/oauth2/token", "grant_type=client_credentials", {**form, "Authorization": basic},
                 note="client_credentials")
        cc = v["access_token"]
        s("POST", "/oauth2/token", "grant_type=client_credentials", {**form, "Authorization": wrong},
          note="client_credentials, wrong secret")
        s("POST", "/oauth2/token", f"grant_type=password&username=bob&password={PASSWORD}",
          {**form, "Authorization": basic}, note="password grant")
        _, v = s("POST", "/oauth2/token", f"grant_type=password&username=bob&password={PASSWORD}",
                 {**form, "Authorization": basic}, note="password grant again")
        oauth_refresh = (v or {}).get("refresh_token", "none")
        s("POST", "/oauth2/token", "grant_type=password&username=bob&password=wrong",
          {**form, "Authorization": basic}, note="password grant, wrong password")
        s("POST", "/oauth2/token", f"grant_type=refresh_token&refresh_token={oauth_refresh}",
          {**form, "Authorization": basic}, note="refresh_token grant")
        s("POST", "/oauth2/token", "grant_type=magic", {**form, "Authorization": basic}, note="unknown grant")
        s("POST", "/oauth2/token", "grant_type=client_credentials", form, note="no client authentication")
        s("POST", "/oauth2/introspect", f"token={cc}", {**form, "Authorization": basic}, note="introspect, live")
        s("POST", "/oauth2/introspect", "token=" + "C" * 32, {**form, "Authorization": basic},
          note="introspect, unknown")
        s("POST", "/oauth2/revoke", f"token={cc}", {**form, "Authorization": basic}, note="revoke")
        s("POST", "/oauth2/introspect", f"token={cc}", {**form, "Authorization": basic}, note="introspect, revoked")

        for i in range(6):
            self.login("bob", "wrong-password", note=f"bob, wrong password {i + 1}")
        self.login("bob", note="bob, right password after the lockout")


def transcript(binary, tag):
    run = Run(binary, tag)
    try:
        run.start()
        run.scenario()
    except Exception:
        sys.stderr.write("\n".join(run.lines[-40:]) + "\n")
        raise
    finally:
        run.stop()
    return "\n".join(run.lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", action="append", required=True)
    ap.add_argument("--record")
    ap.add_argument("--against")
    a = ap.parse_args()
    texts = [(b, transcript(b, str(i))) for i, b in enumerate(a.bin)]
    if a.record:
        with open(a.record, "w") as f:
            f.write(texts[0][1])
        print(f"{a.record}: {texts[0][1].count('<<< ')} exchanges recorded from {texts[0][0]}")
    if a.against:
        with open(a.against) as f:
            texts.insert(0, (a.against, f.read()))
    if len(texts) >= 2:
        (name_a, text_a), (name_b, text_b) = texts[0], texts[1]
        n = text_a.count("<<< ")
        if text_a == text_b:
            print(f"identical, byte for byte: {n} exchanges, {name_a} and {name_b}")
            return
        sys.stdout.writelines(difflib.unified_diff(text_a.splitlines(True), text_b.splitlines(True),
                                                   name_a, name_b))
        sys.exit(f"the transcripts differ ({n} exchanges in {name_a})")


if __name__ == "__main__":
    main()
