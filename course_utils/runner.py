"""`make course`: execute every notebook in order, write executed copies and HTML to build/, print a summary.

Usage: `python -m course_utils.runner [--profile smoke|cpu|gpu] [--only 00 01] [--build-dir build]`.
Each `--only` prefix must match at least one notebook; a failed notebook's row names its exception.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat

from course_utils.config import PROFILE_ENV, active_profile, warn_if_gpu_without_cuda
from course_utils.report import REPORT_ENV, read_report

REPO_ROOT = Path(__file__).resolve().parents[1]
HEADLESS_ENV = "COURSE_HEADLESS"
REASON_LIMIT = 200  # characters of a failed notebook's exception text in the summary


class NotebookSelectionError(ValueError):
    """An `--only` prefix matches none of the course notebooks."""


@dataclass(frozen=True)
class NotebookRun:
    """The outcome of executing one notebook."""

    name: str
    status: str  # "ok" or "failed: <reason>"
    seconds: float
    headline: str
    fallbacks: tuple[str, ...]
    memory_bytes: int = 0  # the largest accelerator memory estimate of its training runs (COURSE_MEMORY_ESTIMATE=1)


INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


def course_notebooks(folder: Path) -> list[Path]:
    """The numbered course notebooks in `folder`, in course order."""
    return sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))


def select_notebooks(folder: Path, only: list[str]) -> list[Path]:
    """The notebooks of `folder` whose names start with one of `only` (all of them when `only` is empty).

    Raises NotebookSelectionError, naming the available numbers, when a prefix matches no notebook, so a typo
    is reported before anything runs instead of silently running fewer notebooks.
    """
    notebooks = course_notebooks(folder)
    if not only:
        return notebooks
    unmatched = [prefix for prefix in only if not any(p.stem.startswith(prefix) for p in notebooks)]
    if unmatched:
        numbers = ", ".join(sorted({p.stem[:2] for p in notebooks})) or f"none (no notebooks in {folder})"
        raise NotebookSelectionError(
            f"--only {' '.join(unmatched)} matches no notebook. Available notebook numbers: {numbers} "
            "(e.g. `--only 00 02`; leave out --only to run them all)."
        )
    return [p for p in notebooks if any(p.stem.startswith(prefix) for prefix in only)]


def _only_prefix(value: str) -> str:
    """argparse type of `--only`: a non-empty notebook-name prefix such as `02` or `02_dcgan`."""
    prefix = value.strip()
    if not prefix:
        raise argparse.ArgumentTypeError(
            "an empty prefix matches every notebook; give notebook numbers such as `--only 00 02`, "
            "or leave out --only to run them all"
        )
    return prefix


def failure_reason(error: BaseException, limit: int = REASON_LIMIT) -> str:
    """One line naming why a notebook failed, e.g. `ValueError: shapes differ` (at most `limit` characters).

    nbclient's CellExecutionError carries the kernel's exception as `.ename` / `.evalue` (its own message is the
    whole traceback); other errors (a dead kernel, a timeout) give their class name and first message line.
    """
    ename = getattr(error, "ename", None)
    if ename:
        name, message = str(ename), str(getattr(error, "evalue", "") or "")
    else:
        name, message = type(error).__name__, str(error)
    first_line = next((line.strip() for line in message.splitlines() if line.strip()), "")
    text = f"{name}: {first_line}" if first_line else name
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _table_cell(text: str) -> str:
    """`text` made safe for one Markdown table cell: on one line, with `|` escaped."""
    return " ".join(text.split()).replace("|", "\\|")


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
    notebook.metadata.pop("widgets", None)  # saved widget state: kilobytes of stale views from the last session
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
    """Execute the selected notebooks in order; every one runs even if an earlier one failed.

    Raises NotebookSelectionError, before running anything, when an `only` prefix matches no notebook.
    """
    selected = select_notebooks(notebooks_dir, only)
    build_dir.mkdir(parents=True, exist_ok=True)
    runs: list[NotebookRun] = []
    for path in selected:
        report_path = build_dir / f"{path.stem}.report.jsonl"
        print(f"[course] {path.name} ({profile}) ...", flush=True)
        start = time.perf_counter()
        status = "ok"
        notebook = nbformat.read(path, as_version=4)
        try:
            execute_notebook(notebook, path.parent, profile, report_path)
        except Exception as error:  # a failing notebook is reported (its error is in the HTML); the rest still run
            status = f"failed: {failure_reason(error)}"
            print(f"[course] {path.name} failed:\n{error}", file=sys.stderr)
        seconds = time.perf_counter() - start
        nbformat.write(notebook, build_dir / path.name)
        _write_html(notebook, build_dir / f"{path.stem}.html")
        records = read_report(report_path)
        headlines = [r["text"] for r in records if r["kind"] == "headline"]
        fallbacks = tuple(sorted({f"{r['dataset']}->{r['used']}" for r in records if r["kind"] == "fallback"}))
        memory = max((int(r["bytes"]) for r in records if r["kind"] == "memory"), default=0)
        runs.append(NotebookRun(path.stem, status, seconds, headlines[-1] if headlines else "", fallbacks, memory))
    return runs


def format_summary(runs: list[NotebookRun], profile: str) -> str:
    """A Markdown table: notebook, status, wall time, headline figure, data used (and memory, when estimated)."""
    with_memory = any(run.memory_bytes for run in runs)
    lines = [
        f"Course run, profile `{profile}`",
        "",
        "| notebook | status | wall time | headline | data |" + (" peak memory (est.) |" if with_memory else ""),
        "|---|---|---:|---|---|" + ("---:|" if with_memory else ""),
    ]
    for run in runs:
        data = "fallback: " + ", ".join(run.fallbacks) if run.fallbacks else "as planned"
        cells = [_table_cell(run.name), _table_cell(run.status), f"{run.seconds:.1f} s", _table_cell(run.headline),
                 _table_cell(data)]
        if with_memory:
            cells.append(f"{run.memory_bytes / 1e9:.2f} GB" if run.memory_bytes else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point for `make course`."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=("smoke", "cpu", "gpu"), default=None)
    parser.add_argument(
        "--only", nargs="*", type=_only_prefix, default=[], help="notebook number prefixes, e.g. 00 01"
    )
    parser.add_argument("--build-dir", type=Path, default=REPO_ROOT / "build")
    args = parser.parse_args(argv)
    if args.profile:
        warn_if_gpu_without_cuda(args.profile, asked_by="--profile gpu", stacklevel=1)
    profile = args.profile or active_profile()
    try:
        runs = run_course(profile, args.only, args.build_dir)
    except NotebookSelectionError as error:
        parser.error(str(error))  # exits with status 2, like any other usage error
    summary = format_summary(runs, profile)
    (args.build_dir / "summary.md").write_text(summary + "\n", encoding="utf-8")
    print("\n" + summary)
    return 0 if runs and all(run.status == "ok" for run in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
