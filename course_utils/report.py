"""What a notebook tells `make course`: its headline figure, any fallback data it used, the memory its runs need.

Each call prints a tagged line (so a reader sees it) and, when `COURSE_REPORT_PATH` is set by the
runner, appends a JSON record to that file (so the summary table can show it).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

REPORT_ENV = "COURSE_REPORT_PATH"
MEMORY_ENV = "COURSE_MEMORY_ESTIMATE"  # 1: train_gan estimates and reports the memory of every run it starts


def _append(record: dict[str, str]) -> None:
    """Append one JSON line to the runner's report file, if the runner asked for one."""
    path = os.environ.get(REPORT_ENV)
    if path:
        with Path(path).open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")


def headline(text: str) -> None:
    """Record the notebook's headline figure (one short line with the number that matters)."""
    print(f"HEADLINE: {text}")
    _append({"kind": "headline", "text": text})


def note_fallback(dataset: str, used: str, reason: str) -> None:
    """Record that `dataset` was unavailable and `used` stood in for it, and why."""
    print(f"FALLBACK: {dataset} -> {used} ({reason})")
    _append({"kind": "fallback", "dataset": dataset, "used": used, "reason": reason})


def memory(run: str, total_bytes: int, text: str) -> None:
    """Record the accelerator memory one training run's settings need (from `training.memory`)."""
    print(f"MEMORY: {run}: {text}")
    _append({"kind": "memory", "run": run, "bytes": str(int(total_bytes)), "text": text})


def read_report(path: str | Path) -> list[dict[str, str]]:
    """Read the records a notebook appended; an absent file means no records."""
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
