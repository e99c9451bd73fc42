"""Serving an aiohttp application at a THUMBWIRE_*_ADDR address."""

from __future__ import annotations

from aiohttp import web


def split_address(address: str) -> tuple[str, int]:
    """'host:port' (IPv6 as '[::1]:port') to its parts; ':port' means every interface."""
    host, colon, port = address.rpartition(":")
    if not colon or not port.isdigit():
        raise ValueError(f"not a host:port address: {address!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


async def start_http(
    app: web.Application, address: str, shutdown_timeout_s: float = 60.0
) -> web.AppRunner:
    """Listens at `address`; the caller stops it with `runner.cleanup()`."""
    runner = web.AppRunner(app, shutdown_timeout=shutdown_timeout_s, access_log=None)
    await runner.setup()
    host, port = split_address(address)
    await web.TCPSite(runner, host, port).start()
    return runner
