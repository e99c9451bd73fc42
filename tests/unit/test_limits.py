"""The open-files limit a notifier raises itself to at start."""

from __future__ import annotations

import resource
from collections.abc import Iterator

import pytest

from services.core.limits import raise_open_files_limit


@pytest.fixture
def nofile() -> Iterator[tuple[int, int]]:
    limits = resource.getrlimit(resource.RLIMIT_NOFILE)
    yield limits
    resource.setrlimit(resource.RLIMIT_NOFILE, limits)


def test_the_soft_limit_is_raised_to_the_hard_one(nofile: tuple[int, int]) -> None:
    _soft, hard = nofile
    if hard == resource.RLIM_INFINITY or hard < 256:
        pytest.skip("needs a finite hard limit of open files")
    resource.setrlimit(resource.RLIMIT_NOFILE, (128, hard))
    assert raise_open_files_limit() == hard
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)
