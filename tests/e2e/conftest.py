"""Dependencies of the test's own for the fault tests: a RabbitMQ node to stop and a
PostgreSQL server to restart, so that the machine's shared ones are never disturbed."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import pytest

from services.core.config import Settings
from services.core.storage import ObjectStore
from tests.conftest import RUN_ID
from tests.support.pg_cluster import PrivatePostgres
from tests.support.rabbit_node import PrivateRabbitNode
from tests.support.stack import own_settings


def _world_readable_dir(prefix: str) -> Path:
    # The broker and the database run as their own users, so pytest's private tmp is no use.
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


@pytest.fixture(scope="module")
def rabbit() -> Iterator[PrivateRabbitNode]:
    base = _world_readable_dir("twtest-rabbit-")
    node = PrivateRabbitNode(base / "node", f"twtest-{RUN_ID}").start()
    yield node
    node.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[PrivatePostgres]:
    base = _world_readable_dir("twtest-pg-")
    server = PrivatePostgres(base / "pg").start()
    yield server
    server.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def on_rabbit(
    settings: Settings, rabbit: PrivateRabbitNode, pool: asyncpg.Pool, store: ObjectStore
) -> Callable[[str], Settings]:
    """Settings for one more stack of processes on the test's own broker node, one image at a
    time, on the run's database and bucket (which `pool` and `store` make)."""

    def settings_for(suffix: str) -> Settings:
        return own_settings(settings, suffix, amqp_url=rabbit.amqp_url, thumbnailer_concurrency=1)

    return settings_for
