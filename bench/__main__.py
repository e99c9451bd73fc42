"""`make bench`: runs the benchmarks and writes their tables to docs/benchmarks.md.

`python -m bench fanout` reruns the fan-out alone and replaces only its section (the last one),
with the date of that run in it; the other sections stay as their last full run made them."""

from __future__ import annotations

import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

from bench import fanout, imaging, throughput, webp_settings

REPORT = Path("docs/benchmarks.md")
FANOUT_HEADING = "## Fan-out"


def fanout_only() -> None:
    text = REPORT.read_text()
    start = text.index(FANOUT_HEADING)
    section = fanout.run()
    note = (
        "Rerun alone (`python -m bench fanout`):"
        f" {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, Python {platform.python_version()}."
    )
    lines = [section[0], "", note, *section[1:], ""]
    REPORT.write_text(text[:start] + "\n".join(lines))
    print("\n".join(lines))


def main() -> None:
    lines = [
        "# Benchmarks",
        "",
        "Made by `make bench`; every ratio compares two ways measured in the same run.",
        f"Last run: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, Python {platform.python_version()},"
        f" {platform.machine()}.",
        "",
        *imaging.run(),
        "",
        *webp_settings.run(),
        "",
        *throughput.run(),
        "",
        *fanout.run(),
        "",
    ]
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    if sys.argv[1:] == ["fanout"]:
        fanout_only()
    else:
        main()
