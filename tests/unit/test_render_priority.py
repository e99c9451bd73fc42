"""THUMBWIRE_RENDER_PRIORITY: `idle`, or a niceness to add; anything else stops the start."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from services.core.config import ConfigError, Settings
from services.thumbnailer import render_priority
from services.thumbnailer.render_priority import RenderPriority
from services.thumbnailer.rendering import ImageLimits


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        ("idle", RenderPriority(idle=True)),
        (" IDLE ", RenderPriority(idle=True)),
        ("0", RenderPriority(idle=False, nice=0)),
        ("19", RenderPriority(idle=False, nice=19)),
    ],
)
def test_accepted_priorities(raw: str, parsed: RenderPriority) -> None:
    assert RenderPriority.parse(raw) == parsed
    assert RenderPriority.parse(str(parsed)) == parsed  # what the worker is passed


@pytest.mark.parametrize("raw", ["-1", "20", "10.5", "low", ""])
def test_other_values_say_what_is_accepted(raw: str) -> None:
    with pytest.raises(ConfigError, match="'idle' or a niceness from 0 to 19"):
        RenderPriority.parse(raw)


def test_the_default_is_idle_and_a_bad_setting_stops_the_thumbnailer_early() -> None:
    assert ImageLimits.from_settings(Settings()).priority == RenderPriority(idle=True)
    with pytest.raises(ConfigError, match="THUMBWIRE_RENDER_PRIORITY"):
        ImageLimits.from_settings(Settings(render_priority="-5"))


class _AutogroupFile:
    """Stands in for /proc/self/autogroup: answers EAGAIN (Linux's rate limit on autogroup
    changes without CAP_SYS_ADMIN) `busy` times, then takes the write."""

    def __init__(self, busy: int) -> None:
        self.busy = busy
        self.written: list[str] = []

    def write_text(self, text: str) -> int:
        if self.busy:
            self.busy -= 1
            raise OSError(errno.EAGAIN, "Resource temporarily unavailable")
        self.written.append(text)
        return len(text)


@pytest.fixture
def sessions(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """setsid() counted instead of done: the test's own session stays as it is."""
    started: list[int] = []
    monkeypatch.setattr(render_priority.os, "setsid", lambda: started.append(1))
    monkeypatch.setattr(render_priority, "AUTOGROUP_PAUSE_S", 0.0)
    return started


def test_a_busy_autogroup_change_is_tried_again(
    sessions: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    autogroup = _AutogroupFile(busy=2)
    monkeypatch.setattr(render_priority, "AUTOGROUP", autogroup)
    render_priority.own_autogroup(19)
    assert sessions == [1]
    assert autogroup.written == ["19"]


def test_an_autogroup_change_that_never_comes_leaves_the_worker_rendering(
    sessions: list[int], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    autogroup = _AutogroupFile(busy=render_priority.AUTOGROUP_TRIES)
    monkeypatch.setattr(render_priority, "AUTOGROUP", autogroup)
    render_priority.own_autogroup(19)
    assert autogroup.written == []
    assert "stayed at nice 0" in capsys.readouterr().err


def test_a_kernel_without_autogroups_needs_only_the_session(
    sessions: list[int], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(render_priority, "AUTOGROUP", tmp_path / "missing" / "autogroup")
    render_priority.own_autogroup(19)
    assert sessions == [1]


def test_a_refused_autogroup_change_leaves_the_worker_rendering(
    sessions: list[int],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """As where /proc is read-only (some containers), which do not use autogroups anyway."""
    monkeypatch.setattr(render_priority, "AUTOGROUP", tmp_path)  # a directory: not writable
    render_priority.own_autogroup(19)
    assert "stayed at nice 0 ([Errno 21]" in capsys.readouterr().err
