"""Thumbwire's imaging against the naive Pillow way and pyvips, side by side in one run.

Each contender runs on each original in a fresh process of its own (bench/one.py), so that
its peak RSS is its own: the interpreter with its imports and the original's bytes (the
"before" column) plus what the work needed at most. The contenders take turns, SESSIONS times,
and each keeps its best session: on a shared machine, other work only ever adds time."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass

from bench.contenders import CONTENDERS
from bench.photos import Original, originals

BASELINE = "naive Pillow"
SESSIONS = 3
TARGET = "12 MP JPEG (4000x3000)"


@dataclass(frozen=True)
class Result:
    ms: float
    peak_mb: float
    base_mb: float


def measure(name: str, original: Original, rounds: int) -> Result | str:
    """The contender's result, or why it has none."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.one", name, str(original.path), str(rounds)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"exit code {done.returncode}"]
        return lines[-1]
    data = json.loads(done.stdout.strip().splitlines()[-1])
    return Result(data["ms"], data["peak_kb"] / 1024, data["base_kb"] / 1024)


def best_of_sessions(original: Original, rounds: int) -> dict[str, Result | str]:
    best: dict[str, Result | str] = {}
    for _ in range(SESSIONS):
        for name in CONTENDERS:
            result = measure(name, original, rounds)
            kept = best.get(name)
            if kept is None or (isinstance(result, Result) and not _faster(kept, result)):
                best[name] = result
    return best


def _faster(kept: Result | str, result: Result) -> bool:
    return isinstance(kept, Result) and kept.ms <= result.ms


def run(rounds: int = 5) -> list[str]:
    lines = [
        "## Imaging: three WebP sizes from one original",
        "",
        f"Best of {SESSIONS} sessions, each the median of {rounds} runs after a warm-up; peak RSS",
        "of the contender's own process (VmHWM), with its size before any work. pyvips makes",
        "the large size with shrink-on-load and each smaller one from the one before, with",
        "thumbwire's WebP settings, so that only the pipelines differ.",
        "",
        "| original | way | ms per image | x faster than naive | peak RSS MB"
        " (before work) | peak RSS / naive's |",
        "|---|---|---|---|---|---|",
    ]
    summary: dict[str, Result | str] = {}
    for original in originals():
        results = best_of_sessions(original, rounds)
        lines += _rows(original, results)
        if original.name == TARGET:
            summary = results
    return [*lines, "", *_verdict(summary), "", *LIMITS]


# What profiling (cProfile over make_thumbnails) showed when these lines were written.
LIMITS = [
    "What limits it:",
    "",
    "- JPEG: DCT scaling (libjpeg's 1/4 for 12 MP, with its fast IDCT) shrinks the IDCT and",
    "  everything after it, but every coefficient must still be entropy-decoded: about half",
    "  of thumbwire's time on the 12 MP JPEG, and the same work in the naive way. The WebP",
    "  encoder is most of the rest (method 2; method 0 saves a third of it for 14% more",
    "  bytes, see below). A one-thread pipeline at this quality ends near 3x; more cores go",
    "  to more images at once (the throughput table), not to one image.",
    "- PNG: no format-level reduced decode exists; inflating and unfiltering 36 MB of pixels",
    "  is about three quarters of the time. libvips' PNG reader (libspng) is faster at that.",
    "- HEIC: libde265 decodes HEVC at full size, about 0.9 s for 12 MP; the rest is small.",
    "  The libvips in pyvips-binary has no HEVC decoder, so pyvips cannot be compared here.",
]


def _rows(original: Original, results: dict[str, Result | str]) -> list[str]:
    label = f"{original.name}, {original.size_mb:.1f} MB"
    base = results[BASELINE]
    rows = []
    for name, result in results.items():
        if isinstance(result, str):
            rows.append(f"| {label} | {name} | n/a: {result} | | | |")
            continue
        speed = f"{base.ms / result.ms:.2f}x" if isinstance(base, Result) else ""
        memory = f"{result.peak_mb / base.peak_mb:.2f}" if isinstance(base, Result) else ""
        rows.append(
            f"| {label} | {name} | {result.ms:.0f} | {speed} |"
            f" {result.peak_mb:.0f} ({result.base_mb:.0f}) | {memory} |"
        )
    return rows


def _verdict(results: dict[str, Result | str]) -> list[str]:
    """The targets on the 12 MP JPEG: >= 3x naive's speed, no slower than pyvips, <= 1/3 of
    naive's peak memory."""
    ours, naive, vips = (results.get(n) for n in ("thumbwire", BASELINE, "pyvips"))
    if not (isinstance(ours, Result) and isinstance(naive, Result)):
        return ["Targets on the 12 MP JPEG: not measured (a contender failed)."]
    lines = [
        f"Targets on the {TARGET}:",
        "",
        f"- speed against naive: {naive.ms / ours.ms:.2f}x (target at least 3x)",
        f"- peak RSS against naive: {ours.peak_mb / naive.peak_mb:.2f} (target at most 0.33)",
    ]
    if isinstance(vips, Result):
        lines.append(f"- speed against pyvips: {vips.ms / ours.ms:.2f}x (target at least 1x)")
    else:
        lines.append(f"- pyvips: not measured ({vips})")
    return lines
