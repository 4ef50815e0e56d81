#!/usr/bin/env python3
"""A client of Envoy's external authorization API built from Envoy's published protos
(the `xds-protos` package: generated Python code of envoyproxy/data-plane-api), as an
Envoy ext_authz filter calls it: envoy.service.auth.v3.Authorization/Check.

    python3 tests/grpc/check.py HOST:PORT < cases.json

stdin: a JSON list of cases, each a map of the checked request's headers (lower-case
names, as Envoy sends them). A case may instead say how to send it, with keys starting
with "@": {"@raw": {headers}} sends them in the raw header list (`header_map`, values as
`raw_value` bytes) rather than the map; "@gzip": true compresses the message;
"@method": "Name" calls another method of the service; "@pad": N adds a header of N bytes;
"@bytes": "hex" sends those bytes as the message instead of a CheckRequest. stdout: a JSON list of answers, one per case:
{"rpc": "OK"} plus what the CheckResponse said (its status code, and the OK or denied
HTTP response: status, headers), or {"rpc": "<gRPC error code>", "details": ...} when the
call itself failed.
"""
import json
import sys

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import attribute_context_pb2, external_auth_pb2, external_auth_pb2_grpc

ACTIONS = {v: k for k, v in base_pb2.HeaderValueOption.HeaderAppendAction.items()}


def headers(options):
    return [{"key": o.header.key, "value": o.header.value or o.header.raw_value.decode(),
             "action": ACTIONS.get(o.append_action, o.append_action)} for o in options]


def main():
    cases = json.load(sys.stdin)
    answers = []
    with grpc.insecure_channel(sys.argv[1]) as channel:
        stub = external_auth_pb2_grpc.AuthorizationStub(channel)
        for case in cases:
            if "@bytes" in case or "@method" in case:
                method = "/envoy.service.auth.v3.Authorization/" + case.get("@method", "Check")
                call = channel.unary_unary(method, request_serializer=lambda b: b,
                                           response_deserializer=lambda b: b)
                try:
                    call(bytes.fromhex(case.get("@bytes", "")), timeout=10)
                    answers.append({"rpc": "OK"})
                except grpc.RpcError as e:
                    answers.append({"rpc": e.code().name, "details": e.details()})
                continue
            raw = case.get("@raw")
            plain = {k: v for k, v in case.items() if not k.startswith("@")}
            if "@pad" in case:
                plain["x-pad"] = "p" * case["@pad"]
            http = attribute_context_pb2.AttributeContext.HttpRequest(
                method="GET", path="/orders/1", host="app.example.com", headers=plain)
            if raw is not None:
                http.header_map.CopyFrom(base_pb2.HeaderMap(headers=[
                    base_pb2.HeaderValue(key=k, raw_value=v.encode()) for k, v in raw.items()]))
            request = external_auth_pb2.CheckRequest(
                attributes=attribute_context_pb2.AttributeContext(
                    request=attribute_context_pb2.AttributeContext.Request(http=http)))
            compression = grpc.Compression.Gzip if case.get("@gzip") else None
            try:
                r = stub.Check(request, timeout=10, compression=compression)
            except grpc.RpcError as e:
                answers.append({"rpc": e.code().name, "details": e.details()})
                continue
            answer = {"rpc": "OK", "status": grpc.StatusCode.OK.name if r.status.code == 0 else
                      next(c.name for c in grpc.StatusCode if c.value[0] == r.status.code)}
            kind = r.WhichOneof("http_response")
            if kind == "ok_response":
                answer["ok"] = {"headers": headers(r.ok_response.headers),
                                "remove": list(r.ok_response.headers_to_remove)}
            elif kind == "denied_response":
                answer["denied"] = {"status": r.denied_response.status.code,
                                    "headers": headers(r.denied_response.headers),
                                    "body": r.denied_response.body}
            answers.append(answer)
    json.dump(answers, sys.stdout)


if __name__ == "__main__":
    main()
