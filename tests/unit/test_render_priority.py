"""THUMBWIRE_RENDER_PRIORITY: `idle`, or a niceness to add; anything else stops the start."""

from __future__ import annotations

import pytest

from services.core.config import ConfigError, Settings
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
