"""`make bench`: runs the benchmarks and writes their tables to docs/benchmarks.md.

`python -m bench NAME...` reruns the named sections alone (see SECTIONS) and replaces only
their parts of the report, each with the date of that run; the others stay as their last run
made them."""

from __future__ import annotations

import platform
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bench import (
    fanout,
    imaging,
    pipeline,
    ready_latency,
    throughput,
    upload_latency,
    webp_settings,
)

REPORT = Path("docs/benchmarks.md")

# Name -> the function that measures and returns the section's lines, its "## " heading first.
SECTIONS: dict[str, Callable[[], list[str]]] = {
    "imaging": imaging.run,
    "webp": webp_settings.run,
    "throughput": throughput.run,
    "fanout": fanout.run,
    "upload_latency": upload_latency.run,
    "pipeline": pipeline.run,
    "ready_latency": ready_latency.run,
}


def header() -> list[str]:
    return [
        "# Benchmarks",
        "",
        "Made by `make bench`; every ratio compares two ways measured in the same run.",
        f"Last full run: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC,"
        f" Python {platform.python_version()}, {platform.machine()}.",
        f"Rerun one section with `python -m bench NAME` (NAME: {', '.join(SECTIONS)}).",
        "",
    ]


def split_sections(text: str) -> tuple[str, list[str]]:
    """The report's preamble, and its sections, each starting at its "## " heading."""
    parts = text.split("\n## ")
    return parts[0], ["## " + part for part in parts[1:]]


def rerun(names: list[str]) -> None:
    preamble, sections = split_sections(REPORT.read_text() if REPORT.exists() else "")
    for name in names:
        lines = SECTIONS[name]()
        note = (
            f"Rerun alone (`python -m bench {name}`):"
            f" {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, Python {platform.python_version()}."
        )
        fresh = "\n".join([lines[0], "", note, *lines[1:], ""]).rstrip("\n") + "\n"
        old = [i for i, s in enumerate(sections) if s.split("\n", 1)[0] == lines[0]]
        if old:
            sections[old[0]] = fresh
        else:
            sections.append(fresh)
        print(fresh)
    preamble = preamble or "\n".join(header())
    body = "\n".join(section.rstrip("\n") + "\n" for section in sections)
    REPORT.write_text(preamble.rstrip("\n") + "\n\n" + body)


def main() -> None:
    lines = header()
    for run in SECTIONS.values():
        lines += [*run(), ""]
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    unknown = [name for name in sys.argv[1:] if name not in SECTIONS]
    if unknown:
        sys.exit(f"unknown section {', '.join(unknown)}; known: {', '.join(SECTIONS)}")
    if sys.argv[1:]:
        rerun(sys.argv[1:])
    else:
        main()
