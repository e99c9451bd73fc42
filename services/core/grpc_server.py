"""A grpc.aio server with the standard health and reflection services beside the app's own;
every call of the app's services must carry a bearer token (services.core.grpc_auth), while
health and reflection stay open to probes and tools."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from services.core.auth import TokenAuthority
from services.core.grpc_auth import AuthInterceptor
from services.core.readiness import Readiness

# A connection with no traffic is pinged every 30 s so that idle proxies and NATs keep it, and
# one whose ping goes unanswered for 10 s is closed: a peer that vanished, or one so stuck
# that its TCP window is shut (the ping queues behind the data), ends within 40 s.
# Clients may ping too (their keepalive on long-idle Subscribe streams), as often as every
# 10 s: core's default refuses pings closer than 5 minutes apart on a connection that sends
# no data, and after two such "strikes" closes it with GOAWAY too_many_pings.
KEEPALIVE_OPTIONS = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
]


class GrpcServer:
    """Owns the server and its health servicer; `names` are the full service names served.
    With a `readiness`, health follows it (SERVING only while it is ready); without, the
    server is SERVING from start to stop."""

    def __init__(
        self,
        address: str,
        register: Sequence[Callable[[grpc.aio.Server], None]],
        names: Sequence[str],
        tokens: TokenAuthority,
        readiness: Readiness | None = None,
    ) -> None:
        open_services = [health.SERVICE_NAME, reflection.SERVICE_NAME]
        self.server = grpc.aio.server(
            options=KEEPALIVE_OPTIONS, interceptors=[AuthInterceptor(tokens, open_services)]
        )
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        for add in register:
            add(self.server)
        self._names = list(names)
        self._readiness = readiness
        reflection.enable_server_reflection([*self._names, *open_services], self.server)
        self.port = self.server.add_insecure_port(address)
        if self.port == 0:
            raise OSError(f"cannot listen on {address}")

    async def start(self) -> None:
        if self._readiness is None:
            await self.set_serving(True)
        else:
            self._readiness.watch(self.set_serving)
            await self.set_serving(self._readiness.ready)
        await self.server.start()

    async def set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ["", *self._names]:
            await self.health.set(name, status)

    async def stop(self, grace_s: float) -> None:
        """NOT_SERVING for good (a late probe cannot undo it), then drains the calls."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace_s)
