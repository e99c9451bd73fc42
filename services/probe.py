"""`python -m services.probe grpc HOST:PORT` or `python -m services.probe http URL`: exits 0 when
the service answers SERVING (gRPC health) or 200, 1 otherwise. Container healthchecks use it, so
the image needs no extra tool (grpc_health_probe, curl)."""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

TIMEOUT_S = 3.0


def grpc_serving(address: str, service: str = "") -> bool:
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=TIMEOUT_S)
        except grpc.RpcError:
            return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m services.probe")
    parser.add_argument("kind", choices=["grpc", "http"])
    parser.add_argument("target", help="HOST:PORT for grpc, a URL for http")
    args = parser.parse_args(argv)
    healthy = grpc_serving(args.target) if args.kind == "grpc" else http_ok(args.target)
    sys.exit(0 if healthy else 1)


if __name__ == "__main__":
    main()
