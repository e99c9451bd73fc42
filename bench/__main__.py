"""`make bench`: runs the benchmarks and writes their tables to docs/benchmarks.md."""

from __future__ import annotations

import platform
from datetime import UTC, datetime
from pathlib import Path

from bench import fanout, imaging, throughput, webp_settings

REPORT = Path("docs/benchmarks.md")


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
    main()
