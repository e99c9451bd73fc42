"""The thumbnailer's per-photo stage timings (services/thumbnailer/stages.py), read back from
its JSON log."""

from __future__ import annotations

import json
from pathlib import Path

READY_MARK = ": thumbnails ready ("


def stage_timings(log_path: Path) -> dict[str, dict[str, float]]:
    """photo id -> {stage: seconds, and `received`/`committed` as epoch seconds}."""
    found: dict[str, dict[str, float]] = {}
    for line in log_path.read_text(errors="replace").splitlines():
        if READY_MARK not in line or not line.startswith("{"):
            continue
        record = json.loads(line)
        pairs = record["message"].split(READY_MARK, 1)[1].rstrip(")").split()
        found[record["photo_id"]] = {
            key: float(value) for key, value in (pair.split("=", 1) for pair in pairs)
        }
    return found
