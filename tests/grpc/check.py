#!/usr/bin/env python3
"""A client of Envoy's external authorization API built from Envoy's published protos
(the `xds-protos` package: generated Python code of envoyproxy/data-plane-api), as an
Envoy ext_authz filter calls it: envoy.service.auth.v3.Authorization/Check.

    python3 tests/grpc/check.py HOST:PORT < cases.json

stdin: a JSON list of cases, each a map of the checked request's headers (lower-case
names, as Envoy sends them). stdout: a JSON list of answers, one per case:
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
            http = attribute_context_pb2.AttributeContext.HttpRequest(
                method="GET", path="/orders/1", host="app.example.com", headers=case)
            request = external_auth_pb2.CheckRequest(
                attributes=attribute_context_pb2.AttributeContext(
                    request=attribute_context_pb2.AttributeContext.Request(http=http)))
            try:
                r = stub.Check(request, timeout=10)
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
