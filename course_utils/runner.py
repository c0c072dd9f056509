"""`make course`: execute every notebook in order, write executed copies and HTML to build/, print a summary.

Usage: `python -m course_utils.runner [--profile smoke|cpu|gpu] [--only 00 01] [--build-dir build]`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat

from course_utils.config import PROFILE_ENV, active_profile
from course_utils.report import REPORT_ENV, read_report

REPO_ROOT = Path(__file__).resolve().parents[1]
HEADLESS_ENV = "COURSE_HEADLESS"


@dataclass(frozen=True)
class NotebookRun:
    """The outcome of executing one notebook."""

    name: str
    status: str  # "ok" or "failed: <reason>"
    seconds: float
    headline: str
    fallbacks: tuple[str, ...]


INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


def course_notebooks(folder: Path) -> list[Path]:
    """The numbered course notebooks in `folder`, in course order."""
    return sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))


def execute_notebook(notebook, folder: Path, profile: str, report_path: Path | None = None, timeout: int = 3600):
    """Run `notebook` top to bottom, in place, in a fresh kernel started in `folder` under `profile`."""
    from nbclient import NotebookClient

    env_backup = {k: os.environ.get(k) for k in (PROFILE_ENV, REPORT_ENV, HEADLESS_ENV, "MPLBACKEND")}
    os.environ[PROFILE_ENV] = profile
    os.environ[HEADLESS_ENV] = "1"
    os.environ["MPLBACKEND"] = INLINE_BACKEND  # figures into the executed notebook, even if the shell set Agg
    if report_path is not None:
        report_path.unlink(missing_ok=True)
        os.environ[REPORT_ENV] = str(report_path)
    try:
        client = NotebookClient(
            notebook, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(folder)}}
        )
        client.execute()
    finally:
        for key, value in env_backup.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def strip_outputs(notebook):
    """Remove every output and execution count: notebooks are committed clean.

    Deterministic worked examples check themselves with `assert` statements in the cell, so nbval (which runs
    every notebook in CI) fails when one of them changes; nothing needs a stored reference output.
    """
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        cell.metadata.pop("execution", None)
        cell.execution_count = None
        cell.outputs = []
    return notebook


def _write_html(notebook, target: Path) -> None:
    """Export an executed notebook to a standalone HTML page."""
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(notebook)
    target.write_text(body, encoding="utf-8")


def run_course(
    profile: str, only: list[str], build_dir: Path, notebooks_dir: Path = REPO_ROOT / "notebooks"
) -> list[NotebookRun]:
    """Execute the selected notebooks in order; every one runs even if an earlier one failed."""
    build_dir.mkdir(parents=True, exist_ok=True)
    runs: list[NotebookRun] = []
    for path in course_notebooks(notebooks_dir):
        if only and not any(path.stem.startswith(prefix) for prefix in only):
            continue
        report_path = build_dir / f"{path.stem}.report.jsonl"
        print(f"[course] {path.name} ({profile}) ...", flush=True)
        start = time.perf_counter()
        status = "ok"
        notebook = nbformat.read(path, as_version=4)
        try:
            execute_notebook(notebook, path.parent, profile, report_path)
        except Exception as error:  # a failing notebook is reported (its error is in the HTML); the rest still run
            status = f"failed: {type(error).__name__}"
            print(f"[course] {path.name} failed:\n{error}", file=sys.stderr)
        seconds = time.perf_counter() - start
        nbformat.write(notebook, build_dir / path.name)
        _write_html(notebook, build_dir / f"{path.stem}.html")
        records = read_report(report_path)
        headlines = [r["text"] for r in records if r["kind"] == "headline"]
        fallbacks = tuple(sorted({f"{r['dataset']}->{r['used']}" for r in records if r["kind"] == "fallback"}))
        runs.append(NotebookRun(path.stem, status, seconds, headlines[-1] if headlines else "", fallbacks))
    return runs


def format_summary(runs: list[NotebookRun], profile: str) -> str:
    """A Markdown table: notebook, status, wall time, headline figure, data used."""
    lines = [
        f"Course run, profile `{profile}`",
        "",
        "| notebook | status | wall time | headline | data |",
        "|---|---|---:|---|---|",
    ]
    for run in runs:
        data = "fallback: " + ", ".join(run.fallbacks) if run.fallbacks else "as planned"
        lines.append(f"| {run.name} | {run.status} | {run.seconds:.1f} s | {run.headline} | {data} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point for `make course`."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=("smoke", "cpu", "gpu"), default=None)
    parser.add_argument("--only", nargs="*", default=[], help="notebook number prefixes, e.g. 00 01")
    parser.add_argument("--build-dir", type=Path, default=REPO_ROOT / "build")
    args = parser.parse_args(argv)
    profile = args.profile or active_profile()
    runs = run_course(profile, args.only, args.build_dir)
    summary = format_summary(runs, profile)
    (args.build_dir / "summary.md").write_text(summary + "\n", encoding="utf-8")
    print("\n" + summary)
    return 0 if runs and all(run.status == "ok" for run in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
