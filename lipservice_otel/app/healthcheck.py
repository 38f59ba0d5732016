"""`python -m lipservice_otel.app.healthcheck [HOST:PORT]`: exit 0 while the receiver is SERVING.

Asks the standard gRPC health service (`grpc.health.v1.Health/Check`, service "") that the
OTLP/gRPC receiver runs. Docker's HEALTHCHECK has no gRPC probe of its own (Kubernetes has,
and the manifests use it); a receiver that is shutting down answers NOT_SERVING, so a draining
container is reported unhealthy rather than dead.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

DEFAULT_TARGET = "127.0.0.1:4317"
TIMEOUT_S = 3.0


def is_serving(target: str, timeout_s: float = TIMEOUT_S) -> bool:
    with grpc.insecure_channel(target) as channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=timeout_s
            )
        except grpc.RpcError:
            return False
    return answer.status == health_pb2.HealthCheckResponse.SERVING


def main(argv: Sequence[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    target = args[0] if args else DEFAULT_TARGET
    if is_serving(target):
        return 0
    print(f"lipservice-otel receiver at {target} is not serving", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
