"""`make course`: execute every notebook in order, write executed copies and HTML to build/, print a summary.

Usage: `python -m course_utils.runner [--profile smoke|cpu|gpu] [--only 00 01] [--build-dir build]`.
Each `--only` prefix must match at least one notebook. While a notebook runs, a progress line (cell i/N, time
elapsed, the time the README's course map gives for this profile) is printed every `--progress-every` seconds;
the summary names each failed notebook's exception and the cell it came from.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat

from course_utils.config import PROFILE_ENV, active_profile, warn_if_gpu_without_cuda
from course_utils.report import REPORT_ENV, read_report

REPO_ROOT = Path(__file__).resolve().parents[1]
HEADLESS_ENV = "COURSE_HEADLESS"
REASON_LIMIT = 200  # characters of a failed notebook's exception text in the summary
PROGRESS_EVERY = 30.0  # seconds between two progress lines while a notebook runs
TRACEBACK_LINES = 6  # lines of a failed cell's traceback in the summary's failure section
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


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
    failure: str = ""  # for a failed notebook: where it failed and the end of the traceback (several lines)
    peak_ram_bytes: int | None = None  # the kernel's peak resident memory (Linux: VmHWM; None where unknown)


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


def parse_duration(text: str) -> float | None:
    """Seconds from a course-map time such as `19 s`, `4.6 min`, `4–6 min` (the upper end) or `1.5 h`; else None."""
    match = re.search(r"(\d+(?:\.\d+)?)(?:\s*[–-]\s*(\d+(?:\.\d+)?))?\s*(s|min|h)\b", text)
    if not match:
        return None
    value = float(match.group(2) or match.group(1))
    return value * {"s": 1, "min": 60, "h": 3600}[match.group(3)]


def expected_times(profile: str, readme: Path = REPO_ROOT / "README.md") -> dict[str, float]:
    """Notebook stem -> seconds that the README's course map gives for `profile` (measured ones only)."""
    if not readme.is_file():
        return {}
    columns: list[str] = []
    times = {}
    for line in readme.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if cells[:2] == ["#", "notebook"]:
            columns = cells
        elif columns and len(cells) == len(columns) and re.fullmatch(r"\d\d", cells[0]) and profile in columns:
            seconds = parse_duration(cells[columns.index(profile)])
            if seconds is not None:
                times[cells[1].strip("`")] = seconds
        elif columns and not line.startswith("|"):
            break  # the end of the course map's table
    return times


def format_seconds(seconds: float) -> str:
    """`42 s`, `3 min 05 s` or `1 h 02 min`."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class CellProgress:
    """Tells the terminal where a running notebook is: cell i/N, time elapsed, the course map's time.

    nbclient calls `on_cell_start` before each cell; a background thread prints the current line every `every`
    seconds (so a long training cell still shows signs of life), and `stop` prints the final one.
    """

    def __init__(self, name: str, notebook, expected: float | None, every: float = PROGRESS_EVERY,
                 stream=None, clock=time.monotonic) -> None:
        self.name, self.expected, self.every, self.clock = name, expected, every, clock
        self.stream = stream if stream is not None else sys.stdout
        self.code_cells = [i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"]
        self.current = 0  # the code cell running now, counted from 1 (0: none started yet)
        self.cell_index: int | None = None  # its index among all cells
        self.start = clock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._tick, daemon=True)

    def line(self) -> str:
        """One progress line, e.g. `[course] 02_dcgan: cell 12/48, 1 min 05 s elapsed (course map: 15 s)`."""
        text = f"[course] {self.name}: cell {self.current}/{len(self.code_cells)}, "
        text += f"{format_seconds(self.clock() - self.start)} elapsed"
        if self.expected is not None:
            text += f" (course map: {format_seconds(self.expected)})"
        return text

    def on_cell_start(self, cell, cell_index: int, **_) -> None:
        """nbclient hook: a cell is about to run."""
        if cell.cell_type == "code":
            self.current = self.code_cells.index(cell_index) + 1 if cell_index in self.code_cells else self.current
            self.cell_index = cell_index

    def _tick(self) -> None:
        while not self._done.wait(self.every):
            print(self.line(), file=self.stream, flush=True)

    def __enter__(self) -> CellProgress:
        self.start = self.clock()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()


def failure_details(error: BaseException, notebook, cell_index: int | None, lines: int = TRACEBACK_LINES) -> str:
    """Where a notebook failed (cell number, its first line of code) and the last `lines` lines of the traceback."""
    where = ""
    if cell_index is not None and cell_index < len(notebook.cells):
        code = [i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"]
        first = next((line for line in notebook.cells[cell_index].source.splitlines() if line.strip()), "")
        number = code.index(cell_index) + 1 if cell_index in code else "?"
        where = f"code cell {number}/{len(code)} (cell index {cell_index}): `{first.strip()[:80]}`\n"
    traceback = str(getattr(error, "traceback", "") or error)
    tail = [_ANSI.sub("", line).rstrip() for line in traceback.splitlines() if line.strip()][-lines:]
    return where + "\n".join(tail)


def _table_cell(text: str) -> str:
    """`text` made safe for one Markdown table cell: on one line, with `|` escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def peak_resident_bytes(pid: int | None) -> int | None:
    """The peak resident memory of process `pid` so far (Linux's VmHWM), or None where the OS does not say."""
    if pid is None:
        return None
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024  # kB
    return None


class KernelMemory:
    """The peak resident memory of a notebook's kernel, read after every cell (the kernel is gone afterwards)."""

    def __init__(self) -> None:
        self.client = None
        self.peak_bytes: int | None = None

    def on_cell_executed(self, **_: object) -> None:
        provisioner = getattr(getattr(self.client, "km", None), "provisioner", None)
        peak = peak_resident_bytes(getattr(provisioner, "pid", None))
        if peak is not None:
            self.peak_bytes = max(peak, self.peak_bytes or 0)


def execute_notebook(notebook, folder: Path, profile: str, report_path: Path | None = None, timeout: int = 3600,
                     progress: CellProgress | None = None, memory: KernelMemory | None = None):
    """Run `notebook` top to bottom, in place, in a fresh kernel started in `folder` under `profile`.

    With `progress`, nbclient tells it which cell starts (for the progress lines and the failure report); with
    `memory`, the kernel's peak resident memory is read after every cell.
    """
    from nbclient import NotebookClient

    env_backup = {k: os.environ.get(k) for k in (PROFILE_ENV, REPORT_ENV, HEADLESS_ENV, "MPLBACKEND")}
    os.environ[PROFILE_ENV] = profile
    os.environ[HEADLESS_ENV] = "1"
    os.environ["MPLBACKEND"] = INLINE_BACKEND  # figures into the executed notebook, even if the shell set Agg
    if report_path is not None:
        report_path.unlink(missing_ok=True)
        os.environ[REPORT_ENV] = str(report_path)
    try:
        hooks = {"on_cell_start": progress.on_cell_start} if progress is not None else {}
        if memory is not None:
            hooks["on_cell_executed"] = memory.on_cell_executed
        client = NotebookClient(
            notebook, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(folder)}}, **hooks
        )
        if memory is not None:
            memory.client = client
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
    """Export an executed notebook to a standalone HTML page that needs no network (see `offline_html`)."""
    from course_utils.offline_html import write_offline_html

    write_offline_html(notebook, target)


def run_course(
    profile: str, only: list[str], build_dir: Path, notebooks_dir: Path = REPO_ROOT / "notebooks",
    progress_every: float = PROGRESS_EVERY, readme: Path = REPO_ROOT / "README.md",
) -> list[NotebookRun]:
    """Execute the selected notebooks in order; every one runs even if an earlier one failed.

    Prints a progress line every `progress_every` seconds while a notebook runs, with the time that the course
    map in `readme` gives for `profile`. Raises NotebookSelectionError, before running anything, when an `only`
    prefix matches no notebook.
    """
    selected = select_notebooks(notebooks_dir, only)
    expected = expected_times(profile, readme)
    build_dir.mkdir(parents=True, exist_ok=True)
    runs: list[NotebookRun] = []
    for number, path in enumerate(selected, start=1):
        report_path = build_dir / f"{path.stem}.report.jsonl"
        notebook = nbformat.read(path, as_version=4)
        progress = CellProgress(path.stem, notebook, expected.get(path.stem), every=progress_every)
        planned = f", course map: {format_seconds(expected[path.stem])}" if path.stem in expected else ""
        print(f"[course] {number}/{len(selected)} {path.name} ({profile}, {len(progress.code_cells)} code cells"
              f"{planned}) ...", flush=True)
        start = time.perf_counter()
        status, failure = "ok", ""
        kernel_memory = KernelMemory()
        try:
            with progress:
                execute_notebook(notebook, path.parent, profile, report_path, progress=progress,
                                 memory=kernel_memory)
        except Exception as error:  # a failing notebook is reported (its error is in the HTML); the rest still run
            status = f"failed: {failure_reason(error)}"
            failure = failure_details(error, notebook, progress.cell_index)
            print(f"[course] {path.name} failed in {failure.splitlines()[0] if failure else '?'}:\n{error}",
                  file=sys.stderr)
        seconds = time.perf_counter() - start
        print(f"[course] {path.name}: {status.split(':')[0]} after {format_seconds(seconds)}", flush=True)
        nbformat.write(notebook, build_dir / path.name)
        _write_html(notebook, build_dir / f"{path.stem}.html")
        records = read_report(report_path)
        headlines = [r["text"] for r in records if r["kind"] == "headline"]
        fallbacks = tuple(sorted({f"{r['dataset']}->{r['used']}" for r in records if r["kind"] == "fallback"}))
        memory = max((int(r["bytes"]) for r in records if r["kind"] == "memory"), default=0)
        runs.append(NotebookRun(path.stem, status, seconds, headlines[-1] if headlines else "", fallbacks, memory,
                                failure, kernel_memory.peak_bytes))
    return runs


def format_summary(runs: list[NotebookRun], profile: str) -> str:
    """A Markdown table: notebook, status, wall time, headline figure, data used (and memory, when estimated)."""
    with_memory = any(run.memory_bytes for run in runs)
    lines = [
        f"Course run, profile `{profile}`",
        "",
        "| notebook | status | wall time | peak RAM | headline | data |"
        + (" peak memory (est.) |" if with_memory else ""),
        "|---|---|---:|---:|---|---|" + ("---:|" if with_memory else ""),
    ]
    for run in runs:
        data = "fallback: " + ", ".join(run.fallbacks) if run.fallbacks else "as planned"
        ram = f"{run.peak_ram_bytes / 1e9:.2f} GB" if run.peak_ram_bytes else "not measured"
        cells = [_table_cell(run.name), _table_cell(run.status), f"{run.seconds:.1f} s", ram,
                 _table_cell(run.headline), _table_cell(data)]
        if with_memory:
            cells.append(f"{run.memory_bytes / 1e9:.2f} GB" if run.memory_bytes else "-")
        lines.append("| " + " | ".join(cells) + " |")
    peaks = [run.peak_ram_bytes for run in runs if run.peak_ram_bytes]
    lines += ["", f"Total wall time {format_seconds(sum(run.seconds for run in runs))} for {len(runs)} notebook(s)"
              + (f"; largest peak RAM {max(peaks) / 1e9:.2f} GB" if peaks else "") + "."]
    failed = [run for run in runs if run.status != "ok"]
    if failed:
        lines += ["", "Failed notebooks (the executed copy in the build folder shows the whole traceback):"]
        for run in failed:
            lines += ["", f"{run.name}: {run.status.removeprefix('failed: ')}"]
            if run.failure:
                lines += ["```", run.failure, "```"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point for `make course`."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=("smoke", "cpu", "gpu"), default=None)
    parser.add_argument(
        "--only", nargs="*", type=_only_prefix, default=[], help="notebook number prefixes, e.g. 00 01"
    )
    parser.add_argument("--build-dir", type=Path, default=REPO_ROOT / "build")
    parser.add_argument("--progress-every", type=float, default=PROGRESS_EVERY, metavar="SECONDS",
                        help="seconds between progress lines while a notebook runs (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.profile:
        warn_if_gpu_without_cuda(args.profile, asked_by="--profile gpu", stacklevel=1)
    profile = args.profile or active_profile()
    try:
        runs = run_course(profile, args.only, args.build_dir, progress_every=args.progress_every)
    except NotebookSelectionError as error:
        parser.error(str(error))  # exits with status 2, like any other usage error
    summary = format_summary(runs, profile)
    (args.build_dir / "summary.md").write_text(summary + "\n", encoding="utf-8")
    print("\n" + summary)
    return 0 if runs and all(run.status == "ok" for run in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
